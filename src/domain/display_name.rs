/// A person's name as shown on pages and cards: 1–100 characters, no control characters, no
/// U+FFFD (the mark of a character lost by a wrong conversion: "Jos� P�rez").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

pub const MAX_LEN: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    #[error("name is empty")]
    Empty,
    #[error("name is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("name contains a control character")]
    Control,
    #[error("name contains '�' (U+FFFD), a character lost when the text was converted: retype it")]
    Replacement,
}

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, DisplayNameError> {
        let trimmed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if trimmed.is_empty() {
            return Err(DisplayNameError::Empty);
        }
        if trimmed.chars().count() > MAX_LEN {
            return Err(DisplayNameError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(DisplayNameError::Control);
        }
        if trimmed.contains(char::REPLACEMENT_CHARACTER) {
            return Err(DisplayNameError::Replacement);
        }
        Ok(Self(trimmed))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn normalises_whitespace() {
        assert_eq!(
            DisplayName::parse("  José   Núñez ").unwrap().as_str(),
            "José Núñez"
        );
    }
    #[test]
    fn rejects_empty_long_control() {
        assert_eq!(DisplayName::parse("   "), Err(DisplayNameError::Empty));
        assert_eq!(
            DisplayName::parse(&"x".repeat(101)),
            Err(DisplayNameError::TooLong)
        );
        assert_eq!(
            DisplayName::parse("a\u{7}b"),
            Err(DisplayNameError::Control)
        );
    }
    #[test]
    fn rejects_a_replacement_character() {
        assert_eq!(
            DisplayName::parse("Jos\u{FFFD} P\u{FFFD}rez"),
            Err(DisplayNameError::Replacement)
        );
    }
}
