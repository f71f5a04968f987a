//! Single-use forms (`web::once`) and the API's `Idempotency-Key` (`web::idempotency`).
use serde_json::{json, Value};

use crate::helpers::{csrf_from, form_id_for, password_on_card, spawn_app, TestApp};

/// The add-student form's token and id, as a page rendering gives them.
async fn new_student_form(app: &TestApp) -> (String, String) {
    let html = app.get_html("/students/new").await;
    let id = form_id_for(&html, "/students/new").expect("the form has an id");
    (csrf_from(&html), id)
}

async fn add_student(app: &TestApp, token: &str, form_id: &str, name: &str) -> reqwest::Response {
    app.client
        .post(app.url("/students/new"))
        .form(&[
            ("csrf_token", token),
            ("form_id", form_id),
            ("display_name", name),
            ("username", ""),
            ("cohort", ""),
        ])
        .send()
        .await
        .unwrap()
}

async fn usernames(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("SELECT username FROM users WHERE role='student' ORDER BY username")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn reloading_created_doubled_creates_nobody_and_shows_the_password_once() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let (token, id) = new_student_form(&app).await;
    let first = add_student(&app, &token, &id, "Doubled").await;
    assert_eq!(first.status(), 303);
    let result = TestApp::location(&first);
    assert_eq!(result, format!("/credentials/{id}"));
    // The result page is a GET: its first view shows the card…
    let cards = app.get(&result).await;
    assert_eq!(cards.headers()["cache-control"], "no-store");
    let cards = cards.text().await.unwrap();
    let password = password_on_card(&cards);
    assert!(
        cards.contains("This page shows the passwords once"),
        "{cards}"
    );
    // …a reload shows what was done, no password, and how to reprint.
    let reload = app.get_html(&result).await;
    assert!(reload.contains("doubled was already created"), "{reload}");
    assert!(!reload.contains(&password) && !reload.contains("card-password"));
    assert!(reload.contains("href=\"/students/doubled\""));
    // The same form again (Back + resubmit, a double click): sent to the first result.
    let again = add_student(&app, &token, &id, "Doubled").await;
    assert_eq!(again.status(), 303);
    assert_eq!(TestApp::location(&again), result);
    assert_eq!(usernames(&app).await, ["doubled"]);
    app.other_browser().login_ok("doubled", &password).await;

    // Negative control: the same fields in a fresh form (a new rendering) create again —
    // the protection is the form's id, nothing else.
    let (_, other_id) = new_student_form(&app).await;
    assert_ne!(other_id, id);
    assert_eq!(
        add_student(&app, &token, &other_id, "Doubled")
            .await
            .status(),
        303
    );
    assert_eq!(usernames(&app).await, ["doubled", "doubled2"]);
}

#[tokio::test]
async fn the_password_waits_sealed_and_only_the_sending_browser_opens_it() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let (token, id) = new_student_form(&app).await;
    let result = TestApp::location(&add_student(&app, &token, &id, "Ada Lovelace").await);
    let sealed: Option<Vec<u8>> = sqlx::query_scalar("SELECT sealed FROM spent_forms")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let sealed = sealed.expect("kept for the first view");
    // The same counselor in another browser (another session): no password, and the card is
    // left for the browser that sent the form.
    let elsewhere = app.other_browser();
    elsewhere.login_ok("connie", crate::helpers::PASSWORD).await;
    let html = elsewhere.get_html(&result).await;
    assert!(html.contains("adal was already created") && !html.contains("card-password"));
    let cards = app.get_html(&result).await;
    let password = password_on_card(&cards);
    assert!(
        !sealed
            .windows(password.len())
            .any(|w| w == password.as_bytes()),
        "the stored bytes do not hold the password"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM spent_forms WHERE sealed IS NULL")
            .await,
        1,
        "taken at the first view"
    );
    // Another person never sees someone else's result.
    let other = app.other_browser();
    app.create_user(
        hubdesk::domain::Role::Counselor,
        "carla",
        crate::helpers::PASSWORD,
    )
    .await;
    other.login_ok("carla", crate::helpers::PASSWORD).await;
    assert_eq!(other.get(&result).await.status(), 404);
}

