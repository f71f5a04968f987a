//! The token endpoint (RFC 6749 §3.2, §4.1.3, §6) and revocation (RFC 7009).
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use time::OffsetDateTime;

use super::{authorize::pkce_matches, client_auth, error::OAuthError, params::Params};
use crate::{
    auth::secret,
    db::{self, oauth::GrantUser},
    domain::Role,
    metrics::Metrics,
    oidc::{
        claims::{at_hash, groups, IdToken},
        Oidc, RegisteredClient,
    },
};

/// Reads a form body; anything else is `invalid_request`.
fn form_params(req: &HttpRequest, body: &[u8]) -> Result<Params, OAuthError> {
    let ct = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let p = Params::parse(body);
    if let Some(d) = p.duplicates.first() {
        return Err(OAuthError::invalid_request(format!(
            "parameter '{d}' is repeated"
        )));
    }
    Ok(p)
}

pub async fn token(
    oidc: web::Data<Oidc>,
    metrics: web::Data<Metrics>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let p = form_params(&req, &body)?;
    let client = client_auth::authenticate(&oidc, &req, &p)?;
    let grant = p.get("grant_type");
    let issued = match grant {
        Some("authorization_code") => authorization_code(&oidc, client, &p).await?,
        Some("refresh_token") => refresh(&oidc, client, &p).await?,
        None => return Err(OAuthError::invalid_request("grant_type is required")),
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "supported: authorization_code, refresh_token",
            ))
        }
    };
    metrics.token_issued(grant.unwrap_or_default());
    Ok(issued)
}

async fn authorization_code(
    oidc: &Oidc,
    client: &RegisteredClient,
    p: &Params,
) -> Result<HttpResponse, OAuthError> {
    let code = p
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
    let hash = secret::hash_token(code);
    let mut tx = oidc.pool.begin().await?;
    let Some(row) = db::oauth::redeem_code(&mut tx, &hash).await? else {
        // A second use of a code is an attack signal: revoke what the first use obtained.
        if let Some(grant) = db::oauth::used_code_grant(&mut tx, &hash).await? {
            return Err(revoke_replayed(oidc, tx, client, grant, "authorization code").await);
        }
        return Err(OAuthError::invalid_grant("unknown authorization code"));
    };
    // From here on the code is spent, whatever the outcome.
    let outcome = check_code(client, p, redirect_uri, &row);
    if let Err(e) = outcome {
        tx.commit().await?;
        return Err(e);
    }
    if row.grant.revoked || row.grant.disabled {
        tx.commit().await?;
        return Err(OAuthError::invalid_grant("the authorization was revoked"));
    }
    let resp = issue(oidc, &mut tx, client, &row.grant).await?;
    tx.commit().await?;
    Ok(resp)
}

fn check_code(
    client: &RegisteredClient,
    p: &Params,
    redirect_uri: &str,
    row: &db::oauth::RedeemedCode,
) -> Result<(), OAuthError> {
    if row.grant.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if row.expired {
        return Err(OAuthError::invalid_grant(
            "the authorization code has expired",
        ));
    }
    if row.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&row.code_challenge, p.get("code_verifier")) {
        (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        // RFC 9700 §2.1.1: a verifier for a code issued without a challenge is a downgrade.
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier sent but no code_challenge was used",
        )),
        (None, None) => Ok(()),
    }
}

/// How long a just-used refresh token is still honoured (concurrent refreshes by one client).
pub const REFRESH_GRACE_SECS: i64 = 30;

/// A spent code or refresh token came back: revoke the grant it belongs to, and say so.
async fn revoke_replayed(
    oidc: &Oidc,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    client: &RegisteredClient,
    grant: uuid::Uuid,
    what: &str,
) -> OAuthError {
    let revoked = async {
        db::oauth::revoke_grant(&mut tx, grant).await?;
        tx.commit().await
    };
    if let Err(e) = revoked.await {
        return e.into();
    }
    oidc.tokens.forget_grant(grant);
    tracing::warn!(client = %client.id, "{what} used twice; grant revoked");
    OAuthError::invalid_grant(format!("the {what} was already used"))
}

