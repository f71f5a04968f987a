//! The homes operations as jobs (`crate::jobs`): what the HTTP layer enqueues with
//! [`crate::db::jobs::enqueue`] (or the `enqueue` helpers here) and a runner resumes after a
//! crash.
//!
//! Kinds and payloads (JSON, `deny_unknown_fields`):
//! - `homes.reset` — [`ResetJob`] `{"username": "ana", "scope": "all" | "environment",
//!   "reason": "wrong kernel"}` (`reason` optional, default `reset`) → result
//!   `{"username", "scope", "archive": ID | null}`.
//! - `homes.restore` — [`RestoreJob`] `{"username": "ana", "archive": "20250102T030405Z-reset"}`
//!   → result `{"username", "restored": ID, "archive": ID | null}` (`archive`: where the
//!   replaced home went, to undo).
//! - `homes.create_many` — [`CreateManyJob`] `{"usernames": ["ana", "bob"]}` (an import: the
//!   accounts commit in one transaction, their homes follow as this job) → result
//!   `{"created": [..], "existing": [..]}`.
//!
//! Resuming is idempotent twice over: every operation carries the job's id in the journal, so
//! a resumed `homes.reset` that finds its operation done returns that result instead of
//! resetting again (an interrupted one is settled first by the journal); `homes.create_many`
//! records one step per home (`created ana` / `existing ana`) and skips those on resume.
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{ops::actor_from_label, ArchiveId, Homes, HomesError, ResetScope};
use crate::{
    db,
    domain::{Actor, Username},
    jobs::{BoxFuture, JobContext, JobError, JobHandler},
};

pub const RESET_KIND: &str = "homes.reset";
pub const RESTORE_KIND: &str = "homes.restore";
pub const CREATE_MANY_KIND: &str = "homes.create_many";

/// Attempts per job: a busy home or a passing NFS hiccup gets retried after a backoff.
pub const MAX_ATTEMPTS: i32 = 5;

/// Payload of `homes.reset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetJob {
    pub username: String,
    pub scope: ResetScope,
    /// Why (shown in the archive list; its slug names the archive entry). Default `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Payload of `homes.restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreJob {
    pub username: String,
    /// An [`ArchiveId`] from the student's archive list.
    pub archive: String,
}

/// Payload of `homes.create_many`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateManyJob {
    pub usernames: Vec<String>,
}

async fn enqueue<T: Serialize>(
    conn: &mut PgConnection,
    kind: &str,
    payload: &T,
    actor: &Actor,
) -> sqlx::Result<Uuid> {
    let json = serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(e.into()))?;
    db::jobs::enqueue(conn, kind, &json, &actor.label(), MAX_ATTEMPTS).await
}

impl ResetJob {
    /// Queues the job on the caller's transaction.
    pub async fn enqueue(&self, conn: &mut PgConnection, actor: &Actor) -> sqlx::Result<Uuid> {
        enqueue(conn, RESET_KIND, self, actor).await
    }
}

impl RestoreJob {
    pub async fn enqueue(&self, conn: &mut PgConnection, actor: &Actor) -> sqlx::Result<Uuid> {
        enqueue(conn, RESTORE_KIND, self, actor).await
    }
}

impl CreateManyJob {
    pub async fn enqueue(&self, conn: &mut PgConnection, actor: &Actor) -> sqlx::Result<Uuid> {
        enqueue(conn, CREATE_MANY_KIND, self, actor).await
    }
}

/// Runs before a reset or restore touches a home, on every attempt: the hub capability stops
/// the student's notebook server here and waits until it is gone (a running server would go
/// on writing into the archived directory). Recorded as the job step `server stopped`.
pub trait BeforeHomeChange: Send + Sync + 'static {
    fn before<'a>(&'a self, username: &'a Username) -> BoxFuture<'a, Result<(), JobError>>;
}

/// The hook in production: stop the student's notebook server and wait until it is gone.
pub struct StopServerFirst(pub crate::servers::Servers);

impl BeforeHomeChange for StopServerFirst {
    fn before<'a>(&'a self, username: &'a Username) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            self.0
                .stop_and_wait(username)
                .await
                .map_err(crate::servers::jobs::retry)
        })
    }
}

/// The homes' handlers (reset, restore, hand-out, create-many), for `Runner::new`. `before` is the server-stop hook (none in tests).
pub fn handlers(
    homes: Homes,
    before: Option<Arc<dyn BeforeHomeChange>>,
) -> Vec<Arc<dyn JobHandler>> {
    let shared = Arc::new(Shared { homes, before });
    vec![
        Arc::new(Reset(shared.clone())),
        Arc::new(Restore(shared.clone())),
        super::handout::HandOutHandler::handler(shared.homes.clone()),
        Arc::new(CreateMany(shared)),
    ]
}

struct Shared {
    homes: Homes,
    before: Option<Arc<dyn BeforeHomeChange>>,
}

