//! A person's own pages and what they do: log in and out, the landing page, changing one's own
//! password (or setting it with a counselor's one-time code), and first-run setup. Services here take handles and never import `web` or
//! `state`; `pages/` is the HTTP side.
pub mod login;
pub mod pages;
pub mod password;
pub mod reset_code;
pub mod setup;
pub mod tokens;
