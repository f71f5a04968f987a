//! What each home got of a hand-out (`handout_homes`, migration 0048).
use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Username;

/// One home's share of a hand-out.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HandoutHome {
    pub job_id: Uuid,
    pub folder: String,
    pub at: OffsetDateTime,
    pub written: i64,
    pub unchanged: i64,
    /// `[{"path": …, "beside": …}]`.
    pub conflicts: Value,
}

/// Records (or, on a resumed job, records again) what `username`'s home got.
pub async fn record(
    conn: &mut PgConnection,
    job_id: Uuid,
    username: &Username,
    folder: &str,
    written: u64,
    unchanged: u64,
    conflicts: &Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO handout_homes (job_id, user_id, folder, written, unchanged, conflicts)
         SELECT $1, u.id, $3, $4, $5, $6 FROM users u WHERE u.username = $2
         ON CONFLICT (job_id, user_id) DO UPDATE
         SET at = now(), written = EXCLUDED.written, unchanged = EXCLUDED.unchanged,
             conflicts = EXCLUDED.conflicts",
    )
    .bind(job_id)
    .bind(username.as_str())
    .bind(folder)
    .bind(i64::try_from(written).unwrap_or(i64::MAX))
    .bind(i64::try_from(unchanged).unwrap_or(i64::MAX))
    .bind(conflicts)
    .execute(conn)
    .await?;
    Ok(())
}

/// A student's latest hand-outs, newest first.
pub async fn of_student(
    conn: &mut PgConnection,
    username: &Username,
    limit: i64,
) -> sqlx::Result<Vec<HandoutHome>> {
    sqlx::query_as(
        "SELECT h.job_id, h.folder, h.at, h.written, h.unchanged, h.conflicts
         FROM handout_homes h JOIN users u ON u.id = h.user_id
         WHERE u.username = $1 ORDER BY h.at DESC LIMIT $2",
    )
    .bind(username.as_str())
    .bind(limit)
    .fetch_all(conn)
    .await
}
