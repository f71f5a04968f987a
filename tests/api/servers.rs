//! Notebook servers through hubdesk's pages and API, with the hub behind the `HubApi` seam (a
//! `FakeHub`; the real hub is proven in `hub.rs` and the e2e suite): status on the student list
//! and page, stop, a cohort started as a job, a disabled student's server stopped, a home reset
//! that stops the server first, and one line when the hub cannot be reached.
use std::{sync::Arc, time::Duration};

use hubdesk::{
    hub::{FakeCall, FakeHub, HubApi, HubError},
    state::Adapters,
};
use serde_json::{json, Value};

use crate::helpers::{csrf_from, fresh_form_id, spawn_app, spawn_app_with_adapters, TestApp};

async fn with_hub() -> (TestApp, Arc<FakeHub>) {
    let hub = Arc::new(FakeHub::new());
    let adapters = Adapters {
        hub: Some(hub.clone() as Arc<dyn HubApi>),
    };
    let app = spawn_app_with_adapters(|_| {}, adapters, |_| {}).await;
    (app, hub)
}

async fn until_done(app: &TestApp, token: &str, job: &str) -> Value {
    app.job_done(token, job).await
}

#[tokio::test]
async fn the_student_list_and_page_show_who_runs_and_a_counselor_stops_one() {
    let (app, hub) = with_hub().await;
    app.as_counselor().await;
    app.create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    app.create_student("Bob Smith", "bob", Some("blue")).await;
    hub.add_user("ada");
    hub.add_user("bob");
    let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(7);
    hub.set_server("ada", Some(FakeHub::ready_server("ada", since)));

    let list = app.get_html("/students").await;
    let ada_row = list
        .split("data-username=\"ada\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    let bob_row = list
        .split("data-username=\"bob\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(ada_row.contains("running"), "{ada_row}");
    assert!(bob_row.contains("stopped"), "{bob_row}");
    let calls = hub.calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| **c == FakeCall::ActiveServers)
            .count(),
        1,
        "one hub call per list view: {calls:?}"
    );

    let page = app.get_html("/students/ada").await;
    assert!(
        page.contains("id=\"stop-server\"") && page.contains("7 min ago"),
        "{page}"
    );
    let r = app
        .client
        .post(app.url("/students/ada/server/stop"))
        .form(&[
            ("csrf_token", csrf_from(&page).as_str()),
            ("form_id", &fresh_form_id()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(hub.calls().contains(&FakeCall::Stop("ada".into())));
    let page = app.get_html("/students/ada?notice=server-stopped").await;
    assert!(page.contains("Not running"), "{page}");
}

#[tokio::test]
async fn a_cohort_starts_before_class_as_a_job_and_the_api_stops_one() {
    let (app, hub) = with_hub().await;
    let token = app.api_token().await;
    for (name, u) in [
        ("Ada Lovelace", "ada"),
        ("Bob Smith", "bob"),
        ("Cy Young", "cy"),
    ] {
        app.create_student(name, u, Some("blue")).await;
    }
    hub.add_user("ada");
    hub.add_user("bob"); // cy never logged in: the hub does not know them yet
    let r = app
        .client
        .post(app.url("/api/v1/cohorts/blue/servers/start"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let done = until_done(&app, &token, job["job"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let steps: Vec<&str> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"started ada") && steps.contains(&"started bob"),
        "{steps:?}"
    );
    assert!(
        steps.iter().any(|s| s.starts_with("skipped cy")),
        "{steps:?}"
    );
    assert!(hub.peek("ada").unwrap().running());

    let r = app
        .client
        .delete(app.url("/api/v1/students/ada/server"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(!hub.peek("ada").unwrap().running());
    // A stop the hub answers with 202 becomes a job that waits for it.
    hub.stop_pending_for(3);
    let r = app
        .client
        .delete(app.url("/api/v1/students/bob/server"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let done = until_done(&app, &token, job["job"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    let r = app
        .client
        .post(app.url("/api/v1/cohorts/nobody/servers/start"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn disabling_a_student_stops_their_server_and_a_reset_stops_it_first() {
    let (app, hub) = with_hub().await;
    app.as_counselor().await;
    let token = app.api_token().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    hub.add_user("ada");
    hub.set_server(
        "ada",
        Some(FakeHub::ready_server(
            "ada",
            time::OffsetDateTime::now_utc(),
        )),
    );
    let home = app.state.homes.root().join("ada");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    // The job that lays her home has finished.
    while !home.exists()
        || app
            .count("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
            .await
            > 0
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app
        .client
        .post(app.url("/api/v1/students/ada/home/reset"))
        .bearer_auth(&token)
        .json(&json!({"scope": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let done = until_done(&app, &token, job["job"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["steps"][0]["name"], "server stopped", "{done}");
    assert!(!hub.peek("ada").unwrap().running());

    hub.set_server(
        "ada",
        Some(FakeHub::ready_server(
            "ada",
            time::OffsetDateTime::now_utc(),
        )),
    );
    let page = app.get_html("/students/ada").await;
    let r = app
        .client
        .post(app.url("/students/ada/disable"))
        .form(&[
            ("csrf_token", csrf_from(&page).as_str()),
            ("form_id", &fresh_form_id()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        !hub.peek("ada").unwrap().running(),
        "disable stopped the server"
    );
}

#[tokio::test]
async fn an_unreachable_hub_is_one_line_and_everything_else_works() {
    let (app, hub) = with_hub().await;
    app.as_counselor().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    hub.fail_with(Some(HubError::Unreachable {
        url: "http://hub.test/hub/api/".into(),
        reason: "connection refused".into(),
    }));
    let list = app.get_html("/students").await;
    assert!(
        list.contains("id=\"hub-problem\"") && list.contains("cannot be reached"),
        "{list}"
    );
    assert!(list.contains("data-username=\"ada\""));
    let page = app.get_html("/students/ada").await;
    assert!(page.contains("id=\"hub-problem\"") && page.contains("id=\"reset-password\""));
    // Without any hub configured counselors get no configuration warning (it is the admins'
    // to fix: a setup notice, tests/api/frame.rs); servers show as unknown.
    let plain = spawn_app().await;
    plain.as_counselor().await;
    plain.create_student("Ada Lovelace", "ada", None).await;
    let list = plain.get_html("/students").await;
    assert!(
        !list.contains("id=\"hub-problem\"") && !list.contains("api_token"),
        "{list}"
    );
    assert!(list.contains("data-username=\"ada\""));
    let page = plain.get_html("/students/ada").await;
    assert!(page.contains("Unknown: hubdesk is not connected to the hub."));
}
