//! Sentences about what happened to whom: the words of `domain::activity` filled in with
//! people's names (linked to their page), counts and dates. Used by the jobs pages, the audit
//! log and a student's history. Times are formatted by the caller (the page's clock), so this
//! stays free of the page kit.
use std::collections::HashMap;

use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::{
    config::iec_bytes,
    db::{self, audit::AuditRow, jobs::JobRow},
    domain::{
        activity::{pieces, Piece, Target},
        Action, JobKind, Role,
    },
    homes::{ArchiveId, CreateManyJob, ResetJob, ResetOutcome, RestoreJob, RestoreOutcome},
    jobs::JobState,
};

/// A piece of a sentence as a page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    /// A person's name linking to their page.
    Link {
        href: String,
        text: String,
    },
    /// A code-like name (an address, an instance id, a username without an account).
    Code(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sentence {
    pub parts: Vec<Part>,
}

impl Sentence {
    fn text(t: impl Into<String>) -> Self {
        Self {
            parts: vec![Part::Text(t.into())],
        }
    }

    /// The sentence without links, for a page's `<title>`.
    pub fn plain(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(t) | Part::Code(t) => t.as_str(),
                Part::Link { text, .. } => text.as_str(),
            })
            .collect()
    }

    /// The same words with a capital first letter (a heading).
    pub fn capitalised(mut self) -> Self {
        if let Some(Part::Text(t)) = self.parts.first_mut() {
            let mut chars = t.chars();
            if let Some(c) = chars.next() {
                *t = c.to_uppercase().chain(chars).collect();
            }
        }
        self
    }
}

/// The people a page names, looked up in one query, and who is looking (a counselor's page
/// does not link to the staff list, which is for admins).
pub struct People {
    known: HashMap<String, (String, Role)>,
    viewer_is_admin: bool,
}

impl People {
    /// Looks up every label among `labels` that is an account's username.
    pub async fn of(
        conn: &mut PgConnection,
        labels: impl IntoIterator<Item = String>,
        viewer_is_admin: bool,
    ) -> sqlx::Result<Self> {
        let mut wanted: Vec<String> = labels.into_iter().collect();
        wanted.sort();
        wanted.dedup();
        let known = db::users::names(conn, &wanted)
            .await?
            .into_iter()
            .map(|(u, name, role)| (u, (name, role)))
            .collect();
        Ok(Self {
            known,
            viewer_is_admin,
        })
    }

    /// No one known (a unit test; a page whose lookup is not worth a query).
    pub fn none(viewer_is_admin: bool) -> Self {
        Self {
            known: HashMap::new(),
            viewer_is_admin,
        }
    }

    fn person(&self, username: &str) -> Part {
        match self.known.get(username) {
            Some((name, Role::Student)) => Part::Link {
                href: format!("/students/{username}"),
                text: name.clone(),
            },
            Some((name, _)) if self.viewer_is_admin => Part::Link {
                href: "/staff".into(),
                text: name.clone(),
            },
            Some((name, _)) => Part::Text(name.clone()),
            None => Part::Code(username.to_string()),
        }
    }

    /// Who did it, from an audit or job actor label (`ana`, `token:sync`, `cli`, `system`).
    pub fn actor(&self, label: &str) -> Sentence {
        let parts = match label {
            "cli" => vec![Part::Text("the command line".into())],
            "system" => vec![Part::Text("hubdesk".into())],
            "system:calendar" => vec![Part::Text("the calendar".into())],
            "setup" => vec![Part::Text("first-run setup".into())],
            l => match l.strip_prefix("token:") {
                Some(name) => vec![
                    Part::Text("the API token ".into()),
                    Part::Code(name.to_string()),
                ],
                None => vec![self.person(l)],
            },
        };
        Sentence { parts }
    }

