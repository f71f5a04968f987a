//! The words for what hubdesk records: every audit action and every job kind, parsed from the
//! code it is stored under (`student.reset_password`, `homes.reset`) into a typed value that
//! knows how a person says it. The one place these words live; `activity::words` fills them
//! in with names, links and times. A code this build does not know (recorded by a newer or an
//! older hubdesk) is kept as `Other` and shown as recorded.
//!
//! Sentence templates name their blanks: `{whom}` is the target (a person, shown by name and
//! linked, or a cohort, an address, a token …), `{n}` a count, `{what}` a thing the job names
//! (a cohort, an instance, an archive's date). They are written to follow the actor's name:
//! "Connie Counselor *reset {whom}'s password*".
use std::fmt;

/// What the target of an action is, so a page can name and link it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A username (student or staff) or `cohort:NAME`.
    Person,
    /// A client address (`address.unlock`).
    Address,
    /// An API token's name.
    Token,
    /// An EC2 instance id.
    Instance,
    /// An OIDC signing key id.
    Key,
    /// Nothing (the target column is empty).
    Nothing,
}

macro_rules! actions {
    ($($variant:ident = $code:literal, $target:ident, $label:literal, $sentence:literal;)*) => {
        /// An audit action (the `audit_log.action` column).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Action {
            $($variant,)*
            /// A code this build has no words for.
            Other(String),
        }

        impl Action {
            /// Every action this build has words for.
            pub const KNOWN: &'static [Action] = &[$(Action::$variant,)*];

            pub fn parse(code: &str) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Other(other.to_string()),
                }
            }

            /// The code it is recorded under.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Other(code) => code,
                }
            }

            /// A short label ("Password reset"), for a table column or a filter.
            pub fn label(&self) -> &str {
                match self {
                    $(Self::$variant => $label,)*
                    Self::Other(code) => code,
                }
            }

            /// What the actor did, with `{whom}` for the target.
            pub fn sentence(&self) -> &str {
                match self {
                    $(Self::$variant => $sentence,)*
                    Self::Other(_) => "recorded “{what}” for {whom}",
                }
            }

            pub fn target(&self) -> Target {
                match self {
                    $(Self::$variant => Target::$target,)*
                    Self::Other(_) => Target::Person,
                }
            }
        }
    };
}

