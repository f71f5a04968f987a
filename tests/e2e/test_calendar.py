"""A counselor gives a cohort its class times, dates and notebook profile on the cohort page, in
a real browser: wrong values come back beside their fields with what was typed, the coming week
lists the classes in the cohort's zone, the calendar page shows the week and its plan, and the
pages work at a phone's width. (The calendar acting on its plan is proven on fakes in
tests/api/calendar.rs; the profile reaching a real swarm service in test_camp.py.)
"""
from __future__ import annotations

import datetime as dt

import requests
from selenium.webdriver.common.by import By

from test_counselor_path import click_and_wait_for_new_page, fill, login, path_of, submit_form_of, visible


def set_value(d, css: str, value: str) -> None:
    """Date and time inputs take their value as the page would send it (typing into them
    depends on the browser's locale)."""
    el = visible(d, css)
    d.execute_script("arguments[0].value = arguments[1];", el, value)


def test_counselor_sets_a_cohorts_class_times_and_sees_the_calendar(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    for name, user in (("Katherine Johnson", "kjohnson"), ("Dorothy Vaughan", "dvaughan")):
        d.get(base + "/students/new")
        fill(d, "display_name", name)
        fill(d, "username", user)
        submit_form_of(d, fill(d, "cohort", "Rocket Science"))
        visible(d, ".card-password")

    d.get(base + "/cohorts")
    row = visible(d, "#cohorts tr[data-slug='rocket-science']")
    assert "none yet" in row.text and "(defaults)" in row.text, row.text
    screenshot("cohorts")
    click_and_wait_for_new_page(d, row.find_element(By.TAG_NAME, "a"))
    assert path_of(d) == "/cohorts/rocket-science"
    assert "No class in the next seven days" in visible(d, "#week-h").find_element(By.XPATH, "..").text

    # Wrong settings: each message beside its field, what was typed kept.
    fill(d, "timezone", "Mars/Olympus_Mons")
    fill(d, "memory_guarantee", "4 GiB")
    fill(d, "memory_limit", "2 GiB")
    submit_form_of(d, fill(d, "cpu_limit", "many"))
    assert visible(d, "#timezone-error").text.startswith("Use an IANA time zone")
    assert "at least the guarantee" in visible(d, "#memory_limit-error").text
    assert visible(d, "#cpu_limit-error").text
    assert visible(d, "#timezone").get_attribute("value") == "Mars/Olympus_Mons"
    assert visible(d, "#timezone").get_attribute("aria-invalid") == "true"

    today = dt.date.today()
    fill(d, "timezone", "America/Chicago")
    set_value(d, "#first_day", today.isoformat())
    set_value(d, "#last_day", (today + dt.timedelta(days=13)).isoformat())
    fill(d, "memory_guarantee", "1.5 GiB")
    fill(d, "memory_limit", "3 GiB")
    submit_form_of(d, fill(d, "cpu_limit", "1"))
    assert "Settings saved." in d.page_source

    # A weekly class, Monday to Friday 09:00–12:00, and a one-off evening session.
    for day in ("mon", "tue", "wed", "thu", "fri"):
        box = visible(d, f"input[name='{day}']")
        if not box.is_selected():
            box.click()
    set_value(d, "#starts", "09:00")
    set_value(d, "#ends", "12:00")
    submit_form_of(d, visible(d, "#starts"))
    assert "Class block added." in d.page_source
    set_value(d, "#date", (today + dt.timedelta(days=2)).isoformat())
    set_value(d, "#starts", "19:00")
    set_value(d, "#ends", "21:00")
    submit_form_of(d, visible(d, "#starts"))
    blocks = [b.text for b in d.find_elements(By.CSS_SELECTOR, "li.block")]
    assert any("Mon–Fri 09:00–12:00" in b for b in blocks), blocks
    assert any("19:00–21:00" in b for b in blocks), blocks
    meetings = d.find_elements(By.CSS_SELECTOR, "#week tr.meeting")
    assert len(meetings) >= 6, [m.text for m in meetings]  # five weekdays + the evening
    assert all(("CST" in m.text or "CDT" in m.text) for m in meetings), [m.text for m in meetings]
    screenshot("cohort", full_page=True)

    d.get(base + "/calendar")
    classes = d.find_elements(By.CSS_SELECTOR, "#classes tr.class[data-cohort='rocket-science']")
    assert len(classes) >= 6, [c.text for c in classes]
    actions = d.find_elements(By.CSS_SELECTOR, "#actions tr.action")
    whats = " ".join(a.text for a in actions)
    assert "Launch workers up to" in whats and "Start the servers of Rocket Science" in whats, whats
    assert visible(d, "#calendar-state").get_attribute("data-enabled") == "false"

    # The admin sets the week's budget: a wrong sum comes back beside its field, as typed.
    submit_form_of(d, fill(d, "budget", "lots"))
    assert "sum of dollars" in visible(d, "#budget-error").text
    assert visible(d, "#budget").get_attribute("value") == "lots"
    assert visible(d, "#budget").get_attribute("aria-invalid") == "true"
    submit_form_of(d, fill(d, "budget", "40"))
    assert "The week's budget is saved." in d.page_source
    assert "of a $40.00 budget" in visible(d, "#budget-line").text, visible(d, "#budget-line").text
    screenshot("calendar", full_page=True)

    # The feed from the page's own subscribe link, as a calendar app reads it (no login).
    feed = visible(d, "#feed-url").get_attribute("value")
    assert feed.startswith(base + "/calendar.ics?token="), feed
    r = requests.get(feed, timeout=10)
    assert r.status_code == 200 and "BEGIN:VEVENT" in r.text and "Rocket Science class" in r.text, r.text[:500]

    # At a phone's width the cohort page is one column with nothing cut off.
    d.set_window_size(390, 844)
    d.get(base + "/cohorts/rocket-science")
    overflow = d.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 1, f"the page is {overflow}px wider than a phone"
    screenshot("cohort-phone")
