//! The job runner kit: durable, resumable jobs in PostgreSQL and periodic tasks that run on one
//! instance. Capabilities (home resets, EC2 launches) implement [`JobHandler`] and enqueue with
//! [`crate::db::jobs::enqueue`] inside the transaction of the change that asks for the job.
//!
//! Jobs are at-least-once: a runner that dies mid-job leaves its lease to expire and another
//! claim runs the handler again, so a handler makes its side effects idempotent or records each
//! one as a step ([`JobContext::step`]) and skips the steps already done.
//!
//! This kit imports `crate::db` only (no state, web or capability), so any capability can use it.
mod periodic;
mod runner;

use serde::Serialize;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use uuid::Uuid;

pub use crate::db::jobs::{JobRow, JobState, Step};
/// Re-exported so handlers need not name `futures_util`.
pub use futures_util::future::BoxFuture;
pub use periodic::{every, periodic};
pub use runner::{
    default_owner, Backoff, JobContext, JobHandler, Runner, RunnerHandle, RunnerOptions, Waker,
};

/// How a handler ends without a result. The runner turns it into the job's next state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Worth another attempt (a peer was down, a database error): queued again after a backoff
    /// until `max_attempts`, then failed.
    #[error("{0}")]
    Retry(String),
    /// No attempt can succeed (bad payload, the target is gone): failed at once.
    #[error("{0}")]
    Fatal(String),
    /// Another runner now owns the job; nothing may be written. Handlers just propagate it.
    #[error("the job's lease was lost to another runner")]
    LeaseLost,
}

impl JobError {
    pub fn retry(e: impl std::fmt::Display) -> Self {
        Self::Retry(e.to_string())
    }

    pub fn fatal(e: impl std::fmt::Display) -> Self {
        Self::Fatal(e.to_string())
    }
}

/// Database errors in a handler are usually an outage or a conflict that passes.
impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        Self::Retry(format!("database: {e}"))
    }
}

/// The JSON of a job for the API and pages (`GET /api/v1/jobs/{id}`). Times are RFC 3339.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    pub state: JobState,
    pub steps: Vec<Step>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub actor: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339_opt")]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<JobRow> for JobView {
    fn from(r: JobRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            state: r.state,
            steps: r.steps,
            result: r.result,
            error: r.error,
            attempts: r.attempts,
            actor: r.actor,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let text = t.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_view_serializes_the_http_contract() {
        let row = JobRow {
            id: Uuid::nil(),
            kind: "home.reset".into(),
            payload: serde_json::json!({"user": "ana"}),
            state: JobState::Succeeded,
            steps: vec![Step {
                name: "archive".into(),
                at: "2025-01-02T03:04:05.000006Z".into(),
            }],
            result: Some(serde_json::json!({"ok": true})),
            error: None,
            attempts: 2,
            max_attempts: 3,
            actor: "connie".into(),
            run_after: time::macros::datetime!(2025-01-02 03:04:00 UTC),
            lease_owner: None,
            lease_until: None,
            created_at: time::macros::datetime!(2025-01-02 03:04:00 UTC),
            updated_at: time::macros::datetime!(2025-01-02 03:04:06 UTC),
            finished_at: Some(time::macros::datetime!(2025-01-02 03:04:06 UTC)),
        };
        let json = serde_json::to_value(JobView::from(row)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "kind": "home.reset",
                "state": "succeeded",
                "steps": [{"name": "archive", "at": "2025-01-02T03:04:05.000006Z"}],
                "result": {"ok": true},
                "error": null,
                "attempts": 2,
                "actor": "connie",
                "created_at": "2025-01-02T03:04:00Z",
                "finished_at": "2025-01-02T03:04:06Z",
            })
        );
    }

    #[test]
    fn jobs_state_round_trips_through_text() {
        for s in [
            JobState::Queued,
            JobState::Running,
            JobState::Succeeded,
            JobState::Failed,
        ] {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert!("done".parse::<JobState>().is_err());
    }
}
