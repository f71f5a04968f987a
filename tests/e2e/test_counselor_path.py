"""The counselor's main path, in a real (headless) browser.

Log in, import a class of 25 from CSV, print cards, log out; a student logs in with a card's
password and changes it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from e2e_support import page_replaced, scrape

WAIT = 20  # seconds; explicit waits only

# 25 students: accents, an apostrophe, hyphens, particles, and duplicate first names (María x2,
# Lucas x2) so username generation has to disambiguate.
CLASS_OF_25 = [
    "José Núñez",
    "María García",
    "María López",
    "Zoë O'Brien",
    "Björn Åkesson",
    "Chloé Dubois",
    "Łukasz Wójcik",
    "Anne-Marie Leclerc",
    "Seán Ó Briain",
    "Lucas Martin",
    "Lucas Schmidt",
    "Aisha Rahman",
    "Mateo Fernández",
    "Søren Kierkegaard",
    "Emily Chen",
    "Noah Williams",
    "Fatima Al-Sayed",
    "Jürgen Weiß",
    "Ingrid Bergström",
    "Kwame Mensah",
    "Priya Nair",
    "Olivia Smith",
    "Tomás Ruiz",
    "Hannah Müller",
    "Giulia De Luca",
]
COHORT = "Class 9B"
NEW_PASSWORD = "correct-horse-battery-42"


# --------------------------------------------------------------------------------------------
# helpers


def wait(driver: WebDriver, timeout: float = WAIT) -> WebDriverWait:
    return WebDriverWait(driver, timeout)


def visible(driver: WebDriver, css: str) -> WebElement:
    return wait(driver).until(EC.visibility_of_element_located((By.CSS_SELECTOR, css)), f"no visible {css}")


def present(driver: WebDriver, css: str) -> WebElement:
    return wait(driver).until(EC.presence_of_element_located((By.CSS_SELECTOR, css)), f"no {css}")


def path_of(driver: WebDriver) -> str:
    return urlsplit(driver.current_url).path


def submit_form_of(driver: WebDriver, field: WebElement) -> None:
    """Click the submit button of the form that holds `field`, and wait for the next page."""
    form = field.find_element(By.XPATH, "./ancestor::form")
    buttons = form.find_elements(
        By.CSS_SELECTOR, "button[type=submit], input[type=submit], button:not([type])"
    )
    assert buttons, "form has no submit button"
    click_and_wait_for_new_page(driver, buttons[-1])


def click_and_wait_for_new_page(driver: WebDriver, element: WebElement) -> None:
    html = driver.find_element(By.TAG_NAME, "html")
    element.click()
    wait(driver).until(page_replaced(html), "the page did not change after the click")
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")


def fill(driver: WebDriver, name: str, value: str) -> WebElement:
    el = visible(driver, f"[name='{name}']")
    el.clear()
    el.send_keys(value)
    return el


def login(driver: WebDriver, base: str, username: str, password: str, screenshot=None) -> None:
    driver.get(base + "/login")
    fill(driver, "username", username)
    pw = fill(driver, "password", password)
    if screenshot:
        screenshot("login")
    submit_form_of(driver, pw)


def logout(driver: WebDriver) -> None:
    button = visible(driver, 'form[action="/logout"] button')
    click_and_wait_for_new_page(driver, button)
    wait(driver).until(lambda d: path_of(d) == "/login", "logout did not land on /login")
    visible(driver, "input[name='username']")


def data_rows(table: WebElement) -> list[WebElement]:
    """Rows of a table that hold data cells (header rows, with only <th>, are left out)."""
    return [tr for tr in table.find_elements(By.CSS_SELECTOR, "tr") if tr.find_elements(By.TAG_NAME, "td")]


def error_text(driver: WebDriver) -> str:
    try:
        return driver.find_element(By.CSS_SELECTOR, ".error").text
    except NoSuchElementException:
        return ""


# --------------------------------------------------------------------------------------------
# tests


def test_counselor_imports_class_and_student_changes_password(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url

    # --- the counselor (here: the admin) logs in; staff land on the students list
    login(d, base, hubdesk.admin_user, hubdesk.admin_password, screenshot)
    wait(d).until(lambda d: path_of(d) == "/students", "staff login did not land on /students")
    # (with no students yet the list may show an empty state instead of the #students table)
    present(d, "a[href='/students/import']")
    screenshot("students-empty")

    # --- import a class of 25 from pasted CSV: a preview first
    d.get(base + "/students/import")
    text = visible(d, "textarea[name='text']")
    csv = "display_name,cohort\n" + "".join(f"{name},{COHORT}\n" for name in CLASS_OF_25)
    # Set the value directly: typing 25 lines key by key is slow and adds nothing.
    d.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
        text, csv,
    )
    assert text.get_attribute("value") == csv
    submit_form_of(d, text)

    preview = present(d, "#import-preview")
    errors = d.find_elements(By.CSS_SELECTOR, "#import-errors li")
    assert not errors, "unexpected import errors: " + "; ".join(e.text for e in errors)
    rows = data_rows(preview)
    assert len(rows) == 25, f"preview shows {len(rows)} rows, expected 25"
    # Line numbers count the header, whatever newlines the browser submits (it sends CRLF).
    first_line = rows[0].find_elements(By.TAG_NAME, "td")[0].text.strip()
    assert first_line == "2", f"first student shown on line {first_line!r}, expected '2'"
    preview_text = preview.text
    for name in ("José Núñez", "Zoë O'Brien", "Łukasz Wójcik", "María García", "María López"):
        assert name in preview_text, f"{name!r} missing from the preview"
    screenshot("import-preview", full_page=True)

    # --- confirm: the credentials page with a printable card per student
    click_and_wait_for_new_page(d, visible(d, "#confirm-import"))
    present(d, ".card")
    cards = d.find_elements(By.CSS_SELECTOR, ".card")
    assert len(cards) == 25, f"{len(cards)} cards, expected 25"
    creds = []
    for card in cards:
        # textContent, not .text: it doesn't depend on the screen (vs print) styling of the cards.
        username = (card.find_element(By.CSS_SELECTOR, ".card-username").get_attribute("textContent") or "").strip()
        password = (card.find_element(By.CSS_SELECTOR, ".card-password").get_attribute("textContent") or "").strip()
        assert username and password, f"card without username/password: {card.text!r}"
        creds.append((username, password))
    usernames = [u for u, _ in creds]
    assert len(set(usernames)) == 25, f"duplicate usernames on cards: {sorted(usernames)}"
    present(d, "#print-cards")
    screenshot("cards")
    d.execute_script("arguments[0].scrollIntoView({block: 'start'})", cards[0])
    screenshot("card-sheet")
    student, card_password = creds[0]

    # the new students are in the list
    d.get(base + "/students?q=" + student)
    present(d, f"#students tr.student[data-username='{student}']")
    d.get(base + "/students")
    present(d, "#students tr.student")
    screenshot("students")

    logout(d)

    # --- the student logs in with the card's password and sees the landing page
    login(d, base, student, card_password)
    link = visible(d, "a#open-notebook")
    assert path_of(d) == "/", f"student landed on {d.current_url}"
    assert (link.get_attribute("href") or "").startswith(hubdesk.hub_url), link.get_attribute("href")
    screenshot("student-landing")

    # --- and changes the password
    d.get(base + "/account/password")
    fill(d, "current_password", card_password)
    fill(d, "new_password", NEW_PASSWORD)
    confirm = fill(d, "confirm_password", NEW_PASSWORD)
    screenshot("change-password")
    submit_form_of(d, confirm)
    wait(d).until(
        lambda d: path_of(d) == "/" and "password_changed=1" in urlsplit(d.current_url).query,
        "password change did not redirect to /?password_changed=1",
    )
    visible(d, "a#open-notebook")
    screenshot("password-changed")
    logout(d)

    # --- the old password no longer works ...
    login(d, base, student, card_password)
    err = visible(d, ".error")
    assert path_of(d) == "/login", f"old password still logs in: {d.current_url}"
    assert err.text.strip(), "the .error element is empty"
    screenshot("login-error")

    # --- ... and the new one does
    login(d, base, student, NEW_PASSWORD)
    visible(d, "a#open-notebook")
    assert path_of(d) == "/", d.current_url
    assert not error_text(d)


def test_student_gets_403_at_students(browser, hubdesk, http):
    # The counselor creates one student (over plain HTTP: this test is about the 403).
    staff = http()
    staff.login(hubdesk.admin_user, hubdesk.admin_password)
    r = staff.follow(staff.submit("/students/new", {"display_name": "Fiona Forbidden", "cohort": "Class 9C"}))
    assert r.status_code == 200, f"the new student's card: {r.status_code} {r.text[:500]}"
    page = scrape(r.text, "card-username", "card-password")
    assert len(page.texts["card-username"]) == 1 and len(page.texts["card-password"]) == 1, r.text[:2000]
    username, password = page.texts["card-username"][0], page.texts["card-password"][0]

    student = http()
    student.login(username, password)
    r = student.get(hubdesk.url + "/students", allow_redirects=False, timeout=15)
    assert r.status_code == 403, f"student at /students: {r.status_code}"
    assert "tr.student" not in r.text and 'id="students"' not in r.text

    # The same in the browser: no students table for a student.
    login(browser, hubdesk.url, username, password)
    visible(browser, "a#open-notebook")
    browser.get(hubdesk.url + "/students")
    wait(browser).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert not browser.find_elements(By.CSS_SELECTOR, "#students"), "a student sees the students table"


def test_admin_adds_and_disables_a_counselor_after_confirming(browser, hubdesk, screenshot):
    d, base = browser, hubdesk.url
    login(d, base, hubdesk.admin_user, hubdesk.admin_password)
    d.get(base + "/staff")
    fill(d, "username", "carl")
    fill(d, "display_name", "Carl Counselor")
    pw = fill(d, "password", NEW_PASSWORD)
    submit_form_of(d, pw)
    assert "Account carl created." in visible(d, ".notice").text

    row = visible(d, "tr.staff[data-username='carl']")
    assert "active" in row.text
    # No buttons on the admin's own row: nobody locks themselves out.
    own = d.find_element(By.CSS_SELECTOR, f"tr.staff[data-username='{hubdesk.admin_user}']")
    assert not own.find_elements(By.CSS_SELECTOR, "button"), "the admin's own row has actions"

    # Disable asks first; saying no changes nothing.
    row.find_element(By.CSS_SELECTOR, "button.danger").click()
    alert = wait(d).until(EC.alert_is_present(), "no confirmation before disabling")
    assert "Disable Carl Counselor?" in alert.text
    alert.dismiss()
    assert path_of(d) == "/staff"
    assert "active" in visible(d, "tr.staff[data-username='carl']").text

    # Saying yes disables the account.
    html = d.find_element(By.TAG_NAME, "html")
    visible(d, "tr.staff[data-username='carl'] button.danger").click()
    wait(d).until(EC.alert_is_present(), "no confirmation before disabling").accept()
    wait(d).until(page_replaced(html), "the page did not change after confirming")
    wait(d).until(lambda drv: drv.execute_script("return document.readyState") == "complete")
    assert "Account carl disabled" in visible(d, ".notice").text
    assert "disabled" in visible(d, "tr.staff[data-username='carl'] .badge").text
    screenshot("staff")
