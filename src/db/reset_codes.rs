//! One-time reset codes (migration 0044: `reset_codes`, one per student).
use sqlx::PgConnection;
use time::OffsetDateTime;

/// Gives `user_id` this code (replacing any earlier one).
pub async fn put(
    conn: &mut PgConnection,
    user_id: i64,
    code_hash: &str,
    expires_at: OffsetDateTime,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO reset_codes (user_id, code_hash, expires_at, created_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id) DO UPDATE
         SET code_hash = $2, expires_at = $3, created_by = $4, created_at = now()",
    )
    .bind(user_id)
    .bind(code_hash)
    .bind(expires_at)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// The code's hash and end, if the person has one.
pub async fn find(
    conn: &mut PgConnection,
    user_id: i64,
) -> sqlx::Result<Option<(String, OffsetDateTime)>> {
    sqlx::query_as("SELECT code_hash, expires_at FROM reset_codes WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

/// Uses the code up; `false` when it was gone already (used by a parallel request).
pub async fn take(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM reset_codes WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