actions! {
    StudentCreate = "student.create", Person, "Added", "added {whom}";
    StudentImport = "student.import", Person, "Imported", "imported {whom} with a class";
    StudentResetPassword = "student.reset_password", Person, "Password reset",
        "reset {whom}'s password";
    StudentDisable = "student.disable", Person, "Account disabled", "disabled {whom}'s account";
    StudentEnable = "student.enable", Person, "Account enabled", "enabled {whom}'s account again";
    StaffCreate = "staff.create", Person, "Staff account added", "added {whom} to the staff";
    StaffResetPassword = "staff.reset_password", Person, "Password reset",
        "reset {whom}'s password";
    StaffDisable = "staff.disable", Person, "Account disabled", "disabled {whom}'s account";
    StaffEnable = "staff.enable", Person, "Account enabled", "enabled {whom}'s account again";
    StaffCohorts = "staff.cohorts", Person, "Cohorts assigned",
        "changed which cohorts {whom} looks after";
    LoginLocked = "login.locked", Person, "Locked out",
        "locked {whom} out after too many wrong passwords";
    AddressLocked = "address.locked", Address, "Address locked out",
        "locked out the address {whom} after too many failed logins";
    StudentsResetPasswords = "students.reset_passwords", Person, "Passwords reset",
        "reset the passwords of several students ({whom}) and printed their cards";
    AccountUnlock = "account.unlock", Person, "Login lock lifted",
        "lifted the login lock of {whom}";
    AccountChangePassword = "account.change_password", Person, "Own password changed",
        "changed their own password";
    AddressUnlock = "address.unlock", Address, "Address unlocked",
        "lifted the login lock on the address {whom}";
    RosterExport = "roster.export", Nothing, "Student list exported",
        "exported the student list as CSV";
    TokenCreate = "token.create", Token, "API token created", "created the API token {whom}";
    TokenRevoke = "token.revoke", Token, "API token revoked", "revoked the API token {whom}";
    HomeCreate = "home.create", Person, "Home created", "created {whom}'s home";
    HomeReset = "home.reset", Person, "Home reset",
        "reset {whom}'s home (the old one is in the archive)";
    HomeResetEnvironment = "home.reset_environment", Person, "Environment reset",
        "reset {whom}'s environment (settings and installed packages; the work stays)";
    HomeRestore = "home.restore", Person, "Home restored",
        "restored {whom}'s home from the archive";
    HomeHandOut = "home.hand_out", Person, "Handed out",
        "handed out a course folder to {whom}";
    HomePurge = "home.purge", Person, "Old archives deleted",
        "deleted old archived homes of {whom}";
    HomeExport = "home.export", Person, "Home downloaded",
        "downloaded a zip of the home of {whom}";
    HomeQuota = "home.quota", Person, "Storage limit changed",
        "changed the storage limit of {whom}";
    ServerStop = "server.stop", Person, "Notebook server stopped",
        "stopped {whom}'s notebook server";
    ServerUnstick = "server.unstick", Person, "Stuck notebook restarted",
        "restarted {whom}'s notebook (\u{201c}My notebook is stuck\u{201d})";
    ServersStart = "servers.start", Person, "Notebook servers started",
        "started the notebook servers of {whom}";
    CohortUpdate = "cohort.update", Person, "Cohort settings changed",
        "changed the dates, time zone or profile of {whom}";
    CohortTimetable = "cohort.timetable", Person, "Timetable changed",
        "changed the class times of {whom}";
    CalendarPause = "calendar.pause", Nothing, "Calendar paused",
        "paused the calendar (no launches, starts or removals until resumed)";
    CalendarResume = "calendar.resume", Nothing, "Calendar resumed", "resumed the calendar";
    StudentResetCode = "student.reset_code", Person, "Reset code given",
        "gave {whom} a one-time code to set a new password";
    AccountResetCode = "account.reset_code", Person, "Password set with a code",
        "set a new password with a counselor's code";
    AnnouncementPost = "announcement.post", Nothing, "Announcement posted",
        "posted an announcement";
    AnnouncementEnd = "announcement.end", Nothing, "Announcement ended",
        "ended an announcement early";
    CampPause = "camp.pause", Nothing, "Camp paused",
        "paused the camp (students cannot log in or start notebooks; their servers stop)";
    CampResume = "camp.resume", Nothing, "Camp resumed", "resumed the camp";
    CalendarBudget = "calendar.budget", Nothing, "Week's budget set",
        "set the week's budget for workers";
    CalendarOverBudget = "calendar.over_budget", Nothing, "Calendar allowed over budget",
        "allowed the calendar to launch workers over this week's budget";
    ClusterLaunch = "cluster.launch", Nothing, "Workers launched", "launched workers";
    ClusterOverBudget = "cluster.over_budget", Nothing, "Launch over budget",
        "launched workers over the week's budget";
    ClusterJoined = "cluster.joined", Nothing, "Workers joined", "saw new workers join the swarm";
    ClusterRemove = "cluster.remove", Instance, "Worker removal asked",
        "asked to remove the worker {whom}";
    ClusterTerminated = "cluster.terminated", Instance, "Worker terminated",
        "terminated the worker {whom}";
    ClusterTokenRotated = "cluster.token_rotated", Nothing, "Join token rotated",
        "rotated the swarm's worker join token";
    OidcRotateKey = "oidc.rotate_key", Key, "Signing key rotated",
        "rotated the login signing key ({whom})";
}

impl fmt::Display for Action {
    /// The label: `{{ row.action }}` in a template reads "Password reset".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

impl From<String> for Action {
    fn from(code: String) -> Self {
        Self::parse(&code)
    }
}

macro_rules! job_kinds {
    ($($variant:ident = $code:literal, $label:literal, $title:literal;)*) => {
        /// A job kind (the `jobs.kind` column).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum JobKind {
            $($variant,)*
            /// A kind this build has no words for.
            Other(String),
        }

        impl JobKind {
            pub const KNOWN: &'static [JobKind] = &[$(JobKind::$variant,)*];

            pub fn parse(code: &str) -> Self {
                match code {
                    $($code => Self::$variant,)*
                    other => Self::Other(other.to_string()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $code,)*
                    Self::Other(code) => code,
                }
            }

            /// A short label ("Home reset").
            pub fn label(&self) -> &str {
                match self {
                    $(Self::$variant => $label,)*
                    Self::Other(code) => code,
                }
            }

            /// The job as a heading, with `{whom}`, `{n}` and `{what}` to fill in.
            pub fn title(&self) -> &str {
                match self {
                    $(Self::$variant => $title,)*
                    Self::Other(_) => "{what}",
                }
            }
        }
    };
}

