use sqlx::PgConnection;
use time::OffsetDateTime;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

pub async fn insert(
    conn: &mut PgConnection,
    id_hash: &[u8],
    user_id: i64,
    csrf_token: &str,
    user_agent: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, user_agent) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(csrf_token)
    .bind(user_agent.map(|ua| ua.chars().take(200).collect::<String>()))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(conn: &mut PgConnection, id_hash: &[u8]) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as(
        "SELECT user_id, csrf_token, created_at, last_seen_at FROM sessions WHERE id_hash = $1",
    )
    .bind(id_hash)
    .fetch_optional(conn)
    .await
}

pub async fn touch(conn: &mut PgConnection, id_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a user (password reset, disable); returns how many ended.
pub async fn delete_for_user(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Ends every session of a user except one (after a password change, the other devices).
pub async fn delete_others(
    conn: &mut PgConnection,
    user_id: i64,
    keep: &[u8],
) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

pub async fn delete_expired(
    conn: &mut PgConnection,
    idle_secs: i64,
    absolute_secs: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM sessions WHERE last_seen_at < now() - make_interval(secs => $1)
                                OR created_at < now() - make_interval(secs => $2)",
    )
    .bind(idle_secs as f64)
    .bind(absolute_secs as f64)
    .execute(conn)
    .await?
    .rows_affected())
}
