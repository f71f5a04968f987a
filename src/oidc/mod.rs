//! hubdesk as an OpenID Connect provider for JupyterHub: authorization code flow with PKCE,
//! refresh token rotation, userinfo, discovery, JWKS, end-session and revocation.
//! Errors follow RFC 6749 §4.1.2.1 (redirect) and §5.2 (token endpoint JSON). The endpoints are
//! routed in `app.rs`.
pub mod claims;
pub mod clients;
pub mod endpoints;
pub mod keys;
pub mod provider;

pub use clients::{ClientRegistry, RegisteredClient};
pub use keys::KeyRing;
pub use provider::Oidc;

/// Authorization codes live one minute at most.
pub const CODE_TTL_SECS: i64 = 60;

/// Scopes hubdesk knows; others are refused with `invalid_scope`.
pub const SCOPES: &[&str] = &["openid", "profile", "groups", "offline_access"];
