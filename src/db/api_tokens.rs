use sqlx::PgConnection;

pub async fn insert(conn: &mut PgConnection, name: &str, token_hash: &[u8]) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO api_tokens (name, token_hash) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(token_hash)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The token's name, if the hash is known; marks it used.
pub async fn authenticate(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1 RETURNING name",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}
