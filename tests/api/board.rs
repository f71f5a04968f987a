//! The roll board and the spawn timeline (issue 18) with the real app and PostgreSQL; the hub
//! and the swarm behind their seams (`FakeHub`, the cluster's `FakeWorld`), so each state can
//! be set exactly and the calls per look counted. The same board against the real hub and
//! swarm is in tests/e2e/test_camp.py.
use std::{sync::Arc, time::Duration};

use hubdesk::{
    cluster::{
        fake::{self, FakeWorld},
        runtime::TaskPhase,
        Cluster,
    },
    hub::{FakeHub, HubApi, ServerState},
    state::Adapters,
};
use serde_json::Value;
use time::OffsetDateTime;

use crate::helpers::{spawn_app_with_adapters, TestApp};

struct Class {
    app: TestApp,
    hub: Arc<FakeHub>,
    world: FakeWorld,
}

async fn class() -> Class {
    let world = FakeWorld::new();
    let hub = Arc::new(FakeHub::new());
    let adapters = Adapters {
        hub: Some(hub.clone() as Arc<dyn HubApi>),
    };
    let w2 = world.clone();
    let app = spawn_app_with_adapters(
        |c| c.hub.start_timeout_secs = 120,
        adapters,
        move |s| {
            let cluster = Arc::new(Cluster::new(
                Arc::new(w2.runtime()),
                Arc::new(w2.fleet(&s.config.cluster.name)),
                s.pool.clone(),
                s.config.cluster.clone(),
            ));
            s.cluster = Some(cluster.clone());
            s.board.cluster = Some(cluster);
        },
    )
    .await;
    for (name, user) in [
        ("Ada Lovelace", "ada"),
        ("Bob Idle", "bob"),
        ("Cy Waiting", "cy"),
        ("Dee Never", "dee"),
        ("Eve Stopped", "eve"),
        ("Fay Failed", "fay"),
    ] {
        app.create_student(name, user, Some("Morning")).await;
    }
    sqlx::query("UPDATE users SET last_login_at = now() WHERE username <> 'dee'")
        .execute(&app.pool)
        .await
        .unwrap();
    Class { app, hub, world }
}

fn pending(since: OffsetDateTime) -> ServerState {
    ServerState {
        started: Some(since),
        last_activity: None,
        pending: Some("spawn".into()),
        ready: false,
        url: String::new(),
    }
}

