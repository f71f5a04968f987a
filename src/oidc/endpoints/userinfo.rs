//! The userinfo endpoint (OIDC Core §5.3): GET or POST with a bearer token.
use actix_web::{web, web::Bytes, HttpRequest, HttpResponse};

use super::error::BearerError;
use crate::oidc::{claims::UserInfo, Oidc};
use crate::{
    auth::{bearer, secret},
    db,
};

pub async fn userinfo(
    oidc: web::Data<Oidc>,
    req: HttpRequest,
) -> Result<HttpResponse, BearerError> {
    let token = bearer::token(&req).ok_or(BearerError::Missing)?;
    if token.len() != 43 {
        return Err(BearerError::Invalid);
    }
    let hash = secret::hash_token(token);
    let body = match oidc.tokens.get(&hash) {
        Some(body) => body,
        None => {
            let mut conn = oidc.pool.acquire().await?;
            let t = db::oauth::access_token_user(&mut conn, &hash)
                .await?
                .ok_or(BearerError::Invalid)?;
            let body = Bytes::from(
                serde_json::to_vec(&UserInfo::of(&t.grant)).map_err(|_| BearerError::Internal)?,
            );
            oidc.tokens.insert(
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
