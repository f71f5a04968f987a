//! The calendar's clock: the camp's clock (`domain::clock`), which announcements read too.
pub use crate::domain::clock::*;
