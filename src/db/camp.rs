//! The camp's pause switch (migration 0043: `camp_pause`, one row).
use sqlx::PgConnection;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Pause {
    pub paused_at: OffsetDateTime,
    pub paused_by: String,
    pub message: String,
}

/// The pause, while the camp is paused.
pub async fn pause(conn: &mut PgConnection) -> sqlx::Result<Option<Pause>> {
    sqlx::query_as(
        "SELECT paused_at, COALESCE(paused_by, '') AS paused_by, message FROM camp_pause
         WHERE paused_at IS NOT NULL",
    )
    .fetch_optional(conn)
    .await
}

/// Pauses the camp (a second pause keeps the first one's time and changes the message);
/// `false` when it was paused already.
pub async fn set_paused(conn: &mut PgConnection, by: &str, message: &str) -> sqlx::Result<bool> {
    let was: Option<OffsetDateTime> =
        sqlx::query_scalar("SELECT paused_at FROM camp_pause FOR UPDATE")
            .fetch_optional(&mut *conn)
            .await?
            .flatten();
    sqlx::query(
        "UPDATE camp_pause SET paused_at = COALESCE(paused_at, now()), paused_by = $1, message = $2",
    )
    .bind(by)
    .bind(message)
    .execute(conn)
    .await?;
    Ok(was.is_none())
}

/// Resumes the camp; `false` when it was not paused.
pub async fn resume(conn: &mut PgConnection) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE camp_pause SET paused_at = NULL, paused_by = NULL, message = ''
         WHERE paused_at IS NOT NULL",
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
