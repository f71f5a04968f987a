//! Which students a staff member sees and acts on: every student (admins, counselors not
//! assigned to cohorts, command-line tokens) or the students of some cohorts (counselors an
//! admin assigned). Loaded with the session (or the API token) at each request, so removing an
//! assignment takes effect on the next one.

/// A staff member's reach over students.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reach {
    /// Every student.
    #[default]
    All,
    /// The students whose cohort is one of these (users.cohort values); none when empty.
    /// A student without a cohort is out of reach.
    Cohorts(Vec<String>),
}

/// Why a request was refused: the student (or cohort) is outside the person's reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutOfReach(pub String);

impl Reach {
    /// From the stored column: `None` is every cohort.
    pub fn from_column(cohorts: Option<Vec<String>>) -> Self {
        cohorts.map_or(Self::All, Self::Cohorts)
    }

    /// For SQL filters: `None` (no filter) or the cohorts, bound as `$n::text[]` in
    /// `($n::text[] IS NULL OR cohort = ANY($n))`.
    pub fn cohorts(&self) -> Option<&[String]> {
        match self {
            Self::All => None,
            Self::Cohorts(c) => Some(c),
        }
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Self::All)
    }

    /// Whether a student of `cohort` is in reach.
    pub fn admits(&self, cohort: Option<&str>) -> bool {
        match (self, cohort) {
            (Self::All, _) => true,
            (Self::Cohorts(cs), Some(c)) => cs.iter().any(|x| x == c),
            (Self::Cohorts(_), None) => false,
        }
    }

    /// `Ok` when a student of `cohort` is in reach, else the refusal in words.
    pub fn check_student(&self, username: &str, cohort: Option<&str>) -> Result<(), OutOfReach> {
        if self.admits(cohort) {
            return Ok(());
        }
        Err(OutOfReach(format!(
            "the student {username} is not in one of your cohorts ({})",
            self.describe()
        )))
    }

    /// `Ok` when every student of `cohort` is in reach (a cohort filter, an import's cohort).
    /// `None` (every student, or students without a cohort) is only for a full reach.
    pub fn check_cohort(&self, cohort: Option<&str>) -> Result<(), OutOfReach> {
        match cohort {
            _ if self.admits(cohort) => Ok(()),
            Some(c) => Err(OutOfReach(format!(
                "the cohort '{c}' is not one of yours ({})",
                self.describe()
            ))),
            None => Err(OutOfReach(format!(
                "choose one of your cohorts ({}); students without a cohort are not yours",
                self.describe()
            ))),
        }
    }

    /// "every cohort", "no cohort", "Evening, Morning".
    pub fn describe(&self) -> String {
        match self {
            Self::All => "every cohort".into(),
            Self::Cohorts(c) if c.is_empty() => "no cohort yet".into(),
            Self::Cohorts(c) => c.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(c: &[&str]) -> Reach {
        Reach::Cohorts(c.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn all_admits_everyone_and_cohorts_only_theirs() {
        assert!(Reach::All.admits(None) && Reach::All.admits(Some("A")));
        let r = some(&["A", "B"]);
        assert!(r.admits(Some("A")) && r.admits(Some("B")));
        assert!(!r.admits(Some("C")) && !r.admits(None) && !r.admits(Some("a")));
        assert!(!some(&[]).admits(Some("A")));
    }

    #[test]
    fn refusals_say_why() {
        let r = some(&["Morning"]);
        assert_eq!(
            r.check_student("ada", Some("Evening")).unwrap_err().0,
            "the student ada is not in one of your cohorts (Morning)"
        );
        assert!(r.check_cohort(Some("Morning")).is_ok());
        assert!(r.check_cohort(None).unwrap_err().0.contains("choose one"));
        assert!(Reach::All.check_cohort(None).is_ok());
        assert_eq!(some(&[]).describe(), "no cohort yet");
    }

    #[test]
    fn the_column_maps_null_to_all() {
        assert_eq!(Reach::from_column(None), Reach::All);
        assert_eq!(Reach::from_column(Some(vec![])), some(&[]));
        assert!(Reach::All.cohorts().is_none());
    }
}
