"""Announcements in a real browser (issue 18): a counselor posts one for everyone (a wrong end
comes back beside its field, the message kept); a student sees it on their landing page, also at
a phone's width, and dismisses it: gone for them, still on for the counselor; the counselor ends
it early: gone for everyone. Then one typed with a start and an end is on for a student while the
camp's clock is inside it and gone by itself once the clock reaches its end (the session's hubdesk
reads "now" from `[calendar] test_clock_file`). The hub's pages: test_camp.py and
test_spawner_profile.py.)"""
from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By

from test_accessibility import add_student
from test_counselor_path import fill, login, logout, submit_form_of, visible
from test_homes_pages import confirm_click


def test_a_counselor_announces_and_a_student_dismisses(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    password = add_student(d, base, "Katherine Coleman", "kcoleman")
    d.get(base + "/announcements")
    visible(d, "#no-announcements")
    fill(d, "message", "Lunch is at 12:30 in the hall")
    d.execute_script("document.getElementById('ends').value = '2001-01-01T10:00';")
    submit_form_of(d, visible(d, "#message"))
    assert "after the start" in visible(d, "#ends-error").text
    assert visible(d, "#message").get_attribute("value") == "Lunch is at 12:30 in the hall"
    d.execute_script("document.getElementById('ends').value = '';")
    submit_form_of(d, visible(d, "#message"))
    assert "Announcement posted." in d.page_source
    row = visible(d, "#announcements tr.announcement-row")
    assert row.get_attribute("data-state") == "on", row.text
    screenshot("announcements", full_page=True)
    logout(d)

    login(d, base, "kcoleman", password)
    banner = visible(d, ".announcement")
    assert "Lunch is at 12:30 in the hall" in banner.text
    d.set_window_size(390, 844)
    try:
        d.get(base + "/")
        screenshot("announcement-phone")
        overflow = d.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"the page is {overflow}px wider than a phone"
    finally:
        d.set_window_size(1280, 900)
    submit_form_of(d, visible(d, ".announcement button"))
    assert not d.find_elements(By.CSS_SELECTOR, ".announcement"), "dismissed"
    d.get(base + "/account/password")
    assert not d.find_elements(By.CSS_SELECTOR, ".announcement"), "dismissed everywhere"
    logout(d)

    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    d.get(base + "/students")
    assert "Lunch is at 12:30 in the hall" in visible(d, ".announcement").text, "still on for others"
    d.get(base + "/announcements")
    confirm_click(d, "#announcements form[action$='/end'] button", "End this announcement now?")
    assert "Announcement ended." in d.page_source
    assert not d.find_elements(By.CSS_SELECTOR, ".announcement")
    assert visible(d, "#announcements tr.announcement-row").get_attribute("data-state") == "ended"


def test_an_announcement_ends_by_itself_at_its_end(browser, hubdesk, hubdesk_env, screenshot):
    d, base = browser, hubdesk.url
    clock = Path(hubdesk_env["HUBDESK_CALENDAR__TEST_CLOCK_FILE"])
    clock.write_text("2027-07-06T09:00:00Z")
    try:
        login(d, base, hubdesk.admin_user, hubdesk.admin_password)
        password = add_student(d, base, "Annie Easley", "aeasley")
        d.get(base + "/announcements")
        fill(d, "message", "Quiz in the hall until 10:00")
        # Typed as the form's datetime-local fields send it, in the camp's zone (UTC here).
        d.execute_script("document.getElementById('starts').value = '2027-07-06T09:00';"
                         "document.getElementById('ends').value = '2027-07-06T10:00';")
        submit_form_of(d, visible(d, "#message"))
        assert "Announcement posted." in d.page_source
        row = visible(d, "#announcements tr.announcement-row[data-state='on']")
        assert "Quiz in the hall" in row.text, row.text
        logout(d)

        login(d, base, "aeasley", password)
        clock.write_text("2027-07-06T09:59:59Z")
        d.get(base + "/")
        assert "Quiz in the hall until 10:00" in visible(d, ".announcement").text
        # The camp's clock reaches the end: gone on the next page, with nobody touching it.
        clock.write_text("2027-07-06T10:00:00Z")
        d.get(base + "/")
        assert "Quiz in the hall" not in d.find_element(By.TAG_NAME, "main").text
        assert not [e for e in d.find_elements(By.CSS_SELECTOR, ".announcement") if "Quiz" in e.text]
        screenshot("announcement-ended-by-clock")
        logout(d)

        login(d, base, hubdesk.admin_user, hubdesk.admin_password)
        d.get(base + "/announcements")
        rows = [r for r in d.find_elements(By.CSS_SELECTOR, "#announcements tr.announcement-row")
                if "Quiz in the hall" in r.text]
        assert rows and rows[0].get_attribute("data-state") == "ended", [r.text for r in rows]
    finally:
        clock.unlink(missing_ok=True)
