use std::{
    collections::HashMap,
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::Duration,
};

use futures_util::future::{join_all, BoxFuture};
use serde::de::DeserializeOwned;
use sqlx::PgPool;
use tokio::{
    sync::Notify,
    task::{JoinError, JoinHandle, JoinSet},
};
use tracing::Instrument;
use uuid::Uuid;

use super::JobError;
use crate::db::jobs::{self as db, ClaimedJob, JobState, Lease};

/// One kind of job. `run` may be called more than once for one job (a retry, or a resume after
/// the runner holding it died), so side effects must be idempotent or recorded as steps.
///
/// A boxed future rather than `async fn` keeps the trait object-safe without `async_trait`:
/// ```ignore
/// fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
///     Box::pin(async move { … })
/// }
/// ```
pub trait JobHandler: Send + Sync + 'static {
    /// The `jobs.kind` this handler runs; one handler per kind in a runner.
    fn kind(&self) -> &'static str;
    fn run<'a>(&'a self, ctx: &'a JobContext)
        -> BoxFuture<'a, Result<serde_json::Value, JobError>>;

    /// What a job still owes when it fails for good (a launch retires the join token it handed
    /// out). Called once, when an attempt that can have no successor ends: `run` returned
    /// `Fatal`, or `Retry` on the last attempt, or the runner of the last attempt died (its
    /// lease lapsed). It runs before the failure is recorded, under the same lease, so it can
    /// still record steps; `error` is the failure. An error it returns is appended to the
    /// job's. The default owes nothing.
    fn failed<'a>(
        &'a self,
        ctx: &'a JobContext,
        error: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        let _ = (ctx, error);
        Box::pin(async { Ok(()) })
    }
}

/// What a handler knows about the job it runs, and its only way to write to it.
pub struct JobContext {
    lease: Lease,
    kind: String,
    payload: serde_json::Value,
    actor: String,
    max_attempts: i32,
    steps: Mutex<Vec<String>>,
    pool: PgPool,
}

impl JobContext {
    fn new(lease: Lease, job: ClaimedJob, pool: PgPool) -> Self {
        Self {
            lease,
            kind: job.kind,
            payload: job.payload,
            actor: job.actor,
            max_attempts: job.max_attempts,
            steps: Mutex::new(job.steps.into_iter().map(|s| s.name).collect()),
            pool,
        }
    }

    pub fn id(&self) -> Uuid {
        self.lease.id
    }

    pub fn kind(&self) -> &str {
        &self.kind
    }

    pub fn payload(&self) -> &serde_json::Value {
        &self.payload
    }

    /// The payload as the handler's own type; a payload that does not fit can never succeed.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|e| JobError::Fatal(format!("bad payload for {}: {e}", self.kind)))
    }

    /// This attempt, counting from 1 (a resumed job is on attempt 2 or later).
    pub fn attempt(&self) -> i32 {
        self.lease.attempt
    }

    pub fn max_attempts(&self) -> i32 {
        self.max_attempts
    }

    /// Who asked for the job (for the handler's audit entries).
    pub fn actor(&self) -> &str {
        &self.actor
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Steps recorded so far, by earlier attempts and this one, in order.
    pub fn steps_done(&self) -> Vec<String> {
        self.steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn is_done(&self, name: &str) -> bool {
        self.steps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|s| s == name)
    }

    /// Records that step `name` is complete, durably and before returning, so a resumed attempt
    /// can skip it. Recording a name twice keeps the first. Fails with `LeaseLost` once another
    /// runner owns the job: the handler should stop and propagate it.
    pub async fn step(&self, name: &str) -> Result<(), JobError> {
        match db::record_step(&self.pool, &self.lease, name).await {
            Ok(true) => {
                let mut steps = self.steps.lock().unwrap_or_else(PoisonError::into_inner);
                if !steps.iter().any(|s| s == name) {
                    steps.push(name.to_string());
                }
                tracing::info!(step = name, "job step done");
                Ok(())
            }
            Ok(false) => Err(JobError::LeaseLost),
            Err(e) => Err(JobError::Retry(format!("recording step {name}: {e}"))),
        }
    }
}

