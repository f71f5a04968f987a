"""Locks in sight, bulk password resets with their cards, and the student table on a phone and
a laptop, in a real (headless) browser, as a counselor would do them (keyboard included).

Screenshots: `students-locked`, `bulk-confirm`, `bulk-cards`, `students-phone`,
`students-laptop`.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC

from e2e_support import page_replaced, scrape
from test_counselor_path import login, path_of, present, visible, wait

WRONG = "wrong-password-x"


def add_student(staff, display_name: str, cohort: str, username: str = "") -> tuple[str, str]:
    """Creates a student through the add-student form; returns (username, password)."""
    r = staff.follow(staff.submit("/students/new", {"display_name": display_name, "username": username,
                                                    "cohort": cohort}))
    assert r.status_code == 200, f"GET the credentials page: {r.status_code} {r.text[:500]}"
    page = scrape(r.text, "card-username", "card-password")
    return page.texts["card-username"][0], page.texts["card-password"][0]


def login_status(http, username: str, password: str) -> int:
    c = http()
    r = c.submit("/login", {"username": username, "password": password, "next": "/"})
    return r.status_code


def press(driver, element, key=Keys.ENTER) -> None:
    """Activates a link or button from the keyboard: focus it, then press a key."""
    driver.execute_script("arguments[0].focus()", element)
    assert driver.switch_to.active_element == element, "the element cannot take the focus"
    element.send_keys(key)


def wait_new_page(driver, old_html) -> None:
    wait(driver).until(page_replaced(old_html), "the page did not change")
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def card_creds(driver) -> list[tuple[str, str]]:
    out = []
    for card in driver.find_elements(By.CSS_SELECTOR, ".card"):
        text = lambda css: (card.find_element(By.CSS_SELECTOR, css).get_attribute("textContent") or "").strip()  # noqa: E731
        out.append((text(".card-username"), text(".card-password")))
    return out


def test_a_locked_student_is_found_through_the_filter_and_unlocked(browser, hubdesk, http, screenshot):
    staff = http()
    staff.login(hubdesk.admin_user, hubdesk.admin_password)
    user, password = add_student(staff, "Lena Lockwood", "Locks")
    add_student(staff, "Otto Open", "Locks")
    for _ in range(5):
        assert login_status(http, user, WRONG) == 401
    assert login_status(http, user, password) == 429, "locked: even the right password waits"

    d, base = browser, hubdesk.url
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    d.get(base + "/students?cohort=Locks")
    banner = visible(d, "#locked-banner")
    assert "locked out" in banner.text, banner.text
    # The list already says it: the badge, not "active".
    row = visible(d, f"tr.student[data-username='{user}']")
    assert row.find_elements(By.CSS_SELECTOR, ".badge.locked")
    assert "active" not in row.find_element(By.CSS_SELECTOR, "td.status").text

    # From the banner to the filter, by keyboard.
    html = d.find_element(By.TAG_NAME, "html")
    press(d, visible(d, "#show-locked"))
    wait_new_page(d, html)
    assert parse_qs(urlsplit(d.current_url).query).get("status") == ["locked"], d.current_url
    selected = d.find_element(By.CSS_SELECTOR, "#status option:checked").text
    assert selected == "Locked out", selected
    row = visible(d, f"tr.student[data-username='{user}']")
    usernames = [r.get_attribute("data-username") for r in d.find_elements(By.CSS_SELECTOR, "tr.student")]
    assert "otto" not in " ".join(usernames), f"an unlocked student in the locked filter: {usernames}"
    until = row.find_element(By.CSS_SELECTOR, ".lock-until").text
    assert until.startswith("until ") and "UTC" in until, until
    screenshot("students-locked")

    # Unlock, by keyboard, after its question.
    html = d.find_element(By.TAG_NAME, "html")
    press(d, row.find_element(By.CSS_SELECTOR, "button.unlock"))
    alert = wait(d).until(EC.alert_is_present(), "no question before unlocking")
    assert "Unlock the login of Lena Lockwood" in alert.text, alert.text
    alert.accept()
    wait_new_page(d, html)
    assert f"{user} can log in again." in visible(d, ".notice").text
    assert not d.find_elements(By.CSS_SELECTOR, f"tr.student[data-username='{user}']")
    assert login_status(http, user, password) == 303, "she logs in again"

    # Both ends are in the audit log: the lock (one line) and the unlock.
    d.get(base + f"/audit?target={user}")
    audit = visible(d, "table#audit").text
    # (the audit log speaks words: login.locked and account.unlock as sentences)
    assert audit.count("out after too many wrong passwords") == 1, audit
    assert "locked for 30 s after 5 failed logins" in audit, audit
    assert "lifted the login lock of" in audit, audit
    assert WRONG not in audit


def test_a_cohorts_passwords_are_reset_and_reprinted(browser, hubdesk, http, screenshot):
    staff = http()
    staff.login(hubdesk.admin_user, hubdesk.admin_password)
    cohort = "Robotics"
    old = dict(add_student(staff, name, cohort) for name in ("Rosa Reset", "Ravi Reset", "Rita Reset"))
    keep_user, keep_pw = add_student(staff, "Gus Green", "Greenhouse")

    d, base = browser, hubdesk.url
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)

    # Ticking with the keyboard: a checkbox and the bulk button; the confirmation names her.
    d.get(base + "/students?cohort=Greenhouse")
    box = visible(d, f"#pick-{keep_user}")
    press(d, box, Keys.SPACE)
    assert box.is_selected()
    button = visible(d, "#reset-selected")
    assert "(1)" in button.text, button.text
    html = d.find_element(By.TAG_NAME, "html")
    press(d, button)
    wait_new_page(d, html)
    names = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#reset-students tbody tr")]
    assert len(names) == 1 and keep_user in names[0], names
    # Select all (shown because scripts run) ticks every row of the page.
    d.get(base + "/students?cohort=" + cohort)
    all_box = visible(d, "#select-all")
    press(d, all_box, Keys.SPACE)
    ticked = [b.is_selected() for b in d.find_elements(By.CSS_SELECTOR, "input[name=student]")]
    assert ticked and all(ticked), ticked
    assert "(3)" in visible(d, "#reset-selected").text

    # The cohort's own button: one confirmation that names how many and who.
    html = d.find_element(By.TAG_NAME, "html")
    press(d, visible(d, "#reset-cohort"))
    wait_new_page(d, html)
    confirm_url = d.current_url
    assert "form=" in confirm_url, confirm_url
    assert "Reset 3 passwords and print cards?" in visible(d, "h1").text
    listed = visible(d, "#reset-students").text
    for user in old:
        assert user in listed, listed
    assert keep_user not in listed
    screenshot("bulk-confirm", full_page=True)

    html = d.find_element(By.TAG_NAME, "html")
    visible(d, "#confirm-reset").click()
    wait_new_page(d, html)
    # The job runs; the page refreshes itself until the cards are there.
    until = wait(d, 60).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, "#cards-until")), "no cards after the job"
    )
    assert "Available until" in until.text and "UTC" in until.text, until.text
    cards_url = d.current_url
    creds = card_creds(d)
    assert sorted(u for u, _ in creds) == sorted(old), creds
    screenshot("bulk-cards", full_page=True)

    # Reprint: the page again (a jammed printer, a closed tab) shows the same cards.
    d.refresh()
    present(d, "#cards-until")
    assert card_creds(d) == creds
    # Back to the confirmation (past the progress page's own entries, if the browser kept
    # them). Chromium may show it from its back-forward cache, button and all: sending it
    # again resets nothing and leads to the same cards.
    for _ in range(4):
        if d.current_url == confirm_url:
            break
        html = d.find_element(By.TAG_NAME, "html")
        d.back()
        wait_new_page(d, html)
    assert d.current_url == confirm_url, f"Back did not reach the confirmation: {d.current_url}"
    again = d.find_elements(By.CSS_SELECTOR, "#confirm-reset")
    if again:
        html = d.find_element(By.TAG_NAME, "html")
        again[0].click()
        wait_new_page(d, html)
        present(d, "#cards-until")
        assert "already confirmed: nothing was reset again" in visible(d, ".notice").text
        assert card_creds(d) == creds, "the cards changed: something was reset twice"
        d.get(confirm_url)
    else:
        d.refresh()
    # Fetched anew, the confirmation says it was sent and offers nothing.
    visible(d, "#reset-done")
    assert not d.find_elements(By.CSS_SELECTOR, "#confirm-reset")
    html = d.find_element(By.TAG_NAME, "html")
    visible(d, "#reset-done-cards").click()
    wait_new_page(d, html)
    present(d, "#cards-until")
    assert d.current_url == cards_url
    assert card_creds(d) == creds, "the cards changed: something was reset twice"

    # The printed card's password logs in; the old one does not; other cohorts are untouched.
    for user, new in creds:
        assert login_status(http, user, old[user]) == 401, f"{user}'s old password still works"
        assert login_status(http, user, new) == 303, f"{user}'s card does not log in"
    assert login_status(http, keep_user, keep_pw) == 303

    # In the browser too: the first card, typed into the login form.
    d.delete_all_cookies()
    login(d, base, creds[0][0], creds[0][1])
    visible(d, "a#open-notebook")


def _phone(driver, width=390, height=844):
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
    )


def _overflow(driver) -> tuple[int, int]:
    return tuple(driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    ))


def _lines(driver, css: str) -> dict[str, int]:
    """Text lines of each cell matching `css` (a wrapped cell has more than one)."""
    return driver.execute_script(
        """
        const out = {};
        document.querySelectorAll(arguments[0]).forEach((td, i) => {
          const r = document.createRange(); r.selectNodeContents(td);
          const tops = new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top)));
          out[i + ':' + td.textContent.trim()] = tops.size;
        });
        return out;
        """,
        css,
    )


def _add_rule(driver, rule: str) -> None:
    """Adds a CSS rule through the CSSOM (the page's CSP refuses inline <style> elements)."""
    driver.execute_script(
        "const sheet = document.styleSheets[0]; sheet.insertRule(arguments[0], sheet.cssRules.length);",
        rule,
    )


def _full_png(driver, path_name, screenshot, width):
    """A full-length screenshot at the emulated width (the fixture's helper uses the window's)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    height = min(int(metrics["cssContentSize"]["height"]), 4000)
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {"format": "png", "captureBeyondViewport": True,
         "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}},
    )
    path = screenshot(path_name)  # writes the viewport first, then the full length over it
    path.write_bytes(base64.b64decode(shot["data"]))


def test_the_student_table_fits_a_phone_and_a_laptop(browser, hubdesk, http, screenshot):
    staff = http()
    staff.login(hubdesk.admin_user, hubdesk.admin_password)
    cohort = "Class 10A Robotics"
    # The longest username there is, and a name with a 50-letter word (a real family name,
    # in its longer form).
    add_student(staff, "Hubert Wolfeschlegelsteinhausenbergerdorffvoralternwaren", cohort, "m" + "x" * 31)
    add_student(staff, "Ada Lovelace", cohort)
    locked, _ = add_student(staff, "Petra Phone", cohort)
    for _ in range(5):
        login_status(http, locked, WRONG)

    d, base = browser, hubdesk.url
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    page = base + "/students?cohort=" + cohort.replace(" ", "+")

    # A laptop: no date, cohort or size wraps, nothing overflows.
    d.set_window_size(1280, 900)
    d.get(page)
    present(d, "#students tr.student")
    for css in ("#students td.date", "#students td.cohort", "#students td.usage"):
        lines = _lines(d, css)
        assert lines and all(n == 1 for n in lines.values()), f"{css} wraps at 1280 px: {lines}"
    scroll, client = _overflow(d)
    assert scroll <= client, f"sideways scrolling at 1280 px: {scroll} > {client}"
    screenshot("students-laptop")
    # Control, under pressure (a narrower page): with the rule the cells still hold one line;
    # the same cells allowed to wrap do wrap (so the check can see wrapping).
    _add_rule(d, "main { max-width: 44rem !important; }")
    tight = {**_lines(d, "#students td.date"), **_lines(d, "#students td.cohort")}
    assert all(n == 1 for n in tight.values()), f"wrapped despite the rule: {tight}"
    _add_rule(d, "table#students td.date, table#students td.cohort { white-space: normal !important; }")
    wrapped = {**_lines(d, "#students td.date"), **_lines(d, "#students td.cohort")}
    assert any(n > 1 for n in wrapped.values()), f"control: nothing wrapped {wrapped}"

    # A phone (390 px): one card per student, no sideways scrolling.
    _phone(d)
    try:
        d.get(page)
        present(d, "#students tr.student")
        scroll, client = _overflow(d)
        assert client == 390 and scroll <= client, f"sideways scrolling on a phone: {scroll} > {client}"
        first = d.find_element(By.CSS_SELECTOR, "#students tr.student")
        assert first.value_of_css_property("display") == "block", "rows are not cards on a phone"
        # The lock is there and its Unlock button reachable on the card.
        row = visible(d, f"tr.student[data-username='{locked}']")
        assert row.find_element(By.CSS_SELECTOR, "button.unlock").is_displayed()
        _full_png(d, "students-phone", screenshot, 390)
        # Controls: without the cards' word breaking the long name runs off the screen, and
        # without the cards at all the table does.
        _add_rule(d, "table#students td { overflow-wrap: normal !important; }")
        scroll, client = _overflow(d)
        assert scroll > client, "control: the long name should overflow without the rule"
        d.refresh()
        present(d, "#students tr.student")
        assert _overflow(d)[0] <= 390
        _add_rule(
            d,
            "table#students, table#students tbody, table#students tr, table#students td, "
            "table#students thead { display: revert !important; position: static !important; "
            "width: auto !important; height: auto !important; }",
        )
        scroll, client = _overflow(d)
        assert scroll > client, "control: the plain table should scroll sideways on a phone"
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
