//! The roll board's rows and the spawn timeline (migration 0046: `users.last_login_at`,
//! `spawn_attempts`).
use sqlx::{types::Json, PgConnection};
use time::OffsetDateTime;

use crate::domain::Username;

/// One step of a start: the swarm task as the sweep saw it change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `hub` (the hub's spawner, before any task) or the task's phase.
    pub phase: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub error: String,
    /// The error in plain words (`board::reasons`), empty when there is none.
    #[serde(default)]
    pub reason: String,
}

/// One start of a student's server.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    pub id: i64,
    pub username: Username,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
    /// `starting` | `ready` | `failed`
    pub outcome: String,
    pub reason: String,
    pub steps: Json<Vec<Step>>,
}

/// A student as the board lists them, with their newest start.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RollRow {
    pub username: Username,
    pub display_name: String,
    pub cohort: Option<String>,
    pub last_login_at: Option<OffsetDateTime>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub attempt_started_at: Option<OffsetDateTime>,
    pub attempt_ended_at: Option<OffsetDateTime>,
    /// The student's last "My notebook is stuck" within the hour.
    pub unstuck_at: Option<OffsetDateTime>,
}

/// How many starts are kept per student.
pub const KEEP: i64 = 20;

/// Enabled students (of one cohort, or all), by display name, with their newest start: one
/// query whatever their number.
pub async fn roll(conn: &mut PgConnection, cohort: Option<&str>) -> sqlx::Result<Vec<RollRow>> {
    sqlx::query_as(
        "SELECT u.username, u.display_name, u.cohort, u.last_login_at,
                a.outcome, a.reason, a.started_at AS attempt_started_at,
                a.ended_at AS attempt_ended_at,
                (SELECT max(at) FROM audit_log l WHERE l.action = 'server.unstick'
                   AND l.target = u.username AND l.at > now() - interval '1 hour') AS unstuck_at
         FROM users u
         LEFT JOIN LATERAL (
             SELECT outcome, reason, started_at, ended_at FROM spawn_attempts s
             WHERE s.username = u.username ORDER BY started_at DESC, id DESC LIMIT 1
         ) a ON TRUE
         WHERE u.role = 'student' AND NOT u.disabled AND ($1::text IS NULL OR u.cohort = $1)
         ORDER BY lower(u.display_name), u.username",
    )
    .bind(cohort)
    .fetch_all(conn)
    .await
}

/// Each student's newest start (the sweep's memory between two looks).
pub async fn latest(conn: &mut PgConnection) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as(
        "SELECT DISTINCT ON (username) id, username, started_at, ended_at, outcome, reason, steps
         FROM spawn_attempts ORDER BY username, started_at DESC, id DESC",
    )
    .fetch_all(conn)
    .await
}

/// A student's last starts, newest first.
pub async fn attempts_of(
    conn: &mut PgConnection,
    username: &Username,
) -> sqlx::Result<Vec<Attempt>> {
    sqlx::query_as(
        "SELECT id, username, started_at, ended_at, outcome, reason, steps FROM spawn_attempts
         WHERE username = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
    )
    .bind(username.as_str())
    .bind(KEEP)
    .fetch_all(conn)
    .await
}

/// Records a start of a student's server: open (`starting`, no end) or already decided.
/// Keeps the last [`KEEP`]. `None`: no such student (a hub user hubdesk does not know, staff).
pub async fn insert(
    conn: &mut PgConnection,
    username: &Username,
    started_at: OffsetDateTime,
    outcome: &str,
    reason: &str,
    steps: &[Step],
) -> sqlx::Result<Option<i64>> {
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO spawn_attempts (username, started_at, ended_at, outcome, reason, steps)
         SELECT $1, $2, CASE WHEN $3 = 'starting' THEN NULL ELSE now() END, $3, $4, $5
         WHERE EXISTS (SELECT 1 FROM users WHERE username = $1 AND role = 'student')
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(username.as_str())
    .bind(started_at)
    .bind(outcome)
    .bind(reason)
    .bind(Json(steps))
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_none() {
        return Ok(None);
    }
    sqlx::query(
        "DELETE FROM spawn_attempts WHERE username = $1 AND id NOT IN (
             SELECT id FROM spawn_attempts WHERE username = $1
             ORDER BY started_at DESC, id DESC LIMIT $2)",
    )
    .bind(username.as_str())
    .bind(KEEP)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Adds a step to an open start.
pub async fn add_step(conn: &mut PgConnection, id: i64, step: &Step) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE spawn_attempts SET steps = steps || jsonb_build_array($2::jsonb)
         WHERE id = $1 AND outcome = 'starting'",
    )
    .bind(id)
    .bind(Json(step))
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes an open start as `ready` or `failed`.
pub async fn close(
    conn: &mut PgConnection,
    id: i64,
    outcome: &str,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE spawn_attempts SET outcome = $2, reason = $3, ended_at = now()
         WHERE id = $1 AND outcome = 'starting'",
    )
    .bind(id)
    .bind(outcome)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Notes a login (the board's "never logged in" is a student without one).
pub async fn logged_in(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}
