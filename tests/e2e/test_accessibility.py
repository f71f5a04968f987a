"""An accessibility check of every page (issue 15), in Chromium, as each kind of visitor:
anonymous, a student, a counselor, an admin — error pages and form results included.

On every page, our own checks (computed styles read from the browser):
  - the document has a `lang` and a non-empty title;
  - headings start at h1 and never skip a level going down;
  - every image has alt text;
  - every form control has a label (a <label>, aria-label, aria-labelledby or title) and every
    button a name;
  - every focusable element shows a focus indicator (an outline ≥ 2 px) whose colour has a
    contrast ≥ 3:1 against the background it is drawn on (WCAG 2.2, 1.4.11 / 2.4.13);
and Deque's axe-core (4.4, the copy axe-core-python ships) with the WCAG 2.0/2.1 A and AA rules.

A negative control runs the same checks on a page built to fail each one (no lang, no title,
an h2 first, an unlabelled input, an image without alt, the old 2:1 focus ring).
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from test_counselor_path import fill, login, logout, submit_form_of, visible, wait

AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# The checks, run in the page. Returns a list of problems (strings).
CHECKS_JS = r"""
const problems = [];
const text = (el) => (el ? (el.textContent || "").replace(/\s+/g, " ").trim() : "");
const describe = (el) => {
  let s = el.tagName.toLowerCase();
  if (el.id) s += "#" + el.id;
  if (el.getAttribute("name")) s += "[name=" + el.getAttribute("name") + "]";
  if (el.getAttribute("href")) s += "[href=" + el.getAttribute("href") + "]";
  const t = text(el).slice(0, 30);
  return t ? s + " “" + t + "”" : s;
};
const visibleEl = (el) => {
  const r = el.getBoundingClientRect();
  const cs = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && cs.visibility !== "hidden" && cs.display !== "none";
};
// lang and title
if (!document.documentElement.getAttribute("lang")) problems.push("the page has no lang");
if (!document.title.trim()) problems.push("the page has no title");
// headings
const hs = [...document.querySelectorAll("h1,h2,h3,h4,h5,h6")];
if (!hs.length) problems.push("no heading at all");
else if (hs[0].tagName !== "H1") problems.push("the first heading is " + describe(hs[0]) + ", not an h1");
let last = 0;
for (const h of hs) {
  const level = +h.tagName[1];
  if (last && level > last + 1) problems.push("heading skips a level: " + describe(h) + " after h" + last);
  last = level;
}
// images
for (const img of document.querySelectorAll("img, input[type=image]")) {
  if (!img.hasAttribute("alt")) problems.push("image without alt: " + describe(img));
}
// labels
const labelled = (el) => {
  if (el.getAttribute("aria-label") && el.getAttribute("aria-label").trim()) return true;
  const by = el.getAttribute("aria-labelledby");
  if (by && by.split(/\s+/).some((id) => text(document.getElementById(id)))) return true;
  if (el.labels && [...el.labels].some((l) => text(l))) return true;
  if (el.getAttribute("title") && el.getAttribute("title").trim()) return true;
  return false;
};
for (const el of document.querySelectorAll("input, select, textarea")) {
  const type = (el.getAttribute("type") || "").toLowerCase();
  if (["hidden", "submit", "button", "reset", "image"].includes(type)) continue;
  if (!labelled(el)) problems.push("form control without a label: " + describe(el));
}
for (const b of document.querySelectorAll("button, input[type=submit], input[type=button]")) {
  if (!text(b) && !b.value && !labelled(b)) problems.push("button without a name: " + describe(b));
}
// focus indicators
const rgba = (c) => {
  const m = c.match(/rgba?\(([^)]+)\)/);
  if (!m) return null;
  const p = m[1].split(",").map((x) => parseFloat(x));
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
};
const lum = (c) => {
  const ch = [c.r, c.g, c.b].map((v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  });
  return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2];
};
const contrast = (a, b) => {
  const [l1, l2] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (l1 + 0.05) / (l2 + 0.05);
};
const backgroundBehind = (el) => {
  for (let n = el; n; n = n.parentElement) {
    const c = rgba(getComputedStyle(n).backgroundColor);
    if (c && c.a > 0.5) return c;
  }
  return { r: 255, g: 255, b: 255, a: 1 };
};
const focusable = [...document.querySelectorAll(
  "a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]:not([tabindex='-1'])"
)].filter((el) => !el.disabled);
const checked = [];
for (const el of focusable.slice(0, 80)) {
  el.focus({ preventScroll: true });
  if (document.activeElement !== el) continue;
  if (!visibleEl(el) && !el.classList.contains("skip")) { el.blur(); continue; }
  const cs = getComputedStyle(el);
  const width = parseFloat(cs.outlineWidth) || 0;
  const ring = rgba(cs.outlineColor);
  // The outline is drawn outside the element (outline-offset ≥ 0): against what is behind it.
  const behind = backgroundBehind(cs.outlineOffset && parseFloat(cs.outlineOffset) >= 0 ? el.parentElement || el : el);
  if (cs.outlineStyle === "none" || width < 2 || !ring) {
    problems.push("no visible focus indicator: " + describe(el));
  } else {
    const ratio = contrast(ring, behind);
    checked.push(ratio);
    if (ratio < 3) problems.push("focus indicator " + ratio.toFixed(2) + ":1 (< 3:1): " + describe(el));
  }
  el.blur();
}
return { problems, focusChecked: checked.length, minFocusContrast: checked.length ? Math.min(...checked) : null };
"""

AXE_JS = (Path(__import__("axe_core_python").__file__).parent / "axe.min.js").read_text()


def audit(d, label: str) -> tuple[list[str], dict]:
    """Our checks and axe's violations on the page the browser shows."""
    result = d.execute_script(CHECKS_JS)
    problems = [f"{label}: {p}" for p in result["problems"]]
    d.execute_script(AXE_JS)
    axe = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: %s}, resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]))"
        % json.dumps(AXE_TAGS)
    )
    for v in axe:
        problems.append(f"{label}: axe {v['id']} ({v['impact']}): {v['help']} — {v['nodes']}")
    return problems, result


