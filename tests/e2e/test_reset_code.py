"""A one-time reset code as a student uses it (issue 18), in headless Chromium at a phone's width:
a counselor gives the code from the student's page (shown once); the student, who forgot their
password, follows the login form's link, types their username, the code as they heard it (lower
case, a space) and a new password, lands back on the login form, and logs in with the new
password. A wrong code is refused beside its field, keeping what was typed."""
from __future__ import annotations

from test_counselor_path import fill, login, logout, path_of, submit_form_of, visible
from test_accessibility import add_student


def test_a_student_on_a_phone_sets_a_new_password_with_a_code(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    add_student(d, base, "Mae Jemison", "mjemison")
    d.get(base + "/students/mjemison")
    submit_form_of(d, visible(d, "#reset-code"))
    code = visible(d, "#reset-code-value").text.strip()
    assert len(code) == 9 and code[4] == "-", code
    assert visible(d, "#reset-url").text == base + "/reset"
    screenshot("reset-code")
    d.refresh()
    assert visible(d, "#code-shown"), "a reload shows no code"
    assert not d.find_elements("css selector", "#reset-code-value")
    logout(d)

    d.set_window_size(390, 844)
    try:
        d.get(base + "/login")
        visible(d, "#have-code").click()
        assert path_of(d) == "/reset"
        fill(d, "username", "mjemison")
        fill(d, "code", "zzzz-zzzz")
        submit_form_of(d, fill(d, "new_password", "lunar-orbit-gemini-7"))
        assert "do not go together" in visible(d, "#code-error").text
        assert visible(d, "#username").get_attribute("value") == "mjemison"
        fill(d, "code", code.lower().replace("-", " "))
        submit_form_of(d, fill(d, "new_password", "lunar-orbit-gemini-7"))
        assert path_of(d) == "/login"
        assert "new password is set" in visible(d, "#reset-done").text
        assert visible(d, "#username").get_attribute("value") == "mjemison"
        screenshot("reset-phone")
        overflow = d.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"the page is {overflow}px wider than a phone"
        submit_form_of(d, fill(d, "password", "lunar-orbit-gemini-7"))
        assert path_of(d) == "/", d.current_url
        assert "Mae Jemison" in d.page_source
    finally:
        d.set_window_size(1280, 900)
