//! Asking for a home operation: the student exists, no other operation on that home is queued
//! or running (409 rather than a queue of resets), and the job is enqueued in one transaction.
use sqlx::PgPool;
use uuid::Uuid;

use super::{ArchiveId, Homes, HomesError, ResetJob, ResetScope, RestoreJob};
use crate::{
    db,
    domain::{Actor, Username},
};

/// What a counselor (or a script) asks for.
#[derive(Debug, Clone)]
pub enum Request {
    Reset {
        scope: ResetScope,
        reason: Option<String>,
    },
    Restore(ArchiveId),
}

/// Enqueues the operation as a job; returns the job's id. The caller wakes the runner.
pub async fn enqueue(
    pool: &PgPool,
    homes: &Homes,
    actor: &Actor,
    username: &Username,
    request: Request,
) -> Result<Uuid, HomesError> {
    let not_a_student = || HomesError::NotFound(format!("no student named '{username}'"));
    if !db::users::is_student(&mut *pool.acquire().await?, username).await? {
        return Err(not_a_student());
    }
    match &request {
        Request::Restore(id) => {
            // Unknown archives are a 404 now, not a failed job later; so is one that would
            // not fit the student's storage limit (409).
            if !homes.archives(username).await?.iter().any(|a| &a.id == id) {
                return Err(HomesError::NotFound(format!(
                    "{username} has no archive {}",
                    id.as_str()
                )));
            }
            homes.preflight_restore(username, id).await?;
        }
        Request::Reset { scope, .. } => homes.preflight_reset(username, *scope).await?,
    }
    let mut tx = pool.begin().await?;
    if !db::users::is_student(&mut tx, username).await? {
        return Err(not_a_student());
    }
    if db::homes::active_job(&mut tx, username.as_str())
        .await?
        .is_some()
    {
        return Err(HomesError::Busy(format!("{username}'s home")));
    }
    let id = match request {
        Request::Reset { scope, reason } => {
            let job = ResetJob {
                username: username.to_string(),
                scope,
                reason,
            };
            job.enqueue(&mut tx, actor).await?
        }
        Request::Restore(archive) => {
            let job = RestoreJob {
                username: username.to_string(),
                archive: archive.as_str().to_string(),
            };
            job.enqueue(&mut tx, actor).await?
        }
    };
    tx.commit().await?;
    Ok(id)
}
