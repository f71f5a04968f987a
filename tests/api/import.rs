use reqwest::Response;

use crate::helpers::{csrf_from, password_on_card, spawn_app, TestApp};

fn class_of(n: usize) -> String {
    let mut csv = String::from("display_name,cohort\n");
    for i in 0..n {
        csv.push_str(&format!("Camper Number{i},blue\n"));
    }
    csv
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/import/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn unescape(html: &str) -> String {
    html.replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Uploads `bytes` as the class file (multipart, like the page's form).
pub async fn upload(app: &TestApp, file_name: &str, bytes: Vec<u8>) -> Response {
    let token = csrf_from(&app.get_html("/students/import").await);
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", token)
        .text("text", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_string()),
        );
    app.client
        .post(app.url("/students/import"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Pastes `text` into the import form.
pub async fn paste(app: &TestApp, text: &str) -> Response {
    app.post_form("/students/import", &[("text", text)]).await
}

/// The preview an accepted submission redirects to: its URL and page.
pub async fn preview_of(app: &TestApp, r: Response) -> (String, String) {
    assert_eq!(r.status(), 303, "not accepted: {}", r.text().await.unwrap());
    let url = TestApp::location(&r);
    assert!(url.starts_with("/students/import/"), "{url}");
    let page = app.get(&url).await;
    assert_eq!(page.status(), 200);
    (url, page.text().await.unwrap())
}

/// The resolved CSV the preview's confirmation carries.
fn csv_of(html: &str) -> String {
    let csv = html
        .split("name=\"csv\" value=\"")
        .nth(1)
        .expect("a confirmation form")
        .split('"')
        .next()
        .unwrap();
    unescape(csv)
}

/// Sends the preview's confirmation (with its form id, the draft's) and `choices`.
pub async fn confirm(app: &TestApp, preview_url: &str, choices: &[(&str, &str)]) -> Response {
    let html = app.get_html(preview_url).await;
    let csv = csv_of(&html);
    let mut fields = vec![("csv", csv.as_str())];
    fields.extend_from_slice(choices);
    app.post_form_from(preview_url, "/students/import/commit", &fields)
        .await
}

async fn students(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM users WHERE role='student'")
        .await
}

#[tokio::test]
async fn paste_preview_then_commit_creates_the_class() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let r = paste(&app, "José Núñez\nAda Lovelace\nAda Lamarr\n").await;
    let (preview, html) = preview_of(&app, r).await;
    assert!(html.contains("id=\"import-preview\""));
    assert!(
        html.contains("<code>josen</code>")
            && html.contains("<code>adal</code>")
            && html.contains("<code>adal2</code>"),
        "{html}"
    );
    assert!(
        !html.contains("id=\"read-as\""),
        "pasted text needs no word on its encoding"
    );
    assert_eq!(students(&app).await, 0, "preview writes nothing");
    let r = confirm(&app, &preview, &[]).await;
    assert_eq!(r.status(), 303);
    let result = TestApp::location(&r);
    assert!(result.starts_with("/credentials/"), "{result}");
    let html = app.follow(&r).await.text().await.unwrap();
    assert_eq!(html.matches("class=\"card\"").count(), 3);
    assert!(html.contains("José Núñez"));
    assert_eq!(students(&app).await, 3);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action='student.import'")
            .await,
        3
    );
}

#[tokio::test]
async fn multipart_upload_of_a_csv_file() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let r = upload(&app, "class.csv", class_of(25).into_bytes()).await;
    let (_, html) = preview_of(&app, r).await;
    assert_eq!(html.matches("<tr><td>").count(), 25, "25 preview rows");
}

#[tokio::test]
async fn bad_rows_are_reported_by_line_and_nothing_is_written() {
    let app = spawn_app().await;
    app.create_student("Existing Ada", "ada", None).await;
    app.as_counselor().await;
    let long_name = "n".repeat(101);
    let text = format!("display_name,username,cohort\nGood One,good,\nBad,Bad Name,\nDup,good,\nTaken,ADA,\n{long_name},,\n");
    let r = paste(&app, &text).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"import-errors\""));
    for want in [
        "line 3:",
        "line 4: username &#x27;good&#x27; is also on line 2",
        "line 6:",
    ] {
        assert!(html.contains(want), "missing {want} in {html}");
    }
    // Parse errors come first; fix them and a username held by staff shows up (a student's
    // is a match to decide on, not an error).
    let text = "display_name,username\nGood One,good\nTaken,CONNIE\n";
    let html = paste(&app, text).await.text().await.unwrap();
    assert!(
        html.contains("line 3: username &#x27;connie&#x27; already exists (a staff account)"),
        "{html}"
    );
    assert!(
        html.contains("Good One"),
        "the submitted text is kept in the form"
    );
    assert_eq!(students(&app).await, 1);
}

