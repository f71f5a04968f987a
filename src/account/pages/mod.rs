//! A person's own pages.
pub mod landing;
pub mod login;
pub mod notices;
pub mod password;
pub mod reset_code;
pub mod setup;
pub mod tokens;