    /// The target of an action: a person (linked), a cohort (its filtered list), or a name.
    fn whom(&self, target: Option<&str>, kind: Target) -> Vec<Part> {
        let Some(t) = target.filter(|t| !t.is_empty()) else {
            return vec![Part::Text("someone".into())];
        };
        match kind {
            Target::Person => match t.strip_prefix("cohort:") {
                Some(cohort) => vec![
                    Part::Text("cohort ".into()),
                    Part::Link {
                        href: format!(
                            "/students?cohort={}",
                            url::form_urlencoded::byte_serialize(cohort.as_bytes())
                                .collect::<String>()
                        ),
                        text: cohort.to_string(),
                    },
                ],
                None => vec![self.person(t)],
            },
            _ => vec![Part::Code(t.to_string())],
        }
    }
}

/// Fills a template's blanks.
fn fill(template: &str, whom: &[Part], n: Option<usize>, what: &str) -> Sentence {
    let mut parts = Vec::new();
    for piece in pieces(template) {
        match piece {
            Piece::Text(t) => parts.push(Part::Text(t.to_string())),
            Piece::Whom => parts.extend(whom.iter().cloned()),
            Piece::N => parts.push(Part::Text(n.unwrap_or(0).to_string())),
            Piece::What => parts.push(Part::Text(what.to_string())),
        }
    }
    Sentence { parts }
}

/// Every label an audit row names (actor and target), for [`People::of`].
pub fn audit_labels(rows: &[AuditRow]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| [Some(r.actor.clone()), r.target.clone()])
        .flatten()
        .collect()
}

/// What the actor did: "reset <Ada Lovelace>'s password".
pub fn action(people: &People, row: &AuditRow) -> Sentence {
    let a = &row.action;
    let whom = people.whom(row.target.as_deref(), a.target());
    let what = match a {
        Action::Other(code) => code.as_str(),
        _ => "",
    };
    fill(a.sentence(), &whom, None, what)
}

/// The usernames a job names (its subject and its actor), for [`People::of`].
pub fn job_labels(rows: &[JobRow]) -> Vec<String> {
    rows.iter()
        .flat_map(|r| {
            let subject = r
                .payload
                .get("username")
                .and_then(Value::as_str)
                .map(str::to_string);
            [Some(r.actor.clone()), subject]
        })
        .flatten()
        .collect()
}

/// The job as a heading: "Reset <Ada Lovelace>'s home". `when` formats a time (the page's
/// clock) for titles that name one (a restore names the archive by its date).
pub fn job_title(
    people: &People,
    row: &JobRow,
    when: impl Fn(OffsetDateTime) -> String,
) -> Sentence {
    let kind = JobKind::parse(&row.kind);
    if let JobKind::Other(code) = &kind {
        // No words for it in this build: the kind as recorded, as code.
        return Sentence {
            parts: vec![Part::Code(code.clone())],
        };
    }
    let p = &row.payload;
    let username = p.get("username").and_then(Value::as_str);
    let whom = people.whom(username, Target::Person);
    let (n, what) = match &kind {
        JobKind::HomesReset => {
            let environment = serde_json::from_value::<ResetJob>(p.clone())
                .is_ok_and(|j| j.scope == crate::homes::ResetScope::Environment);
            (
                None,
                if environment { "environment" } else { "home" }.into(),
            )
        }
        JobKind::HomesRestore => {
            let at = serde_json::from_value::<RestoreJob>(p.clone())
                .ok()
                .and_then(|j| ArchiveId::parse(&j.archive).ok())
                .map(|id| when(id.created_at()))
                .unwrap_or_else(|| "an earlier day".into());
            (None, at)
        }
        JobKind::HomesCreateMany => (
            serde_json::from_value::<CreateManyJob>(p.clone())
                .ok()
                .map(|j| j.usernames.len()),
            String::new(),
        ),
        JobKind::ServersStart => (
            None,
            p.get("label")
                .and_then(Value::as_str)
                .unwrap_or("a group of students")
                .to_string(),
        ),
        JobKind::ClusterLaunch => (
            p.get("count").and_then(Value::as_u64).map(|c| c as usize),
            String::new(),
        ),
        JobKind::ClusterRemove => (
            None,
            p.get("instance_id")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        ),
        JobKind::ServersStop | JobKind::ServersRestart => (None, String::new()),
        JobKind::HomesHandOut => (
            p.get("usernames").and_then(Value::as_array).map(Vec::len),
            p.get("folder")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        ),
        JobKind::RosterResetPasswords => (
            p.get("usernames").and_then(Value::as_array).map(Vec::len),
            String::new(),
        ),
        JobKind::Other(code) => (None, code.clone()),
    };
    let mut title = fill(kind.title(), &whom, n, &what);
    // "Create the homes of 1 new students" reads wrong: say one. (These titles hold no links.)
    if n == Some(1) {
        title = Sentence::text(
            title
                .plain()
                .replace("1 new students", "1 new student")
                .replace("1 workers", "1 worker")
                .replace("1 students", "1 student"),
        );
    }
    title
}

