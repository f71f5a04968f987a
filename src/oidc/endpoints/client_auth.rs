//! Client authentication at the token and revocation endpoints.
use actix_web::HttpRequest;
use base64::{engine::general_purpose::STANDARD, Engine};

use super::{error::OAuthError, params::Params};
use crate::oidc::{Oidc, RegisteredClient};

/// Client authentication: HTTP Basic (RFC 6749 §2.3.1, form-encoded id and secret) or
/// `client_id` + `client_secret` in the body; never both.
pub fn authenticate<'a>(
    oidc: &'a Oidc,
    req: &HttpRequest,
    p: &Params,
) -> Result<&'a RegisteredClient, OAuthError> {
    let header = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok());
    let basic = header.and_then(|h| {
        h.strip_prefix("Basic ")
            .or_else(|| h.strip_prefix("basic "))
    });
    if header.is_some() && basic.is_none() {
        return Err(OAuthError::invalid_client(true));
    }
    let (id, secret, used_basic) = match basic {
        Some(b) => {
            if p.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "use one client authentication method, not two",
                ));
            }
            let decoded = STANDARD
                .decode(b.trim())
                .map_err(|_| OAuthError::invalid_client(true))?;
            let decoded =
                String::from_utf8(decoded).map_err(|_| OAuthError::invalid_client(true))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client(true))?;
            let dec = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            let (id, secret) = (dec(id), dec(secret));
            if p.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, secret, true)
        }
        None => match (p.get("client_id"), p.get("client_secret")) {
            (Some(id), Some(s)) => (id.to_string(), s.to_string(), false),
            _ => return Err(OAuthError::invalid_client(false)),
        },
    };
    oidc.clients
        .authenticate(&id, &secret)
        .ok_or(OAuthError::invalid_client(used_basic))
}
