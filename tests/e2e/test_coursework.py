"""Coursework in a real browser (issue 19, hand out): the page's empty state says where course
folders go; with `week1/` put there, a counselor hands it to the cohort (a wrong field comes back
beside it; confirmation first); the job page follows it to the end; on the real filesystem under
the e2e hubdesk's homes root the student's own `notes.ipynb` stayed and the course's copy is
beside it; the student's page lists that pair, and so does the student's landing page on a
phone-sized screen."""
from __future__ import annotations

import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from test_counselor_path import fill, login, logout, submit_form_of, visible
from test_homes_pages import confirm_click, follow_job


def wait_home(home: Path) -> None:
    deadline = time.monotonic() + 30
    while not home.is_dir():
        assert time.monotonic() < deadline, f"no home at {home}"
        time.sleep(0.2)


def test_a_counselor_hands_out_a_folder_and_nothing_of_a_students_is_overwritten(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    root = Path(hubdesk.env["HUBDESK_DATA_DIR"]) / "homes"
    courses = root / ".courses"
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    # A cohort of her own: the hand-out goes to every student of it, and only she is in it.
    d.get(base + "/students/new")
    fill(d, "display_name", "Mary Jackson")
    fill(d, "username", "mjackson")
    submit_form_of(d, fill(d, "cohort", "Aeronautics"))
    password = visible(d, ".card-password").text.strip()
    home = root / "mjackson"
    wait_home(home)

    if not courses.exists():  # the empty state says where folders go
        d.get(base + "/coursework")
        assert str(courses) in visible(d, "#no-folders").text
        screenshot("coursework-empty")
    (courses / "week1" / "data").mkdir(parents=True, exist_ok=True)
    (courses / "week1" / "notes.ipynb").write_text('{"cells": ["from the course"]}')
    (courses / "week1" / "data" / "wind tunnel.csv").write_text("speed,lift\n1,2\n")
    (home / "week1").mkdir()
    (home / "week1" / "notes.ipynb").write_text('{"cells": ["my own answers"]}')

    d.get(base + "/coursework")
    Select(visible(d, "#folder")).select_by_value("week1")
    # Neither a cohort nor a student: said beside the field, nothing queued.
    confirm_click(d, "#hand-out", "Hand this folder out?")
    assert "Choose a cohort" in visible(d, "#to-error").text
    Select(visible(d, "#cohort")).select_by_value("Aeronautics")
    screenshot("coursework")
    confirm_click(d, "#hand-out", "Hand this folder out?")
    follow_job(d)
    said = visible(d, "#job").text
    assert "week1 in" in said and "written beside a student's own" in said, said
    screenshot("coursework-job", full_page=True)

    assert (home / "week1" / "notes.ipynb").read_text() == '{"cells": ["my own answers"]}'
    assert (home / "week1" / "notes (handout).ipynb").read_text() == '{"cells": ["from the course"]}'
    assert (home / "week1" / "data" / "wind tunnel.csv").read_text() == "speed,lift\n1,2\n"
    assert (home / "week1" / "data" / "wind tunnel.csv").stat().st_uid == 1000

    d.get(base + "/students/mjackson")
    item = visible(d, "#handouts li.handout[data-folder='week1']")
    assert "week1/notes (handout).ipynb" in item.text, item.text
    logout(d)

    login(d, base, "mjackson", password)
    d.set_window_size(390, 844)
    try:
        d.get(base + "/")
        note = visible(d, "#handout-conflicts")
        assert "week1/notes.ipynb" in note.text and "week1/notes (handout).ipynb" in note.text, note.text
        screenshot("coursework-student-phone")
        overflow = d.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"the page is {overflow}px wider than a phone"
    finally:
        d.set_window_size(1280, 900)
