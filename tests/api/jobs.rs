//! The job runner against a real PostgreSQL: transactional enqueue, exactly-once claims, resume
//! after a killed runner, retries and failures, lease fencing, panics, periodic tasks.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use hubdesk::{
    db::{self, jobs::Lease},
    jobs::{
        self, Backoff, BoxFuture, JobContext, JobError, JobHandler, JobRow, JobState, JobView,
        Runner, RunnerOptions,
    },
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::{sync::Notify, time::Instant};
use uuid::Uuid;

use crate::helpers::spawn_app;

/// Upper bound for anything a test waits for: a bug fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(15);

fn fast(lease: Duration) -> RunnerOptions {
    RunnerOptions {
        poll_interval: Duration::from_millis(25),
        lease,
        heartbeat: None,
        concurrency: 2,
        backoff: Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(1),
        },
        shutdown_grace: Duration::from_secs(5),
    }
}

fn runner(
    pool: &PgPool,
    owner: &str,
    handler: Arc<dyn JobHandler>,
    options: RunnerOptions,
) -> Runner {
    Runner::new(pool.clone(), vec![handler])
        .with_owner(owner)
        .with_options(options)
}

async fn enqueue(pool: &PgPool, kind: &str, payload: Value, max_attempts: i32) -> Uuid {
    let mut conn = pool.acquire().await.unwrap();
    db::jobs::enqueue(&mut conn, kind, &payload, "connie", max_attempts)
        .await
        .unwrap()
}

async fn job(pool: &PgPool, id: Uuid) -> JobRow {
    let mut conn = pool.acquire().await.unwrap();
    db::jobs::get(&mut conn, id)
        .await
        .unwrap()
        .expect("job row")
}

async fn wait_for_job(
    pool: &PgPool,
    id: Uuid,
    what: &str,
    done: impl Fn(&JobRow) -> bool,
) -> JobRow {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let row = job(pool, id).await;
        if done(&row) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn finished(pool: &PgPool, id: Uuid) -> JobRow {
    wait_for_job(pool, id, "the job to finish", |r| r.state.is_final()).await
}

async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

fn step_names(row: &JobRow) -> Vec<&str> {
    row.steps.iter().map(|s| s.name.as_str()).collect()
}

/// Seconds between two database times (run_after against updated_at: one clock, one statement).
fn gap(later: time::OffsetDateTime, earlier: time::OffsetDateTime) -> f64 {
    (later - earlier).as_seconds_f64()
}

#[tokio::test]
async fn jobs_enqueue_commits_and_rolls_back_with_the_callers_transaction() {
    let app = spawn_app().await;

    let mut tx = app.pool.begin().await.unwrap();
    let gone = db::jobs::enqueue(&mut tx, "test.noop", &json!({"n": 1}), "connie", 3)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    assert!(db::jobs::get(&mut conn, gone).await.unwrap().is_none());
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);

    let mut tx = app.pool.begin().await.unwrap();
    let id = db::jobs::enqueue(&mut tx, "test.noop", &json!({"n": 2}), "connie", 3)
        .await
        .unwrap();
    assert!(
        db::jobs::get(&mut conn, id).await.unwrap().is_none(),
        "no runner may see the job before the caller commits"
    );
    tx.commit().await.unwrap();

    let row = db::jobs::get(&mut conn, id)
        .await
        .unwrap()
        .expect("committed job");
    assert_eq!(row.state, JobState::Queued);
    assert_eq!(row.kind, "test.noop");
    assert_eq!(row.payload, json!({"n": 2}));
    assert_eq!(row.actor, "connie");
    assert_eq!((row.attempts, row.max_attempts), (0, 3));
    assert!(row.steps.is_empty() && row.lease_owner.is_none() && row.finished_at.is_none());

    let view = serde_json::to_value(JobView::from(row)).unwrap();
    assert_eq!(view["id"], json!(id.to_string()));
    assert_eq!(view["state"], "queued");
    assert_eq!(view["steps"], json!([]));
    assert_eq!(view["result"], Value::Null);
    assert_eq!(view["error"], Value::Null);
    assert_eq!(view["finished_at"], Value::Null);

    let recent = db::jobs::recent(&mut conn, 10).await.unwrap();
    assert_eq!(recent.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    let counts = db::jobs::counts(&mut conn).await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (counts[0].kind.as_str(), counts[0].state, counts[0].count),
        ("test.noop", JobState::Queued, 1)
    );
}

