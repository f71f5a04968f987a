//! Who in an import is already on the roster. A row whose username, or whose name (without
//! case, accents or extra spaces), belongs to a student is flagged with that student; the
//! preview offers "skip" (the default) or "create anyway", and the commit honours the choice.
//! Without this, "Priya R" added by hand in the morning came back from the class file as
//! `priyar2 (generated)`, a second account for one person.
use std::collections::{HashMap, HashSet};

use serde::Serialize;
use sqlx::PgConnection;

use super::{assign_usernames, duplicate_usernames, ImportRow, PlannedStudent, RowError};
use crate::db::{self, users::RosterName};

/// How a row matched a student on the roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MatchedBy {
    Username,
    /// The same name in the row's cohort.
    NameSameCohort,
    /// The same name, in another cohort (or none).
    Name,
}

/// The student a row matched.
#[derive(Debug, Clone, Serialize)]
pub struct Existing {
    pub username: String,
    pub display_name: String,
    pub cohort: Option<String>,
    pub by: MatchedBy,
}

impl Existing {
    /// "same username", "same name, same cohort", "same name, cohort blue".
    pub fn why(&self) -> String {
        match self.by {
            MatchedBy::Username => "same username".into(),
            MatchedBy::NameSameCohort => "same name, same cohort".into(),
            MatchedBy::Name => match &self.cohort {
                Some(c) => format!("same name, cohort {c}"),
                None => "same name, no cohort".into(),
            },
        }
    }
}

/// A row of the preview: what would be created, and whom it matched.
#[derive(Debug, Clone)]
pub struct PreviewRow {
    pub planned: PlannedStudent,
    pub existing: Option<Existing>,
}

/// A name as compared: no case, no accents, single spaces ("  ZOË  o'brien" = "Zoe O'Brien").
pub fn folded(name: &str) -> String {
    deunicode::deunicode(name)
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Plans the rows like [`super::plan`], and matches each against the students on the roster.
/// A matched row keeps a username of its own for "create anyway" (a given username that is
/// taken is made unique: `priyar` → `priyar2`). A given username taken by a staff account is
/// still an error.
pub async fn plan_against_roster(
    conn: &mut PgConnection,
    rows: Vec<ImportRow>,
) -> Result<Vec<PreviewRow>, Vec<RowError>> {
    let db_error = |e: sqlx::Error| vec![RowError::new(0, format!("database: {e}"))];
    let mut errors = duplicate_usernames(&rows);
    let students = db::users::student_names(conn).await.map_err(db_error)?;
    let by_username: HashMap<&str, &RosterName> =
        students.iter().map(|s| (s.username.as_str(), s)).collect();
    let mut by_name: HashMap<String, Vec<&RosterName>> = HashMap::new();
    for s in &students {
        by_name.entry(folded(&s.display_name)).or_default().push(s);
    }
    let given: Vec<String> = rows
        .iter()
        .filter_map(|r| r.username.as_ref().map(|u| u.to_string()))
        .collect();
    let taken: HashSet<String> = db::users::existing_usernames(conn, &given)
        .await
        .map_err(db_error)?
        .into_iter()
        .collect();

    let mut matches = Vec::with_capacity(rows.len());
    let mut to_plan = Vec::with_capacity(rows.len());
    for mut row in rows {
        let student = row
            .username
            .as_ref()
            .and_then(|u| by_username.get(u.as_str()).copied());
        let existing = match student {
            Some(s) => Some(existing(s, MatchedBy::Username)),
            None => by_name
                .get(&folded(row.display_name.as_str()))
                .and_then(|same| {
                    let cohort = row.cohort.as_ref().map(|c| c.as_str());
                    same.iter()
                        .find(|s| s.cohort.as_deref() == cohort)
                        .map(|s| existing(s, MatchedBy::NameSameCohort))
                        .or_else(|| same.first().map(|s| existing(s, MatchedBy::Name)))
                }),
        };
        let mut base = None;
        if let Some(u) = row.username.clone().filter(|u| taken.contains(u.as_str())) {
            if student.is_some() {
                // "Create anyway" needs a username of its own: the given one, numbered.
                base = Some(u.to_string());
                row.username = None;
            } else {
                errors.push(RowError::new(
                    row.line,
                    format!("username '{u}' already exists (a staff account)"),
                ));
            }
        }
        matches.push(existing);
        to_plan.push((row, base));
    }
    if !errors.is_empty() {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    }
    let still_given: HashSet<String> = to_plan
        .iter()
        .filter_map(|(r, _)| r.username.as_ref().map(|u| u.to_string()))
        .collect();
    let planned = assign_usernames(conn, to_plan, still_given).await?;
    Ok(planned
        .into_iter()
        .zip(matches)
        .map(|(planned, existing)| PreviewRow { planned, existing })
        .collect())
}

fn existing(s: &RosterName, by: MatchedBy) -> Existing {
    Existing {
        username: s.username.to_string(),
        display_name: s.display_name.clone(),
        cohort: s.cohort.clone(),
        by,
    }
}

#[cfg(test)]
mod tests {
    use super::folded;

    #[test]
    fn names_fold_case_accents_and_spaces() {
        assert_eq!(folded("  ZOË   O'Brien "), folded("zoe o'brien"));
        assert_eq!(folded("José Núñez"), "jose nunez");
        assert_ne!(folded("Ana"), folded("Anna"));
    }
}
