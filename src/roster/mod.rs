//! The student roster: generated usernames and passwords, CSV import, and the operations
//! counselors perform (create, reset password, disable, unlock). Shared by pages and the API;
//! each operation writes the audit log in the same transaction.
pub mod generate;
pub mod import;
pub mod ops;

pub use ops::{Actor, Credential, RosterError};