/// Counts runs per job and records three steps.
#[derive(Default)]
struct Counting {
    runs: Mutex<HashMap<Uuid, usize>>,
}

impl JobHandler for Counting {
    fn kind(&self) -> &'static str {
        "test.count"
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            *self.runs.lock().unwrap().entry(ctx.id()).or_default() += 1;
            for step in ["one", "two", "three"] {
                ctx.step(step).await?;
            }
            Ok(json!({"n": ctx.payload()["n"]}))
        })
    }
}

#[tokio::test]
async fn jobs_two_runners_run_each_job_exactly_once() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(enqueue(&app.pool, "test.count", json!({"n": n}), 3).await);
    }
    let handler = Arc::new(Counting::default());
    let opts = fast(Duration::from_secs(30));
    let a = runner(&app.pool, "runner-a", handler.clone(), opts).spawn();
    let b = runner(&app.pool, "runner-b", handler.clone(), opts).spawn();

    for (n, id) in ids.iter().enumerate() {
        let row = finished(&app.pool, *id).await;
        assert_eq!(row.state, JobState::Succeeded, "{row:?}");
        assert_eq!(row.result, Some(json!({"n": n})));
        assert_eq!(row.attempts, 1);
        assert_eq!(step_names(&row), ["one", "two", "three"]);
        assert!(row
            .steps
            .iter()
            .all(|s| s.at.ends_with('Z') && s.at.contains('T')));
        assert!(
            row.steps.windows(2).all(|w| w[0].at <= w[1].at),
            "{:?}",
            row.steps
        );
        assert!(row.lease_owner.is_none() && row.error.is_none() && row.finished_at.is_some());
    }
    a.shutdown().await;
    b.shutdown().await;
    let runs = handler.runs.lock().unwrap();
    assert_eq!(runs.len(), ids.len());
    assert!(
        runs.values().all(|&n| n == 1),
        "some job ran twice: {runs:?}"
    );
}

/// Step "a", then (first attempt only) hangs as a runner killed mid-job would; "b" after.
#[derive(Default)]
struct Resumable {
    a_runs: AtomicUsize,
    hanging: Notify,
    seen_on_resume: Mutex<Option<Vec<String>>>,
}

impl JobHandler for Resumable {
    fn kind(&self) -> &'static str {
        "test.resume"
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            if ctx.attempt() > 1 {
                *self.seen_on_resume.lock().unwrap() = Some(ctx.steps_done());
            }
            if !ctx.is_done("a") {
                self.a_runs.fetch_add(1, Ordering::SeqCst);
                ctx.step("a").await?;
            }
            if ctx.attempt() == 1 {
                self.hanging.notify_one();
                std::future::pending::<()>().await;
            }
            ctx.step("b").await?;
            Ok(json!("resumed"))
        })
    }
}

