use crate::helpers::{csrf_from, spawn_app};

fn class_of(n: usize) -> String {
    let mut csv = String::from("display_name,cohort\n");
    for i in 0..n {
        csv.push_str(&format!("Camper Number{i},blue\n"));
    }
    csv
}

#[tokio::test]
async fn paste_preview_then_commit_creates_the_class() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let r = app
        .post_form(
            "/students/import",
            &[("text", "José Núñez\nAda Lovelace\nAda Lamarr\n")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"import-preview\""));
    assert!(
        html.contains("<code>josen</code>")
            && html.contains("<code>adal</code>")
            && html.contains("<code>adal2</code>"),
        "{html}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE role='student'")
            .await,
        0,
        "preview writes nothing"
    );
    let csv = html
        .split("name=\"csv\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let csv = csv
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    let r = app
        .post_form_from(
            "/students/import",
            "/students/import/commit",
            &[("csv", &csv)],
        )
        .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert_eq!(html.matches("class=\"card\"").count(), 3);
    assert!(html.contains("José Núñez"));
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE role='student'")
            .await,
        3
    );
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
    let token = csrf_from(&app.get_html("/students/import").await);
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", token)
        .text("text", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(class_of(25).into_bytes())
                .file_name("class.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    let r = app
        .client
        .post(app.url("/students/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert_eq!(html.matches("<tr><td>").count(), 25, "25 preview rows");
}

#[tokio::test]
async fn bad_rows_are_reported_by_line_and_nothing_is_written() {
    let app = spawn_app().await;
    app.create_student("Existing Ada", "ada", None).await;
    app.as_counselor().await;
    let long_name = "n".repeat(101);
    let text = format!("display_name,username,cohort\nGood One,good,\nBad,Bad Name,\nDup,good,\nTaken,ADA,\n{long_name},,\n");
    let r = app.post_form("/students/import", &[("text", &text)]).await;
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
    // Parse errors come first; fix them and the database conflict shows up.
    let text = "display_name,username\nGood One,good\nTaken,ADA\n";
    let html = app
        .post_form("/students/import", &[("text", text)])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("line 3: username &#x27;ada&#x27; already exists"),
        "{html}"
    );
    assert!(
        html.contains("Good One"),
        "the submitted text is kept in the form"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE role='student'")
            .await,
        1
    );
}

#[tokio::test]
async fn unknown_column_and_non_utf8_are_reported() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let html = app
        .post_form(
            "/students/import",
            &[("text", "display_name,email\nAda,a@x\n")],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("line 1: unknown column &#x27;email&#x27;"),
        "{html}"
    );
    let token = csrf_from(&app.get_html("/students/import").await);
    let form = reqwest::multipart::Form::new()
        .text("csrf_token", token)
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"display_name\nAda\nJos\xe9\n".to_vec())
                .file_name("latin1.csv"),
        );
    let html = app
        .client
        .post(app.url("/students/import"))
        .multipart(form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("line 3: not valid UTF-8"), "{html}");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE role='student'")
            .await,
        0
    );
}

#[tokio::test]
async fn commit_rechecks_and_refuses_a_username_taken_meanwhile() {
    let app = spawn_app().await;
    app.as_counselor().await;
    app.create_student("Sneaky", "ada", None).await;
    let r = app
        .post_form_from(
            "/students/import",
            "/students/import/commit",
            &[("csv", "display_name,username\nAda,ada\nGrace,grace\n")],
        )
        .await;
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("already exists"));
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE role='student'")
            .await,
        1
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
