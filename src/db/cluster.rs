//! What the cluster desk reads from hubdesk's own tables.
use sqlx::PgConnection;

/// Student accounts that can log in: the class the cluster must be able to hold.
pub async fn enabled_students(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'student' AND NOT disabled")
        .fetch_one(conn)
        .await
}
