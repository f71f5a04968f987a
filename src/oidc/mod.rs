//! hubdesk as an OpenID Connect provider for JupyterHub: authorization code flow with PKCE,
//! refresh token rotation, userinfo, discovery, JWKS, end-session and revocation.
//! Errors follow RFC 6749 §4.1.2.1 (redirect) and §5.2 (token endpoint JSON). The endpoints are
//! routed in `app.rs`.
pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod clients;
pub mod discovery;
pub mod error;
pub mod keys;
pub mod logout;
pub mod params;
pub mod provider;
pub mod token;
pub mod userinfo;

pub use clients::{ClientRegistry, RegisteredClient};
pub use keys::KeyRing;
pub use provider::Oidc;

/// Authorization codes live one minute at most.
pub const CODE_TTL_SECS: i64 = 60;

/// Scopes hubdesk knows; others are refused with `invalid_scope`.
pub const SCOPES: &[&str] = &["openid", "profile", "groups", "offline_access"];
