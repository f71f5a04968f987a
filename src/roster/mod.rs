//! The people desk: generated usernames and passwords, CSV import, and the operations
//! counselors and admins perform (create, reset password, disable, unlock, export). Services
//! (`ops`, `import`, `generate`) take handles and never import `web` or `state`; `pages/` and
//! `api.rs` are the HTTP side.
pub mod api;
pub mod generate;
pub mod import;
pub mod ops;
pub mod pages;

pub use ops::{Credential, Roster, RosterError, Scope};
