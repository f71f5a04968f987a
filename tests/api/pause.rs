//! Pause camp (issue 18) with the real app and PostgreSQL, the hub behind the `HubApi` seam (a
//! `FakeHub`; the spawner's side of the 423 is proven in the hub image by
//! tests/e2e/test_spawner_profile.py): an admin pauses with a message; students' logins and
//! sign-ins are refused with it, the hub's profile answer for a student is 423, cohort starts
//! are refused, every running student server is stopped (a staff member's keeps running), and
//! a student server started meanwhile is caught by the sweep; counselors work throughout; one
//! click resumes; both switches are in the audit log.
use std::{sync::Arc, time::Duration};

use hubdesk::{
    domain::Role,
    hub::{FakeCall, FakeHub, HubApi},
    state::Adapters,
};
use reqwest::StatusCode;

use crate::helpers::{spawn_app_with_adapters, TestApp, HUB_CLIENT, HUB_SECRET, PASSWORD};

async fn camp() -> (TestApp, Arc<FakeHub>, String) {
    let hub = Arc::new(FakeHub::new());
    let adapters = Adapters {
        hub: Some(hub.clone() as Arc<dyn HubApi>),
    };
    let app = spawn_app_with_adapters(|_| {}, adapters, |_| {}).await;
    let ada = app
        .create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    app.create_student("Bob Smith", "bob", Some("blue")).await;
    app.create_user(Role::Counselor, "connie", PASSWORD).await;
    let since = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    for user in ["ada", "bob", "connie"] {
        hub.add_user(user);
        hub.set_server(user, Some(FakeHub::ready_server(user, since)));
    }
    app.as_admin().await;
    (app, hub, ada)
}

async fn stopped(hub: &FakeHub) -> Vec<String> {
    let mut out: Vec<String> = hub
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            FakeCall::Stop(u) => Some(u),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn wait_stopped(app: &TestApp, hub: &FakeHub, want: &[&str]) {
    app.state.jobs.wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got = stopped(hub).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stopped {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_paused_camp_turns_students_away_stops_their_servers_and_resumes_in_one_click() {
    let (app, hub, ada_password) = camp().await;
    // Before: a student can log in (the negative control of every refusal below).
    let ada = app.other_browser();
    ada.login_ok("ada", &ada_password).await;
    let sign_in = format!(
        "/oauth/authorize?response_type=code&client_id={HUB_CLIENT}&redirect_uri={}&scope=openid\
         &state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        crate::helpers::urlenc(crate::helpers::HUB_CALLBACK)
    );
    let r = ada.get(&sign_in).await;
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "signed in to the hub before the pause"
    );
    let list = app.get_html("/students").await;
    assert!(list.contains(r#"id="pause-camp""#), "{list}");

    let r = app
        .post_form_from(
            "/students",
            "/camp/pause",
            &[("message", "Lunch break until 13:30")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Every running student server stops; the counselor's does not.
    wait_stopped(&app, &hub, &["ada", "bob"]).await;
    let page = app.get_html("/students").await;
    assert!(page.contains(r#"id="camp-paused""#), "{page}");
    assert!(page.contains("Lunch break until 13:30"), "{page}");
    assert!(page.contains(r#"id="resume-camp""#), "{page}");
    assert!(!page.contains(r#"id="pause-camp""#));

    // A student's login is refused with the message; a counselor's works.
    let bob = app.other_browser();
    let r = bob.login("bob", "whatever-it-was").await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a wrong password is still wrong"
    );
    let fresh = app.other_browser();
    let r = fresh.login("ada", &ada_password).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("The camp is paused: Lunch break until 13:30."),
        "{html}"
    );
    let connie = app.other_browser();
    connie.login_ok("connie", PASSWORD).await;
    assert_eq!(connie.get("/students").await.status(), StatusCode::OK);

    // A student still logged in at hubdesk cannot sign in to the hub, and sees why.
    let r = ada.get(&sign_in).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.text().await.unwrap().contains("Lunch break until 13:30"));
    // The hub's spawner is told no for a student (423), yes for staff.
    let profile = |user: &'static str| {
        app.client
            .get(app.url(&format!("/oauth/profile/{user}")))
            .basic_auth(HUB_CLIENT, Some(HUB_SECRET))
            .send()
    };
    let r = profile("ada").await.unwrap();
    assert_eq!(r.status(), StatusCode::LOCKED);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"], "camp_paused");
    assert_eq!(
        e["error_description"],
        "The camp is paused: Lunch break until 13:30. You can log in again when your counselor says so."
    );
    // Starting a cohort is refused, on the page and in the API.
    let token = app.api_token().await;
    let r = app
        .client
        .post(app.url("/api/v1/cohorts/blue/servers/start"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("the camp is paused"));

    // A server that slipped through (started at the hub meanwhile) is caught by the sweep.
    let since = time::OffsetDateTime::now_utc();
    hub.set_server("bob", Some(FakeHub::ready_server("bob", since)));
    let before = hub
        .calls()
        .iter()
        .filter(|c| **c == FakeCall::Stop("bob".into()))
        .count();
    assert_eq!(app.state.servers.sweep_paused(&app.pool).await.unwrap(), 1);
    app.state.jobs.wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while hub
        .calls()
        .iter()
        .filter(|c| **c == FakeCall::Stop("bob".into()))
        .count()
        == before
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob's server not stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // One click resumes; the student logs in again.
    let r = app.post_form_from("/students", "/camp/resume", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.other_browser().login_ok("ada", &ada_password).await;
    assert_eq!(profile("ada").await.unwrap().status(), StatusCode::OK);
    for action in ["camp.pause", "camp.resume"] {
        assert_eq!(
            app.count(&format!(
                "SELECT count(*) FROM audit_log WHERE action = '{action}' AND actor = 'boss'"
            ))
            .await,
            1,
            "{action}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'server.stop' AND detail = 'the camp is paused'")
            .await,
        3,
        "ada, bob, and bob again"
    );
}

#[tokio::test]
async fn counselors_cannot_pause_the_camp_and_the_api_stop_is_audited_like_the_page() {
    let (app, hub, _) = camp().await;
    let connie = app.other_browser();
    connie.login_ok("connie", PASSWORD).await;
    let r = connie
        .post_form_from("/students", "/camp/pause", &[("message", "no")])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!connie
        .get_html("/students")
        .await
        .contains(r#"id="pause-camp""#));
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'camp.pause'")
            .await,
        0
    );

    let token = app.api_token().await;
    let r = app
        .client
        .delete(app.url("/api/v1/students/ada/server"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(stopped(&hub).await, vec!["ada".to_string()]);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'server.stop' AND target = 'ada' AND actor = 'token:sync'")
            .await,
        1
    );
}

#[tokio::test]
async fn a_student_stops_their_own_server_from_their_landing_page() {
    let (app, hub, ada_password) = camp().await;
    let ada = app.other_browser();
    ada.login_ok("ada", &ada_password).await;
    let home = ada.get_html("/").await;
    assert!(home.contains(r#"id="stop-own-server""#), "{home}");
    let r = ada.post_form_from("/", "/account/server/stop", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(TestApp::location(&r), "/?server=stopped");
    assert_eq!(stopped(&hub).await, vec!["ada".to_string()], "hers only");
    assert!(ada
        .get_html("/?server=stopped")
        .await
        .contains("Your notebook server is stopped."));
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'server.stop' AND actor = 'ada' AND target = 'ada'")
            .await,
        1
    );
}