#[tokio::test]
async fn a_lost_character_and_a_binary_file_are_refused_without_refilling_the_box() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let html = paste(&app, "display_name,email\nAda,a@x\n")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("line 1: unknown column &#x27;email&#x27;"),
        "{html}"
    );
    // Text already damaged by an earlier conversion: refused with its line, never a name, and
    // not put back into the box.
    let r = upload(
        &app,
        "damaged.csv",
        "display_name\nAda\nJos\u{FFFD} P\u{FFFD}rez\n"
            .as_bytes()
            .to_vec(),
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("line 3 contains"), "{html}");
    assert!(
        !html.contains("Jos\u{FFFD}"),
        "the damaged text is not refilled"
    );
    // A picture, say: the steps to a file we read, and no bytes poured into the box.
    let r = upload(
        &app,
        "photo.png",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("CSV UTF-8"), "{html}");
    let textarea = html.split("<textarea").nth(1).unwrap();
    let content = textarea
        .split('>')
        .nth(1)
        .unwrap()
        .split("</textarea")
        .next()
        .unwrap();
    assert_eq!(content, "", "nothing poured into the text box");
    assert_eq!(students(&app).await, 0);
}

#[tokio::test]
async fn windows_1252_csv_is_decoded_and_said() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let bytes = fixture("class-windows-1252.csv");
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the fixture is not UTF-8"
    );
    let (preview, html) = preview_of(&app, upload(&app, "class.csv", bytes).await).await;
    assert!(
        html.contains("Read as Windows-1252 (Excel&#x27;s CSV)"),
        "{html}"
    );
    assert!(
        html.contains("José Pérez") && html.contains("Chloé Dubœuf"),
        "{html}"
    );
    assert!(!html.contains('\u{FFFD}'));
    assert_eq!(confirm(&app, &preview, &[]).await.status(), 303);
    let names: Vec<String> =
        sqlx::query_scalar("SELECT display_name FROM users WHERE role='student' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        names,
        [
            "José Pérez",
            "Zoë Quiñones",
            "Søren Ærøskøbing",
            "Chloé Dubœuf"
        ]
    );
}

#[tokio::test]
async fn utf16_text_from_excel_with_name_and_surname_columns() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let bytes = fixture("class-utf16.txt");
    assert_eq!(&bytes[..2], b"\xFF\xFE", "UTF-16LE with a BOM");
    let (preview, html) = preview_of(&app, upload(&app, "class.txt", bytes).await).await;
    assert!(
        html.contains("Read as UTF-16 (Excel&#x27;s Unicode Text)"),
        "{html}"
    );
    assert!(html.contains("<td>Søren Ærøskøbing</td>"), "{html}");
    assert_eq!(confirm(&app, &preview, &[]).await.status(), 303);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM users WHERE display_name = 'Chloé Dubœuf' AND cohort = 'green'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn xlsx_is_read_directly_and_first_and_last_names_are_joined() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let bytes = fixture("class-first-last.xlsx");
    assert_eq!(&bytes[..4], b"PK\x03\x04", "a real workbook (zip)");
    let (preview, html) = preview_of(&app, upload(&app, "class.xlsx", bytes).await).await;
    assert!(
        html.contains("Read as a spreadsheet, sheet &#x27;Class 9B&#x27;"),
        "{html}"
    );
    assert_eq!(html.matches("<tr><td>").count(), 5, "{html}");
    assert!(html.contains("<td>José Pérez</td>") && html.contains("<td>Agent 7</td>"));
    assert_eq!(confirm(&app, &preview, &[]).await.status(), 303);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM users WHERE role='student' AND cohort IN ('blue', 'green')"
        )
        .await,
        5
    );
}

