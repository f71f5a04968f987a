//! Single-use forms (`spent_forms`) and the API's idempotency keys (`idempotency_keys`): the
//! record of what a first submission did, written under an advisory lock on its key.
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// How long a spent form (and an idempotency key) is remembered: a day covers Back, reload
/// and a tab left open overnight.
pub const KEEP_HOURS: i64 = 24;
/// How long sealed passwords wait for the result page's first view.
pub const SEALED_MINUTES: i64 = 10;

/// Takes the advisory lock on `key` for the transaction (until it ends) if nobody holds it.
pub async fn try_lock(conn: &mut PgConnection, key: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(conn)
        .await
}

/// Where the first submission of `form_id` sent its browser, if it was done.
pub async fn spent_url(
    conn: &mut PgConnection,
    user_id: i64,
    form_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT result_url FROM spent_forms WHERE user_id = $1 AND form_id = $2")
        .bind(user_id)
        .bind(form_id)
        .fetch_optional(conn)
        .await
}

pub async fn record(
    conn: &mut PgConnection,
    user_id: i64,
    form_id: Uuid,
    result_url: &str,
    result: Option<&serde_json::Value>,
    sealed: Option<&[u8]>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO spent_forms (user_id, form_id, result_url, result, sealed)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(form_id)
    .bind(result_url)
    .bind(result)
    .bind(sealed)
    .execute(conn)
    .await
    .map(|_| ())
}

/// A spent form as its result page reads it.
#[derive(Debug, sqlx::FromRow)]
pub struct SpentForm {
    pub result_url: String,
    pub result: Option<serde_json::Value>,
    /// The sealed passwords, present only for the first view.
    pub sealed: Option<Vec<u8>>,
    pub created_at: OffsetDateTime,
}

/// The spent form, its row locked until the transaction ends (so of two views at the same
/// instant one sees the secret, the other after it was taken).
pub async fn find_for_update(
    conn: &mut PgConnection,
    user_id: i64,
    form_id: Uuid,
) -> sqlx::Result<Option<SpentForm>> {
    sqlx::query_as(
        "SELECT result_url, result, sealed, created_at FROM spent_forms
         WHERE user_id = $1 AND form_id = $2 FOR UPDATE",
    )
    .bind(user_id)
    .bind(form_id)
    .fetch_optional(conn)
    .await
}

/// Forgets the sealed secret (it was shown).
pub async fn clear_sealed(
    conn: &mut PgConnection,
    user_id: i64,
    form_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE spent_forms SET sealed = NULL WHERE user_id = $1 AND form_id = $2")
        .bind(user_id)
        .bind(form_id)
        .execute(conn)
        .await
        .map(|_| ())
}

/// A stored API response.
#[derive(Debug, sqlx::FromRow)]
pub struct StoredResponse {
    pub fingerprint: Vec<u8>,
    pub status: i16,
    pub sealed_body: Vec<u8>,
}

pub async fn find_response(
    conn: &mut PgConnection,
    token_hash: &[u8],
    key: &str,
) -> sqlx::Result<Option<StoredResponse>> {
    sqlx::query_as(
        "SELECT fingerprint, status, sealed_body FROM idempotency_keys
         WHERE token_hash = $1 AND key = $2 AND created_at > now() - make_interval(hours => $3)",
    )
    .bind(token_hash)
    .bind(key)
    .bind(KEEP_HOURS as i32)
    .fetch_optional(conn)
    .await
}

pub async fn store_response(
    conn: &mut PgConnection,
    token_hash: &[u8],
    key: &str,
    fingerprint: &[u8],
    status: u16,
    sealed_body: &[u8],
) -> sqlx::Result<()> {
    // An expired row of the same key (not swept yet) gives way.
    sqlx::query(
        "INSERT INTO idempotency_keys (token_hash, key, fingerprint, status, sealed_body)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (token_hash, key) DO UPDATE SET fingerprint = $3, status = $4,
            sealed_body = $5, created_at = now()",
    )
    .bind(token_hash)
    .bind(key)
    .bind(fingerprint)
    .bind(status as i16)
    .bind(sealed_body)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The sweeper's part: spent forms, drafts and idempotency keys after a day, sealed passwords
/// nobody came to see after minutes.
pub async fn delete_expired(conn: &mut PgConnection) -> sqlx::Result<()> {
    let hours = KEEP_HOURS as i32;
    sqlx::query("DELETE FROM spent_forms WHERE created_at < now() - make_interval(hours => $1)")
        .bind(hours)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE spent_forms SET sealed = NULL
         WHERE sealed IS NOT NULL AND created_at < now() - make_interval(mins => $1)",
    )
    .bind(SEALED_MINUTES as i32)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM import_drafts WHERE created_at < now() - make_interval(hours => $1)")
        .bind(hours)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)",
    )
    .bind(hours)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