job_kinds! {
    HomesReset = "homes.reset", "Home reset", "Reset {whom}'s {what}";
    HomesRestore = "homes.restore", "Home restore",
        "Restore {whom}'s home from the archive of {what}";
    HomesHandOut = "homes.hand_out", "Hand-out", "Hand out {what} to {n} students";
    HomesCreateMany = "homes.create_many", "Homes for new students",
        "Create the homes of {n} new students";
    ServersStart = "servers.start", "Servers started before class",
        "Start the notebook servers of {what}";
    ServersStop = "servers.stop", "Server stop", "Stop {whom}'s notebook server";
    ServersRestart = "servers.restart", "Notebook restart", "Restart {whom}'s notebook server";
    ClusterLaunch = "cluster.launch", "Worker launch", "Launch {n} workers";
    RosterResetPasswords = "roster.reset_passwords", "Passwords reset",
        "Reset the passwords of {n} students and print their cards";
    ClusterRemove = "cluster.remove", "Worker removal", "Remove the worker {what}";
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A job step as people say it. Steps are recorded as short names (`joined`, `created ana`);
/// a name this build has no words for is shown as recorded.
pub fn step_words(name: &str) -> String {
    let fixed = match name {
        "server stopped" => Some("notebook server stopped"),
        "reset" => Some("home reset"),
        "restored" => Some("home restored"),
        "stopped" => Some("notebook server stopped"),
        "launched" => Some("instances launched"),
        "running" => Some("instances running"),
        "joined" => Some("workers joined the swarm"),
        "draining" => Some("moving notebooks off the node"),
        "drained" => Some("node drained"),
        "removed" => Some("node left the swarm"),
        "terminated" => Some("instance terminated"),
        "token-rotated" => Some("worker join token rotated"),
        "token-handed-on" => Some("join token left to the launch still running"),
        _ => None,
    };
    if let Some(words) = fixed {
        return words.to_string();
    }
    let with_subject: &[(&str, &str, &str)] = &[
        ("created ", "created ", "'s home"),
        ("existing ", "", " already had a home"),
        ("started ", "started ", "'s notebook server"),
        ("handed out ", "", "'s home has the folder"),
        ("no home ", "", " has no home yet: nothing handed out"),
    ];
    for (prefix, before, after) in with_subject {
        if let Some(who) = name.strip_prefix(prefix) {
            if !who.is_empty() && !who.contains(' ') {
                return format!("{before}{who}{after}");
            }
        }
    }
    name.to_string()
}

/// One piece of a sentence template: text as is, or a blank to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Whom,
    N,
    What,
}