#[tokio::test]
async fn jobs_a_killed_runners_job_is_resumed_after_its_lease_expires() {
    let app = spawn_app().await;
    let id = enqueue(&app.pool, "test.resume", json!({}), 3).await;
    let handler = Arc::new(Resumable::default());
    let lease = Duration::from_secs(1);
    let a = runner(&app.pool, "runner-a", handler.clone(), fast(lease)).spawn();
    within("the first attempt to hang", handler.hanging.notified()).await;
    let b = runner(&app.pool, "runner-b", handler.clone(), fast(lease)).spawn();

    // Longer than the lease: runner A's heartbeat keeps the job from B while A lives.
    tokio::time::sleep(lease + lease / 2).await;
    let row = job(&app.pool, id).await;
    assert_eq!(row.state, JobState::Running);
    assert_eq!(row.lease_owner.as_deref(), Some("runner-a"));
    assert_eq!(row.attempts, 1);

    a.abort(); // kill -9: nothing written, the lease just runs out
    let row = finished(&app.pool, id).await;
    b.shutdown().await;
    assert_eq!(row.state, JobState::Succeeded, "{row:?}");
    assert_eq!(row.attempts, 2);
    assert_eq!(step_names(&row), ["a", "b"]);
    assert_eq!(row.result, Some(json!("resumed")));
    assert_eq!(handler.a_runs.load(Ordering::SeqCst), 1, "step a ran again");
    assert_eq!(
        handler.seen_on_resume.lock().unwrap().as_deref(),
        Some(&["a".to_string()][..])
    );
}

/// Asks for a retry on its first `failures` attempts, then succeeds (or fails for good).
struct Flaky {
    kind: &'static str,
    failures: i32,
    fatal: bool,
}

impl JobHandler for Flaky {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            if self.fatal {
                return Err(JobError::fatal("bad payload"));
            }
            if ctx.attempt() <= self.failures {
                return Err(JobError::Retry(format!(
                    "peer down on attempt {}",
                    ctx.attempt()
                )));
            }
            Ok(json!({"attempt": ctx.attempt()}))
        })
    }
}

#[tokio::test]
async fn jobs_a_retry_backs_off_exponentially_then_succeeds() {
    let app = spawn_app().await;
    let id = enqueue(&app.pool, "test.flaky", json!({}), 5).await;
    let handler = Arc::new(Flaky {
        kind: "test.flaky",
        failures: 2,
        fatal: false,
    });
    let mut opts = fast(Duration::from_secs(30));
    opts.backoff = Backoff {
        base: Duration::from_millis(300),
        max: Duration::from_secs(5),
    };
    let r = runner(&app.pool, "runner-a", handler, opts);

    assert_eq!(r.tick().await.unwrap(), 1);
    let row = job(&app.pool, id).await;
    assert_eq!((row.state, row.attempts), (JobState::Queued, 1));
    assert_eq!(row.error.as_deref(), Some("peer down on attempt 1"));
    assert!(row.lease_owner.is_none() && row.finished_at.is_none());
    let first = gap(row.run_after, row.updated_at);
    assert!((0.29..0.4).contains(&first), "first backoff {first}s");
    assert_eq!(
        r.tick().await.unwrap(),
        0,
        "claimed before its backoff ended"
    );

    let deadline = Instant::now() + PATIENCE;
    while r.tick().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the retry never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = job(&app.pool, id).await;
    assert_eq!((row.state, row.attempts), (JobState::Queued, 2));
    let second = gap(row.run_after, row.updated_at);
    assert!((0.59..0.7).contains(&second), "second backoff {second}s");

    while r.tick().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "the second retry never came");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let row = job(&app.pool, id).await;
    assert_eq!((row.state, row.attempts), (JobState::Succeeded, 3));
    assert_eq!(row.result, Some(json!({"attempt": 3})));
    assert!(row.error.is_none(), "a success clears the last error");
    assert!(row.finished_at.is_some());
}