/// Delay before attempt n+1 after attempt n asked to retry: `base · 2^(n-1)`, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: i32) -> Duration {
        let doublings = attempt.saturating_sub(1).clamp(0, 31) as u32;
        self.base.saturating_mul(1u32 << doublings).min(self.max)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RunnerOptions {
    /// How often an idle runner looks for due jobs (a `wake` skips the wait).
    pub poll_interval: Duration,
    /// How long a claim holds a job without a heartbeat: also how long a dead runner's job
    /// waits before another runner resumes it.
    pub lease: Duration,
    /// Lease renewal interval; `None` means a third of the lease.
    pub heartbeat: Option<Duration>,
    /// Jobs run at once by one runner.
    pub concurrency: usize,
    pub backoff: Backoff,
    /// How long `shutdown` waits for running jobs before abandoning them to lease expiry.
    pub shutdown_grace: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            heartbeat: None,
            concurrency: 2,
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl RunnerOptions {
    fn heartbeat_every(&self) -> Duration {
        self.heartbeat
            .unwrap_or(self.lease / 3)
            .max(Duration::from_millis(10))
    }
}

/// A lease owner unique across instances and restarts: host, process, and a random part for
/// several runners in one process.
pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Starts a runner's next poll at once, e.g. after committing a transaction that enqueued a
/// job, instead of waiting up to a poll interval. Other instances find the job by polling.
#[derive(Debug, Clone)]
pub struct Waker(Arc<Notify>);

impl Default for Waker {
    fn default() -> Self {
        Self(Arc::new(Notify::new()))
    }
}

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub struct Runner {
    pool: PgPool,
    handlers: HashMap<&'static str, Arc<dyn JobHandler>>,
    kinds: Vec<String>,
    owner: String,
    options: RunnerOptions,
    wake: Arc<Notify>,
}

impl Runner {
    /// # Panics
    /// When two handlers claim the same kind: a wiring mistake that would otherwise pick one
    /// of them silently.
    pub fn new(pool: PgPool, handlers: Vec<Arc<dyn JobHandler>>) -> Self {
        let mut map: HashMap<&'static str, Arc<dyn JobHandler>> = HashMap::new();
        for h in handlers {
            let kind = h.kind();
            assert!(
                map.insert(kind, h).is_none(),
                "two job handlers for kind {kind:?}"
            );
        }
        let mut kinds: Vec<String> = map.keys().map(|k| k.to_string()).collect();
        kinds.sort();
        Self {
            pool,
            handlers: map,
            kinds,
            owner: default_owner(),
            options: RunnerOptions::default(),
            wake: Arc::new(Notify::new()),
        }
    }

    pub fn with_owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = owner.into();
        self
    }

    /// Uses `waker` (made before the runner, e.g. for the app's handlers) to start polls early.
    pub fn with_waker(mut self, waker: Waker) -> Self {
        self.wake = waker.0;
        self
    }

    pub fn with_options(mut self, options: RunnerOptions) -> Self {
        self.options = options;
        self
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn kinds(&self) -> &[String] {
        &self.kinds
    }

    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    /// Claims what is due (up to `concurrency` jobs), runs it to the end and returns how many
    /// jobs it ran. For tests and one-shot CLI use; `spawn` is the long-running form.
    pub async fn tick(&self) -> anyhow::Result<usize> {
        self.fail_abandoned().await;
        let mut jobs = Vec::new();
        while jobs.len() < self.options.concurrency.max(1) {
            match self.claim().await? {
                Some(job) => jobs.push(self.job(job)),
                None => break,
            }
        }
        let n = jobs.len();
        join_all(jobs).await;
        Ok(n)
    }

    /// Runs the poll loop on a tokio task. Dropping the handle leaves the runner running.
    pub fn spawn(self) -> RunnerHandle {
        let stop = Arc::new(Stop::default());
        let handle_stop = stop.clone();
        let owner = self.owner.clone();
        let waker = self.waker();
        let span = tracing::info_span!("runner", runner.owner = %self.owner);
        let join = tokio::spawn(self.run_loop(stop).instrument(span));
        RunnerHandle {
            owner,
            waker,
            stop: handle_stop,
            join,
        }
    }

    async fn run_loop(self, stop: Arc<Stop>) {
        tracing::info!(kinds = ?self.kinds, "job runner started");
        let mut running = JoinSet::new();
        let slots = self.options.concurrency.max(1);
        while !stop.requested() {
            if running.len() < slots {
                self.fail_abandoned().await;
            }
            while running.len() < slots && !stop.requested() {
                match self.claim().await {
                    Ok(Some(job)) => {
                        running.spawn(self.job(job));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming a job");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = stop.notify.notified() => {}
                _ = self.wake.notified() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
        let n = running.len();
        if n > 0 {
            tracing::info!(jobs = n, "job runner stopping; waiting for running jobs");
            let drain = async { while running.join_next().await.is_some() {} };
            if tokio::time::timeout(self.options.shutdown_grace, drain)
                .await
                .is_err()
            {
                tracing::warn!(
                    jobs = running.len(),
                    "jobs still running at the end of the grace period; their leases will \
                     expire and another runner resumes them"
                );
                running.abort_all();
            }
        }
        tracing::info!("job runner stopped");
    }

    async fn claim(&self) -> sqlx::Result<Option<ClaimedJob>> {
        db::claim(&self.pool, &self.owner, self.options.lease, &self.kinds).await
    }

    /// Fails, one by one, running jobs whose runner died on their last attempt (a job that
    /// takes its runner down every time must not be resumed forever), each after its
    /// handler's `failed` hook.
    async fn fail_abandoned(&self) {
        loop {
            let job =
                match db::take_abandoned(&self.pool, &self.owner, self.options.lease, &self.kinds)
                    .await
                {
                    Ok(Some(job)) => job,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "failing abandoned jobs");
                        return;
                    }
                };
            let span = tracing::info_span!(
                "job",
                job.id = %job.id,
                job.kind = %job.kind,
                job.attempt = job.attempts,
            );
            let lease = job.lease(&self.owner);
            let error = format!(
                "runner lost (lease expired) on attempt {} of {}",
                job.attempts, job.max_attempts
            );
            tracing::warn!(parent: &span, "{error}");
            let handler = self.handlers.get(job.kind.as_str()).cloned();
            let ctx = Arc::new(JobContext::new(lease.clone(), job, self.pool.clone()));
            let outcome = match handler {
                Some(h) => {
                    after_failure(h, ctx, JobError::Fatal(error), &self.pool, &self.options)
                        .instrument(span.clone())
                        .await
                }
                None => Err(JobError::Fatal(error)),
            };
            finish(&self.pool, &lease, outcome, &self.options)
                .instrument(span)
                .await;
        }
    }

    /// The whole life of one claimed job, as a `'static` future so it can be spawned. The span
    /// is made here, inside the runner's span, so each line of the job names both.
    fn job(&self, job: ClaimedJob) -> impl Future<Output = ()> + Send + 'static {
        let span = tracing::info_span!(
            "job",
            job.id = %job.id,
            job.kind = %job.kind,
            job.attempt = job.attempts,
        );
        let pool = self.pool.clone();
        let handler = self.handlers.get(job.kind.as_str()).cloned();
        let options = self.options;
        let lease = job.lease(&self.owner);
        async move {
            let Some(handler) = handler else {
                // The claim only asks for our kinds; kept total rather than unwrapped.
                let outcome = Err(JobError::Fatal(format!("no handler for {}", job.kind)));
                finish(&pool, &lease, outcome, &options).await;
                return;
            };
            tracing::info!(resumed = !job.steps.is_empty(), "job started");
            let last_attempt = job.attempts >= job.max_attempts;
            let ctx = Arc::new(JobContext::new(lease.clone(), job, pool.clone()));
            let run = {
                let (ctx, handler) = (ctx.clone(), handler.clone());
                async move { handler.run(&ctx).await }
            };
            let Some(joined) = with_heartbeat(run, &pool, &lease, &options).await else {
                return;
            };
            let outcome = match outcome_of(joined) {
                Err(e @ JobError::Fatal(_)) => {
                    after_failure(handler, ctx, e, &pool, &options).await
                }
                Err(e @ JobError::Retry(_)) if last_attempt => {
                    after_failure(handler, ctx, e, &pool, &options).await
                }
                other => other,
            };
            finish(&pool, &lease, outcome, &options).await;
        }
        .instrument(span)
    }
}

/// Runs `work` on a task of its own (a panic comes back as a `JoinError` instead of unwinding
/// the runner) while renewing the lease; `None` when the lease went to another runner, which
/// stops the work: two handlers of one job must not run at once.
async fn with_heartbeat<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
    pool: &PgPool,
    lease: &Lease,
    options: &RunnerOptions,
) -> Option<Result<T, JoinError>> {
    let mut task = AbortOnDrop(tokio::spawn(work.instrument(tracing::Span::current())));
    let every = options.heartbeat_every();
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            joined = &mut task.0 => return Some(joined),
            _ = beat.tick() => match db::renew(pool, lease, options.lease).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("job lease lost to another runner; stopping its handler");
                    return None;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the job lease"),
            },
        }
    }
}

