"""The first morning, as a counselor acts: Back, reload, a double click and two tabs create
nobody twice and reset no password twice; spreadsheets as people have them (Windows-1252, an
.xlsx, first/last name columns); a class with a student already on the roster.

Each test uses names of its own: the session shares one hubdesk.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC

from e2e_support import HubdeskClient
from test_counselor_path import (
    click_and_wait_for_new_page,
    data_rows,
    fill,
    login,
    path_of,
    present,
    submit_form_of,
    visible,
    wait,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "import"


def counselor(d, hubdesk) -> None:
    login(d, hubdesk.url, hubdesk.admin_user, hubdesk.admin_password)
    wait(d).until(lambda d: path_of(d) == "/students", "staff login did not land on /students")


def paste_class(d, base: str, text: str) -> None:
    d.get(base + "/students/import")
    box = visible(d, "textarea[name='text']")
    d.execute_script("arguments[0].value = arguments[1];", box, text)
    click_and_wait_for_new_page(d, visible(d, "#preview-import"))


def upload_class(d, base: str, path: Path) -> None:
    d.get(base + "/students/import")
    visible(d, "input[name='file']").send_keys(str(path))
    click_and_wait_for_new_page(d, visible(d, "#preview-import"))


def students_named(hubdesk, q: str) -> list[str]:
    """Usernames of students whose name or username has `q` (through the list page)."""
    with HubdeskClient(hubdesk.url) as c:
        c.login(hubdesk.admin_user, hubdesk.admin_password)
        html = c.get(hubdesk.url + "/students?q=" + q, timeout=15).text
    return [part.split('"')[0] for part in html.split('data-username="')[1:]]


def cards(d) -> list[tuple[str, str]]:
    out = []
    for card in d.find_elements(By.CSS_SELECTOR, ".card"):
        u = card.find_element(By.CSS_SELECTOR, ".card-username").get_attribute("textContent").strip()
        p = card.find_element(By.CSS_SELECTOR, ".card-password").get_attribute("textContent").strip()
        out.append((u, p))
    return out


def student_logs_in(hubdesk, username: str, password: str) -> bool:
    with HubdeskClient(hubdesk.url) as c:
        r = c.submit("/login", {"username": username, "password": password, "next": "/"})
        return r.status_code == 303


# --------------------------------------------------------------------------------------------


def test_back_and_resubmit_an_import_creates_the_class_once(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    counselor(d, hubdesk)
    paste_class(d, base, "display_name,cohort\nTesto Backman,back\nTestt Backman,back\n")
    preview_url = d.current_url
    assert urlsplit(preview_url).path.startswith("/students/import/"), "the preview is a GET page"
    click_and_wait_for_new_page(d, visible(d, "#confirm-import"))
    assert path_of(d).startswith("/credentials/")
    first = cards(d)
    assert len(first) == 2

    # Back: Chromium shows the preview again (from its back-forward cache, or fetched anew, when
    # it leads to what the confirmation created). Confirming it again creates nobody.
    d.back()
    wait(d).until(lambda d: d.execute_script("return document.readyState") == "complete")
    if path_of(d).startswith("/students/import/"):
        click_and_wait_for_new_page(d, visible(d, "#confirm-import"))
    assert path_of(d).startswith("/credentials/"), d.current_url
    heading = visible(d, "#shown-heading")
    assert "This class was already imported: 2 students" in heading.text, heading.text
    assert not d.find_elements(By.CSS_SELECTOR, ".card-password"), "passwords shown twice"
    links = [a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "#shown-people a")]
    assert any(h.endswith("/students/" + first[0][0]) for h in links), links
    screenshot("import-already-imported")

    # The old preview opened again (a bookmark, history): still nothing new.
    d.get(preview_url)
    assert "already imported" in visible(d, "#shown-heading").text
    assert sorted(students_named(hubdesk, "backman")) == sorted(u for u, _ in first), "no testo2"
    assert student_logs_in(hubdesk, *first[0]), "the first card still works"


def test_two_tabs_confirming_one_import(browser, hubdesk):
    d, base = browser, hubdesk.url
    counselor(d, hubdesk)
    paste_class(d, base, "display_name\nAda Twotabs\nGrace Twotabs\n")
    preview_url = d.current_url
    first_tab = d.current_window_handle
    d.switch_to.new_window("tab")
    d.get(preview_url)
    second_tab = d.current_window_handle
    visible(d, "#confirm-import")
    # The first tab confirms…
    d.switch_to.window(first_tab)
    click_and_wait_for_new_page(d, visible(d, "#confirm-import"))
    assert len(cards(d)) == 2
    # …then the second, still showing the same preview: it is sent to the first one's result.
    d.switch_to.window(second_tab)
    click_and_wait_for_new_page(d, visible(d, "#confirm-import"))
    assert path_of(d).startswith("/credentials/")
    assert "already imported: 2 students" in visible(d, "#shown-heading").text
    assert len(students_named(hubdesk, "twotabs")) == 2
    d.close()
    d.switch_to.window(first_tab)


def test_double_click_and_reload_of_the_created_page(browser, hubdesk):
    d, base = browser, hubdesk.url
    counselor(d, hubdesk)
    d.get(base + "/students/new")
    fill(d, "display_name", "Doubled Clicker")
    button = visible(d, "form[action='/students/new'] button[type=submit]")
    html = d.find_element(By.TAG_NAME, "html")
    ActionChains(d).double_click(button).perform()
    wait(d).until(lambda d: path_of(d).startswith("/credentials/"), "no card after the double click")
    present(d, ".card-password")
    ((username, password),) = cards(d)
    assert username == "doubledc"

    # Reload "Created doubledc": nothing is created, no password is shown again.
    d.refresh()
    heading = visible(d, "#shown-heading")
    assert "doubledc was already created" in heading.text, heading.text
    assert not d.find_elements(By.CSS_SELECTOR, ".card-password")
    assert students_named(hubdesk, "doubled") == ["doubledc"]

    # The same form sent twice at once from the page (what a double click does when the
    # page's script is slow to disable the button): one student.
    d.get(base + "/students/new")
    fill(d, "display_name", "Racing Twice")
    statuses = d.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const form = document.querySelector("form[action='/students/new']");
        // url-encoded, as the browser itself sends this form
        const send = () => fetch(form.action, {method: "POST",
                                               body: new URLSearchParams(new FormData(form)),
                                               redirect: "manual", credentials: "same-origin"});
        Promise.all([send(), send()]).then(rs => done(rs.map(r => r.type)));
        """
    )
    assert statuses == ["opaqueredirect", "opaqueredirect"], statuses
    assert students_named(hubdesk, "racing") == ["racingt"]
    assert student_logs_in(hubdesk, username, password)