#[tokio::test]
async fn jobs_a_fatal_error_fails_at_once() {
    let app = spawn_app().await;
    let id = enqueue(&app.pool, "test.fatal", json!({}), 5).await;
    let handler = Arc::new(Flaky {
        kind: "test.fatal",
        failures: 0,
        fatal: true,
    });
    let r = runner(
        &app.pool,
        "runner-a",
        handler,
        fast(Duration::from_secs(30)),
    );
    assert_eq!(r.tick().await.unwrap(), 1);
    assert_eq!(r.tick().await.unwrap(), 0);
    let row = job(&app.pool, id).await;
    assert_eq!((row.state, row.attempts), (JobState::Failed, 1));
    assert_eq!(row.error.as_deref(), Some("bad payload"));
    assert!(row.finished_at.is_some() && row.result.is_none() && row.lease_owner.is_none());
    let view = serde_json::to_value(JobView::from(row)).unwrap();
    assert_eq!(view["state"], "failed");
    assert_eq!(view["error"], "bad payload");
}

#[tokio::test]
async fn jobs_retries_stop_at_max_attempts() {
    let app = spawn_app().await;
    let id = enqueue(&app.pool, "test.doomed", json!({}), 2).await;
    let handler = Arc::new(Flaky {
        kind: "test.doomed",
        failures: i32::MAX,
        fatal: false,
    });
    let mut opts = fast(Duration::from_secs(30));
    opts.backoff.base = Duration::ZERO;
    let r = runner(&app.pool, "runner-a", handler, opts);
    assert_eq!(r.tick().await.unwrap(), 1);
    assert_eq!(job(&app.pool, id).await.state, JobState::Queued);
    assert_eq!(r.tick().await.unwrap(), 1);
    assert_eq!(r.tick().await.unwrap(), 0);
    let row = job(&app.pool, id).await;
    assert_eq!((row.state, row.attempts), (JobState::Failed, 2));
    assert_eq!(row.error.as_deref(), Some("peer down on attempt 2"));
    assert!(row.finished_at.is_some());

    // A runner that dies on the last attempt: the job fails instead of being resumed forever.
    let lost = enqueue(&app.pool, "test.doomed", json!({}), 1).await;
    let kinds = ["test.doomed".to_string()];
    let claimed = db::jobs::claim(&app.pool, "runner-dead", Duration::from_secs(60), &kinds)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, lost);
    sqlx::query("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(lost)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(r.tick().await.unwrap(), 0);
    let row = job(&app.pool, lost).await;
    assert_eq!((row.state, row.attempts), (JobState::Failed, 1));
    assert_eq!(
        row.error.as_deref(),
        Some("runner lost (lease expired) on attempt 1 of 1")
    );
}

/// Attempt 1 records "a" and waits at a gate; meanwhile its lease goes to attempt 2.
#[derive(Default)]
struct Stale {
    reached: Notify,
    gate: Notify,
    late_step: Mutex<Option<Result<(), JobError>>>,
}

impl JobHandler for Stale {
    fn kind(&self) -> &'static str {
        "test.stale"
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            if ctx.attempt() == 1 {
                ctx.step("a").await?;
                self.reached.notify_one();
                self.gate.notified().await;
                *self.late_step.lock().unwrap() = Some(ctx.step("late").await);
                return Ok(json!("from attempt 1"));
            }
            ctx.step("b").await?;
            Ok(json!("from attempt 2"))
        })
    }
}

