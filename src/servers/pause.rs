//! Pause camp (issue 18): an admin's switch for a fire drill, a lunch break or a problem. While
//! the camp is paused students cannot log in (the login form and the hub's sign-in say why),
//! the hub's spawner is told no (`/oauth/profile` answers 423), hubdesk starts nobody's server,
//! and every running student server is stopped: at once, and again by a sweep every
//! [`SWEEP_EVERY`] in case one slipped through. Staff log in and work as usual. Both switches
//! are audited; resuming takes one click.
use std::{collections::HashSet, time::Duration};

use sqlx::PgPool;

use super::{jobs::StopJob, Servers};
use crate::{db, domain::Actor};

/// How often a paused camp looks for student servers still running.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The longest message students are shown.
pub const MAX_MESSAGE: usize = 300;

#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("the message is longer than {MAX_MESSAGE} characters")]
    TooLong,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Servers {
    /// Pauses the camp with what students are told, audited, and stops the running student
    /// servers (best effort now: the sweep retries while the hub is away). Returns the number
    /// of stops queued.
    pub async fn pause_camp(
        &self,
        pool: &PgPool,
        actor: &Actor,
        message: &str,
    ) -> Result<usize, PauseError> {
        let message = message.trim();
        if message.chars().count() > MAX_MESSAGE {
            return Err(PauseError::TooLong);
        }
        let mut tx = pool.begin().await?;
        db::camp::set_paused(&mut tx, &actor.label(), message).await?;
        let detail = (!message.is_empty()).then(|| format!("students are told: {message}"));
        db::audit::record(&mut tx, actor, "camp.pause", None, detail.as_deref()).await?;
        tx.commit().await?;
        Ok(match self.sweep_paused(pool).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "pause: servers not stopped yet");
                0
            }
        })
    }

    /// Resumes the camp, audited; `false` when it was not paused.
    pub async fn resume_camp(&self, pool: &PgPool, actor: &Actor) -> sqlx::Result<bool> {
        let mut tx = pool.begin().await?;
        let resumed = db::camp::resume(&mut tx).await?;
        if resumed {
            db::audit::record(&mut tx, actor, "camp.resume", None, None).await?;
        }
        tx.commit().await?;
        Ok(resumed)
    }

    /// While the camp is paused: queues a stop of every running (or starting) student server
    /// that no stop is on yet, each audited "by hubdesk". One hub call. Returns how many.
    pub async fn sweep_paused(&self, pool: &PgPool) -> anyhow::Result<usize> {
        {
            let mut conn = pool.acquire().await?;
            if db::camp::pause(&mut conn).await?.is_none() {
                return Ok(0);
            }
        }
        if !self.configured() {
            return Ok(0);
        }
        let running = self.running().await?;
        if running.is_empty() {
            return Ok(0);
        }
        let mut tx = pool.begin().await?;
        let stopping: HashSet<String> = db::calendar::stops_in_flight(&mut tx)
            .await?
            .into_iter()
            .collect();
        let mut queued = 0;
        for (user, _) in db::users::cohorts_of(&mut tx).await? {
            if !running.contains_key(user.as_str()) || stopping.contains(user.as_str()) {
                continue;
            }
            db::audit::record(
                &mut tx,
                &Actor::System,
                "server.stop",
                Some(user.as_str()),
                Some("the camp is paused"),
            )
            .await?;
            StopJob {
                username: user.to_string(),
            }
            .enqueue(&mut tx, &Actor::System)
            .await?;
            queued += 1;
        }
        tx.commit().await?;
        if queued > 0 {
            tracing::info!(queued, "camp paused: student servers stopping");
        }
        Ok(queued)
    }

    /// Whether the camp is paused (the start paths refuse then).
    pub async fn camp_paused(&self, pool: &PgPool) -> sqlx::Result<Option<db::camp::Pause>> {
        let mut conn = pool.acquire().await?;
        db::camp::pause(&mut conn).await
    }
}