def test_the_checks_catch_what_they_look_for(browser):
    """Negative control: a page that breaks every rule; each check reports it."""
    page = """<!doctype html><html><head><style>
      a:focus, input:focus { outline: 3px solid #9bb8ff; outline-offset: 1px; }
      body { background: #fff; }</style></head><body>
      <h2>Second level first</h2><h4>skipped</h4>
      <form><input name="who"><button type="submit"></button></form>
      <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
      <a href="#x">a link</a></body></html>"""
    browser.get("data:text/html;charset=utf-8," + page.replace("#", "%23"))
    problems, result = audit(browser, "control")
    joined = "\n".join(problems)
    for expected in (
        "the page has no lang",
        "the page has no title",
        "the first heading is h2",
        "heading skips a level",
        "form control without a label: input[name=who]",
        "button without a name",
        "image without alt",
        "focus indicator 1.9",
        "axe image-alt",
        "axe label",
    ):
        assert expected in joined, f"the checks missed {expected!r}:\n{joined}"


def add_staff(d, base: str, username: str, password: str) -> None:
    d.get(base + "/staff")
    fill(d, "username", username)
    fill(d, "display_name", "Connie Counselor")
    pw = fill(d, "password", password)
    submit_form_of(d, pw)


def add_student(d, base: str, name: str, username: str) -> str:
    d.get(base + "/students/new")
    fill(d, "display_name", name)
    fill(d, "username", username)
    cohort = fill(d, "cohort", "Blue")
    submit_form_of(d, cohort)
    return visible(d, ".card-password").text.strip()


def sweep(d, base: str, paths: list[str], who: str, problems: list[str], seen: dict) -> None:
    for path in paths:
        d.get(base + path)
        wait(d).until(lambda drv: drv.execute_script("return document.readyState") == "complete")
        found, result = audit(d, f"{who} {path}")
        problems.extend(found)
        seen[f"{who} {path}"] = (result["focusChecked"], result["minFocusContrast"])


def test_every_page_passes_the_accessibility_checks(browser, hubdesk):
    d, base = browser, hubdesk.url
    problems: list[str] = []
    seen: dict = {}
    tag = secrets.token_hex(2)
    counselor, student = f"connie{tag}", f"ada{tag}"
    staff_pw = "Counselor-a11y-" + secrets.token_hex(6)

    # Anonymous pages (and an error page without a frame user).
    sweep(d, base, ["/login", "/reset", "/nope", "/oauth/logout"], "anonymous", problems, seen)

    # The admin: sets up a counselor and a student; the form results are pages too.
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    add_staff(d, base, counselor, staff_pw)
    problems.extend(audit(d, "admin POST /staff")[0])
    student_pw = add_student(d, base, "Ada Lovelace", student)
    problems.extend(audit(d, "admin POST /students/new (cards)")[0])
    d.get(base + "/students/import")
    fill(d, "text", "display_name,cohort\nGrace Hopper,Blue\n")
    submit_form_of(d, visible(d, "#text"))
    problems.extend(audit(d, "admin POST /students/import (preview)")[0])
    d.get(base + "/jobs")
    job = visible(d, "#jobs tr.job a").get_attribute("href").replace(base, "")
    admin_pages = [
        "/students", f"/students/{student}", "/staff", "/homes/purge", "/cluster", "/audit",
        "/jobs", job, "/students/nosuch", "/account/password", "/cohorts", "/cohorts/blue", "/calendar", "/announcements",
        "/board", "/board?cohort=Blue", "/account/tokens", "/coursework",
    ]
    sweep(d, base, admin_pages, "admin", problems, seen)
    logout(d)

    # The counselor.
    login(d, base, counselor, staff_pw)
    counselor_pages = [
        "/students", "/students?cohort=Blue", "/students/new", "/students/import",
        f"/students/{student}", "/audit", "/jobs", job, "/students/nosuch", "/staff",
        "/account/password", "/cohorts", "/cohorts/blue", "/calendar", "/announcements", "/board",
        "/account/tokens", "/coursework",
    ]
    sweep(d, base, counselor_pages, "counselor", problems, seen)
    d.get(base + f"/students/{student}")
    submit_form_of(d, visible(d, "#reset-code"))
    visible(d, "#reset-code-value")
    problems.extend(audit(d, "counselor POST reset-code (the code, shown once)")[0])
    logout(d)

    # The student.
    login(d, base, student, student_pw)
    sweep(d, base, ["/", "/account/password", "/students", "/jobs/x", "/nope"], "student", problems, seen)

    report = "\n".join(f"  {k}: {n} focusable checked, lowest ring contrast {c and round(c, 2)}" for k, (n, c) in seen.items())
    print(f"accessibility sweep over {len(seen) + 4} pages (4 of them form results):\n{report}")
    assert not problems, "\n".join(problems)
    assert sum(n for n, _ in seen.values()) > 100, "the focus check saw too little"
