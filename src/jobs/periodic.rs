//! Periodic tasks. [`periodic`] runs on one instance of a fleet (sweepers: doing it twice is
//! waste or a race); [`every`] runs in each process (work on in-memory state, like reloading
//! the OIDC keys each instance holds).
//!
//! The one instance is whichever holds a session-level advisory lock on a connection of its
//! own. It keeps the lock, and so the task, for as long as that connection lives, rather than
//! locking around each run: instances tick at different moments, so a lock taken and released
//! per run would let each of them run once per interval. When the holder dies its session ends,
//! PostgreSQL releases the lock, and another instance takes it on its next tick.
use std::{future::Future, panic::AssertUnwindSafe, time::Duration};

use futures_util::FutureExt;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::{task::JoinHandle, time::MissedTickBehavior};
use tracing::Instrument;

/// Runs `f` every `period` on the one instance holding advisory lock `lock_key` (per
/// database; pick a key per task). The first tick is at once. Holding the lock takes one
/// connection outside the pool on every instance (the others keep theirs to retry cheaply).
/// An error or panic in `f` is logged and the next tick runs as usual.
pub fn periodic<F, Fut>(
    pool: PgPool,
    name: &'static str,
    lock_key: i64,
    period: Duration,
    mut f: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let span = tracing::info_span!("periodic", periodic.name = name, periodic.lock = lock_key);
    tokio::spawn(
        async move {
            let mut lock = LeaderLock {
                pool,
                key: lock_key,
                conn: None,
                held: false,
            };
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if lock.held().await {
                    run_guarded(f()).await;
                }
            }
        }
        .instrument(span),
    )
}

/// Runs `f` every `period` in this process, without a lock. The first tick is at once.
pub fn every<F, Fut>(name: &'static str, period: Duration, mut f: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let span = tracing::info_span!("periodic", periodic.name = name);
    tokio::spawn(
        async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                run_guarded(f()).await;
            }
        }
        .instrument(span),
    )
}

/// A panic must not end the loop: on the lock holder that would stop the task for the whole
/// fleet while the lock stays held.
async fn run_guarded(fut: impl Future<Output = anyhow::Result<()>>) {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = format!("{e:#}"), "periodic task failed"),
        Err(_) => tracing::error!("periodic task panicked"),
    }
}

struct LeaderLock {
    pool: PgPool,
    key: i64,
    conn: Option<PgConnection>,
    held: bool,
}

impl LeaderLock {
    /// Whether this instance holds the lock now: it checks that its session is still alive
    /// (a lock lives exactly as long as the session) or tries to take the lock.
    async fn held(&mut self) -> bool {
        if self.conn.is_none() {
            // Outside the pool: a pooled connection would go back holding the lock.
            match self.pool.connect_options().connect().await {
                Ok(conn) => self.conn = Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "connecting for the periodic task's lock");
                    return false;
                }
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let answer = if self.held {
            conn.ping().await.map(|()| true)
        } else {
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(self.key)
                .fetch_one(&mut *conn)
                .await
        };
        match answer {
            Ok(held) => {
                if held && !self.held {
                    tracing::info!("took the periodic task's lock; this instance runs it");
                }
                self.held = held;
                held
            }
            Err(e) => {
                if self.held {
                    tracing::warn!(error = %e, "lost the periodic task's lock connection");
                } else {
                    tracing::warn!(error = %e, "trying the periodic task's lock");
                }
                self.conn = None;
                self.held = false;
                false
            }
        }
    }
}
