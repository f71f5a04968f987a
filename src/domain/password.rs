use secrecy::{ExposeSecret, Secret};

/// A password a person chose, checked against the policy: minimum length, maximum length (argon2
/// input is bounded to keep hashing cost fixed), not a common or easily guessed password.
pub struct NewPassword(Secret<String>);

pub const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("password must be at least {0} characters")]
    TooShort(usize),
    #[error("password must be at most {MAX_LEN} characters")]
    TooLong,
    #[error("this password is too common or easy to guess; try a few unrelated words")]
    TooWeak,
    #[error("password must not contain your username")]
    ContainsUsername,
}

impl NewPassword {
    pub fn parse(raw: &str, min_len: usize, username: &str) -> Result<Self, PasswordError> {
        let len = raw.chars().count();
        if len < min_len {
            return Err(PasswordError::TooShort(min_len));
        }
        if len > MAX_LEN {
            return Err(PasswordError::TooLong);
        }
        if !username.is_empty() && raw.to_lowercase().contains(username) {
            return Err(PasswordError::ContainsUsername);
        }
        // zxcvbn knows common passwords, dictionary words, keyboard walks and dates; score 2
        // means "somewhat guessable", the floor for an online-throttled login.
        let score = zxcvbn::zxcvbn(raw, &[username]).score();
        if (score as u8) < 2 {
            return Err(PasswordError::TooWeak);
        }
        Ok(Self(Secret::new(raw.to_string())))
    }

    /// A password hubdesk generated itself (already strong by construction).
    pub fn generated(raw: String) -> Self {
        Self(Secret::new(raw))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn too_short() {
        assert_eq!(
            NewPassword::parse("abc", 8, "ada").err(),
            Some(PasswordError::TooShort(8))
        );
    }
    #[test]
    fn too_long() {
        assert_eq!(
            NewPassword::parse(&"x".repeat(129), 8, "ada").err(),
            Some(PasswordError::TooLong)
        );
    }
    #[test]
    fn common_passwords_rejected() {
        for p in [
            "password",
            "password1",
            "12345678",
            "qwertyuiop",
            "iloveyou",
        ] {
            assert_eq!(
                NewPassword::parse(p, 8, "ada").err(),
                Some(PasswordError::TooWeak),
                "{p}"
            );
        }
    }
    #[test]
    fn username_rejected() {
        assert_eq!(
            NewPassword::parse("ada-lovelace-xyz", 8, "ada-lovelace").err(),
            Some(PasswordError::ContainsUsername)
        );
    }
    #[test]
    fn good_password_accepted() {
        assert!(NewPassword::parse("correct-horse-battery-42", 8, "ada").is_ok());
    }
}
