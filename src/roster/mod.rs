//! The people desk: generated usernames and passwords, CSV import, and the operations
//! counselors and admins perform (create, reset password, disable, unlock, export), and the
//! bulk password reset with its login cards (`reset_many`). Services (`ops`, `import`,
//! `generate`, `reset_many`) take handles and never import `web` or `state`; `pages/` and
//! `api.rs` are the HTTP side.
pub mod api;
pub mod generate;
pub mod import;
pub mod ops;
pub mod pages;
pub mod reach;
pub mod reset_code;
pub mod reset_many;

pub use ops::{Credential, Roster, RosterError, Scope};