def test_reload_of_the_new_password_page_resets_nothing(browser, hubdesk):
    d, base = browser, hubdesk.url
    counselor(d, hubdesk)
    d.get(base + "/students/new")
    submit_form_of(d, fill(d, "display_name", "Resetta Once"))
    ((username, _),) = cards(d)
    d.get(base + f"/students/{username}")
    visible(d, "#reset-password").click()
    wait(d).until(EC.alert_is_present(), "no confirmation before the reset").accept()
    wait(d).until(lambda d: path_of(d).startswith("/credentials/"), "no new card")
    present(d, ".card-password")
    ((_, new_password),) = cards(d)
    d.refresh()
    assert f"{username} already got a new password" in visible(d, "#shown-heading").text
    assert not d.find_elements(By.CSS_SELECTOR, ".card-password")
    # Back to the student page and forward again: still no second reset.
    d.back()
    d.forward()
    visible(d, "#shown-heading")
    assert student_logs_in(hubdesk, username, new_password), "the card just printed works"


def test_a_windows_1252_file_is_read_and_said(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    counselor(d, hubdesk)
    upload_class(d, base, FIXTURES / "class-windows-1252.csv")
    notice = visible(d, "#read-as")
    assert "Read as Windows-1252 (Excel's CSV)" in notice.text, notice.text
    table = present(d, "#import-preview").text
    assert "José Pérez" in table and "Chloé Dubœuf" in table and "\ufffd" not in table
    screenshot("import-encoding-notice")
    click_and_wait_for_new_page(d, visible(d, "#confirm-import"))
    names = [c.find_element(By.CSS_SELECTOR, ".card-name").get_attribute("textContent").strip()
             for c in d.find_elements(By.CSS_SELECTOR, ".card")]
    assert "José Pérez" in names and "Chloé Dubœuf" in names, names


def test_an_xlsx_with_first_and_last_name_columns(browser, hubdesk):
    d, base = browser, hubdesk.url
    counselor(d, hubdesk)
    upload_class(d, base, FIXTURES / "class-first-last.xlsx")
    assert "a spreadsheet, sheet 'Class 9B'" in visible(d, "#read-as").text
    rows = data_rows(present(d, "#import-preview"))
    names = [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows]
    assert names == ["José Pérez", "Zoë Quiñones", "Søren Ærøskøbing", "Chloé Dubœuf", "Agent 7"], names


def test_a_pasted_first_and_last_name_sheet(browser, hubdesk):
    d, base = browser, hubdesk.url
    counselor(d, hubdesk)
    paste_class(d, base, "First Name\tLast Name\tCohort\nKwame\tSheetly\tgold\nIngrid\tSheetly\tgold\n")
    rows = data_rows(present(d, "#import-preview"))
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["Kwame Sheetly", "Ingrid Sheetly"]
    click_and_wait_for_new_page(d, visible(d, "#confirm-import"))
    assert len(cards(d)) == 2


def test_a_class_with_one_student_already_on_the_roster(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    counselor(d, hubdesk)
    # Priya was added by hand this morning.
    d.get(base + "/students/new")
    fill(d, "display_name", "Priya Rostered")
    submit_form_of(d, fill(d, "cohort", "Class 9D"))
    ((priya, priya_password),) = cards(d)
    # The class file lists her too (other case, no accent trouble), with two new students.
    paste_class(d, base, "display_name,cohort\nAisha Rostered,Class 9D\nPRIYA  rostered,Class 9D\nNoah Rostered,Class 9D\n")
    flagged = visible(d, "tr.matched")
    assert "Priya Rostered" in flagged.text and "same name, same cohort" in flagged.text, flagged.text
    link = flagged.find_element(By.CSS_SELECTOR, f"a[href='/students/{priya}']")
    assert link.is_displayed()
    skip = flagged.find_element(By.CSS_SELECTOR, "input[value='skip']")
    create = flagged.find_element(By.CSS_SELECTOR, "input[value='create']")
    assert skip.is_selected() and not create.is_selected(), "skip is the default"
    assert "2 new students" in d.find_element(By.TAG_NAME, "main").text
    screenshot("import-existing-flagged", full_page=True)

    # Keyboard: the choice is a radio group (arrow keys move it, labels name it).
    skip.send_keys(Keys.SPACE)
    skip.send_keys(Keys.ARROW_RIGHT)
    assert create.is_selected(), "the arrow key did not choose 'Create anyway'"
    d.switch_to.active_element.send_keys(Keys.ARROW_LEFT)
    assert skip.is_selected()

    click_and_wait_for_new_page(d, visible(d, "#confirm-import"))
    made = cards(d)
    assert len(made) == 2 and priya not in [u for u, _ in made]
    assert "already on the roster: PRIYA rostered (already " + priya + ")" in visible(d, ".notice").text
    assert sorted(students_named(hubdesk, "rostered")) == sorted([priya] + [u for u, _ in made])
    assert student_logs_in(hubdesk, priya, priya_password), "Priya's own card is untouched"