/// The job fails for good with `error`: the handler's `failed` hook runs first (under the
/// lease), and what it reports is added to the error. Always a `Fatal` (the last attempt's
/// retry fails the job the same way), or `LeaseLost`.
async fn after_failure(
    handler: Arc<dyn JobHandler>,
    ctx: Arc<JobContext>,
    error: JobError,
    pool: &PgPool,
    options: &RunnerOptions,
) -> Result<serde_json::Value, JobError> {
    let message = error.to_string();
    let lease = ctx.lease.clone();
    let hook = {
        let message = message.clone();
        async move { handler.failed(&ctx, &message).await }
    };
    let Some(joined) = with_heartbeat(hook, pool, &lease, options).await else {
        return Err(JobError::LeaseLost);
    };
    let joined = joined.map(|r| r.map(|()| serde_json::Value::Null));
    match outcome_of(joined) {
        Ok(_) => Err(JobError::Fatal(message)),
        Err(JobError::LeaseLost) => Err(JobError::LeaseLost),
        Err(e) => {
            tracing::error!(error = %e, "the failed job's clean-up failed");
            Err(JobError::Fatal(format!("{message}; then: {e}")))
        }
    }
}

fn outcome_of(
    joined: Result<Result<serde_json::Value, JobError>, JoinError>,
) -> Result<serde_json::Value, JobError> {
    match joined {
        Ok(outcome) => outcome,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-text panic".into());
            tracing::error!(panic = %msg, "job handler panicked");
            Err(JobError::Retry(format!("handler panicked: {msg}")))
        }
        Err(_) => Err(JobError::Retry("handler cancelled".into())),
    }
}

