//! The userinfo endpoint (OIDC Core §5.3): GET or POST with a bearer token.
use actix_web::{web, web::Bytes, HttpRequest, HttpResponse};

use super::error::BearerError;
use crate::oidc::{claims::UserInfo, Oidc};
use crate::{
    auth::{bearer, secret},
    db,
};

/// The access token: in the `Authorization` header (RFC 6750 §2.1) or, for a POST, as
/// `access_token` in a form-encoded body (§2.2, pyoidc's default). Both at once is refused.
fn presented_token<'a>(req: &'a HttpRequest, body: &'a [u8]) -> Result<String, BearerError> {
    let form = req.method() == actix_web::http::Method::POST
        && req
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
    let in_body = form
        .then(|| {
            url::form_urlencoded::parse(body)
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v.into_owned())
        })
        .flatten();
    match (bearer::token(req), in_body) {
        (Some(_), Some(_)) => Err(BearerError::TwoMethods),
        (Some(header), None) => Ok(header.to_string()),
        (None, Some(body)) => Ok(body),
        (None, None) => Err(BearerError::Missing),
    }
}

pub async fn userinfo(
    oidc: web::Data<Oidc>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, BearerError> {
    let token = presented_token(&req, &body)?;
    let token = token.as_str();
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
