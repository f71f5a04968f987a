//! One-time reset codes (issue 18) through the real pages: a counselor gives a student a code
//! (shown once); the student sets a new password with it at `/reset` (no login) and logs in;
//! the code works once, for 15 minutes; wrong codes are refused like wrong passwords and
//! locked out by the login throttle; staff accounts have no codes; both ends are audited.
use reqwest::StatusCode;

use crate::helpers::{csrf_from, spawn_app, spawn_app_with, TestApp, PASSWORD};

fn code_on(html: &str) -> String {
    let at = html
        .find(r#"id="reset-code-value""#)
        .unwrap_or_else(|| panic!("no code on {html}"));
    let rest = &html[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest.find('<').unwrap();
    rest[start..end].trim().to_string()
}

/// The counselor's browser: the code for `user`, as the result page shows it.
async fn give_code(app: &TestApp, user: &str) -> String {
    let r = app
        .post_form_from(
            &format!("/students/{user}"),
            &format!("/students/{user}/reset-code"),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = app.follow(&r).await.text().await.unwrap();
    code_on(&page)
}

/// A student's browser (no login): the reset form sent with its CSRF cookie.
async fn redeem(student: &TestApp, user: &str, code: &str, password: &str) -> reqwest::Response {
    let page = student.get_html("/reset").await;
    student
        .client
        .post(student.url("/reset"))
        .form(&[
            ("csrf_token", csrf_from(&page).as_str()),
            ("username", user),
            ("code", code),
            ("new_password", password),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_student_sets_a_new_password_with_a_counselors_code_once() {
    let app = spawn_app().await;
    let old = app
        .create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    app.as_counselor().await;
    let code = give_code(&app, "ada").await;
    assert_eq!(code.len(), 9, "{code}");
    // The result page shows the code once: a reload does not.
    let again = app.get_html("/students/ada").await;
    assert!(again.contains(r#"id="reset-code""#));
    let ada_logged_in = app.other_browser();
    ada_logged_in.login_ok("ada", &old).await;

    // The student types it as they read it (lower case, a space), with a new password.
    let student = app.other_browser();
    let typed = code.to_lowercase().replace('-', " ");
    let r = redeem(&student, "ada", &typed, "short").await;
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "a weak password first"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="new_password-error""#), "{html}");
    assert!(
        html.contains(&format!(r#"value="{typed}""#)),
        "the code stays typed: {html}"
    );
    let r = redeem(&student, "ada", &typed, "violet-comet-harbor-3").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(TestApp::location(&r), "/login?username=ada&reset=1");
    let login = student.get_html("/login?username=ada&reset=1").await;
    assert!(login.contains(r#"id="reset-done""#), "{login}");
    student.login_ok("ada", "violet-comet-harbor-3").await;
    // The old password is gone and the old session ended.
    assert_eq!(
        app.other_browser().login("ada", &old).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        ada_logged_in.get("/").await.status(),
        StatusCode::SEE_OTHER,
        "the session from before the reset is over"
    );
    // Used once.
    let r = redeem(&app.other_browser(), "ada", &code, "another-good-phrase-9").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    for (action, actor) in [
        ("student.reset_code", "connie"),
        ("account.reset_code", "ada"),
    ] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM audit_log WHERE action = '{action}' AND actor = '{actor}' AND target = 'ada'"
            ))
            .await,
            1,
            "{action}"
        );
    }
    // The result page, reloaded, shows no code.
    let r = app
        .post_form_from("/students/ada", "/students/ada/reset-code", &[])
        .await;
    let url = TestApp::location(&r);
    let first = app.get_html(&url).await;
    assert!(first.contains(r#"id="reset-code-value""#));
    let second = app.get_html(&url).await;
    assert!(!second.contains(r#"id="reset-code-value""#), "{second}");
    assert!(second.contains(r#"id="code-shown""#), "{second}");
}

#[tokio::test]
async fn an_expired_code_says_so_only_to_someone_who_typed_it_right() {
    let app = spawn_app().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await;
    let code = give_code(&app, "ada").await;
    sqlx::query("UPDATE reset_codes SET expires_at = now() - interval '1 minute'")
        .execute(&app.pool)
        .await
        .unwrap();
    let student = app.other_browser();
    let r = redeem(&student, "ada", "ABCD-EFGH", "violet-comet-harbor-3").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "wrong code: nothing about expiry"
    );
    let r = redeem(&student, "ada", &code, "violet-comet-harbor-3").await;
    assert_eq!(r.status(), StatusCode::GONE);
    assert!(r.text().await.unwrap().contains("expired"));
    assert_eq!(app.count("SELECT count(*) FROM reset_codes").await, 0);
}

#[tokio::test]
async fn wrong_codes_are_throttled_like_logins_and_staff_have_no_codes() {
    let app = spawn_app_with(|c| c.throttle.account_failures = 3).await;
    app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await;
    let code = give_code(&app, "ada").await;
    let guesser = app.other_browser();
    for _ in 0..3 {
        let r = redeem(&guesser, "ada", "ZZZZ-ZZZZ", "violet-comet-harbor-3").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Locked now: even the right code waits.
    let r = redeem(&guesser, "ada", &code, "violet-comet-harbor-3").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Unknown people answer as a wrong code does.
    let r = redeem(
        &app.other_browser(),
        "nosuch",
        "ZZZZ-ZZZZ",
        "violet-comet-harbor-3",
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A counselor has no reset code (the student pages manage students only).
    let r = app
        .post_form_from("/students/ada", "/students/connie/reset-code", &[])
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The counselor's own login still works (the throttle was ada's).
    app.other_browser().login_ok("connie", PASSWORD).await;
}
