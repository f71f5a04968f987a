//! The provider's HTTP side: each endpoint with the RFC error format it answers in.
pub mod announcements;
pub mod authorize;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod logout;
pub mod params;
pub mod profile;
pub mod token;
pub mod userinfo;