#[tokio::test]
async fn rows_already_on_the_roster_are_flagged_and_skipped_unless_chosen() {
    let app = spawn_app().await;
    app.create_student("Priya R", "priyar", Some("blue")).await;
    app.create_student("Tomás Ruiz", "tomasr", Some("red"))
        .await;
    app.create_student("Kwame Mensah", "kwamem", None).await;
    app.as_counselor().await;
    let text = "display_name,username,cohort\n\
                Ada Lovelace,,blue\n\
                PRIYA  r,,blue\n\
                Tomas Ruiz,,blue\n\
                K. Mensah,kwamem,blue\n";
    let (preview, html) = preview_of(&app, paste(&app, text).await).await;
    assert!(html.contains("3 rows match students"), "{html}");
    for (link, why) in [
        ("/students/priyar", "same name, same cohort"),
        ("/students/tomasr", "same name, cohort red"),
        ("/students/kwamem", "same username"),
    ] {
        assert!(
            html.contains(&format!("href=\"{link}\"")),
            "{link} in {html}"
        );
        assert!(html.contains(why), "{why} in {html}");
    }
    // Skip is the default; "create anyway" names a username of its own.
    assert_eq!(html.matches("value=\"skip\" checked").count(), 3);
    assert!(
        html.contains("Create anyway as <code>priyar2</code>"),
        "{html}"
    );
    assert!(
        html.contains("Create anyway as <code>kwamem2</code>"),
        "{html}"
    );

    // The choices are honoured: Priya created anyway, the others skipped.
    let r = confirm(&app, &preview, &[("row-priyar2", "create")]).await;
    assert_eq!(r.status(), 303);
    let html = app.follow(&r).await.text().await.unwrap();
    assert_eq!(
        html.matches("class=\"card\"").count(),
        2,
        "Ada and the second Priya"
    );
    assert!(
        html.contains("2 rows skipped, already on the roster"),
        "{html}"
    );
    assert!(html.contains("Tomas Ruiz (already tomasr)"), "{html}");
    let usernames: Vec<String> =
        sqlx::query_scalar("SELECT username FROM users WHERE role='student' ORDER BY username")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(usernames, ["adal", "kwamem", "priyar", "priyar2", "tomasr"]);
    // Later views list the skipped rows, linked.
    let html = app.get_html(&TestApp::location(&r)).await;
    assert!(html.contains("id=\"shown-skipped\""), "{html}");
    assert!(html.contains("href=\"/students/tomasr\""));
}

#[tokio::test]
async fn commit_rechecks_the_roster_and_refuses_a_username_taken_meanwhile() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let (preview, _) = preview_of(
        &app,
        paste(&app, "display_name\nAda Lovelace\nGrace Hopper\n").await,
    )
    .await;
    // Meanwhile Ada is added by hand (another counselor): she is skipped, not doubled.
    app.create_student("Ada Lovelace", "ada", None).await;
    let r = confirm(&app, &preview, &[]).await;
    assert_eq!(r.status(), 303);
    let html = app.follow(&r).await.text().await.unwrap();
    assert!(html.contains("Ada Lovelace (already ada)"), "{html}");
    assert_eq!(students(&app).await, 2, "ada and graceh");
    // A username taken by staff meanwhile: nothing is created, the reason is said.
    let r = app
        .post_form_from(
            "/students/import",
            "/students/import/commit",
            &[(
                "csv",
                "display_name,username\nBoss,connie\nAlan Turing,alan\n",
            )],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("already exists"));
    assert_eq!(students(&app).await, 2);
}

#[tokio::test]
async fn the_export_opens_in_excel_and_imports_again() {
    let app = spawn_app().await;
    app.create_student("Zoë O'Brien", "zoeo", Some("blue"))
        .await;
    app.create_student("=1+1", "formula", None).await;
    app.as_counselor().await;
    let r = app.get("/students/export.csv").await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap().to_vec();
    assert_eq!(
        &bytes[..3],
        b"\xEF\xBB\xBF",
        "a UTF-8 BOM, so Excel reads UTF-8"
    );
    let text = std::str::from_utf8(&bytes[3..]).unwrap();
    assert!(
        text.starts_with("username,display_name,cohort,status,created_at\n"),
        "{text}"
    );
    assert!(text.contains("Zoë O'Brien") && text.contains("'=1+1"));
    // Our own import reads it back: every row is someone already on the roster.
    let (_, html) = preview_of(&app, upload(&app, "roster.csv", bytes).await).await;
    assert!(html.contains("2 rows match students"), "{html}");
    assert!(html.contains("Zoë O&#x27;Brien"));
}

