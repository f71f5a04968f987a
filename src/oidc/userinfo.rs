//! The userinfo endpoint (OIDC Core §5.3): GET or POST with a bearer token.
use actix_web::{web, web::Bytes, HttpRequest, HttpResponse};

use super::{claims::UserInfo, error::BearerError};
use crate::{auth::secret, db, state::AppState};

pub async fn userinfo(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, BearerError> {
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(BearerError::Missing)?;
    if token.len() != 43 {
        return Err(BearerError::Invalid);
    }
    let hash = secret::hash_token(token);
    let body = match state.oidc.cache.get(&hash) {
        Some(body) => body,
        None => {
            let mut conn = state.pool.acquire().await?;
            let t = db::oauth::access_token_user(&mut conn, &hash)
                .await?
                .ok_or(BearerError::Invalid)?;
            let body = Bytes::from(
                serde_json::to_vec(&UserInfo::of(&t.grant)).map_err(|_| BearerError::Internal)?,
            );
            state.oidc.cache.insert(
                hash,
                body.clone(),
                t.grant.user_id,
                t.grant.grant_id,
                t.token_expires_at,
            );
            body
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .content_type("application/json")
        .body(body))
}