/// The job's state in a few words ("done", "failed", "running", "waiting to start").
pub fn state_words(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "waiting to start",
        JobState::Running => "running",
        JobState::Succeeded => "done",
        JobState::Failed => "failed",
    }
}

/// What a finished job did, as a sentence after "done at 09:14: …". `archive_bytes` is the
/// size of the archive entry a reset or restore made, when the page could measure it.
pub fn job_outcome(row: &JobRow, archive_bytes: Option<u64>) -> Option<String> {
    if row.state != JobState::Succeeded {
        return None;
    }
    let result = row.result.clone()?;
    let size = archive_bytes
        .map(|b| format!(" ({})", iec_bytes(b)))
        .unwrap_or_default();
    Some(match JobKind::parse(&row.kind) {
        JobKind::HomesReset => {
            let r: ResetOutcome = serde_json::from_value(result).ok()?;
            match (r.scope, r.archive) {
                (crate::homes::ResetScope::All, Some(_)) => {
                    format!("the old home is in the archive{size}; a fresh one took its place")
                }
                (crate::homes::ResetScope::Environment, Some(_)) => format!(
                    "the old settings and installed packages are in the archive{size}; \
                     the work stayed"
                ),
                (_, None) => "there was nothing to move to the archive".into(),
            }
        }
        JobKind::HomesRestore => {
            let r: RestoreOutcome = serde_json::from_value(result).ok()?;
            match r.archive {
                Some(_) => format!(
                    "the archived home is back; the one it replaced is in the archive{size}"
                ),
                None => "the archived home is back".into(),
            }
        }
        JobKind::HomesHandOut => {
            let n = |k: &str| result.get(k).and_then(Value::as_u64).unwrap_or(0);
            let (homes, written, conflicts) = (n("homes"), n("written"), n("conflicts"));
            let mut said = format!(
                "{} in {homes} {}, {written} new {}",
                result
                    .get("folder")
                    .and_then(Value::as_str)
                    .unwrap_or("the folder"),
                if homes == 1 { "home" } else { "homes" },
                if written == 1 { "file" } else { "files" },
            );
            if conflicts > 0 {
                said.push_str(&format!(
                    "; {conflicts} written beside a student's own (listed on their pages)"
                ));
            }
            said
        }
        JobKind::HomesCreateMany => {
            let created = result.get("created").and_then(Value::as_array)?.len();
            let existing = result
                .get("existing")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let homes = |n: usize| if n == 1 { "home" } else { "homes" };
            match existing {
                0 => format!("{created} new {} ready", homes(created)),
                e => format!(
                    "{created} new {} ready; {e} existed already",
                    homes(created)
                ),
            }
        }
        JobKind::ServersStart => {
            let n = result.get("students").and_then(Value::as_u64).unwrap_or(0);
            format!("asked the hub to start {n} notebook servers")
        }
        JobKind::ServersStop => "the notebook server is stopped".into(),
        JobKind::ServersRestart => "the notebook server is starting again".into(),
        JobKind::ClusterLaunch => {
            let n = result
                .get("instances")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!("{n} new workers joined the swarm")
        }
        JobKind::ClusterRemove => {
            let moved = result
                .get("students")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            format!("the worker is gone; {moved} students' notebooks run elsewhere")
        }
        JobKind::RosterResetPasswords => {
            let n = result.get("reset").and_then(Value::as_u64).unwrap_or(0);
            let skipped = result
                .get("skipped")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let pw = if n == 1 { "password" } else { "passwords" };
            match skipped {
                0 => format!("{n} new {pw}; their login cards are ready to print"),
                s => format!(
                    "{n} new {pw}; {s} skipped (no longer students); the cards are ready to print"
                ),
            }
        }
        JobKind::Other(_) => return None,
    })
}