async fn board(app: &TestApp, token: &str, query: &str) -> Value {
    let r = app
        .client
        .get(app.url(&format!("/api/v1/board{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn states(look: &Value) -> Vec<(String, String, String)> {
    look["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let detail = r["waiting"]
                .as_str()
                .or(r["reason"].as_str())
                .unwrap_or_default()
                .to_string();
            (
                r["username"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
                detail,
            )
        })
        .collect()
}

/// Each state at once, its plain reason, counts that add up, a failed start kept with its
/// reason, and the same number of hub and engine calls for 6 students as for 36.
#[tokio::test]
async fn board_shows_where_each_student_is_with_a_constant_number_of_calls() {
    let Class { app, hub, world } = class().await;
    let now = OffsetDateTime::now_utc();
    hub.set_server(
        "ada",
        Some(FakeHub::ready_server(
            "ada",
            now - time::Duration::minutes(3),
        )),
    );
    let mut bob = FakeHub::ready_server("bob", now - time::Duration::minutes(50));
    bob.last_activity = Some(now - time::Duration::minutes(30));
    hub.set_server("bob", Some(bob));
    hub.set_server("cy", Some(pending(now - time::Duration::seconds(40))));
    hub.set_server("fay", Some(pending(now - time::Duration::seconds(20))));
    hub.add_user("eve");
    world.with(|w| {
        w.tasks.push(fake::task(
            "cy",
            TaskPhase::Pending,
            "no suitable node (insufficient resources on 2 nodes)",
        ));
        let mut rejected = fake::task(
            "fay",
            TaskPhase::Rejected,
            "No such image: hubdesk/notebook:4f2a",
        );
        rejected.node_id = "node-manager".into();
        w.tasks.push(rejected);
    });
    // The sweep sees fay's start and its rejected task; then the hub gives up on it.
    app.state.board.sweep().await.unwrap();
    hub.set_server("fay", None);
    app.state.board.sweep().await.unwrap();

    let token = app.api_token().await;
    let look = board(&app, &token, "").await;
    let got = states(&look);
    let find = |u: &str| got.iter().find(|(n, _, _)| n == u).cloned().unwrap();
    assert_eq!(find("ada").1, "ready");
    assert_eq!(find("bob").1, "idle");
    assert!(
        look["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["username"] == "bob" && r["stops_at"].is_string()),
        "{look}"
    );
    assert_eq!(
        find("cy"),
        (
            "cy".into(),
            "starting".into(),
            "no worker has 2 GiB free".into()
        )
    );
    assert_eq!(find("dee").1, "never-logged-in");
    assert_eq!(find("eve").1, "stopped");
    let fay = find("fay");
    assert_eq!(fay.1, "failed");
    assert_eq!(fay.2, "the notebook image is missing on manager");
    // The counts are the rows', and agree with the hub's own list of active servers.
    let counts: std::collections::HashMap<String, u64> = look["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c[0].as_str().unwrap().to_string(), c[1].as_u64().unwrap()))
        .collect();
    assert_eq!(counts["ready"], 1);
    assert_eq!(counts["idle"], 1);
    assert_eq!(counts["starting"], 1);
    assert_eq!(counts["failed"], 1);
    assert_eq!(counts.values().sum::<u64>(), 6);
    let active = hub.active_servers().await.unwrap().len() as u64;
    assert_eq!(
        counts["ready"] + counts["idle"] + counts["starting"] + counts["stopping"],
        active
    );

    // One cohort: only its students.
    app.create_student("Zed Other", "zed", Some("Evening"))
        .await;
    let evening = board(&app, &token, "?cohort=Evening").await;
    assert_eq!(states(&evening).len(), 1);

    // Calls per look: the same for 7 students as for 37.
    let calls =
        |hub: &FakeHub, world: &FakeWorld| (hub.calls().len(), world.with(|w| w.total_calls("")));
    let before = calls(&hub, &world);
    board(&app, &token, "").await;
    let small = calls(&hub, &world);
    for i in 0..30 {
        let user = format!("extra-{i}");
        app.create_student(&format!("Extra {i}"), &user, Some("Morning"))
            .await;
        hub.set_server(&user, Some(FakeHub::ready_server(&user, now)));
    }
    board(&app, &token, "").await;
    let big = calls(&hub, &world);
    assert_eq!(
        (small.0 - before.0, small.1 - before.1),
        (big.0 - small.0, big.1 - small.1),
        "hub and engine calls per look"
    );
    assert!(
        small.0 - before.0 <= 1 && small.1 - before.1 <= 3,
        "{before:?} {small:?}"
    );
}

/// The page and its live part, for counselors only; the student's page lists the failed start
/// with its reason and steps.
#[tokio::test]
async fn board_page_updates_itself_and_the_student_page_keeps_the_starts() {
    let Class { app, hub, world } = class().await;
    let now = OffsetDateTime::now_utc();
    hub.set_server("cy", Some(pending(now - time::Duration::seconds(130))));
    world.with(|w| {
        w.tasks.push(fake::task(
            "cy",
            TaskPhase::Pending,
            "no suitable node (insufficient resources on 1 node)",
        ))
    });
    app.state.board.sweep().await.unwrap();
    hub.set_server("cy", None);
    world.with(|w| w.tasks.clear());
    app.state.board.sweep().await.unwrap();

    // A student may not see it.
    let password = app.create_student("Stu Dent", "stu", Some("Morning")).await;
    app.login_ok("stu", &password).await;
    assert_eq!(app.get("/board").await.status(), 403);
    assert_eq!(app.get("/board/live").await.status(), 403);
    app.post_form_from("/", "/logout", &[]).await;

    app.as_counselor().await;
    let page = app.get_html("/board?cohort=Morning").await;
    assert!(
        page.contains(r#"data-live="/board/live?cohort=Morning""#),
        "{page}"
    );
    assert!(
        page.contains(r#"data-username="cy" data-state="failed""#),
        "{page}"
    );
    assert!(page.contains("no worker has 2 GiB free"), "{page}");
    let live = app.get("/board/live?cohort=Morning").await;
    assert_eq!(live.status(), 200);
    let live = live.text().await.unwrap();
    assert!(!live.contains("<html"), "the live part is a fragment");
    assert!(live.contains(r#"data-username="cy" data-state="failed""#));
    let student = app.get_html("/students/cy").await;
    assert!(student.contains(r#"data-outcome="failed""#), "{student}");
    assert!(student.contains("no worker has 2 GiB free"), "{student}");
    // An empty cohort says so.
    let empty = app.get_html("/board?cohort=Nobody").await;
    assert!(empty.contains("No students in Nobody"), "{empty}");
    let _ = Duration::ZERO;
}

/// Starts are kept 20 per student; a fast start (ready before the sweep saw it starting) is
/// recorded once; a start that vanishes silently after the hub's timeout says so.
#[tokio::test]
async fn board_timeline_keeps_twenty_starts_and_names_the_hubs_timeout() {
    let Class { app, hub, world } = class().await;
    let now = OffsetDateTime::now_utc();
    // With a swarm to ask, a server counts as ready once its task runs.
    world.with(|w| w.notebooks.push(fake::notebook("ada", "node-manager")));
    for i in 0..23 {
        let started = now - time::Duration::minutes(100 - i);
        hub.set_server("ada", Some(FakeHub::ready_server("ada", started)));
        app.state.board.sweep().await.unwrap();
        app.state.board.sweep().await.unwrap();
    }
    assert_eq!(
        app.count("SELECT count(*) FROM spawn_attempts WHERE username = 'ada'")
            .await,
        20
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM spawn_attempts WHERE username = 'ada' AND outcome = 'ready'"
        )
        .await,
        20
    );
    hub.set_server("ada", None);
    hub.set_server("eve", Some(pending(now - time::Duration::seconds(150))));
    app.state.board.sweep().await.unwrap();
    hub.set_server("eve", None);
    app.state.board.sweep().await.unwrap();
    let token = app.api_token().await;
    let r: Value = app
        .client
        .get(app.url("/api/v1/students/eve/starts"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["starts"][0]["outcome"], "failed");
    assert_eq!(r["starts"][0]["reason"], "the hub gave up after 120 s");
    assert_eq!(r["starts"][0]["steps"][0]["phase"], "hub");
}

/// "My notebook is stuck": a student's pending start is stopped and started again by a job
/// (through the hub), the board says they pressed it, a fourth press within the hour is
/// refused with when to try again, and a paused camp refuses it.
#[tokio::test]
async fn board_stuck_button_restarts_a_wedged_start_three_times_an_hour() {
    use hubdesk::hub::FakeCall;
    let Class { app, hub, .. } = class().await;
    let password = app.create_student("Stu Dent", "stu", Some("Morning")).await;
    let now = OffsetDateTime::now_utc();
    hub.set_server("stu", Some(pending(now - time::Duration::minutes(4))));
    app.login_ok("stu", &password).await;
    let landing = app.get_html("/").await;
    assert!(landing.contains("My notebook is stuck"), "{landing}");
    let r = app
        .post_form_from("/", "/account/server/unstick", &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/?server=restarting");
    app.state.jobs.wake();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let calls = hub.calls();
        let stop = calls
            .iter()
            .position(|c| *c == FakeCall::Stop("stu".into()));
        let start = calls
            .iter()
            .rposition(|c| *c == FakeCall::Start("stu".into()));
        if let (Some(stop), Some(start)) = (stop, start) {
            assert!(stop < start, "stopped first, then started: {calls:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no restart: {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = app.get_html("/?server=restarting").await;
    assert!(page.contains("Your notebook is restarting"), "{page}");
    for _ in 0..2 {
        let r = app
            .post_form_from("/", "/account/server/unstick", &[])
            .await;
        assert_eq!(r.status(), 303);
    }
    let r = app
        .post_form_from("/", "/account/server/unstick", &[])
        .await;
    assert_eq!(r.status(), 429);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("3 times in the last hour") && body.contains("try again at"),
        "{body}"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'server.unstick' AND target = 'stu'"
        )
        .await,
        3
    );

    // The counselor's board says so.
    let token = app.api_token().await;
    let look = board(&app, &token, "").await;
    let row = look["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["username"] == "stu")
        .unwrap()
        .clone();
    assert!(row["unstuck_at"].is_string(), "{row}");
    app.post_form_from("/", "/logout", &[]).await;
    app.as_admin().await;
    let live = app.get_html("/board/live").await;
    assert!(
        live.contains("pressed \u{201c}My notebook is stuck\u{201d} at"),
        "{live}"
    );

    // While the camp is paused, nobody restarts.
    let r = app
        .post_form_from("/students", "/camp/pause", &[("message", "Fire drill")])
        .await;
    assert_eq!(r.status(), 303);
    sqlx::query("DELETE FROM audit_log WHERE action = 'server.unstick'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.post_form_from("/students", "/logout", &[]).await;
    sqlx::query("UPDATE camp_pause SET paused_at = NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    app.login_ok("stu", &password).await;
    sqlx::query("UPDATE camp_pause SET paused_at = now(), message = 'Fire drill'")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app
        .post_form_from("/", "/account/server/unstick", &[])
        .await;
    assert_eq!(r.status(), 503, "{}", r.text().await.unwrap());
}
