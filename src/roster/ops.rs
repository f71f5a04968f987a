//! Roster operations, shared by the pages, the API and the command line. Each runs in one
//! transaction together with its audit entry. `Roster` holds the handles they need and nothing
//! else, so the CLI builds one without an OIDC signing key and tests can build one on any pool.
use std::sync::Arc;

use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::{generate, import::PlannedStudent};
use crate::{
    auth::{access, secret, throttle, Hasher, TokenCache},
    db::{
        self,
        users::{InsertUserError, StudentFilter, UserRow},
    },
    domain::{Actor, Cohort, DisplayName, NewAccount, Reach, Role, Username, UsernameError},
    homes::CreateManyJob,
    jobs::Waker,
    servers::Servers,
};

/// A password shown once: on the credentials page or in an API reply, never stored readable
/// (between a form and its result page it waits sealed: `web::once`).
/// `Debug` leaves the password out.
#[derive(Clone, Serialize, serde::Deserialize)]
pub struct Credential {
    pub username: String,
    pub display_name: String,
    pub cohort: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("cohort", &self.cohort)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RosterError {
    #[error("username '{0}' already exists")]
    Duplicate(String),
    /// The message names what was looked for: "no student named 'x'".
    #[error("{0}")]
    NotFound(String),
    #[error("you cannot do this to your own account; change your password on the account page")]
    OwnAccount,
    /// Fields of a new account that do not parse, each with its message (shown beside the
    /// field on a page, as a 400 in the API).
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(&'static str, String)>),
    /// The request conflicts with existing accounts (e.g. a generated name is impossible).
    #[error("{0}")]
    Conflict(String),
    /// A student or cohort outside the counselor's reach.
    #[error("{0}")]
    NotYours(String),
    /// Any database error (pages and the API map "unreachable" to 503, others to 500).
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Which accounts an operation may touch: the student pages and the API manage students only;
/// the staff page (admins) manages counselors and admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Students,
    Staff,
}

impl Scope {
    fn holds(self, role: Role) -> bool {
        match self {
            Self::Students => role == Role::Student,
            Self::Staff => role != Role::Student,
        }
    }

    /// The audit action for `what` done in this scope, e.g. `student.disable`.
    fn action(self, what: &str) -> String {
        match self {
            Self::Students => format!("student.{what}"),
            Self::Staff => format!("staff.{what}"),
        }
    }
}

/// What a desk's buttons do to an account, besides a password reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountAction {
    Disable,
    Enable,
    Unlock,
}

impl AccountAction {
    /// From the last URL segment: `disable`, `enable`, `unlock`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "disable" => Some(Self::Disable),
            "enable" => Some(Self::Enable),
            "unlock" => Some(Self::Unlock),
            _ => None,
        }
    }

    /// `disabled`, `enabled`, `unlocked` (for the confirmation after the redirect).
    pub fn done(self) -> &'static str {
        match self {
            Self::Disable => "disabled",
            Self::Enable => "enabled",
            Self::Unlock => "unlocked",
        }
    }
}

/// A new student as typed into the form or sent to the API: raw text, parsed here.
#[derive(Debug, Default)]
pub struct StudentFields<'a> {
    pub display_name: &'a str,
    /// Empty: a username is generated from the name.
    pub username: &'a str,
    pub cohort: &'a str,
}

#[derive(Clone)]
pub struct Roster {
    pub pool: PgPool,
    pub hasher: Hasher,
    pub tokens: Arc<TokenCache>,
    /// Wakes the job runner once new students' homes are queued.
    pub jobs: Waker,
    /// A disabled student's notebook server is stopped too (when a hub is configured).
    pub servers: Option<Servers>,
}

impl Roster {
    pub fn new(pool: PgPool, hasher: Hasher, tokens: Arc<TokenCache>, jobs: Waker) -> Self {
        Self {
            pool,
            hasher,
            tokens,
            jobs,
            servers: None,
        }
    }

    pub fn with_servers(mut self, servers: Servers) -> Self {
        self.servers = Some(servers);
        self
    }

