//! "My notebook is stuck": a student's own way out of a start that hangs or a server that is
//! broken. The hub's `DELETE …/server` interrupts a pending start (JupyterHub 6.1.1 cancels the
//! spawn, then stops; read in its `UserServerAPIHandler.delete`), so a restart is: stop, wait
//! until it is gone, start. That runs as a `servers.restart` job (the student's page follows
//! it); at most [`PER_HOUR`] an hour per student, counted from the audit log, where each one is
//! also what counselors see (the roll board shows the last one).
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{jobs::RestartJob, Servers};
use crate::{
    db,
    domain::{Actor, Username},
};

/// Restarts a student may ask for in an hour.
pub const PER_HOUR: i64 = 3;

#[derive(Debug, thiserror::Error)]
pub enum UnstickError {
    /// Past the allowance: when the next restart is allowed.
    #[error("restarted {PER_HOUR} times in the last hour")]
    TooOften(OffsetDateTime),
    #[error("the camp is paused: notebooks cannot start now")]
    Paused,
    #[error("no hub is configured")]
    NoHub,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Servers {
    /// Queues the restart of `name`'s server, audited as `actor`; refused past the hourly
    /// allowance and while the camp is paused.
    pub async fn unstick(
        &self,
        pool: &PgPool,
        actor: &Actor,
        name: &Username,
    ) -> Result<Uuid, UnstickError> {
        if !self.configured() {
            return Err(UnstickError::NoHub);
        }
        let mut tx = pool.begin().await?;
        if db::camp::pause(&mut tx).await?.is_some() {
            return Err(UnstickError::Paused);
        }
        // One at a time per student, so two tabs cannot both slip under the allowance.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('server.unstick:' || $1))")
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?;
        let recent: Vec<OffsetDateTime> = sqlx::query_scalar(
            "SELECT at FROM audit_log WHERE action = 'server.unstick' AND target = $1
             AND at > now() - interval '1 hour' ORDER BY at",
        )
        .bind(name.as_str())
        .fetch_all(&mut *tx)
        .await?;
        if recent.len() as i64 >= PER_HOUR {
            return Err(UnstickError::TooOften(recent[0] + time::Duration::HOUR));
        }
        db::audit::record(&mut tx, actor, "server.unstick", Some(name.as_str()), None).await?;
        let job = RestartJob {
            username: name.to_string(),
        }
        .enqueue(&mut tx, actor)
        .await?;
        tx.commit().await?;
        Ok(job)
    }
}
