/// A group of students (a class, a week, a track): 1–64 visible characters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Cohort(String);

pub const MAX_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CohortError {
    #[error("cohort is longer than {MAX_LEN} characters")]
    TooLong,
    #[error("cohort may contain letters, digits, spaces, '-' and '_' only")]
    BadCharacter,
}

impl Cohort {
    /// Empty input means "no cohort".
    pub fn parse_optional(raw: &str) -> Result<Option<Self>, CohortError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.chars().count() > MAX_LEN {
            return Err(CohortError::TooLong);
        }
        if !trimmed
            .chars()
            .all(|c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
        {
            return Err(CohortError::BadCharacter);
        }
        Ok(Some(Self(trimmed.to_string())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// "Class 9B" → "class-9b": group names end up in hub URLs and scope filters.
pub fn slug(s: &str) -> String {
    let lower = deunicode::deunicode(s).to_ascii_lowercase();
    let parts: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .collect();
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses() {
        assert_eq!(Cohort::parse_optional("  ").unwrap(), None);
        assert_eq!(
            Cohort::parse_optional(" week-1 ")
                .unwrap()
                .unwrap()
                .as_str(),
            "week-1"
        );
        assert_eq!(
            Cohort::parse_optional(&"x".repeat(65)),
            Err(CohortError::TooLong)
        );
        assert_eq!(
            Cohort::parse_optional("a/b"),
            Err(CohortError::BadCharacter)
        );
    }
}