/// Where a finished job's work is picked up, as (local path, link text): the login cards of
/// a password reset. Only paths of hubdesk's own pages are ever linked.
pub fn job_next(row: &JobRow) -> Option<(String, &'static str)> {
    if row.state != JobState::Succeeded {
        return None;
    }
    match JobKind::parse(&row.kind) {
        JobKind::RosterResetPasswords => {
            let path = row.result.as_ref()?.get("cards")?.as_str()?;
            let id = path.strip_prefix("/students/cards/")?;
            uuid::Uuid::parse_str(id).ok()?;
            Some((path.to_string(), "Print the login cards"))
        }
        _ => None,
    }
}

/// The archive entry a finished reset or restore made (to measure it), with its student.
pub fn job_archive(row: &JobRow) -> Option<(String, ArchiveId)> {
    let result = row.result.clone()?;
    match JobKind::parse(&row.kind) {
        JobKind::HomesReset => {
            let r: ResetOutcome = serde_json::from_value(result).ok()?;
            Some((r.username, r.archive?))
        }
        JobKind::HomesRestore => {
            let r: RestoreOutcome = serde_json::from_value(result).ok()?;
            Some((r.username, r.archive?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn people() -> People {
        People {
            known: [
                (
                    "ada".to_string(),
                    ("Ada Lovelace".to_string(), Role::Student),
                ),
                (
                    "connie".to_string(),
                    ("Connie Counselor".to_string(), Role::Counselor),
                ),
            ]
            .into_iter()
            .collect(),
            viewer_is_admin: false,
        }
    }

    fn audit(action: &str, target: Option<&str>) -> AuditRow {
        AuditRow {
            id: 1,
            at: datetime!(2025-03-10 14:14 UTC),
            actor: "connie".into(),
            action: Action::parse(action),
            target: target.map(str::to_string),
            detail: None,
        }
    }

    fn job(kind: &str, payload: Value, result: Option<Value>) -> JobRow {
        let t = datetime!(2025-03-10 14:14 UTC);
        JobRow {
            id: uuid::Uuid::nil(),
            kind: kind.into(),
            payload,
            state: if result.is_some() {
                JobState::Succeeded
            } else {
                JobState::Running
            },
            steps: Vec::new(),
            result,
            error: None,
            attempts: 1,
            max_attempts: 5,
            actor: "connie".into(),
            run_after: t,
            lease_owner: None,
            lease_until: None,
            created_at: t,
            updated_at: t,
            finished_at: None,
        }
    }

    #[test]
    fn a_password_reset_job_links_its_cards_and_nothing_else() {
        let id = "6f1c0b0e-8f3a-4a47-9d3c-2b5a1e0c9d11";
        let done = job(
            "roster.reset_passwords",
            json!({"usernames": ["ada", "bob"]}),
            Some(json!({"reset": 2, "skipped": [], "cards": format!("/students/cards/{id}")})),
        );
        assert_eq!(
            job_next(&done),
            Some((format!("/students/cards/{id}"), "Print the login cards"))
        );
        assert_eq!(
            job_outcome(&done, None).unwrap(),
            "2 new passwords; their login cards are ready to print"
        );
        // Only hubdesk's own cards pages are ever linked.
        for hostile in [
            "https://evil.example/x",
            "/students/cards/../../admin",
            "//evil",
        ] {
            let row = job(
                "roster.reset_passwords",
                json!({}),
                Some(json!({"reset": 1, "cards": hostile})),
            );
            assert_eq!(job_next(&row), None, "{hostile}");
        }
        assert_eq!(
            job_next(&job("roster.reset_passwords", json!({}), None)),
            None
        );
    }

    #[test]
    fn an_audit_line_names_and_links_the_student() {
        let s = action(&people(), &audit("student.reset_password", Some("ada")));
        assert_eq!(s.plain(), "reset Ada Lovelace's password");
        assert!(s.parts.contains(&Part::Link {
            href: "/students/ada".into(),
            text: "Ada Lovelace".into()
        }));
        // Staff are named but not linked for a counselor (the staff page is for admins).
        let s = action(&people(), &audit("staff.disable", Some("connie")));
        assert_eq!(s.parts[1], Part::Text("Connie Counselor".into()));
        // An account that no longer exists, a cohort, an address.
        assert_eq!(
            action(&people(), &audit("student.create", Some("gone"))).parts[1],
            Part::Code("gone".into())
        );
        assert_eq!(
            action(&people(), &audit("servers.start", Some("cohort:9B"))).plain(),
            "started the notebook servers of cohort 9B"
        );
        assert_eq!(
            action(&people(), &audit("address.unlock", Some("10.0.0.9"))).plain(),
            "lifted the login lock on the address 10.0.0.9"
        );
        assert_eq!(
            action(&people(), &audit("made.up", Some("ada"))).plain(),
            "recorded “made.up” for Ada Lovelace"
        );
        assert_eq!(people().actor("token:sync").plain(), "the API token sync");
    }

    #[test]
    fn a_job_reads_as_what_it_does_to_whom() {
        let p = people();
        let when = |t: OffsetDateTime| format!("{}", t.date());
        let reset = job(
            "homes.reset",
            json!({"username": "ada", "scope": "all"}),
            Some(json!({"username": "ada", "scope": "all", "archive": "20250310T141400Z-reset"})),
        );
        assert_eq!(
            job_title(&p, &reset, when).capitalised().plain(),
            "Reset Ada Lovelace's home"
        );
        assert_eq!(
            job_outcome(&reset, Some(1_258_291)).unwrap(),
            "the old home is in the archive (1.2 MiB); a fresh one took its place"
        );
        assert_eq!(
            job_archive(&reset).map(|(u, a)| (u, a.as_str().to_string())),
            Some(("ada".into(), "20250310T141400Z-reset".into()))
        );
        let env = job(
            "homes.reset",
            json!({"username": "ada", "scope": "environment"}),
            None,
        );
        assert_eq!(
            job_title(&p, &env, when).plain(),
            "Reset Ada Lovelace's environment"
        );
        assert_eq!(job_outcome(&env, None), None, "not done yet");
        let restore = job(
            "homes.restore",
            json!({"username": "ada", "archive": "20250301T090000Z-reset"}),
            None,
        );
        assert_eq!(
            job_title(&p, &restore, when).plain(),
            "Restore Ada Lovelace's home from the archive of 2025-03-01"
        );
        let one = job("homes.create_many", json!({"usernames": ["ada"]}), None);
        assert_eq!(
            job_title(&p, &one, when).plain(),
            "Create the homes of 1 new student"
        );
        let launch = job("cluster.launch", json!({"count": 3}), None);
        assert_eq!(job_title(&p, &launch, when).plain(), "Launch 3 workers");
        let other = job("test.two_steps", json!({}), Some(json!({"files": 3})));
        assert_eq!(job_title(&p, &other, when).plain(), "test.two_steps");
        assert_eq!(job_outcome(&other, None), None);
    }
}
