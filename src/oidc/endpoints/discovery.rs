//! OpenID Provider metadata and the JWKS.
use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::oidc::Oidc;

pub async fn configuration(oidc: web::Data<Oidc>) -> HttpResponse {
    let iss = &oidc.config.public_url;
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/oauth/authorize"),
        "token_endpoint": format!("{iss}/oauth/token"),
        "userinfo_endpoint": format!("{iss}/oauth/userinfo"),
        "jwks_uri": format!("{iss}/oauth/jwks.json"),
        "end_session_endpoint": format!("{iss}/oauth/logout"),
        "revocation_endpoint": format!("{iss}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "scopes_supported": crate::oidc::SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "preferred_username", "name", "groups"],
    }))
}

pub async fn jwks(oidc: web::Data<Oidc>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            "Cache-Control",
            format!(
                "public, max-age={}",
                crate::oidc::keys::JWKS_MAX_AGE.as_secs()
            ),
        ))
        .json(oidc.keys.jwks())
}