impl Shared {
    async fn before(&self, ctx: &JobContext, u: &Username) -> Result<(), JobError> {
        if let Some(hook) = &self.before {
            hook.before(u).await?;
            ctx.step("server stopped").await?;
        }
        Ok(())
    }
}

fn parse_user(raw: &str) -> Result<Username, JobError> {
    Username::parse(raw).map_err(|e| JobError::Fatal(format!("username {raw:?}: {e}")))
}

/// Busy homes, the database and I/O may pass; the rest cannot succeed on a retry.
pub(super) fn job_error(e: HomesError) -> JobError {
    match e {
        HomesError::Busy(_)
        | HomesError::Db(_)
        | HomesError::Io { .. }
        | HomesError::Interrupted(_)
        | HomesError::Crashed(_) => JobError::Retry(e.to_string()),
        HomesError::NotFound(_)
        | HomesError::NotSameFilesystem { .. }
        | HomesError::UnsafePath(_)
        | HomesError::Invalid(_)
        | HomesError::OverQuota(_) => JobError::Fatal(e.to_string()),
    }
}

fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, JobError> {
    serde_json::to_value(v).map_err(JobError::fatal)
}

struct Reset(Arc<Shared>);

impl JobHandler for Reset {
    fn kind(&self) -> &'static str {
        RESET_KIND
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        Box::pin(async move {
            let p: ResetJob = ctx.payload_as()?;
            let u = parse_user(&p.username)?;
            let actor = actor_from_label(ctx.actor());
            if !ctx.is_done("reset") {
                self.0.before(ctx, &u).await?;
            }
            let reason = p.reason.as_deref().unwrap_or("reset");
            let outcome = self
                .0
                .homes
                .reset_for(&u, p.scope, reason, &actor, Some(ctx.id()))
                .await
                .map_err(job_error)?;
            ctx.step("reset").await?;
            self.0.homes.nudge_quota_node().await;
            to_json(&outcome)
        })
    }
}

struct Restore(Arc<Shared>);

impl JobHandler for Restore {
    fn kind(&self) -> &'static str {
        RESTORE_KIND
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        Box::pin(async move {
            let p: RestoreJob = ctx.payload_as()?;
            let u = parse_user(&p.username)?;
            let id = ArchiveId::parse(&p.archive).map_err(JobError::fatal)?;
            let actor = actor_from_label(ctx.actor());
            if !ctx.is_done("restored") {
                self.0.before(ctx, &u).await?;
            }
            let outcome = self
                .0
                .homes
                .restore_for(&u, &id, &actor, Some(ctx.id()))
                .await
                .map_err(job_error)?;
            ctx.step("restored").await?;
            self.0.homes.nudge_quota_node().await;
            to_json(&outcome)
        })
    }
}

struct CreateMany(Arc<Shared>);

impl JobHandler for CreateMany {
    fn kind(&self) -> &'static str {
        CREATE_MANY_KIND
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        Box::pin(async move {
            let p: CreateManyJob = ctx.payload_as()?;
            let users = p
                .usernames
                .iter()
                .map(|raw| parse_user(raw))
                .collect::<Result<Vec<_>, _>>()?;
            let actor = actor_from_label(ctx.actor());
            let (mut created, mut existing) = (Vec::new(), Vec::new());
            for u in users {
                let (made, seen) = (format!("created {u}"), format!("existing {u}"));
                if ctx.is_done(&made) {
                    created.push(u.to_string());
                    continue;
                }
                if ctx.is_done(&seen) {
                    existing.push(u.to_string());
                    continue;
                }
                let new = self
                    .0
                    .homes
                    .create_for(&u, &actor, Some(ctx.id()))
                    .await
                    .map_err(job_error)?;
                if new {
                    ctx.step(&made).await?;
                    created.push(u.to_string());
                } else {
                    ctx.step(&seen).await?;
                    existing.push(u.to_string());
                }
            }
            // New students get their line now rather than at the next sweep.
            self.0.homes.nudge_quota_node().await;
            Ok(serde_json::json!({"created": created, "existing": existing}))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_job_payloads_are_the_documented_json() {
        let reset: ResetJob =
            serde_json::from_str(r#"{"username": "ana", "scope": "environment"}"#).unwrap();
        assert_eq!(reset.scope, ResetScope::Environment);
        assert_eq!(reset.reason, None);
        assert!(
            serde_json::from_str::<ResetJob>(r#"{"username": "ana", "scope": "some"}"#).is_err()
        );
        assert!(serde_json::from_str::<ResetJob>(
            r#"{"username": "ana", "scope": "all", "path": "/etc"}"#
        )
        .is_err());
        let restore: RestoreJob =
            serde_json::from_str(r#"{"username": "ana", "archive": "20250102T030405Z-reset"}"#)
                .unwrap();
        assert_eq!(restore.archive, "20250102T030405Z-reset");
        let many: CreateManyJob = serde_json::from_str(r#"{"usernames": ["ana", "bob"]}"#).unwrap();
        assert_eq!(many.usernames.len(), 2);
    }
}
