//! The typed domain: values are parsed once at the edge and trusted afterwards.
pub mod cohort;
pub mod display_name;
pub mod password;
pub mod role;
pub mod username;

pub use cohort::{Cohort, CohortError};
pub use display_name::{DisplayName, DisplayNameError};
pub use password::{NewPassword, PasswordError};
pub use role::Role;
pub use username::{Username, UsernameError};