#[tokio::test]
async fn reloading_the_new_password_page_resets_nothing() {
    let app = spawn_app().await;
    let old = app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await;
    let page = app.get_html("/students/ada").await;
    let id = form_id_for(&page, "/students/ada/reset-password").unwrap();
    let token = csrf_from(&page);
    let reset = || {
        app.client
            .post(app.url("/students/ada/reset-password"))
            .form(&[("csrf_token", token.as_str()), ("form_id", id.as_str())])
            .send()
    };
    let r = reset().await.unwrap();
    assert_eq!(r.status(), 303);
    let result = TestApp::location(&r);
    let new = password_on_card(&app.get_html(&result).await);
    assert_ne!(new, old);
    let reload = app.get_html(&result).await;
    assert!(
        reload.contains("ada already got a new password"),
        "{reload}"
    );
    // Resubmitted (Back, "Confirm Form Resubmission"): the card just printed still works.
    assert_eq!(TestApp::location(&reset().await.unwrap()), result);
    app.other_browser().login_ok("ada", &new).await;
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action='student.reset_password'")
            .await,
        1
    );
}

#[tokio::test]
async fn concurrent_resets_of_one_form_reset_once_and_of_two_forms_twice() {
    let app = spawn_app().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await;
    let page = app.get_html("/students/ada").await;
    let token = csrf_from(&page);
    let send = |id: String| {
        let (app, token) = (&app, &token);
        async move {
            let r = app
                .client
                .post(app.url("/students/ada/reset-password"))
                .form(&[("csrf_token", token.as_str()), ("form_id", id.as_str())])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), TestApp::location(&r))
        }
    };
    let id = form_id_for(&page, "/students/ada/reset-password").unwrap();
    // More clicks at once than the pool has connections (16): the waiting ones hold none.
    let answers = futures_util::future::join_all((0..24).map(|_| send(id.clone()))).await;
    for (status, location) in &answers {
        assert_eq!(
            (*status, location.as_str()),
            (303, format!("/credentials/{id}").as_str())
        );
    }
    let resets = "SELECT count(*) FROM audit_log WHERE action='student.reset_password'";
    assert_eq!(app.count(resets).await, 1, "24 clicks, one reset");
    // Negative control: two renderings of the form (two ids) at the same instant reset twice.
    let ids = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
    futures_util::future::join_all(ids.iter().map(|i| send(i.to_string()))).await;
    assert_eq!(app.count(resets).await, 3);
}

#[tokio::test]
async fn a_form_that_comes_back_with_errors_is_not_spent() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let (token, id) = new_student_form(&app).await;
    let r = add_student(&app, &token, &id, "   ").await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert_eq!(
        form_id_for(&html, "/students/new").as_deref(),
        Some(id.as_str())
    );
    let r = add_student(&app, &token, &id, "Fixed Name").await;
    assert_eq!(r.status(), 303);
    assert_eq!(usernames(&app).await, ["fixedn"]);
    // A form without an id (a page from before, a hand-made post) is refused plainly.
    let r = app
        .client
        .post(app.url("/students/new"))
        .form(&[("csrf_token", token.as_str()), ("display_name", "No Id")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("reload it"));
    // And the CSRF check still comes first.
    let r = add_student(&app, "forged", &uuid::Uuid::new_v4().to_string(), "X").await;
    assert_eq!(r.status(), 403);
    assert_eq!(usernames(&app).await, ["fixedn"]);
}