#[tokio::test]
async fn jobs_a_runner_that_lost_its_lease_cannot_write() {
    let app = spawn_app().await;
    let id = enqueue(&app.pool, "test.stale", json!({}), 3).await;
    let handler = Arc::new(Stale::default());
    // A long lease: the heartbeat must not notice the loss before the handler writes.
    let opts = fast(Duration::from_secs(60));
    let a = runner(&app.pool, "runner-a", handler.clone(), opts);
    let first = tokio::spawn(async move { a.tick().await.unwrap() });
    within("attempt 1 to reach its gate", handler.reached.notified()).await;

    // As if runner A had stalled past its lease: runner B resumes and finishes the job.
    sqlx::query("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let b = runner(&app.pool, "runner-b", handler.clone(), opts);
    assert_eq!(b.tick().await.unwrap(), 1);

    handler.gate.notify_one();
    assert_eq!(within("attempt 1 to end", first).await.unwrap(), 1);
    assert_eq!(
        *handler.late_step.lock().unwrap(),
        Some(Err(JobError::LeaseLost)),
        "the stale runner recorded a step"
    );
    let row = job(&app.pool, id).await;
    assert_eq!(row.state, JobState::Succeeded);
    assert_eq!(
        row.result,
        Some(json!("from attempt 2")),
        "the stale runner's result won"
    );
    assert_eq!(step_names(&row), ["a", "b"]);
    assert_eq!(row.attempts, 2);

    // The fence is owner *and* attempt: an owner's own earlier claim is refused too.
    let other = enqueue(&app.pool, "test.fence", json!({}), 3).await;
    let kinds = ["test.fence".to_string()];
    let lease = Duration::from_secs(60);
    let c1 = db::jobs::claim(&app.pool, "runner-x", lease, &kinds)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c1.id, c1.attempts), (other, 1));
    assert!(db::jobs::claim(&app.pool, "runner-y", lease, &kinds)
        .await
        .unwrap()
        .is_none());
    sqlx::query("UPDATE jobs SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(other)
        .execute(&app.pool)
        .await
        .unwrap();
    let c2 = db::jobs::claim(&app.pool, "runner-x", lease, &kinds)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c2.attempts, 2);
    let old: Lease = c1.lease("runner-x");
    let stranger = Lease {
        owner: "runner-y".into(),
        ..c2.lease("runner-x")
    };
    for stale in [&old, &stranger] {
        assert!(!db::jobs::renew(&app.pool, stale, lease).await.unwrap());
        assert!(!db::jobs::record_step(&app.pool, stale, "x").await.unwrap());
        assert!(!db::jobs::succeed(&app.pool, stale, &json!(1))
            .await
            .unwrap());
        assert!(!db::jobs::fail(&app.pool, stale, "no").await.unwrap());
        assert!(db::jobs::retry(&app.pool, stale, "no", Duration::ZERO)
            .await
            .unwrap()
            .is_none());
    }
    let current = c2.lease("runner-x");
    assert!(db::jobs::record_step(&app.pool, &current, "x")
        .await
        .unwrap());
    assert!(db::jobs::succeed(&app.pool, &current, &json!(2))
        .await
        .unwrap());
    let row = job(&app.pool, other).await;
    assert_eq!(
        (row.state, &row.result),
        (JobState::Succeeded, &Some(json!(2)))
    );
    assert_eq!(step_names(&row), ["x"]);
}

/// Hangs; counts when its future is dropped (the runner stopped it).
#[derive(Default)]
struct Hangs {
    started: Notify,
    stopped: Arc<AtomicUsize>,
}

struct CountOnDrop(Arc<AtomicUsize>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl JobHandler for Hangs {
    fn kind(&self) -> &'static str {
        "test.hang"
    }

    fn run<'a>(&'a self, _ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            let _guard = CountOnDrop(self.stopped.clone());
            self.started.notify_one();
            std::future::pending::<()>().await;
            Ok(Value::Null)
        })
    }
}

#[tokio::test]
async fn jobs_a_runner_whose_heartbeat_finds_the_lease_gone_stops_the_handler() {
    let app = spawn_app().await;
    let id = enqueue(&app.pool, "test.hang", json!({}), 3).await;
    let handler = Arc::new(Hangs::default());
    let mut opts = fast(Duration::from_secs(30));
    opts.heartbeat = Some(Duration::from_millis(50));
    let r = runner(&app.pool, "runner-a", handler.clone(), opts).spawn();
    within("the handler to start", handler.started.notified()).await;

    sqlx::query("UPDATE jobs SET lease_owner = 'runner-b' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    within("the handler to be stopped", async {
        while handler.stopped.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within("the runner to shut down", r.shutdown()).await;
    let row = job(&app.pool, id).await;
    assert_eq!(
        row.state,
        JobState::Running,
        "the runner wrote after losing the lease"
    );
    assert_eq!(row.lease_owner.as_deref(), Some("runner-b"));
    assert_eq!(row.attempts, 1);
}

/// Panics on the first attempt of a job whose payload asks for it.
#[derive(Default)]
struct Panicky {
    runs: AtomicUsize,
}

impl JobHandler for Panicky {
    fn kind(&self) -> &'static str {
        "test.panic"
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            self.runs.fetch_add(1, Ordering::SeqCst);
            if ctx.payload()["panic"] == json!(true) && ctx.attempt() == 1 {
                panic!("handler exploded");
            }
            Ok(json!("calm"))
        })
    }
}

