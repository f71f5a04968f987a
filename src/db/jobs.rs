//! The `jobs` table. `enqueue`, `get`, `recent` and `counts` take a connection so they can run
//! inside the caller's transaction; the runner's writes (claim, renew, step, finish) take the
//! pool because each must commit on its own, at once, whatever the caller is doing.
//!
//! Every runner write is fenced by [`Lease`]: it only applies while the row still carries the
//! owner *and* the attempt number of the claim that produced the lease, so a runner that lost
//! its lease (even to a later claim of its own) cannot touch a job someone else now runs.
use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownJobState(String);

impl FromStr for JobState {
    type Err = UnknownJobState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            other => Err(UnknownJobState(other.to_string())),
        }
    }
}

impl TryFrom<String> for JobState {
    type Error = UnknownJobState;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A completed step. `at` is the database clock as RFC 3339 UTC, written by the same statement
/// that appends the step, so steps of one job order consistently across runners' clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub at: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    #[sqlx(json)]
    pub steps: Vec<Step>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub max_attempts: i32,
    pub actor: String,
    pub run_after: OffsetDateTime,
    pub lease_owner: Option<String>,
    pub lease_until: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

const JOB_COLUMNS: &str = "id, kind, payload, state, steps, result, error, attempts, \
     max_attempts, actor, run_after, lease_owner, lease_until, created_at, updated_at, finished_at";

/// `to_jsonb(now())` would follow the session's TimeZone; steps must read the same everywhere.
const NOW_RFC3339: &str = r#"to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"#;

/// Queues a job. Call it on the caller's transaction: the job then exists exactly when the
/// change that asked for it committed (no job for a rolled-back reset, no reset without a job).
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: &str,
    payload: &serde_json::Value,
    actor: &str,
    max_attempts: i32,
) -> sqlx::Result<Uuid> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO jobs (id, kind, payload, actor, max_attempts) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(kind)
    .bind(payload)
    .bind(actor)
    .bind(max_attempts)
    .execute(conn)
    .await?;
    Ok(id)
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Newest first.
pub async fn recent(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as(&format!(
        "SELECT {JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, id LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct JobCount {
    pub kind: String,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub count: i64,
}

/// Jobs per kind and state (only pairs that occur).
pub async fn counts(conn: &mut PgConnection) -> sqlx::Result<Vec<JobCount>> {
    sqlx::query_as(
        "SELECT kind, state, count(*) AS count FROM jobs GROUP BY kind, state ORDER BY kind, state",
    )
    .fetch_all(conn)
    .await
}

/// What a runner got from a claim: enough to run the job and to fence its writes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    #[sqlx(json)]
    pub steps: Vec<Step>,
    /// This claim's attempt number, counting from 1.
    pub attempts: i32,
    pub max_attempts: i32,
    pub actor: String,
}

/// Proof of one claim: the owner and the attempt number it set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: Uuid,
    pub owner: String,
    pub attempt: i32,
}

