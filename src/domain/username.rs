use std::fmt;

/// A login name. It becomes a home directory, a Docker service name and a JupyterHub user, so
/// only `[a-z][a-z0-9-]{0,31}` passes, and never a reserved system name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Username(String);

pub const MAX_LEN: usize = 32;

/// Names that collide with system accounts, services or hub routes.
const RESERVED: &[&str] = &[
    "root",
    "admin",
    "administrator",
    "jovyan",
    "postgres",
    "hubdesk",
    "jupyter",
    "jupyterhub",
    "hub",
    "nobody",
    "daemon",
    "bin",
    "sys",
    "sync",
    "www-data",
    "nginx",
    "docker",
    "ubuntu",
    "debian",
    "ec2-user",
    "nfs",
    "system",
    "support",
    "login",
    "logout",
    "setup",
    "api",
    "user",
    "users",
    "services",
    "static",
    "health",
    "proxy",
    "mail",
    "ftp",
    "sshd",
    "guest",
    "test",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("username is empty")]
    Empty,
    #[error("username is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("username must start with a lowercase letter a-z")]
    BadStart,
    #[error("username may only contain lowercase letters a-z, digits and '-'")]
    BadCharacter,
    #[error("'{0}' is a reserved name")]
    Reserved(String),
}

impl Username {
    pub fn parse(raw: &str) -> Result<Self, UsernameError> {
        if raw.is_empty() {
            return Err(UsernameError::Empty);
        }
        if raw.len() > MAX_LEN {
            return Err(UsernameError::TooLong);
        }
        let mut chars = raw.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
            return Err(UsernameError::BadStart);
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(UsernameError::BadCharacter);
        }
        if RESERVED.contains(&raw) {
            return Err(UsernameError::Reserved(raw.to_string()));
        }
        Ok(Self(raw.to_string()))
    }

    /// Parses what a person typed into a login box: surrounding spaces and case are forgiven
    /// there (and only there), so `Ada` logs in as `ada`.
    pub fn parse_login(raw: &str) -> Result<Self, UsernameError> {
        Self::parse(&raw.trim().to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_simple_names() {
        for ok in ["ada", "ada-l", "a1", "student-042", &"a".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
    }
    #[test]
    fn rejects_empty() {
        assert_eq!(Username::parse(""), Err(UsernameError::Empty));
    }
    #[test]
    fn rejects_too_long() {
        assert_eq!(
            Username::parse(&"a".repeat(33)),
            Err(UsernameError::TooLong)
        );
    }
    #[test]
    fn rejects_uppercase() {
        assert_eq!(Username::parse("Ada"), Err(UsernameError::BadStart));
        assert_eq!(Username::parse("aDa"), Err(UsernameError::BadCharacter));
    }
    #[test]
    fn rejects_leading_digit_or_dash() {
        assert_eq!(Username::parse("1ada"), Err(UsernameError::BadStart));
        assert_eq!(Username::parse("-ada"), Err(UsernameError::BadStart));
    }
    #[test]
    fn rejects_path_tricks() {
        for bad in ["..", "a/b", "a..", "a\0b", "a b", "a\tb", "a.b", "a_b"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
    }
    #[test]
    fn rejects_non_ascii() {
        assert!(Username::parse("josé").is_err());
        assert!(Username::parse("аda").is_err()); // Cyrillic a
    }
    #[test]
    fn rejects_reserved() {
        for bad in ["root", "admin", "jovyan", "postgres"] {
            assert!(matches!(
                Username::parse(bad),
                Err(UsernameError::Reserved(_))
            ));
        }
    }
    #[test]
    fn login_forgives_case_and_spaces() {
        assert_eq!(Username::parse_login("  Ada ").unwrap().as_str(), "ada");
    }
}
