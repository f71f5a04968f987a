//! Persistence for the OpenID Connect provider: grants, codes, tokens, signing keys.
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

pub struct NewGrant<'a> {
    pub id: Uuid,
    pub client_id: &'a str,
    pub user_id: i64,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    pub auth_time: OffsetDateTime,
}

/// Records a grant and its authorization code in one statement (one round trip, atomic).
pub async fn insert_grant_with_code(
    conn: &mut PgConnection,
    g: NewGrant<'_>,
    code_hash: &[u8],
    redirect_uri: &str,
    code_challenge: Option<&str>,
    ttl_secs: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH g AS (
             INSERT INTO oauth_grants (id, client_id, user_id, scope, nonce, auth_time)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, client_id)
         INSERT INTO oauth_codes (code_hash, grant_id, client_id, redirect_uri, code_challenge, expires_at)
         SELECT $7, g.id, g.client_id, $8, $9, now() + make_interval(secs => $10) FROM g",
    )
    .bind(g.id)
    .bind(g.client_id)
    .bind(g.user_id)
    .bind(g.scope)
    .bind(g.nonce)
    .bind(g.auth_time)
    .bind(code_hash)
    .bind(redirect_uri)
    .bind(code_challenge)
    .bind(ttl_secs as f64)
    .execute(conn)
    .await?;
    Ok(())
}

/// A just-redeemed code with the grant and user it speaks for.
#[derive(Debug, sqlx::FromRow)]
pub struct RedeemedCode {
    #[sqlx(flatten)]
    pub grant: GrantUser,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub expired: bool,
}

/// Marks the code used and returns it with its grant, atomically: of two concurrent
/// redemptions exactly one gets the row.
pub async fn redeem_code(
    conn: &mut PgConnection,
    code_hash: &[u8],
) -> sqlx::Result<Option<RedeemedCode>> {
    sqlx::query_as(&format!(
        "WITH c AS (
             UPDATE oauth_codes SET used_at = now() WHERE code_hash = $1 AND used_at IS NULL
             RETURNING grant_id, redirect_uri, code_challenge, expires_at < now() AS expired)
         {GRANT_USER_COLUMNS}, c.redirect_uri, c.code_challenge, c.expired
         FROM c JOIN oauth_grants g ON g.id = c.grant_id JOIN users u ON u.id = g.user_id"
    ))
    .bind(code_hash)
    .fetch_optional(conn)
    .await
}

/// The grant of a code that was already used (a replay), if the code exists.
pub async fn used_code_grant(
    conn: &mut PgConnection,
    code_hash: &[u8],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT grant_id FROM oauth_codes WHERE code_hash = $1 AND used_at IS NOT NULL",
    )
    .bind(code_hash)
    .fetch_optional(conn)
    .await
}

