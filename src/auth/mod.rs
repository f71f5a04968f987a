//! Authentication mechanisms: password hashing, sessions, CSRF tokens, login throttling, the
//! gated password check, ending a person's access, and the userinfo token cache. A kit: it
//! imports no capability, no `state` and no `web`.
pub mod access;
pub mod bearer;
pub mod csrf;
pub mod gate;
pub mod password;
pub mod sealed;
pub mod secret;
pub mod session;
pub mod throttle;
pub mod token_cache;

pub use password::{Hasher, Verified};
pub use session::CurrentUser;
pub use token_cache::TokenCache;