/// Splits a template at its blanks (`{whom}`, `{n}`, `{what}`); anything else is text.
pub fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let blank = ["{whom}", "{n}", "{what}"]
            .into_iter()
            .find(|b| rest[start..].starts_with(b));
        let Some(blank) = blank else {
            out.push(Piece::Text(&rest[..=start]));
            rest = &rest[start + 1..];
            continue;
        };
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        out.push(match blank {
            "{whom}" => Piece::Whom,
            "{n}" => Piece::N,
            _ => Piece::What,
        });
        rest = &rest[start + blank.len()..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{collections::BTreeSet, path::Path};

    /// Every string literal shaped like a recorded code (`word.word_word`) in `src/`, with the
    /// file it is in. Audit actions and job kinds are all written this way: as literals passed
    /// to `audit::record` (or a helper around it) and as `*_KIND` constants.
    fn dotted_literals() -> Vec<(String, String)> {
        fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    // Unit tests (at the end of a file) make up codes on purpose.
                    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                    for literal in text.split('"').skip(1).step_by(2) {
                        let shaped = literal.split_once('.').is_some_and(|(ns, rest)| {
                            !ns.is_empty()
                                && ns.chars().all(|c| c.is_ascii_lowercase())
                                && rest.starts_with(|c: char| c.is_ascii_lowercase())
                                && rest.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        });
                        if shaped {
                            out.push((literal.to_string(), path.display().to_string()));
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
        out
    }

    /// Literals of that shape that are not actions or kinds: file names, configuration keys,
    /// test hosts, lock names. A new one goes here; a new action or kind gets words above.
    fn not_a_code(literal: &str) -> bool {
        const EXTENSIONS: &[&str] = &[
            "pem", "txt", "ipynb", "log", "toml", "sock", "zip", "csv", "json", "html", "css",
            "js", "png", "sh", "py", "xlsx", "example",
        ];
        const OTHERS: &[&str] = &["aws.endpoint_url", "a.b", "a.b_c"];
        let (ns, ext) = literal.split_once('.').unwrap();
        ns == "hubdesk" || EXTENSIONS.contains(&ext) || OTHERS.contains(&literal)
    }

    #[test]
    fn every_action_and_kind_hubdesk_records_has_words() {
        let mut codes: BTreeSet<String> = dotted_literals()
            .into_iter()
            .filter(|(l, _)| !not_a_code(l))
            .map(|(l, _)| l)
            .collect();
        // roster::ops::Scope builds `student.X` / `staff.X` from the word it is given.
        let ops = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src/roster/ops.rs"),
        )
        .unwrap();
        for line in ops.lines().filter(|l| l.contains("scope.action(")) {
            for word in line.split('"').skip(1).step_by(2) {
                codes.insert(format!("student.{word}"));
                codes.insert(format!("staff.{word}"));
            }
        }
        assert!(codes.len() > 20, "the scan found too little: {codes:?}");
        let missing: Vec<&String> = codes
            .iter()
            .filter(|c| {
                matches!(Action::parse(c), Action::Other(_))
                    && matches!(JobKind::parse(c), JobKind::Other(_))
            })
            .collect();
        assert!(
            missing.is_empty(),
            "recorded without words (add them to src/domain/activity.rs): {missing:?}"
        );
    }

    #[test]
    fn the_scan_would_see_a_new_code() {
        // Negative control: a code with no words is caught by the same filter.
        assert!(!not_a_code("login.forgotten"));
        assert!(matches!(Action::parse("login.forgotten"), Action::Other(_)));
        assert!(not_a_code("leaf.pem"));
    }

    #[test]
    fn codes_round_trip_and_read_as_words() {
        for a in Action::KNOWN {
            assert_eq!(&Action::parse(a.as_str()), a);
            assert!(
                !a.label().contains('.') && !a.label().contains('_'),
                "{a:?}"
            );
            let placeholders = pieces(a.sentence())
                .iter()
                .filter(|p| !matches!(p, Piece::Text(_)))
                .count();
            let expected = usize::from(a.target() != Target::Nothing);
            assert!(placeholders <= expected, "{a:?}");
        }
        for k in JobKind::KNOWN {
            assert_eq!(&JobKind::parse(k.as_str()), k);
            assert!(!k.title().contains('.'), "{k:?}");
        }
        assert_eq!(
            Action::parse("home.reset_environment").label(),
            "Environment reset"
        );
        assert_eq!(
            Action::parse("made.up").to_string(),
            "made.up",
            "unknown codes show as recorded"
        );
    }

    #[test]
    fn steps_read_as_words() {
        assert_eq!(step_words("token-rotated"), "worker join token rotated");
        assert_eq!(step_words("created ana"), "created ana's home");
        assert_eq!(step_words("existing ana"), "ana already had a home");
        assert_eq!(
            step_words("skipped ana (never logged in)"),
            "skipped ana (never logged in)"
        );
        assert_eq!(step_words("prepared"), "prepared");
    }

    #[test]
    fn templates_split_at_their_blanks() {
        assert_eq!(
            pieces("Reset {whom}'s {what}"),
            vec![
                Piece::Text("Reset "),
                Piece::Whom,
                Piece::Text("'s "),
                Piece::What
            ]
        );
        assert_eq!(
            pieces("{n} x {y}"),
            vec![Piece::N, Piece::Text(" x {"), Piece::Text("y}")]
        );
    }
}