pub async fn revoke_grant(conn: &mut PgConnection, grant_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE oauth_grants SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL")
        .bind(grant_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM oauth_tokens WHERE grant_id = $1 AND kind = 'access'")
        .bind(grant_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every grant of a user (disable, password reset, logout); returns how many.
pub async fn revoke_user_grants(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<u64> {
    let n = sqlx::query(
        "UPDATE oauth_grants SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query(
        "DELETE FROM oauth_tokens WHERE kind = 'access' AND grant_id IN (SELECT id FROM oauth_grants WHERE user_id = $1)",
    )
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(n)
}

/// Lifetimes of the tokens issued for a grant.
pub struct TokenLifetimes {
    pub access_secs: i64,
    pub refresh_secs: i64,
    /// No refresh token outlives this (the login plus the absolute session lifetime): rotation
    /// cannot keep a grant, or a stolen refresh token, alive for ever.
    pub grant_ends_at: OffsetDateTime,
}

/// A new access token and refresh token for a grant, in one statement.
pub async fn insert_tokens(
    conn: &mut PgConnection,
    grant_id: Uuid,
    access_hash: &[u8],
    refresh_hash: &[u8],
    ttl: &TokenLifetimes,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO oauth_tokens (token_hash, grant_id, kind, expires_at) VALUES
            ($1, $2, 'access', now() + make_interval(secs => $3)),
            ($4, $2, 'refresh', LEAST(now() + make_interval(secs => $5), $6))",
    )
    .bind(access_hash)
    .bind(grant_id)
    .bind(ttl.access_secs as f64)
    .bind(refresh_hash)
    .bind(ttl.refresh_secs as f64)
    .bind(ttl.grant_ends_at)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
pub struct RefreshRow {
    pub grant_id: Uuid,
    pub expired: bool,
}

/// Uses a refresh token once. `None`: unknown or already used (see `used_refresh`).
pub async fn use_refresh(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<RefreshRow>> {
    sqlx::query_as(
        "UPDATE oauth_tokens SET used_at = now()
         WHERE token_hash = $1 AND kind = 'refresh' AND used_at IS NULL
         RETURNING grant_id, expires_at < now() AS expired",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct UsedRefresh {
    pub grant_id: Uuid,
    pub expired: bool,
    /// Used within the grace period (a concurrent refresh by the same client).
    pub recent: bool,
    pub grant_revoked: bool,
}

/// A refresh token that was used already, if it exists.
pub async fn used_refresh(
    conn: &mut PgConnection,
    token_hash: &[u8],
    grace_secs: i64,
) -> sqlx::Result<Option<UsedRefresh>> {
    sqlx::query_as(
        "SELECT t.grant_id, t.expires_at < now() AS expired,
                t.used_at > now() - make_interval(secs => $2) AS recent,
                g.revoked_at IS NOT NULL AS grant_revoked
         FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id
         WHERE t.token_hash = $1 AND t.kind = 'refresh' AND t.used_at IS NOT NULL",
    )
    .bind(token_hash)
    .bind(grace_secs as f64)
    .fetch_optional(conn)
    .await
}

/// What a token or grant speaks for: the grant and its (still enabled) user.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantUser {
    pub grant_id: Uuid,
    pub client_id: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: OffsetDateTime,
    pub revoked: bool,
    pub user_id: i64,
    pub subject: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub cohort: Option<String>,
    pub disabled: bool,
    /// A counselor's cohorts when an admin chose some (`users.cohorts`); `None` otherwise.
    pub looks_after: Option<Vec<String>>,
}

const GRANT_USER_COLUMNS: &str =
    "SELECT g.id AS grant_id, g.client_id, g.scope, g.nonce, g.auth_time,
        g.revoked_at IS NOT NULL AS revoked, u.id AS user_id, u.subject, u.username, u.display_name,
        u.role, u.cohort, u.disabled,
        CASE WHEN u.role = 'counselor' THEN u.cohorts END AS looks_after";
const GRANT_USER_FROM: &str = " FROM oauth_grants g JOIN users u ON u.id = g.user_id";

pub async fn grant_user(
    conn: &mut PgConnection,
    grant_id: Uuid,
) -> sqlx::Result<Option<GrantUser>> {
    sqlx::query_as(&format!(
        "{GRANT_USER_COLUMNS}{GRANT_USER_FROM} WHERE g.id = $1"
    ))
    .bind(grant_id)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct AccessToken {
    #[sqlx(flatten)]
    pub grant: GrantUser,
    pub token_expires_at: OffsetDateTime,
}

/// The live grant behind an access token (unexpired, grant not revoked, user enabled).
pub async fn access_token_user(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<AccessToken>> {
    sqlx::query_as(&format!(
        "{GRANT_USER_COLUMNS}, t.expires_at AS token_expires_at{GRANT_USER_FROM} JOIN oauth_tokens t ON t.grant_id = g.id
         WHERE t.token_hash = $1 AND t.kind = 'access' AND t.expires_at > now()
           AND g.revoked_at IS NULL AND NOT u.disabled"
    ))
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

/// What a revocation request ended.
pub enum Revoked {
    Nothing,
    Grant(Uuid),
    Token,
    /// The token belongs to another client: left alone, and the request refused (§2.1).
    NotYours,
}

/// RFC 7009: a refresh token revokes its grant, an access token only itself. Tokens of other
/// clients are left alone (`NotYours`).
pub async fn revoke_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
    client_id: &str,
) -> sqlx::Result<Revoked> {
    let row: Option<(Uuid, String, String)> = sqlx::query_as(
        "SELECT t.grant_id, t.kind, g.client_id FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((grant, kind, owner)) if owner == client_id => {
            if kind == "refresh" {
                revoke_grant(conn, grant).await?;
                Ok(Revoked::Grant(grant))
            } else {
                sqlx::query("DELETE FROM oauth_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(conn)
                    .await?;
                Ok(Revoked::Token)
            }
        }
        Some(_) => Ok(Revoked::NotYours),
        None => Ok(Revoked::Nothing),
    }
}

/// How long a retired signing key stays published (and stored) after a rotation.
pub const RETIRED_KEY_DAYS: i32 = 1;

/// The keys to publish, newest first: the current one and those retired less than
/// `RETIRED_KEY_DAYS` ago; `ready` says the key has been stored for `ready_after_secs`.
/// A stored signing key: (alg, kid, PKCS#8 DER, published long enough to sign).
pub type StoredKey = (String, String, Vec<u8>, bool);

pub async fn published_signing_keys(
    conn: &mut PgConnection,
    ready_after_secs: i64,
) -> sqlx::Result<Vec<StoredKey>> {
    sqlx::query_as(
        "SELECT alg, kid, private_der, created_at <= now() - make_interval(secs => $2) AS ready
           FROM oidc_keys
          WHERE retired_at IS NULL OR retired_at > now() - make_interval(days => $1)
          ORDER BY created_at DESC",
    )
    .bind(RETIRED_KEY_DAYS)
    .bind(ready_after_secs as f64)
    .fetch_all(conn)
    .await
}

/// Whether a current (not retired) key of `alg` exists: an RSA key is costly to generate, so
/// it is made only when missing.
pub async fn has_current_key(conn: &mut PgConnection, alg: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM oidc_keys WHERE alg = $1 AND retired_at IS NULL)",
    )
    .bind(alg)
    .fetch_one(conn)
    .await
}

/// Stores a key unless a current one of its algorithm exists already (the unique index on the
/// current key per algorithm makes two instances starting at once agree on one).
pub async fn insert_signing_key(
    conn: &mut PgConnection,
    alg: &str,
    kid: &str,
    der: &[u8],
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO oidc_keys (alg, kid, private_der) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(alg)
    .bind(kid)
    .bind(der)
    .execute(conn)
    .await?;
    Ok(())
}

/// Retires the current signing key of `alg` and stores `kid` as the new one.
pub async fn rotate_signing_key(
    tx: &mut PgConnection,
    alg: &str,
    kid: &str,
    der: &[u8],
) -> sqlx::Result<u64> {
    let retired = sqlx::query(
        "UPDATE oidc_keys SET retired_at = now() WHERE retired_at IS NULL AND alg = $1",
    )
    .bind(alg)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("INSERT INTO oidc_keys (alg, kid, private_der) VALUES ($1, $2, $3)")
        .bind(alg)
        .bind(kid)
        .bind(der)
        .execute(tx)
        .await?;
    Ok(retired)
}

pub async fn delete_expired(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM oauth_codes WHERE expires_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM oauth_tokens WHERE expires_at < now() - interval '1 day'")
        .execute(&mut *conn)
        .await?;
    // A grant whose codes and tokens are all gone (expired a day ago, swept above) is done.
    sqlx::query(
        "DELETE FROM oauth_grants g WHERE g.created_at < now() - interval '1 day'
           AND NOT EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.grant_id = g.id)
           AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.grant_id = g.id)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM oidc_keys WHERE retired_at < now() - make_interval(days => $1)")
        .bind(RETIRED_KEY_DAYS)
        .execute(conn)
        .await?;
    Ok(())
}
