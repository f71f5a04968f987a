use sqlx::PgConnection;

pub async fn insert(
    conn: &mut PgConnection,
    token_hash: &[u8],
    valid_secs: i64,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO setup_tokens (token_hash, expires_at) VALUES ($1, now() + make_interval(secs => $2))")
        .bind(token_hash)
        .bind(valid_secs as f64)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn is_valid(conn: &mut PgConnection, token_hash: &[u8]) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM setup_tokens WHERE token_hash = $1 AND expires_at > now())",
    )
    .bind(token_hash)
    .fetch_one(conn)
    .await
}

/// Consumes the token (single use); true if it was valid.
pub async fn consume(conn: &mut PgConnection, token_hash: &[u8]) -> sqlx::Result<bool> {
    let r = sqlx::query("DELETE FROM setup_tokens WHERE token_hash = $1 AND expires_at > now()")
        .bind(token_hash)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn clear(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM setup_tokens")
        .execute(conn)
        .await?;
    Ok(())
}