    /// Creates the planned students with generated passwords, all or nothing.
    /// Every cohort must be in the actor's `reach` (a counselor imports into their cohorts).
    pub async fn create_students(
        &self,
        actor: &Actor,
        reach: &Reach,
        planned: &[PlannedStudent],
        via: &str,
    ) -> Result<Vec<Credential>, RosterError> {
        for p in planned {
            reach
                .check_cohort(p.cohort.as_ref().map(|c| c.as_str()))
                .map_err(|e| match planned.len() {
                    1 => RosterError::NotYours(e.0),
                    _ => RosterError::NotYours(format!("line {}: {}", p.line, e.0)),
                })?;
        }
        let passwords = generate::passwords(planned.len());
        // Hash before opening the transaction: hashing is the slow part. A class takes all
        // hashers but one, so logins (a class logging in while another is imported) are not
        // queued behind the whole import.
        let parallel = self.hasher.permits().saturating_sub(1).max(1);
        let hashes: Vec<String> = stream::iter(passwords.iter().map(|p| self.hasher.hash(p)))
            .buffered(parallel)
            .try_collect()
            .await?;
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(planned.len());
        for ((p, password), hash) in planned.iter().zip(passwords).zip(hashes) {
            let new = db::users::NewUser {
                username: &p.username,
                display_name: &p.display_name,
                role: Role::Student,
                cohort: p.cohort.as_ref(),
                password_hash: &hash,
            };
            db::users::insert(&mut tx, new).await.map_err(|e| match e {
                InsertUserError::Duplicate => RosterError::Duplicate(p.username.to_string()),
                InsertUserError::Db(e) => RosterError::Db(e),
            })?;
            out.push(Credential {
                username: p.username.to_string(),
                display_name: p.display_name.as_str().to_string(),
                cohort: p.cohort.as_ref().map(|c| c.as_str().to_string()),
                password,
            });
        }
        // One entry per student, so each student's history shows who created them.
        let (action, detail) = match out.len() {
            1 => ("student.create", format!("via {via}")),
            n => ("student.import", format!("one of {n} imported via {via}")),
        };
        for c in &out {
            db::audit::record(&mut tx, actor, action, Some(&c.username), Some(&detail)).await?;
        }
        // Their homes follow as one job, queued with the accounts: the accounts are one
        // transaction however large the class, and a home appears for every account that
        // committed (a crash before the job ran resumes it).
        let usernames = out.iter().map(|c| c.username.clone()).collect();
        CreateManyJob { usernames }.enqueue(&mut tx, actor).await?;
        tx.commit().await?;
        self.jobs.wake();
        Ok(out)
    }

