//! Authentication: password hashing, sessions, CSRF, login throttling and role extractors.
pub mod csrf;
pub mod extract;
pub mod password;
pub mod secret;
pub mod session;
pub mod throttle;

pub use extract::{CurrentUser, MaybeUser, RequireAdmin, RequireCounselor, RequireUser};
pub use password::{Hasher, Verified};