#[tokio::test]
async fn back_and_resubmit_of_an_import_creates_nobody_twice() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let (preview, html) = preview_of(&app, paste(&app, "Test O\nTest T\n").await).await;
    let csv = csv_of(&html);
    let draft = preview.rsplit('/').next().unwrap().to_string();
    let token = csrf_from(&html);
    let fields = [
        ("csrf_token", token.as_str()),
        ("csv", csv.as_str()),
        ("form_id", draft.as_str()),
    ];
    let send = || {
        app.client
            .post(app.url("/students/import/commit"))
            .form(&fields)
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 303);
    let result = TestApp::location(&first);
    assert_eq!(result, format!("/credentials/{draft}"));
    let cards = app.get_html(&result).await;
    let password = password_on_card(&cards);
    // Back to the preview: it leads to what the confirmation did.
    let back = app.get(&preview).await;
    assert_eq!(back.status(), 303);
    assert_eq!(TestApp::location(&back), result);
    // "Confirm Form Resubmission", or the old preview's button again: nothing new.
    let again = send().await.unwrap();
    assert_eq!(again.status(), 303);
    assert_eq!(TestApp::location(&again), result);
    assert_eq!(students(&app).await, 2, "not testo2, testt2");
    let html = app.get_html(&result).await;
    assert!(
        html.contains("This class was already imported: 2 students"),
        "{html}"
    );
    assert!(
        !html.contains("class=\"card-password\""),
        "passwords are shown once"
    );
    assert!(
        html.contains("href=\"/students/testo\""),
        "a way to reprint: {html}"
    );
    // The password shown first still works: nothing was reset.
    app.other_browser().login_ok("testo", &password).await;
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action='student.import'")
            .await,
        2
    );
}

#[tokio::test]
async fn two_tabs_confirming_at_the_same_instant_create_the_class_once() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let (preview, html) = preview_of(&app, paste(&app, &class_of(30)).await).await;
    let csv = csv_of(&html);
    let draft = preview.rsplit('/').next().unwrap().to_string();
    let token = csrf_from(&html);
    let send = |tab: usize| {
        let (app, csv, draft, token) = (&app, &csv, &draft, &token);
        async move {
            let started = std::time::Instant::now();
            let r = app
                .client
                .post(app.url("/students/import/commit"))
                .form(&[
                    ("csrf_token", token.as_str()),
                    ("form_id", draft.as_str()),
                    ("csv", csv.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (
                tab,
                r.status().as_u16(),
                TestApp::location(&r),
                started.elapsed(),
            )
        }
    };
    let answers = futures_util::future::join_all((0..4).map(send)).await;
    for (tab, status, location, took) in &answers {
        println!("tab {tab}: {status} → {location} after {took:?}");
        assert_eq!(*status, 303);
        assert_eq!(location, &format!("/credentials/{draft}"));
    }
    assert_eq!(students(&app).await, 30, "one class, not four");
    // The tabs really overlapped: the class takes a while to hash, and every tab waited for it.
    let slowest = answers.iter().map(|a| a.3).max().unwrap();
    let fastest = answers.iter().map(|a| a.3).min().unwrap();
    println!("fastest {fastest:?}, slowest {slowest:?}");
    assert!(
        fastest * 2 > slowest,
        "the tabs were not concurrent: {answers:?}"
    );
}

#[tokio::test]
async fn only_the_import_confirmation_takes_a_large_form() {
    let app = spawn_app().await;
    app.as_counselor().await;
    // 100 KiB: beyond the 64 KiB every other form may carry.
    let big = format!("display_name\n{}\n", "x".repeat(100 * 1024));
    let r = app
        .post_form_from(
            "/students/import",
            "/students/import/commit",
            &[("csv", &big)],
        )
        .await;
    let status = r.status().as_u16();
    let html = r.text().await.unwrap();
    assert!(
        !html.contains("could not be read"),
        "the confirmation form was refused for its size"
    );
    assert!(
        (400..500).contains(&status),
        "an over-long name is a row error: {status}"
    );
    let r = app
        .post_form("/students/new", &[("display_name", &big)])
        .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("could not be read"));
    let r = app.login(&"x".repeat(100 * 1024), "pw").await;
    assert_eq!(
        r.status(),
        400,
        "an anonymous 100 KiB form is refused before it is read"
    );
}