    /// One student from raw fields (the add-student form and `POST /api/v1/students`): every
    /// field is parsed and every problem reported at once; the username is generated when
    /// empty; then the student is created like an import of one.
    pub async fn add_student(
        &self,
        actor: &Actor,
        reach: &Reach,
        fields: StudentFields<'_>,
        via: &str,
    ) -> Result<Credential, RosterError> {
        let mut invalid: Vec<(&'static str, String)> = Vec::new();
        let display_name = DisplayName::parse(fields.display_name)
            .map_err(|e| invalid.push(("display_name", e.to_string())))
            .ok();
        let username = match fields.username.trim() {
            "" => Some(None),
            raw => match Username::parse(&raw.to_ascii_lowercase()) {
                Ok(u) => Some(Some(u)),
                Err(UsernameError::Reserved(name)) => {
                    let mut conn = self.pool.acquire().await?;
                    let hint = reserved_hint(&mut conn, &name, fields.display_name).await?;
                    invalid.push(("username", hint));
                    None
                }
                Err(e) => {
                    invalid.push(("username", e.to_string()));
                    None
                }
            },
        };
        let cohort = Cohort::parse_optional(fields.cohort)
            .map_err(|e| invalid.push(("cohort", e.to_string())))
            .ok()
            .filter(
                |c| match reach.check_cohort(c.as_ref().map(|c| c.as_str())) {
                    Ok(()) => true,
                    Err(e) => {
                        invalid.push(("cohort", e.0));
                        false
                    }
                },
            );
        let (Some(display_name), Some(username), Some(cohort)) = (display_name, username, cohort)
        else {
            return Err(RosterError::Invalid(invalid));
        };
        let row = super::import::ImportRow {
            line: 1,
            display_name,
            username,
            cohort,
        };
        let mut conn = self.pool.acquire().await?;
        let planned = super::import::plan(&mut conn, vec![row])
            .await
            .map_err(|errs| {
                let messages: Vec<String> = errs.into_iter().map(|e| e.message).collect();
                RosterError::Conflict(messages.join("; "))
            })?;
        drop(conn);
        let mut created = self.create_students(actor, reach, &planned, via).await?;
        Ok(created.remove(0))
    }

    /// Finds a student by name (staff accounts are not managed through the student pages).
    pub async fn find_student(&self, username: &str) -> Result<UserRow, RosterError> {
        self.find_account(Scope::Students, username).await
    }

    /// Finds an account in `scope`; any other account is "not found".
    pub async fn find_account(&self, scope: Scope, username: &str) -> Result<UserRow, RosterError> {
        let not_found = || {
            RosterError::NotFound(match scope {
                Scope::Students => format!("no student named '{username}'"),
                Scope::Staff => format!("no counselor or admin named '{username}'"),
            })
        };
        let name = Username::parse(username).map_err(|_| not_found())?;
        let mut conn = self.pool.acquire().await?;
        match db::users::find_by_username(&mut conn, &name).await? {
            Some(u) if scope.holds(u.role) => Ok(u),
            _ => Err(not_found()),
        }
    }

    /// New generated password; the person's sessions end (and their hub tokens).
    pub async fn reset_password(
        &self,
        actor: &Actor,
        scope: Scope,
        username: &str,
    ) -> Result<Credential, RosterError> {
        let user = self.find_account(scope, username).await?;
        refuse_own(actor, &user)?;
        let password = generate::password();
        let hash = self.hasher.hash(&password).await?;
        let mut tx = self.pool.begin().await?;
        db::users::set_password_hash(&mut tx, user.id, &hash).await?;
        let ended = access::end(&mut tx, user.id, access::Sessions::All).await?;
        let detail = ended.detail("");
        let action = scope.action("reset_password");
        let target = user.username.as_str();
        db::audit::record(&mut tx, actor, &action, Some(target), Some(&detail)).await?;
        ended.commit(tx, &self.tokens).await?;
        Ok(Credential {
            username: user.username.to_string(),
            display_name: user.display_name,
            cohort: user.cohort,
            password,
        })
    }

    /// Disables (the person's sessions end and their tokens are revoked) or re-enables.
    pub async fn set_disabled(
        &self,
        actor: &Actor,
        scope: Scope,
        username: &str,
        disabled: bool,
    ) -> Result<Username, RosterError> {
        let user = self.find_account(scope, username).await?;
        refuse_own(actor, &user)?;
        let mut tx = self.pool.begin().await?;
        db::users::set_disabled(&mut tx, user.id, disabled).await?;
        let action = scope.action(if disabled { "disable" } else { "enable" });
        let target = Some(user.username.as_str());
        if disabled {
            let ended = access::end(&mut tx, user.id, access::Sessions::All).await?;
            let detail = ended.detail("");
            db::audit::record(&mut tx, actor, &action, target, Some(&detail)).await?;
            ended.commit(tx, &self.tokens).await?;
            if let Some(servers) = &self.servers {
                servers.stop_quietly(&user.username).await;
            }
        } else {
            db::audit::record(&mut tx, actor, &action, target, None).await?;
            tx.commit().await?;
        }
        Ok(user.username)
    }

    /// Applies `action` to an account in `scope`; returns the account's username.
    pub async fn apply(
        &self,
        actor: &Actor,
        scope: Scope,
        username: &str,
        action: AccountAction,
    ) -> Result<Username, RosterError> {
        match action {
            AccountAction::Disable => self.set_disabled(actor, scope, username, true).await,
            AccountAction::Enable => self.set_disabled(actor, scope, username, false).await,
            AccountAction::Unlock => {
                let account = self.find_account(scope, username).await?;
                self.unlock(actor, &account.username).await?;
                Ok(account.username)
            }
        }
    }

    /// Lifts a login lock on the account (any role).
    pub async fn unlock(&self, actor: &Actor, username: &Username) -> Result<(), RosterError> {
        let mut tx = self.pool.begin().await?;
        throttle::clear_account(&mut tx, username).await?;
        let target = Some(username.as_str());
        db::audit::record(&mut tx, actor, "account.unlock", target, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lifts the lock on a client address (a classroom behind one NAT after many typos).
    pub async fn unlock_address(
        &self,
        actor: &Actor,
        address: &std::net::IpAddr,
    ) -> Result<(), RosterError> {
        let address = address.to_string();
        let mut tx = self.pool.begin().await?;
        throttle::clear_address(&mut tx, &address).await?;
        db::audit::record(&mut tx, actor, "address.unlock", Some(&address), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Creates a counselor or admin with a password they chose (or the operator gave).
    pub async fn create_staff(
        &self,
        actor: &Actor,
        account: &NewAccount,
        role: Role,
    ) -> Result<UserRow, RosterError> {
        let hash = self.hasher.hash(account.password.expose()).await?;
        let mut tx = self.pool.begin().await?;
        let user = insert_staff(&mut tx, actor, account, role, &hash, role.as_str()).await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The roster as CSV for Excel (UTF-8 with a BOM, formula cells neutralised), audited as an
    /// export.
    /// Every student in `reach` as CSV.
    pub async fn export_csv(&self, actor: &Actor, reach: &Reach) -> Result<Vec<u8>, RosterError> {
        let mut conn = self.pool.acquire().await?;
        let filter = StudentFilter {
            reach: reach.cohorts().map(<[String]>::to_vec),
            ..StudentFilter::default()
        };
        let (rows, _) = db::users::list_students(&mut conn, &filter).await?;
        let detail = format!("{} students", rows.len());
        db::audit::record(&mut conn, actor, "roster.export", None, Some(&detail)).await?;
        drop(conn);
        // A UTF-8 byte order mark first: without it Excel reads the file as Windows-1252 and
        // shows "ZoÃ«" for "Zoë". Our own import skips it.
        let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
        let csv_err = |e: csv::Error| RosterError::Internal(e.into());
        w.write_record(["username", "display_name", "cohort", "status", "created_at"])
            .map_err(csv_err)?;
        for r in &rows {
            let created = r
                .created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            w.write_record([
                neutralise(r.username.as_str()),
                neutralise(&r.display_name),
                neutralise(r.cohort.as_deref().unwrap_or("")),
                r.status().to_string(),
                created,
            ])
            .map_err(csv_err)?;
        }
        w.into_inner()
            .map_err(|e| RosterError::Internal(anyhow::anyhow!("csv: {e}")))
    }

    /// A new API token named `name`; returns the token (shown once, stored hashed).
    pub async fn create_api_token(&self, actor: &Actor, name: &str) -> Result<String, RosterError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(RosterError::Invalid(vec![(
                "name",
                "token name must be 1-64 characters".into(),
            )]));
        }
        let token = secret::random_token();
        let mut tx = self.pool.begin().await?;
        if !db::api_tokens::insert(&mut tx, None, name, &secret::hash_token(&token)).await? {
            return Err(RosterError::Conflict(format!(
                "a token named {name:?} exists already"
            )));
        }
        db::audit::record(&mut tx, actor, "token.create", Some(name), None).await?;
        tx.commit().await?;
        Ok(token)
    }
}

/// Inserts a staff account with its audit entry in the caller's transaction (the staff page,
/// the CLI, and first-run setup, which consumes its token in the same transaction).
pub async fn insert_staff(
    conn: &mut PgConnection,
    actor: &Actor,
    account: &NewAccount,
    role: Role,
    password_hash: &str,
    detail: &str,
) -> Result<UserRow, RosterError> {
    let new = db::users::NewUser {
        username: &account.username,
        display_name: &account.display_name,
        role,
        cohort: None::<&Cohort>,
        password_hash,
    };
    let user = db::users::insert(conn, new).await.map_err(|e| match e {
        InsertUserError::Duplicate => RosterError::Duplicate(account.username.to_string()),
        InsertUserError::Db(e) => RosterError::Db(e),
    })?;
    let target = Some(account.username.as_str());
    db::audit::record(conn, actor, "staff.create", target, Some(detail)).await?;
    Ok(user)
}

/// The message for a reserved username typed into a form, with free alternatives made from
/// the person's name: "'admin' is reserved — try 'admin-ada' or 'ada'."
pub async fn reserved_hint(
    conn: &mut PgConnection,
    reserved: &str,
    display_name: &str,
) -> sqlx::Result<String> {
    let candidates = generate::reserved_candidates(reserved, display_name);
    let taken = db::users::existing_usernames(conn, &candidates).await?;
    let alternatives = generate::reserved_alternatives(reserved, display_name, &taken);
    Ok(generate::reserved_message(reserved, &alternatives))
}

/// The hint for `raw` typed as a username when it parses to a reserved name (else `None`).
pub async fn reserved_hint_for(
    conn: &mut PgConnection,
    raw: &str,
    display_name: &str,
) -> sqlx::Result<Option<String>> {
    match Username::parse(&raw.trim().to_ascii_lowercase()) {
        Err(UsernameError::Reserved(name)) => {
            Ok(Some(reserved_hint(conn, &name, display_name).await?))
        }
        _ => Ok(None),
    }
}

/// Nobody resets or disables their own account through a desk: an admin could lock
/// themselves out. Their own password is changed on the account page.
fn refuse_own(actor: &Actor, user: &UserRow) -> Result<(), RosterError> {
    if actor.is(&user.username) {
        Err(RosterError::OwnAccount)
    } else {
        Ok(())
    }
}

/// A spreadsheet treats a cell starting with = + - @ (or tab/CR) as a formula: prefix a quote.
pub fn neutralise(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised() {
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(neutralise("Ada"), "Ada");
    }

    #[test]
    fn credential_debug_hides_the_password() {
        let c = Credential {
            username: "ada".into(),
            display_name: "Ada".into(),
            cohort: None,
            password: "hunter2-secret".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