#[tokio::test]
async fn jobs_a_panicking_handler_is_retried_and_the_runner_keeps_working() {
    let app = spawn_app().await;
    let handler = Arc::new(Panicky::default());
    let mut opts = fast(Duration::from_secs(30));
    opts.concurrency = 1;
    opts.backoff.base = Duration::from_millis(500);
    let r = runner(&app.pool, "runner-a", handler.clone(), opts);
    let waker = r.waker();
    let handle = r.spawn();

    let id = enqueue(&app.pool, "test.panic", json!({"panic": true}), 3).await;
    waker.wake();
    let row = wait_for_job(&app.pool, id, "the retry after the panic", |r| {
        r.state == JobState::Queued && r.attempts == 1
    })
    .await;
    assert_eq!(
        row.error.as_deref(),
        Some("handler panicked: handler exploded")
    );
    let row = finished(&app.pool, id).await;
    assert_eq!((row.state, row.attempts), (JobState::Succeeded, 2));

    let next = enqueue(&app.pool, "test.panic", json!({}), 3).await;
    handle.wake();
    let row = finished(&app.pool, next).await;
    assert_eq!((row.state, row.attempts), (JobState::Succeeded, 1));
    handle.shutdown().await;
    assert_eq!(handler.runs.load(Ordering::SeqCst), 3);
}

fn counter(n: &Arc<AtomicUsize>) -> impl FnMut() -> BoxFuture<'static, anyhow::Result<()>> {
    let n = n.clone();
    move || {
        let n = n.clone();
        Box::pin(async move {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

#[tokio::test]
async fn jobs_periodic_runs_on_one_instance_and_every_on_all() {
    let app = spawn_app().await;
    let period = Duration::from_millis(100);
    let (locked_a, locked_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (local_a, local_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let key = 7_001;
    let sweep_a = jobs::periodic(app.pool.clone(), "sweep", key, period, counter(&locked_a));
    let sweep_b = jobs::periodic(app.pool.clone(), "sweep", key, period, counter(&locked_b));
    let reload_a = jobs::every("reload", period, counter(&local_a));
    let reload_b = jobs::every("reload", period, counter(&local_b));

    tokio::time::sleep(Duration::from_millis(1050)).await;
    let (a, b) = (
        locked_a.load(Ordering::SeqCst),
        locked_b.load(Ordering::SeqCst),
    );
    assert!(
        a == 0 || b == 0,
        "both instances ran the locked task: {a} and {b}"
    );
    assert!(
        (4..=12).contains(&(a + b)),
        "one run per interval expected, got {}",
        a + b
    );
    for n in [&local_a, &local_b] {
        assert!(
            n.load(Ordering::SeqCst) >= 4,
            "the unlocked task runs on every instance"
        );
    }

    // The holder dies: its session ends, the lock is free, the other instance takes over.
    let (leader, survivor, follower) = if a > 0 {
        (sweep_a, sweep_b, &locked_b)
    } else {
        (sweep_b, sweep_a, &locked_a)
    };
    let before = follower.load(Ordering::SeqCst);
    assert_eq!(before, 0);
    leader.abort();
    within("the other instance to take over", async {
        while follower.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    for h in [survivor, reload_a, reload_b] {
        h.abort();
    }
}