async fn refresh(
    oidc: &Oidc,
    client: &RegisteredClient,
    p: &Params,
) -> Result<HttpResponse, OAuthError> {
    let token = p
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
    let hash = secret::hash_token(token);
    let mut tx = oidc.pool.begin().await?;
    let row = match db::oauth::use_refresh(&mut tx, &hash).await? {
        Some(row) => row,
        None => match db::oauth::used_refresh(&mut tx, &hash, REFRESH_GRACE_SECS).await? {
            None => return Err(OAuthError::invalid_grant("unknown refresh token")),
            Some(used) if used.grant_revoked => {
                return Err(OAuthError::invalid_grant("the authorization was revoked"))
            }
            // The hub does not serialise refreshes: several requests of one browser may
            // present the same refresh token within moments. Each gets fresh tokens.
            Some(used) if used.recent => {
                tracing::info!(grant = %used.grant_id, "used refresh token presented again within the grace window");
                db::oauth::RefreshRow {
                    grant_id: used.grant_id,
                    expired: used.expired,
                }
            }
            // Refresh tokens rotate; an old one coming back later means it was stolen (or
            // the client is broken): end the whole grant.
            Some(used) => {
                return Err(revoke_replayed(oidc, tx, client, used.grant_id, "refresh token").await)
            }
        },
    };
    let grant = db::oauth::grant_user(&mut tx, row.grant_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("grant not found"))?;
    let problem = if grant.client_id != client.id {
        Some("the refresh token was issued to another client")
    } else if row.expired {
        Some("the refresh token has expired")
    } else if grant.revoked || grant.disabled {
        Some("the authorization was revoked")
    } else if let Some(scope) = p.get("scope") {
        let granted: Vec<&str> = grant.scope.split(' ').collect();
        scope
            .split(' ')
            .any(|s| !s.is_empty() && !granted.contains(&s))
            .then_some("scope exceeds the original grant")
    } else {
        None
    };
    if let Some(problem) = problem {
        // Roll back: a refused refresh does not spend the token, so the client's retries get
        // the same answer instead of looking like a replay.
        drop(tx);
        return Err(if problem.starts_with("scope") {
            OAuthError::new("invalid_scope", problem)
        } else {
            OAuthError::invalid_grant(problem)
        });
    }
    let resp = issue(oidc, &mut tx, client, &grant).await?;
    tx.commit().await?;
    Ok(resp)
}

/// New access and refresh tokens (and an id_token for `openid`) for a grant.
async fn issue(
    oidc: &Oidc,
    conn: &mut sqlx::PgConnection,
    client: &RegisteredClient,
    grant: &GrantUser,
) -> Result<HttpResponse, OAuthError> {
    let cfg = &oidc.config.oidc;
    let access = secret::random_token();
    let refresh = secret::random_token();
    let ttl = db::oauth::TokenLifetimes {
        access_secs: cfg.access_token_ttl_secs,
        refresh_secs: cfg.refresh_token_ttl_secs,
        // A hub login lasts no longer than a hubdesk session would: the absolute timeout,
        // counted from the password entry.
        grant_ends_at: time::Duration::try_from(oidc.config.absolute_timeout())
            .ok()
            .and_then(|d| grant.auth_time.checked_add(d))
            .unwrap_or_else(|| OffsetDateTime::now_utc() + time::Duration::days(3650)),
    };
    db::oauth::insert_tokens(
        conn,
        grant.grant_id,
        &secret::hash_token(&access),
        &secret::hash_token(&refresh),
        &ttl,
    )
    .await?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": cfg.access_token_ttl_secs,
        "refresh_token": refresh,
        "scope": grant.scope,
    });
    if grant.scope.split(' ').any(|s| s == "openid") {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let claims = IdToken {
            iss: &oidc.config.public_url,
            sub: grant.subject.to_string(),
            aud: &client.id,
            exp: now + cfg.id_token_ttl_secs,
            iat: now,
            auth_time: grant.auth_time.unix_timestamp(),
            nonce: grant.nonce.as_deref(),
            at_hash: at_hash(&access),
            preferred_username: &grant.username,
            name: &grant.display_name,
            groups: groups(
                Role::parse(&grant.role).unwrap_or(Role::Student),
                grant.cohort.as_deref(),
                grant.looks_after.as_deref(),
            ),
        };
        body["id_token"] = oidc.keys.sign(client.id_token_alg, &claims)?.into();
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"))
        .json(body))
}

/// RFC 7009: 200 for an unknown or already revoked token; 401 for bad client auth; 400
/// `unauthorized_client` for another client's token (§2.1), which stays valid.
pub async fn revoke(
    oidc: web::Data<Oidc>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthError> {
    let p = form_params(&req, &body)?;
    let client = client_auth::authenticate(&oidc, &req, &p)?;
    let token = p
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let mut conn = oidc.pool.acquire().await?;
    let hash = secret::hash_token(token);
    match db::oauth::revoke_token(&mut conn, &hash, &client.id).await? {
        db::oauth::Revoked::Grant(g) => oidc.tokens.forget_grant(g),
        db::oauth::Revoked::Token => oidc.tokens.forget_token(&hash),
        db::oauth::Revoked::Nothing => {}
        db::oauth::Revoked::NotYours => {
            return Err(OAuthError::new(
                "unauthorized_client",
                "the token was issued to another client",
            ))
        }
    }
    // An empty JSON object rather than an empty body: some clients parse every reply as JSON.
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({})))
}
