//! hubdesk as an OpenID Connect provider for JupyterHub: authorization code flow with PKCE,
//! refresh token rotation, userinfo, discovery, JWKS, end-session and revocation.
//! Errors follow RFC 6749 §4.1.2.1 (redirect) and §5.2 (token endpoint JSON).
pub mod authorize;
pub mod cache;
pub mod claims;
pub mod clients;
pub mod discovery;
pub mod error;
pub mod keys;
pub mod logout;
pub mod params;
pub mod token;
pub mod userinfo;

use actix_web::web;

pub use clients::{ClientRegistry, RegisteredClient};
pub use keys::KeyRing;

/// Authorization codes live one minute at most.
pub const CODE_TTL_SECS: i64 = 60;

/// Scopes hubdesk knows; others are refused with `invalid_scope`.
pub const SCOPES: &[&str] = &["openid", "profile", "groups", "offline_access"];

pub struct Oidc {
    pub clients: ClientRegistry,
    pub keys: KeyRing,
    pub cache: cache::TokenCache,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(discovery::configuration),
    )
    .route("/oauth/jwks.json", web::get().to(discovery::jwks))
    .route("/oauth/authorize", web::get().to(authorize::authorize))
    .route("/oauth/token", web::post().to(token::token))
    .route("/oauth/userinfo", web::get().to(userinfo::userinfo))
    .route("/oauth/userinfo", web::post().to(userinfo::userinfo))
    .route("/oauth/revoke", web::post().to(token::revoke))
    .route("/oauth/logout", web::get().to(logout::end_session))
    .route(
        "/oauth/logout",
        web::post().to(logout::end_session_confirmed),
    );
}
