"""Counselors scoped to cohorts in a real browser (issue 18): the admin ticks the one cohort a
counselor looks after on /staff; the counselor then sees that cohort's student and not the other
one (her page answers 403 with the reason, the roll board and the list leave her out), makes an
API token that acts with the same reach, and revokes it. The full route × person matrix is
tests/api/matrix.rs; the hub's side is test_hub_login.py."""
from __future__ import annotations

import secrets

import requests
from selenium.webdriver.common.by import By

from test_accessibility import add_staff
from test_counselor_path import fill, login, logout, submit_form_of, visible
from test_homes_pages import confirm_click


def add_student_to(d, base: str, name: str, username: str, cohort: str) -> None:
    d.get(base + "/students/new")
    fill(d, "display_name", name)
    fill(d, "username", username)
    submit_form_of(d, fill(d, "cohort", cohort))
    visible(d, ".card-password")


def test_an_admin_gives_a_counselor_one_cohort(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    tag = secrets.token_hex(2)
    counselor, pw = f"rosa{tag}", "Counselor-scope-" + secrets.token_hex(6)
    red, green = f"Red {tag}", f"Green {tag}"
    mine, theirs = f"rita{tag}", f"gus{tag}"

    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    add_staff(d, base, counselor, pw)
    add_student_to(d, base, "Rita Red", mine, red)
    add_student_to(d, base, "Gus Green", theirs, green)
    d.get(base + "/staff")
    row = visible(d, f"tr.staff[data-username='{counselor}']")
    assert row.find_element(By.CSS_SELECTOR, ".reach-words").text == "every cohort"
    row.find_element(By.CSS_SELECTOR, "details.reach-edit summary").click()
    row.find_element(By.CSS_SELECTOR, "input[name=reach][value=some]").click()
    row.find_element(By.CSS_SELECTOR, f"input[name=cohort][value='{red}']").click()
    screenshot("staff-cohorts")
    submit_form_of(d, row.find_element(By.CSS_SELECTOR, "input[name=reach][value=some]"))
    assert f"Account {counselor} looks after new cohorts" in d.page_source
    row = visible(d, f"tr.staff[data-username='{counselor}']")
    assert row.find_element(By.CSS_SELECTOR, ".reach-words").text == red
    logout(d)

    login(d, base, counselor, pw)
    d.get(base + "/students")
    listed = {r.get_attribute("data-username") for r in d.find_elements(By.CSS_SELECTOR, "tr[data-username]")}
    assert mine in listed and theirs not in listed, listed
    d.get(base + f"/students/{theirs}")
    body = visible(d, "main").text
    assert f"The student {theirs} is not in one of your cohorts ({red})." in body, body
    screenshot("not-your-cohort")
    d.get(base + "/board")
    board = visible(d, "main").text
    assert "Rita Red" in board and "Gus Green" not in board

    d.get(base + "/account/tokens")
    visible(d, "p.empty")
    submit_form_of(d, fill(d, "name", "attendance script"))
    token = visible(d, "#token-value").text.strip()
    assert len(token) > 30
    screenshot("api-tokens")
    api = f"{base}/api/v1/students"
    names = {s["username"] for s in requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=10).json()}
    assert mine in names and theirs not in names, names
    r = requests.get(f"{base}/api/v1/students/{theirs}/home", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 403 and red in r.json()["message"], r.text
    d.get(base + "/account/tokens")
    assert not d.find_elements(By.ID, "token-value"), "the token is shown only once"
    confirm_click(d, "#tokens form[action$='/revoke'] button", "Revoke the token attendance script?")
    assert "Token revoked" in d.page_source
    assert requests.get(api, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 401
    logout(d)