#[tokio::test]
async fn disable_twice_from_one_page_is_one_action() {
    let app = spawn_app().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await;
    let page = app.get_html("/students/ada").await;
    let id = form_id_for(&page, "/students/ada/disable").unwrap();
    let fields = [("form_id", id.as_str())];
    for _ in 0..2 {
        let r = app
            .post_form_from("/students/ada", "/students/ada/disable", &fields)
            .await;
        assert_eq!(r.status(), 303);
        assert_eq!(TestApp::location(&r), "/students/ada?notice=disabled");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action='student.disable'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_sweeper_forgets_spent_forms_and_unseen_passwords() {
    let app = spawn_app().await;
    app.as_counselor().await;
    for name in ["Ada One", "Ada Two"] {
        let (token, id) = new_student_form(&app).await;
        add_student(&app, &token, &id, name).await;
    }
    sqlx::query("UPDATE spent_forms SET created_at = now() - interval '11 minutes' WHERE result->'people'->0->>'username' = 'adao'")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE spent_forms SET created_at = now() - interval '25 hours' WHERE result->'people'->0->>'username' = 'adat'")
        .execute(&app.pool)
        .await
        .unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    hubdesk::db::once::delete_expired(&mut conn).await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM spent_forms").await, 1);
    assert_eq!(
        app.count("SELECT count(*) FROM spent_forms WHERE sealed IS NULL")
            .await,
        1,
        "unseen for 10 minutes: the sealed password is gone"
    );
}

// ---- the API's Idempotency-Key -------------------------------------------------------------

async fn api_post(
    app: &TestApp,
    token: &str,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let mut r = app
        .client
        .post(app.url(&format!("/api/v1{path}")))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = key {
        r = r.header("Idempotency-Key", format!("\"{key}\""));
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn a_retried_request_with_its_key_gets_the_first_answer_again() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let ada = json!({"display_name": "Ada Lovelace"});
    let first = api_post(&app, &token, "/students", Some("k-1"), ada.clone()).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotency-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = api_post(&app, &token, "/students", Some("k-1"), ada.clone()).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotency-replayed"], "true");
    assert_eq!(again.headers()["cache-control"], "no-store");
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the same password too"
    );
    assert_eq!(usernames(&app).await, ["adal"]);
    // The stored reply is sealed: the password is not in the table.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT sealed_body FROM idempotency_keys")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let password = first["password"].as_str().unwrap();
    assert!(!stored
        .windows(password.len())
        .any(|w| w == password.as_bytes()));
    // Same key, another body or another endpoint: 422.
    let other = api_post(
        &app,
        &token,
        "/students",
        Some("k-1"),
        json!({"display_name": "Grace"}),
    )
    .await;
    assert_eq!(other.status(), 422);
    assert_eq!(
        other.json::<Value>().await.unwrap()["error"],
        "idempotency_key_reused"
    );
    let other = api_post(
        &app,
        &token,
        "/students/adal/disable",
        Some("k-1"),
        json!({}),
    )
    .await;
    assert_eq!(other.status(), 422);
    // Keys are per token: another client's "k-1" is its own.
    let token2 = app.api_token_named("other").await;
    assert_eq!(
        api_post(&app, &token2, "/students", Some("k-1"), ada.clone())
            .await
            .status(),
        201
    );
    assert_eq!(usernames(&app).await, ["adal", "adal2"]);
    // Negative control: without a key a retry is a second request.
    assert_eq!(
        api_post(&app, &token, "/students", None, ada.clone())
            .await
            .status(),
        201
    );
    assert_eq!(usernames(&app).await, ["adal", "adal2", "adal3"]);
    // A bad key is a 400 with the reason.
    let bad = api_post(&app, &token, "/students", Some(""), ada).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_key_still_in_flight_is_a_conflict() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    // A class of 60 takes a while to hash: the retry arrives while the first is still working.
    let mut csv = String::from("display_name\n");
    for i in 0..60 {
        csv.push_str(&format!("Camper Number{i}\n"));
    }
    let send = |delay_ms: u64| {
        let (app, token, csv) = (&app, &token, &csv);
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            app.client
                .post(app.url("/api/v1/students/import"))
                .bearer_auth(token)
                .header("Idempotency-Key", "class-9b")
                .header("content-type", "text/csv")
                .body(csv.clone())
                .send()
                .await
                .unwrap()
        }
    };
    let (first, second) = tokio::join!(send(0), send(150));
    assert_eq!(first.status(), 201);
    assert_eq!(second.status(), 409);
    assert!(second
        .text()
        .await
        .unwrap()
        .contains("still being processed"));
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["created"].as_array().unwrap().len(), 60);
    // Once the first is done, the retry gets its answer.
    let retry = send(0).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE role='student'")
            .await,
        60
    );
}
