//! Setup notices each admin has dismissed (migration 0030). The keys are
//! `web::notices::SetupNotice::key()`; loading them rides on the session lookup
//! (`db::sessions::find_with_user`).
use sqlx::PgConnection;

/// Records that `user_id` has read `notice`; dismissing twice is the same as once.
pub async fn dismiss(conn: &mut PgConnection, user_id: i64, notice: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO dismissed_notices (user_id, notice) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(notice)
    .execute(conn)
    .await?;
    Ok(())
}
