//! The userinfo endpoint (OIDC Core §5.3): GET or POST with a bearer token.
use actix_web::{web, HttpRequest, HttpResponse};

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
    let mut conn = state.pool.acquire().await?;
    let grant = db::oauth::access_token_user(&mut conn, &secret::hash_token(token))
        .await?
        .ok_or(BearerError::Invalid)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(UserInfo::of(&grant)))
}