/// Records how the attempt ended. A database error is retried briefly: otherwise a finished job
/// would sit until its lease expires and then run again.
async fn finish(
    pool: &PgPool,
    lease: &Lease,
    outcome: Result<serde_json::Value, JobError>,
    options: &RunnerOptions,
) {
    if outcome == Err(JobError::LeaseLost) {
        tracing::warn!("job lease lost to another runner; nothing recorded");
        return;
    }
    let delay = options.backoff.delay(lease.attempt);
    let mut pause = Duration::from_millis(200);
    for try_no in 1..=3 {
        let recorded = match &outcome {
            Ok(result) => db::succeed(pool, lease, result)
                .await
                .map(|ok| ok.then_some(JobState::Succeeded)),
            Err(JobError::Fatal(msg)) => db::fail(pool, lease, msg)
                .await
                .map(|ok| ok.then_some(JobState::Failed)),
            Err(JobError::Retry(msg)) => db::retry(pool, lease, msg, delay).await,
            Err(JobError::LeaseLost) => Ok(None),
        };
        match recorded {
            Ok(Some(state)) => {
                let error = outcome.as_ref().err().map(|e| e.to_string());
                match state {
                    JobState::Succeeded => tracing::info!("job succeeded"),
                    JobState::Failed => tracing::warn!(error = error.as_deref(), "job failed"),
                    _ => {
                        tracing::info!(error = error.as_deref(), retry_in = ?delay, "job will retry")
                    }
                }
                return;
            }
            Ok(None) => {
                tracing::warn!("job lease lost to another runner; this attempt's outcome dropped");
                return;
            }
            Err(e) if try_no < 3 => {
                tracing::warn!(error = %e, "recording the job's outcome; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => tracing::error!(
                error = %e,
                "recording the job's outcome; it runs again after its lease expires"
            ),
        }
    }
}

/// Aborting the runner must take the handlers with it (a dropped `JoinHandle` only detaches).
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    fn request(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// A spawned runner.
pub struct RunnerHandle {
    owner: String,
    waker: Waker,
    stop: Arc<Stop>,
    join: JoinHandle<()>,
}

impl RunnerHandle {
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn wake(&self) {
        self.waker.wake();
    }

    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Stops claiming and waits for running jobs, at most `shutdown_grace`; jobs still running
    /// then are abandoned to lease expiry (another runner resumes them).
    pub async fn shutdown(self) {
        self.stop.request();
        if let Err(e) = self.join.await {
            if e.is_panic() {
                tracing::error!("job runner panicked");
            }
        }
    }

    /// Stops at once, running jobs included, and writes nothing: their leases expire as if the
    /// process had been killed.
    pub fn abort(self) {
        self.join.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        assert_eq!(b.delay(1), Duration::from_secs(5));
        assert_eq!(b.delay(2), Duration::from_secs(10));
        assert_eq!(b.delay(3), Duration::from_secs(20));
        assert_eq!(b.delay(5), Duration::from_secs(60));
        assert_eq!(b.delay(i32::MAX), Duration::from_secs(60));
        assert_eq!(b.delay(0), Duration::from_secs(5));
    }

    #[test]
    fn jobs_default_owner_is_unique_per_runner() {
        let a = default_owner();
        assert_ne!(a, default_owner());
        assert!(a.contains(&format!(":{}:", std::process::id())), "{a}");
    }

    #[test]
    fn jobs_heartbeat_defaults_to_a_third_of_the_lease() {
        let o = RunnerOptions {
            lease: Duration::from_secs(60),
            ..RunnerOptions::default()
        };
        assert_eq!(o.heartbeat_every(), Duration::from_secs(20));
    }

    #[test]
    fn jobs_panic_becomes_a_retry() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let joined = rt.block_on(async {
            tokio::spawn(async {
                if true {
                    panic!("boom");
                }
                Ok(serde_json::Value::Null)
            })
            .await
        });
        assert_eq!(
            outcome_of(joined),
            Err(JobError::Retry("handler panicked: boom".into()))
        );
    }
}
