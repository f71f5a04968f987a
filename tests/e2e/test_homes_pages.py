"""A counselor resets and restores a student's home from the student page, in a real browser,
on the real filesystem under the e2e hubdesk's homes root: confirmation first, the job page
follows the job to the end, the work is in the archive and comes back with a restore.
(Without a hub token here the server section says the hub is not configured; the hub's part of
a reset — stopping the server first — is proven against the real hub in tests/api/hub.rs and
with the hub seam in tests/api/servers.rs.)
"""
from __future__ import annotations

import time
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from test_counselor_path import click_and_wait_for_new_page, fill, login, path_of, submit_form_of, visible, wait
from e2e_support import page_replaced


def confirm_click(d, css: str, expect: str) -> None:
    html = d.find_element(By.TAG_NAME, "html")
    visible(d, css).click()
    alert = wait(d).until(EC.alert_is_present(), f"no confirmation before {css}")
    assert expect in alert.text, alert.text
    alert.accept()
    wait(d).until(page_replaced(html), "the page did not change after confirming")


def follow_job(d) -> None:
    """The job page refreshes itself; wait until it says succeeded."""
    assert path_of(d).startswith("/jobs/"), d.current_url
    wait(d, 60).until(
        lambda drv: drv.find_element(By.ID, "job").get_attribute("data-state") in ("succeeded", "failed"),
        "the job never ended",
    )
    assert visible(d, "#job").get_attribute("data-state") == "succeeded", visible(d, "#job").text


def test_counselor_resets_and_restores_a_home(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    d.get(base + "/students/new")
    fill(d, "display_name", "Hedy Lamarr")
    fill(d, "username", "hedy")
    cohort = fill(d, "cohort", "Blue")
    submit_form_of(d, cohort)
    visible(d, ".card-password")

    home = Path(hubdesk.env["HUBDESK_DATA_DIR"]) / "homes" / "hedy"
    deadline = time.monotonic() + 30
    while not home.is_dir():
        assert time.monotonic() < deadline, f"no home at {home}"
        time.sleep(0.2)
    (home / "frequency-hopping.ipynb").write_text('{"cells": []}')
    assert (home.stat().st_uid, home.stat().st_gid) == (1000, 100)

    d.get(base + "/students/hedy")
    # Wait for the create job to be done (the page then offers the buttons).
    deadline = time.monotonic() + 30
    while d.find_elements(By.ID, "home-busy"):
        assert time.monotonic() < deadline, "the home's creation job never finished"
        time.sleep(0.3)
        d.get(base + "/students/hedy")
    fill(d, "reason", "broken kernel")
    # Saying no changes nothing.
    visible(d, "#reset-home").click()
    wait(d).until(EC.alert_is_present(), "no confirmation before a reset").dismiss()
    assert (home / "frequency-hopping.ipynb").exists()
    confirm_click(d, "#reset-home", "Reset the whole home of Hedy Lamarr?")
    follow_job(d)
    screenshot("job")
    assert not (home / "frequency-hopping.ipynb").exists(), "a fresh home"

    d.get(base + "/students/hedy")
    row = visible(d, "#archives tr.archive")
    assert "broken kernel" in row.text and "whole home" in row.text
    screenshot("student-home", full_page=True)
    confirm_click(d, "#archives tr.archive button.restore", "Restore this archive")
    follow_job(d)
    assert (home / "frequency-hopping.ipynb").read_text() == '{"cells": []}'
    d.get(base + "/students/hedy")
    # The restored entry left the archive; the home it replaced is there now, so the restore
    # can be undone too.
    rows = d.find_elements(By.CSS_SELECTOR, "#archives tr.archive")
    assert len(rows) == 1 and "before-restore" in rows[0].text, [r.text for r in rows]
