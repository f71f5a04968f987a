//! The cohort pages (class times, dates, profile) and the profile endpoint the hub's spawner
//! asks before each start.
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp, HUB_CLIENT, HUB_SECRET};

async fn camp_with_two_cohorts() -> TestApp {
    let app = spawn_app().await;
    app.create_student("Ada Lovelace", "ada", Some("Class 9B"))
        .await;
    app.create_student("Alan Turing", "alan", Some("Class 9B"))
        .await;
    app.create_student("Grace Hopper", "grace", Some("Evening"))
        .await;
    app.create_student("Nobody Inparticular", "nemo", None)
        .await;
    app.as_counselor().await;
    app
}

fn settings<'a>(guarantee: &'a str, limit: &'a str, cpus: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("timezone", "America/Chicago"),
        ("first_day", "2027-03-08"),
        ("last_day", "2027-03-19"),
        ("memory_guarantee", guarantee),
        ("memory_limit", limit),
        ("cpu_limit", cpus),
        ("idle_timeout", "45"),
    ]
}

#[tokio::test]
async fn cohorts_are_listed_from_the_students_with_defaults_until_saved() {
    let app = camp_with_two_cohorts().await;
    let html = app.get_html("/cohorts").await;
    assert!(html.contains(r#"data-slug="class-9b""#), "{html}");
    assert!(html.contains(r#"data-slug="evening""#));
    assert!(html.contains("(defaults)"));
    assert!(html.contains("none yet"), "no class times yet");
    let r = app.get("/cohorts/no-such-class").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().await.unwrap().contains("No cohort named"));
    // Students have no business here.
    let student = app.other_browser();
    let password = app.create_student("Sam Student", "sam", None).await;
    student.login_ok("sam", &password).await;
    assert_eq!(
        student.get("/cohorts").await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn settings_are_saved_and_audited_and_bad_ones_come_back_beside_their_fields() {
    let app = camp_with_two_cohorts().await;
    let bad = [
        ("timezone", "America/Chicagoo"),
        ("first_day", "2027-03-19"),
        ("last_day", "2027-03-08"),
        ("memory_guarantee", "4 GiB"),
        ("memory_limit", "2 GiB"),
        ("cpu_limit", "lots"),
        ("idle_timeout", "1"),
    ];
    let r = app.post_form("/cohorts/class-9b", &bad).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    for id in [
        "timezone-error",
        "last_day-error",
        "memory_limit-error",
        "cpu_limit-error",
        "idle_timeout-error",
    ] {
        assert!(
            html.contains(&format!(r#"id="{id}""#)),
            "{id} missing in {html}"
        );
    }
    assert!(html.contains("America/Chicagoo"), "what was typed is kept");
    assert_eq!(app.count("SELECT count(*) FROM cohorts").await, 0);

    let r = app
        .post_form("/cohorts/class-9b", &settings("1.5 GiB", "3G", "0.5"))
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    assert_eq!(TestApp::location(&r), "/cohorts/class-9b?saved=1");
    let html = app.get_html("/cohorts/class-9b?saved=1").await;
    assert!(html.contains("Settings saved."));
    assert!(html.contains(r#"value="1.5 GiB""#), "{html}");
    assert!(html.contains(r#"value="3 GiB""#));
    assert!(html.contains(r#"value="0.5""#));
    assert!(html.contains(r#"value="2027-03-08""#));
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'cohort.update' \
             AND target = 'cohort:Class 9B' AND detail LIKE '%1.5 GiB guaranteed%'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn class_times_are_added_shown_in_the_zone_and_removed() {
    let app = camp_with_two_cohorts().await;
    app.post_form("/cohorts/class-9b", &settings("2", "2", "1"))
        .await;
    let weekly = [
        ("mon", "on"),
        ("tue", "on"),
        ("wed", "on"),
        ("thu", "on"),
        ("fri", "on"),
        ("starts", "09:00"),
        ("ends", "12:00"),
    ];
    let r = app
        .post_form_from("/cohorts/class-9b", "/cohorts/class-9b/blocks", &weekly)
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = app.get_html("/cohorts/class-9b").await;
    assert!(html.contains("Mon–Fri 09:00–12:00"), "{html}");
    // Wrong: no day and no date; ends before it starts. Both named, the ticks kept.
    let r = app
        .post_form_from(
            "/cohorts/class-9b",
            "/cohorts/class-9b/blocks",
            &[("starts", "13:30"), ("ends", "16:00")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains(r#"id="days-error""#));
    let r = app
        .post_form_from(
            "/cohorts/class-9b",
            "/cohorts/class-9b/blocks",
            &[("wed", "on"), ("starts", "16:00"), ("ends", "13:30")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="ends-error""#), "{html}");
    assert!(
        html.contains(r#"name="wed" value="on" checked"#),
        "the tick is kept"
    );

    // A cohort nobody saved gets its row (with the defaults) with its first block.
    let r = app
        .post_form_from(
            "/cohorts/evening",
            "/cohorts/evening/blocks",
            &[
                ("date", "2027-03-10"),
                ("starts", "19:00"),
                ("ends", "21:00"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.count("SELECT count(*) FROM cohorts WHERE name = 'Evening'")
            .await,
        1
    );
    let list = app.get_html("/cohorts").await;
    assert!(list.contains("Wed 10 Mar 2027 19:00–21:00"), "{list}");

    let id: i64 = sqlx::query_scalar("SELECT id FROM cohort_blocks WHERE cohort = 'Class 9B'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let r = app
        .post_form_from(
            "/cohorts/class-9b",
            &format!("/cohorts/class-9b/blocks/{id}/remove"),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!app
        .get_html("/cohorts/class-9b")
        .await
        .contains("Mon–Fri 09:00–12:00"));
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'cohort.timetable'")
            .await,
        3,
        "two added, one removed"
    );
}

async fn profile(app: &TestApp, user: &str, secret: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/oauth/profile/{user}")))
        .basic_auth(HUB_CLIENT, Some(secret))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_hub_reads_each_students_cohort_profile_with_its_client_credentials() {
    let app = camp_with_two_cohorts().await;
    app.post_form("/cohorts/class-9b", &settings("512 MiB", "768 MiB", "0.5"))
        .await;
    let r = profile(&app, "ada", HUB_SECRET).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["cohort"], "Class 9B");
    assert_eq!(p["mem_guarantee"], 512u64 << 20);
    assert_eq!(p["mem_limit"], 768u64 << 20);
    assert_eq!(p["cpu_limit"], 0.5);
    assert_eq!(p["idle_timeout_secs"], 45 * 60);
    // A cohort nobody saved, and no cohort: the defaults.
    for user in ["grace", "nemo"] {
        let p: Value = profile(&app, user, HUB_SECRET).await.json().await.unwrap();
        assert_eq!(p["mem_guarantee"], 2u64 << 30, "{user}");
        assert_eq!(p["cpu_limit"], 2.0);
    }
    // Wrong secret: 401 with a Basic challenge, in the RFC's format.
    let r = profile(&app, "ada", "wrong").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().contains_key("www-authenticate"));
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid_client");
    // No credentials at all.
    let r = app
        .client
        .get(app.url("/oauth/profile/ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Unknown and malformed names: 404 in the same shape.
    for user in ["nosuch", "..%2Fetc"] {
        let r = profile(&app, user, HUB_SECRET).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{user}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"], "not_found");
    }
}

#[tokio::test]
async fn the_api_reads_and_edits_cohorts_as_the_pages_do() {
    let app = camp_with_two_cohorts().await;
    let token = app.api_token().await;
    let api = |m: reqwest::Method, p: &str| {
        app.client
            .request(m, app.url(&format!("/api/v1{p}")))
            .bearer_auth(&token)
    };
    let all: Value = api(reqwest::Method::GET, "/cohorts")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slugs: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["class-9b", "evening"]);

    let mut body = serde_json::Map::new();
    for (k, v) in settings("1 GiB", "1.5 GiB", "0.5") {
        body.insert(k.into(), Value::String(v.into()));
    }
    let r = api(reqwest::Method::PUT, "/cohorts/class-9b")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["profile"]["memory_limit_bytes"], 1536u64 << 20);
    assert_eq!(c["timezone"], "America/Chicago");
    body.insert("memory_limit".into(), Value::String("a lot".into()));
    let r = api(reqwest::Method::PUT, "/cohorts/class-9b")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"], "invalid");
    assert!(
        e["fields"]["memory_limit"]
            .as_str()
            .unwrap()
            .contains("size"),
        "{e}"
    );

    let r = api(reqwest::Method::POST, "/cohorts/class-9b/blocks")
        .json(&serde_json::json!({"days": ["mon", "wed"], "starts": "13:30", "ends": "16:00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["label"], "Mon, Wed 13:30–16:00");
    assert_eq!(b["days"], serde_json::json!(["mon", "wed"]));
    let id = b["id"].as_i64().unwrap();
    let r = api(
        reqwest::Method::DELETE,
        &format!("/cohorts/class-9b/blocks/{id}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = api(
        reqwest::Method::DELETE,
        &format!("/cohorts/class-9b/blocks/{id}"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE actor LIKE 'token:%' AND action LIKE 'cohort.%'"
        )
        .await,
        3
    );
    let r = app
        .client
        .get(app.url("/api/v1/cohorts"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
