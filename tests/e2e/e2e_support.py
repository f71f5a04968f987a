"""Helpers shared by conftest.py and the tests (kept out of conftest so tests can import them)."""

from __future__ import annotations

from html.parser import HTMLParser

import requests


class _FormScraper(HTMLParser):
    """Collects hidden csrf_token values, each form's single-use form_id (by action), and the
    text of elements with given classes."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self, classes: tuple[str, ...] = ()):
        super().__init__(convert_charrefs=True)
        self.classes = set(classes)
        self.csrf: list[str] = []
        self.form_ids: dict[str, str] = {}
        self._action: str | None = None
        self.texts: dict[str, list[str]] = {c: [] for c in classes}
        self._open: list[list] = []  # [class, depth, buffer]
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name") == "csrf_token" and a.get("value"):
            self.csrf.append(a["value"])
        if tag == "form":
            self._action = a.get("action")
        if tag == "input" and a.get("name") == "form_id" and self._action:
            self.form_ids.setdefault(self._action, a.get("value") or "")
        if tag in self.VOID:
            return
        self._depth += 1
        for c in (a.get("class") or "").split():
            if c in self.classes:
                self._open.append([c, self._depth, []])

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        while self._open and self._open[-1][1] >= self._depth:
            c, _, buf = self._open.pop()
            self.texts[c].append("".join(buf).strip())
        self._depth -= 1

    def handle_data(self, data):
        for entry in self._open:
            entry[2].append(data)


def scrape(html: str, *classes: str) -> _FormScraper:
    p = _FormScraper(classes)
    p.feed(html)
    p.close()
    return p


class HubdeskClient(requests.Session):
    """A requests session against hubdesk that fills in csrf_token from the page it GETs first."""

    def __init__(self, base_url: str):
        super().__init__()
        self.base = base_url
        self.trust_env = False

    def page_form(self, path: str) -> _FormScraper:
        r = self.get(self.base + path, timeout=15)
        r.raise_for_status()
        page = scrape(r.text)
        assert page.csrf, f"no csrf_token input on {path}"
        return page

    def page_csrf(self, path: str) -> str:
        # The page's own form comes after the nav's logout form (whose token may differ: on
        # /login the form carries the double-submit token, the nav the session's).
        return self.page_form(path).csrf[-1]

    def submit(self, form_path: str, data: dict, post_path: str | None = None, **kw) -> requests.Response:
        """Sends the form of `form_path` that posts to `post_path` (default: the same path) with
        its CSRF token and its single-use form id, as a browser would."""
        page = self.page_form(form_path)
        target = post_path or form_path
        fields = {**data, "csrf_token": page.csrf[-1]}
        if target in page.form_ids:
            fields.setdefault("form_id", page.form_ids[target])
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 30)
        return self.post(self.base + target, data=fields, **kw)

    def follow(self, r: requests.Response) -> requests.Response:
        """The page a 303 after a form leads to (the result pages are GET pages)."""
        assert r.status_code == 303, f"{r.status_code} {r.text[:500]}"
        return self.get(self.base + r.headers["Location"], allow_redirects=False, timeout=30)

    def login(self, username: str, password: str) -> requests.Response:
        r = self.submit("/login", {"username": username, "password": password, "next": "/"})
        assert r.status_code == 303, f"login as {username}: {r.status_code} {r.text[:500]}"
        return r


def page_replaced(old_html):
    """A WebDriverWait predicate: true once `old_html` (the <html> element of the page before a
    click) no longer belongs to the document.

    Selenium's `staleness_of` only treats StaleElementReferenceException as "gone"; Chromium
    sometimes answers a probe that races the navigation with a plain WebDriverException
    ("Node with given id does not belong to the document"), which means the same thing.
    """
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    def _predicate(_driver) -> bool:
        try:
            old_html.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e) or "No node with given id" in str(e):
                return True
            raise

    return _predicate