impl ClaimedJob {
    pub fn lease(&self, owner: &str) -> Lease {
        Lease {
            id: self.id,
            owner: owner.to_string(),
            attempt: self.attempts,
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Claims the oldest due job of one of `kinds`: queued and due, or running with a lapsed lease
/// (its runner died; the claim resumes it). One statement, `SKIP LOCKED`, so concurrent
/// runners never claim the same row and never wait on each other.
pub async fn claim(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    kinds: &[String],
) -> sqlx::Result<Option<ClaimedJob>> {
    sqlx::query_as(
        "UPDATE jobs SET state = 'running', lease_owner = $1,
                lease_until = now() + make_interval(secs => $2),
                attempts = attempts + 1, updated_at = now()
         WHERE id = (
             SELECT id FROM jobs
             WHERE kind = ANY($3)
               AND ((state = 'queued' AND run_after <= now())
                 OR (state = 'running' AND lease_until < now() AND attempts < max_attempts))
             ORDER BY created_at
             FOR UPDATE SKIP LOCKED
             LIMIT 1)
         RETURNING id, kind, payload, steps, attempts, max_attempts, actor",
    )
    .bind(owner)
    .bind(secs(lease))
    .bind(kinds)
    .fetch_optional(pool)
    .await
}

/// Takes over a running job whose lease lapsed on its last allowed attempt (its runner died, and
/// no attempt is left to resume it), for the runner to fail it after the handler's clean-up: a
/// job that takes its runner down every time must not be resumed forever. The attempt number
/// stays, the owner changes, so the dead runner's writes stay fenced off. One job per call.
pub async fn take_abandoned(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    kinds: &[String],
) -> sqlx::Result<Option<ClaimedJob>> {
    sqlx::query_as(
        "UPDATE jobs SET lease_owner = $1, lease_until = now() + make_interval(secs => $2),
                updated_at = now()
         WHERE id = (
             SELECT id FROM jobs
             WHERE kind = ANY($3) AND state = 'running' AND lease_until < now()
               AND attempts >= max_attempts
             ORDER BY created_at
             FOR UPDATE SKIP LOCKED
             LIMIT 1)
         RETURNING id, kind, payload, steps, attempts, max_attempts, actor",
    )
    .bind(owner)
    .bind(secs(lease))
    .bind(kinds)
    .fetch_optional(pool)
    .await
}

/// Extends the lease; false when it is no longer ours.
pub async fn renew(pool: &PgPool, lease: &Lease, duration: Duration) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE jobs SET lease_until = now() + make_interval(secs => $4), updated_at = now()
         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'running'",
    )
    .bind(lease.id)
    .bind(&lease.owner)
    .bind(lease.attempt)
    .bind(secs(duration))
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Appends a completed step (once per name); false when the lease is no longer ours.
pub async fn record_step(pool: &PgPool, lease: &Lease, name: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query(&format!(
        "UPDATE jobs SET updated_at = now(),
                steps = CASE WHEN steps @> jsonb_build_array(jsonb_build_object('name', $4::text))
                             THEN steps
                             ELSE steps || jsonb_build_array(
                                 jsonb_build_object('name', $4::text, 'at', {NOW_RFC3339}))
                        END
         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'running'"
    ))
    .bind(lease.id)
    .bind(&lease.owner)
    .bind(lease.attempt)
    .bind(name)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Marks the job succeeded with its result; false when the lease is no longer ours.
pub async fn succeed(
    pool: &PgPool,
    lease: &Lease,
    result: &serde_json::Value,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE jobs SET state = 'succeeded', result = $4, error = NULL,
                lease_owner = NULL, lease_until = NULL, finished_at = now(), updated_at = now()
         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'running'",
    )
    .bind(lease.id)
    .bind(&lease.owner)
    .bind(lease.attempt)
    .bind(result)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Marks the job failed for good; false when the lease is no longer ours.
pub async fn fail(pool: &PgPool, lease: &Lease, error: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE jobs SET state = 'failed', error = $4,
                lease_owner = NULL, lease_until = NULL, finished_at = now(), updated_at = now()
         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'running'",
    )
    .bind(lease.id)
    .bind(&lease.owner)
    .bind(lease.attempt)
    .bind(error)
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

/// Queues the job again after `delay`, or fails it when this was its last attempt. Returns the
/// new state, or `None` when the lease is no longer ours.
pub async fn retry(
    pool: &PgPool,
    lease: &Lease,
    error: &str,
    delay: Duration,
) -> sqlx::Result<Option<JobState>> {
    let state: Option<String> = sqlx::query_scalar(
        "UPDATE jobs SET
                state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,
                finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
                run_after = now() + make_interval(secs => $5),
                error = $4, lease_owner = NULL, lease_until = NULL, updated_at = now()
         WHERE id = $1 AND lease_owner = $2 AND attempts = $3 AND state = 'running'
         RETURNING state",
    )
    .bind(lease.id)
    .bind(&lease.owner)
    .bind(lease.attempt)
    .bind(error)
    .bind(secs(delay))
    .fetch_optional(pool)
    .await?;
    state
        .map(|s| {
            s.parse()
                .map_err(|e: UnknownJobState| sqlx::Error::Decode(e.into()))
        })
        .transpose()
}
