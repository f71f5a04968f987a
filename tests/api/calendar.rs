//! The calendar's runner on a fake clock, a fake fleet and a fake hub, with the real app and
//! PostgreSQL: what it does at each moment of a class day, that it never acts twice (ticks
//! again, a second runner), what it records when it was down or paused; the calendar page, the
//! switch and the iCalendar feed.
use std::{sync::Arc, time::Duration};

use hubdesk::{
    calendar::clock::FixedClock,
    cluster::{fake::FakeWorld, jobs, Cluster},
    config::Config,
    hub::{FakeHub, HubApi},
    state::Adapters,
};
use reqwest::StatusCode;

use crate::helpers::{spawn_app_with_adapters, TestApp};

const GIB: u64 = 1 << 30;

struct Day {
    app: TestApp,
    clock: Arc<FixedClock>,
    world: FakeWorld,
    hub: Arc<FakeHub>,
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// Morning: 5 students × 2 GiB, Monday 8 March 2027 09:00–12:00 in Chicago (15:00–18:00 UTC),
/// workers of 4 GiB, no headroom, no floor: 3 workers from 14:40 to 18:15 UTC.
async fn class_day() -> Day {
    let clock = Arc::new(FixedClock::at(at("2027-03-08T14:00:00Z")));
    let world = FakeWorld::new();
    let hub = Arc::new(FakeHub::new());
    let adapters = Adapters {
        hub: Some(hub.clone() as Arc<dyn HubApi>),
    };
    let (c2, w2) = (clock.clone(), world.clone());
    let app = spawn_app_with_adapters(
        |c: &mut Config| {
            c.calendar.worker_memory_bytes = 4 * GIB;
            c.calendar.headroom_percent = 0;
            c.cluster.worker.ami = "ami-fake".into();
            c.cluster.join_timeout_secs = 20;
            c.cluster.drain_timeout_secs = 5;
        },
        adapters,
        move |s| {
            let cluster = Arc::new(
                Cluster::new(
                    Arc::new(w2.runtime()),
                    Arc::new(w2.fleet(&s.config.cluster.name)),
                    s.pool.clone(),
                    s.config.cluster.clone(),
                )
                .with_poll(Duration::from_millis(100)),
            );
            s.job_handlers.extend(jobs::handlers(&cluster));
            s.cluster = Some(cluster.clone());
            s.calendar.cluster = Some(cluster);
            s.calendar.clock = c2;
            s.calendar.config = s.config.calendar.clone();
            // The calendar carries its plan out (the budget counts it), but only when the test
            // ticks: the app's own periodic ticks stay off (`s.config.calendar.enabled`).
            s.calendar.config.enabled = true;
        },
    )
    .await;
    for (name, user) in [
        ("Ada Lovelace", "ada"),
        ("Alan Turing", "alan"),
        ("Grace Hopper", "grace"),
        ("Edsger Dijkstra", "edsger"),
        ("Barbara Liskov", "barbara"),
    ] {
        app.create_student(name, user, Some("Morning")).await;
        hub.add_user(user);
    }
    app.as_admin().await;
    let settings = [
        ("timezone", "America/Chicago"),
        ("first_day", "2027-03-08"),
        ("last_day", "2027-03-12"),
        ("memory_guarantee", "2 GiB"),
        ("memory_limit", "2 GiB"),
        ("cpu_limit", "1"),
        ("idle_timeout", "60"),
    ];
    let r = app.post_form("/cohorts/morning", &settings).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = app
        .post_form_from(
            "/cohorts/morning",
            "/cohorts/morning/blocks",
            &[
                ("date", "2027-03-08"),
                ("starts", "09:00"),
                ("ends", "12:00"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    Day {
        app,
        clock,
        world,
        hub,
    }
}

impl Day {
    async fn tick(&self) -> Vec<(String, String)> {
        self.app.state.calendar.tick().await.unwrap().decided
    }

    async fn jobs_done(&self) {
        self.app.state.jobs.wake();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while self
            .app
            .count("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
            .await
            > 0
        {
            assert!(tokio::time::Instant::now() < deadline, "jobs still running");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn running_workers(&self) -> usize {
        self.world
            .with(|w| w.instances.iter().filter(|i| i.state.is_live()).count())
    }
}

#[tokio::test]
async fn a_class_day_launches_warms_stops_and_shrinks_once_each() {
    let day = class_day().await;
    assert!(day.tick().await.is_empty(), "nothing due at 14:00 UTC");

    day.clock.set(at("2027-03-08T14:40:00Z"));
    let decided = day.tick().await;
    assert_eq!(
        decided,
        vec![(
            "grow:3@2027-03-08T14:40:00Z".to_string(),
            "done".to_string()
        )]
    );
    // Ticking again (or a second instance ticking) does nothing more, before and after the
    // launch runs.
    assert!(day.tick().await.is_empty());
    day.jobs_done().await;
    assert!(day.tick().await.is_empty());
    assert_eq!(day.running_workers(), 3);
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM jobs WHERE kind = 'cluster.launch' AND actor = 'system:calendar'")
            .await,
        1
    );
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM audit_log WHERE action = 'cluster.launch' AND actor = 'system:calendar'")
            .await,
        1
    );

    day.clock.set(at("2027-03-08T14:50:00Z"));
    let decided = day.tick().await;
    assert_eq!(
        decided,
        vec![(
            "warm:Morning@2027-03-08T14:50:00Z".to_string(),
            "done".to_string()
        )]
    );
    day.jobs_done().await;
    let started = day
        .hub
        .calls()
        .iter()
        .filter(|c| format!("{c:?}").contains("Start"))
        .count();
    assert_eq!(started, 5, "{:?}", day.hub.calls());

    // After the class: everyone's server was last active at its start (long ago in real
    // time), so all are idle; the fleet goes back to the floor (0), drained first.
    day.clock.set(at("2027-03-08T18:15:00Z"));
    for user in ["ada", "alan", "grace", "edsger", "barbara"] {
        let long_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
        day.hub
            .set_server(user, Some(FakeHub::ready_server(user, long_ago)));
    }
    let mut decided = day.tick().await;
    decided.sort();
    assert_eq!(
        decided,
        vec![
            (
                "shrink:0@2027-03-08T18:15:00Z".to_string(),
                "done".to_string()
            ),
            (
                "stop-idle:Morning@2027-03-08T18:15:00Z".to_string(),
                "done".to_string()
            ),
        ]
    );
    day.jobs_done().await;
    assert_eq!(day.running_workers(), 0);
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM jobs WHERE kind = 'servers.stop' AND actor = 'system:calendar'")
            .await,
        5
    );
    assert!(day.tick().await.is_empty());

    // The page shows what was done, with the jobs.
    let html = day.app.get_html("/calendar").await;
    for key in [
        "grow:3@2027-03-08T14:40:00Z",
        "warm:Morning@2027-03-08T14:50:00Z",
        "shrink:0@2027-03-08T18:15:00Z",
    ] {
        assert!(
            html.contains(&format!(r#"data-key="{key}" data-status="done""#)),
            "{key} in {html}"
        );
    }
    assert!(html.contains("Launch workers up to 3"));

    // The ledger's timeline: each worker from EC2's launch time to the removal's terminate call.
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM worker_hours WHERE ended_at IS NOT NULL")
            .await,
        3
    );
    day.app.state.calendar.record_fleet().await.unwrap();
    assert_eq!(day.app.count("SELECT count(*) FROM worker_hours").await, 3);
    let r = day.app.get("/calendar/ledger.csv").await;
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.unwrap();
    assert!(csv.starts_with("day,cohort,worker_hours,cost\n"), "{csv}");
    assert!(html.contains(r#"id="costs""#), "{html}");
}

#[tokio::test]
async fn a_calendar_that_was_down_records_missed_actions_and_a_paused_one_does_nothing() {
    let day = class_day().await;
    // hubdesk comes back at 15:30 UTC: the launch (14:40) and the warm-up (14:50) are more
    // than 30 min late and are recorded as missed, not done.
    day.clock.set(at("2027-03-08T15:30:00Z"));
    let mut decided = day.tick().await;
    decided.sort();
    assert_eq!(
        decided,
        vec![
            (
                "grow:3@2027-03-08T14:40:00Z".to_string(),
                "missed".to_string()
            ),
            (
                "warm:Morning@2027-03-08T14:50:00Z".to_string(),
                "missed".to_string()
            ),
        ]
    );
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM jobs WHERE actor = 'system:calendar'")
            .await,
        0
    );

    // Paused by an admin: the next actions are recorded as paused, nothing is queued.
    let r = day
        .app
        .post_form_from("/calendar", "/calendar/pause", &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    day.clock.set(at("2027-03-08T18:20:00Z"));
    let decided = day.tick().await;
    assert!(decided.iter().all(|(_, o)| o == "paused"), "{decided:?}");
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM jobs WHERE actor = 'system:calendar'")
            .await,
        0
    );
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM audit_log WHERE action = 'calendar.pause'")
            .await,
        1
    );
    let html = day.app.get_html("/calendar").await;
    assert!(html.contains(r#"data-paused="true""#), "{html}");
    assert!(html.contains("Resume the calendar") || !html.contains(r#"data-enabled="true""#));
}

#[tokio::test]
async fn counselors_see_the_calendar_but_cannot_pause_it_and_the_feed_needs_its_token() {
    let day = class_day().await;
    let counselor = day.app.other_browser();
    day.app
        .create_user(
            hubdesk::domain::Role::Counselor,
            "connie",
            "correct horse battery",
        )
        .await;
    counselor.login_ok("connie", "correct horse battery").await;
    let html = counselor.get_html("/calendar").await;
    assert!(html.contains(r#"data-cohort="morning""#), "{html}");
    assert!(!html.contains(r#"id="calendar-switch""#));
    let r = counselor
        .post_form_from("/calendar", "/calendar/pause", &[])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let token = day.app.state.calendar.feed_token().await.unwrap();
    assert!(html.contains(&token), "the subscribe link is on the page");
    let anonymous = reqwest::Client::new();
    let r = anonymous
        .get(day.app.url(&format!("/calendar.ics?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/calendar"));
    let ics = r.text().await.unwrap();
    assert!(ics.contains("BEGIN:VCALENDAR"), "{ics}");
    assert!(ics.contains("DTSTART:20270308T150000Z"), "{ics}");
    assert!(ics.contains("SUMMARY:Morning class"), "{ics}");
    for bad in ["", "nope", &token[1..]] {
        let r = anonymous
            .get(day.app.url(&format!("/calendar.ics?token={bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad:?}");
    }
}

#[tokio::test]
async fn servers_idle_past_their_cohorts_limit_are_stopped_once() {
    let day = class_day().await; // Morning keeps an idle server 60 minutes
    let now = time::OffsetDateTime::now_utc();
    let server = |mins: i64| {
        let mut s = FakeHub::ready_server("x", now - time::Duration::hours(3));
        s.last_activity = Some(now - time::Duration::minutes(mins));
        Some(s)
    };
    day.hub.set_server("ada", server(70));
    day.hub.set_server("alan", server(30));
    let report = day.app.state.calendar.tick().await.unwrap();
    assert_eq!(report.idle_stopped, vec!["ada".to_string()]);
    // Its stop is queued: the next tick does not queue another.
    let report = day.app.state.calendar.tick().await.unwrap();
    assert!(report.idle_stopped.is_empty(), "{report:?}");
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM audit_log WHERE action = 'server.stop' AND actor = 'system:calendar' AND target = 'ada' AND detail LIKE 'idle for 70 min%'")
            .await,
        1
    );
    // Paused: nobody is stopped.
    day.app
        .post_form_from("/calendar", "/calendar/pause", &[])
        .await;
    day.hub.set_server("grace", server(500));
    let report = day.app.state.calendar.tick().await.unwrap();
    assert!(report.idle_stopped.is_empty());
}

#[tokio::test]
async fn the_last_shrink_keeps_a_worker_for_someone_still_working() {
    let day = class_day().await;
    day.clock.set(at("2027-03-08T14:40:00Z"));
    day.tick().await;
    day.jobs_done().await;
    assert_eq!(day.running_workers(), 3);
    // After class four are idle, Ada is still working (active a minute ago).
    let now = time::OffsetDateTime::now_utc();
    for user in ["alan", "grace", "edsger", "barbara"] {
        day.hub.set_server(
            user,
            Some(FakeHub::ready_server(user, now - time::Duration::hours(2))),
        );
    }
    let mut busy = FakeHub::ready_server("ada", now - time::Duration::hours(2));
    busy.last_activity = Some(now - time::Duration::minutes(1));
    day.hub.set_server("ada", Some(busy));
    day.clock.set(at("2027-03-08T18:15:00Z"));
    day.tick().await;
    day.jobs_done().await;
    assert_eq!(
        day.running_workers(),
        1,
        "one 4 GiB worker kept for Ada's 2 GiB"
    );
    let html = day.app.get_html("/calendar").await;
    assert!(html.contains("remove 2 (down to 1)"), "{html}");
}

#[tokio::test]
async fn workers_launched_for_a_class_that_was_then_deleted_are_removed_and_hand_launched_ones_stay(
) {
    let day = class_day().await;
    day.clock.set(at("2027-03-08T14:40:00Z"));
    day.tick().await;
    day.jobs_done().await;
    assert_eq!(day.running_workers(), 3);
    // An admin launches one more by hand; then the class is cancelled.
    day.app
        .state
        .cluster
        .as_ref()
        .unwrap()
        .launch(&hubdesk::domain::Actor::System, 1)
        .await
        .unwrap();
    day.jobs_done().await;
    assert_eq!(day.running_workers(), 4);
    let id: i64 = sqlx::query_scalar("SELECT id FROM cohort_blocks WHERE cohort = 'Morning'")
        .fetch_one(&day.app.pool)
        .await
        .unwrap();
    let r = day
        .app
        .post_form_from(
            "/cohorts/morning",
            &format!("/cohorts/morning/blocks/{id}/remove"),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    day.clock.set(at("2027-03-08T14:45:00Z"));
    let report = day.app.state.calendar.tick().await.unwrap();
    assert_eq!(report.settled.len(), 3, "{report:?}");
    day.jobs_done().await;
    assert_eq!(day.running_workers(), 1, "the hand-launched worker stays");
    assert!(day
        .app
        .state
        .calendar
        .tick()
        .await
        .unwrap()
        .settled
        .is_empty());
}

/// The week's budget in the API, as a token sees it.
async fn budget_api(day: &Day, token: &str, put: Option<serde_json::Value>) -> serde_json::Value {
    let url = day.app.url("/api/v1/calendar/budget");
    let r = match put {
        Some(body) => day.app.client.put(url).bearer_auth(token).json(&body),
        None => day.app.client.get(url).bearer_auth(token),
    }
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_week_over_budget_holds_the_calendars_launch_until_an_admin_allows_it() {
    let day = class_day().await;
    let token = day.app.api_token().await;
    // The plan: 3 workers from 14:40 to 18:15 UTC at $0.0832 an hour, nothing spent yet.
    let w = budget_api(&day, &token, None).await;
    assert_eq!(w["budget"], serde_json::Value::Null);
    assert_eq!(w["week_start"], "2027-03-08");
    let planned = 3.0 * (3.0 + 35.0 / 60.0) * 0.0832;
    assert!(
        (w["projected"].as_f64().unwrap() - planned).abs() < 0.006,
        "{w} vs {planned}"
    );
    assert_eq!(w["over"], false);
    let w = budget_api(&day, &token, Some(serde_json::json!({"budget": 0.5}))).await;
    assert_eq!(w["over"], true, "{w}");
    assert_eq!(w["allowed"], false);

    // At 14:40 the launch is held, and stays held tick after tick (not final, no job).
    day.clock.set(at("2027-03-08T14:40:00Z"));
    let key = "grow:3@2027-03-08T14:40:00Z".to_string();
    assert_eq!(day.tick().await, vec![(key.clone(), "held".to_string())]);
    assert_eq!(day.tick().await, vec![(key.clone(), "held".to_string())]);
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM jobs WHERE kind = 'cluster.launch'")
            .await,
        0
    );
    let html = day.app.get_html("/calendar").await;
    assert!(
        html.contains(&format!(r#"data-key="{key}" data-status="held""#)),
        "{html}"
    );
    assert!(html.contains("over its budget of $0.50"), "{html}");
    assert!(html.contains(r#"id="over-budget-form""#), "{html}");

    // An admin allows it, for the week (audited); the next tick launches.
    let r = day
        .app
        .post_form_from("/calendar", "/calendar/over-budget", &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(budget_api(&day, &token, None).await["allowed"], true);
    assert_eq!(day.tick().await, vec![(key.clone(), "done".to_string())]);
    assert!(day.tick().await.is_empty());
    day.jobs_done().await;
    assert_eq!(day.running_workers(), 3);
    for action in ["calendar.budget", "calendar.over_budget"] {
        assert_eq!(
            day.app
                .count(&format!(
                    "SELECT count(*) FROM audit_log WHERE action = '{action}'"
                ))
                .await,
            1,
            "{action}"
        );
    }
    let html = day.app.get_html("/calendar").await;
    assert!(
        html.contains(&format!(r#"data-key="{key}" data-status="done""#)),
        "{html}"
    );
    assert!(!html.contains(r#"id="over-budget-form""#));
}

#[tokio::test]
async fn a_held_launch_past_its_catch_up_is_recorded_missed() {
    let day = class_day().await;
    let token = day.app.api_token().await;
    budget_api(&day, &token, Some(serde_json::json!({"budget": 0.1}))).await;
    day.clock.set(at("2027-03-08T14:40:00Z"));
    let key = "grow:3@2027-03-08T14:40:00Z".to_string();
    assert_eq!(day.tick().await, vec![(key.clone(), "held".to_string())]);
    // Nobody allowed it within [calendar] catch_up_mins (30): too late to launch for the class.
    day.clock.set(at("2027-03-08T15:11:00Z"));
    let decided = day.tick().await;
    assert!(
        decided.contains(&(key, "missed".to_string())),
        "{decided:?}"
    );
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM jobs WHERE kind = 'cluster.launch'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_launch_by_hand_over_the_budget_needs_the_admins_say_so() {
    let day = class_day().await;
    // A wrong budget is refused beside its field; a right one is saved.
    let r = day
        .app
        .post_form_from("/calendar", "/calendar/budget", &[("budget", "lots")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="budget-error""#), "{html}");
    assert!(
        html.contains(r#"value="lots""#),
        "the typed value stays: {html}"
    );
    let r = day
        .app
        .post_form_from("/calendar", "/calendar/budget", &[("budget", "$0.50")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // The API refuses with the reason; the page offers "launch anyway".
    let token = day.app.api_token().await;
    let launch = |body: serde_json::Value| {
        day.app
            .client
            .post(day.app.url("/api/v1/cluster/workers"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = launch(serde_json::json!({"count": 1})).await.unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let why = r.text().await.unwrap();
    assert!(why.contains("over its budget of $0.50"), "{why}");
    let r = day
        .app
        .post_form_from("/cluster", "/cluster/workers", &[("count", "1")])
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="over-budget""#), "{html}");
    assert!(html.contains(r#"id="over-budget-why""#), "{html}");
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM jobs WHERE kind = 'cluster.launch'")
            .await,
        0
    );
    let r = day
        .app
        .post_form_from(
            "/cluster",
            "/cluster/workers",
            &[("count", "1"), ("over_budget", "1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM audit_log WHERE action = 'cluster.over_budget'")
            .await,
        1
    );
    // No budget: any launch goes.
    budget_api(&day, &token, Some(serde_json::json!({"budget": null}))).await;
    let r = launch(serde_json::json!({"count": 1})).await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        day.app
            .count("SELECT count(*) FROM jobs WHERE kind = 'cluster.launch'")
            .await,
        2
    );
}

#[tokio::test]
async fn a_class_that_grows_while_its_launch_runs_gets_the_missing_workers_not_a_second_batch() {
    let day = class_day().await;
    day.clock.set(at("2027-03-08T14:40:00Z"));
    assert_eq!(
        day.tick().await,
        vec![(
            "grow:3@2027-03-08T14:40:00Z".to_string(),
            "done".to_string()
        )]
    );
    // Two students join Morning before the launch is through: 7 × 2 GiB on 4 GiB workers is 4.
    let in_flight = day
        .app
        .count("SELECT count(*) FROM jobs WHERE kind = 'cluster.launch' AND state IN ('queued', 'running')")
        .await;
    for (name, user) in [("Frances Allen", "frances"), ("John Backus", "john")] {
        day.app.create_student(name, user, Some("Morning")).await;
        day.hub.add_user(user);
    }
    let decided = day.tick().await;
    assert_eq!(
        decided,
        vec![(
            "grow:4@2027-03-08T14:40:00Z".to_string(),
            "done".to_string()
        )],
        "the launch was in flight: {in_flight}"
    );
    day.jobs_done().await;
    assert!(day.tick().await.is_empty());
    assert_eq!(day.running_workers(), 4, "3 + 1, not 3 + 4");
    let details: Vec<String> =
        sqlx::query_scalar("SELECT detail FROM calendar_actions WHERE kind = 'grow' ORDER BY key")
            .fetch_all(&day.app.pool)
            .await
            .unwrap();
    assert_eq!(details, vec!["launch 3 (0 → 3)", "launch 1 (3 → 4)"]);
}
