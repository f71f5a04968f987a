//! Form validation shared by the pages: messages collected per field, shown beside the field.
use std::{collections::HashMap, fmt::Display};

use crate::domain::{DisplayName, NewAccount, NewPassword, Username};

/// Error messages by field name.
#[derive(Debug, Default)]
pub struct FieldErrors(HashMap<&'static str, String>);

impl FieldErrors {
    /// The value, or `None` with the error recorded against `field` as a sentence.
    pub fn check<T, E: Display>(&mut self, field: &'static str, result: Result<T, E>) -> Option<T> {
        result
            .map_err(|e| self.add(field, sentence(&e.to_string())))
            .ok()
    }

    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.insert(field, message.into());
    }

    /// The message for `field`, empty when it is fine (templates test `is_empty()`).
    pub fn get(&self, field: &str) -> String {
        self.0.get(field).cloned().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn messages(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
}

pub use crate::domain::sentence;

pub fn new_account(
    errors: &mut FieldErrors,
    username: &str,
    display_name: &str,
    password: &str,
    min_length: usize,
) -> Option<NewAccount> {
    let username = errors.check(
        "username",
        Username::parse(&username.trim().to_ascii_lowercase()),
    );
    let display_name = errors.check("display_name", DisplayName::parse(display_name));
    let password = errors.check(
        "password",
        NewPassword::parse(
            password,
            min_length,
            username.as_ref().map(Username::as_str).unwrap_or(""),
        ),
    );
    Some(NewAccount {
        username: username?,
        display_name: display_name?,
        password: password?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        assert_eq!(sentence("username is empty"), "Username is empty.");
        assert_eq!(sentence("Done."), "Done.");
    }

    #[test]
    fn new_account_reports_every_bad_field() {
        let mut errors = FieldErrors::default();
        assert!(new_account(&mut errors, "Bad Name", "", "x", 8).is_none());
        assert!(!errors.get("username").is_empty());
        assert!(!errors.get("display_name").is_empty());
        assert!(!errors.get("password").is_empty());
        let mut errors = FieldErrors::default();
        let ok = new_account(
            &mut errors,
            " Carla ",
            "Carla C",
            "plum-rocket-lantern-7",
            8,
        )
        .unwrap();
        assert_eq!(ok.username.as_str(), "carla");
        assert!(errors.is_empty());
    }
}
