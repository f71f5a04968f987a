//! Roster operations. Each runs in one transaction together with its audit entry.
use futures_util::{stream, StreamExt, TryStreamExt};
use serde::Serialize;

use super::{generate, import::PlannedStudent};
use crate::{
    auth::throttle,
    db::{self, audit::Entry, users::InsertUserError},
    domain::{Cohort, DisplayName, NewPassword, Role, Username},
    state::AppState,
};

/// Who performs an operation, as written to the audit log.
#[derive(Debug, Clone)]
pub enum Actor {
    User(Username),
    Token(String),
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Self::User(u) => u.to_string(),
            Self::Token(name) => format!("token:{name}"),
            Self::System => "system".into(),
        }
    }
}

/// A password shown once: on the credentials page or in an API reply, never stored.
#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    pub username: String,
    pub display_name: String,
    pub cohort: Option<String>,
    pub password: String,
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
    #[error("database unavailable")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Creates the planned students with generated passwords, all or nothing.
pub async fn create_students(
    state: &AppState,
    actor: &Actor,
    planned: &[PlannedStudent],
    via: &str,
) -> Result<Vec<Credential>, RosterError> {
    let passwords = generate::passwords(planned.len());
    // Hash before opening the transaction: hashing is the slow part. A class takes all hashers
    // but one, so logins (a class logging in while another is imported) are not queued behind
    // the whole import.
    let parallel = state.config.hash_permits().saturating_sub(1).max(1);
    let hashes: Vec<String> = stream::iter(passwords.iter().map(|p| state.hasher.hash(p)))
        .buffered(parallel)
        .try_collect()
        .await?;
    let mut tx = state.pool.begin().await?;
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
    let actor = actor.label();
    for c in &out {
        let entry = Entry {
            actor: &actor,
            action,
            target: Some(&c.username),
            detail: Some(&detail),
        };
        db::audit::record(&mut tx, entry).await?;
    }
    tx.commit().await?;
    Ok(out)
}

/// Which accounts an operation may touch: the student pages and the API manage students only;
/// the staff page (admins) manages counselors and admins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Desk {
    Students,
    Staff,
}

impl Desk {
    fn holds(self, role: Role) -> bool {
        match self {
            Self::Students => role == Role::Student,
            Self::Staff => role != Role::Student,
        }
    }

    /// The audit action for `what` done at this desk, e.g. `student.disable`.
    fn action(self, what: &str) -> String {
        match self {
            Self::Students => format!("student.{what}"),
            Self::Staff => format!("staff.{what}"),
        }
    }
}

/// Finds a student by name (staff accounts are not managed through the student pages).
pub async fn find_student(
    state: &AppState,
    username: &str,
) -> Result<db::users::UserRow, RosterError> {
    find_account(state, Desk::Students, username).await
}

/// Finds an account the desk manages; any other account is "not found".
pub async fn find_account(
    state: &AppState,
    desk: Desk,
    username: &str,
) -> Result<db::users::UserRow, RosterError> {
    let not_found = || {
        RosterError::NotFound(match desk {
            Desk::Students => format!("no student named '{username}'"),
            Desk::Staff => format!("no counselor or admin named '{username}'"),
        })
    };
    let name = Username::parse(username).map_err(|_| not_found())?;
    let mut conn = state.pool.acquire().await?;
    match db::users::find_by_username(&mut conn, &name).await? {
        Some(u) if desk.holds(u.role()) => Ok(u),
        _ => Err(not_found()),
    }
}

/// Nobody resets or disables their own account through a desk: an admin could lock
/// themselves out. Their own password is changed on the account page.
fn refuse_own(actor: &Actor, user: &db::users::UserRow) -> Result<(), RosterError> {
    match actor {
        Actor::User(me) if me.as_str() == user.username => Err(RosterError::OwnAccount),
        _ => Ok(()),
    }
}

/// New generated password; the person's sessions end (and, with OIDC, their tokens).
pub async fn reset_password(
    state: &AppState,
    actor: &Actor,
    desk: Desk,
    username: &str,
) -> Result<Credential, RosterError> {
    let user = find_account(state, desk, username).await?;
    refuse_own(actor, &user)?;
    let password = generate::password();
    let hash = state.hasher.hash(&password).await?;
    let mut tx = state.pool.begin().await?;
    db::users::set_password_hash(&mut tx, user.id, &hash).await?;
    let ended = db::sessions::delete_for_user(&mut tx, user.id).await?;
    let revoked = db::oauth::revoke_user_grants(&mut tx, user.id).await?;
    let detail = format!("{ended} session(s) ended, {revoked} hub authorization(s) revoked");
    db::audit::record(
        &mut tx,
        Entry {
            actor: &actor.label(),
            action: &desk.action("reset_password"),
            target: Some(&user.username),
            detail: Some(&detail),
        },
    )
    .await?;
    tx.commit().await?;
    state.oidc.cache.forget_user(user.id);
    Ok(Credential {
        username: user.username,
        display_name: user.display_name,
        cohort: user.cohort,
        password,
    })
}

/// Disables (the person's sessions end and their tokens are revoked) or re-enables an account.
pub async fn set_disabled(
    state: &AppState,
    actor: &Actor,
    desk: Desk,
    username: &str,
    disabled: bool,
) -> Result<(), RosterError> {
    let user = find_account(state, desk, username).await?;
    refuse_own(actor, &user)?;
    let mut tx = state.pool.begin().await?;
    db::users::set_disabled(&mut tx, user.id, disabled).await?;
    let detail = if disabled {
        let ended = db::sessions::delete_for_user(&mut tx, user.id).await?;
        let revoked = db::oauth::revoke_user_grants(&mut tx, user.id).await?;
        Some(format!(
            "{ended} session(s) ended, {revoked} hub authorization(s) revoked"
        ))
    } else {
        None
    };
    let action = desk.action(if disabled { "disable" } else { "enable" });
    db::audit::record(
        &mut tx,
        Entry {
            actor: &actor.label(),
            action: &action,
            target: Some(&user.username),
            detail: detail.as_deref(),
        },
    )
    .await?;
    tx.commit().await?;
    state.oidc.cache.forget_user(user.id);
    Ok(())
}

/// Lifts a login lock on the account (any role).
pub async fn unlock(
    state: &AppState,
    actor: &Actor,
    username: &Username,
) -> Result<(), RosterError> {
    let mut tx = state.pool.begin().await?;
    throttle::clear_account(&mut tx, username).await?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: &actor.label(),
            action: "account.unlock",
            target: Some(username.as_str()),
            detail: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
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

/// Applies `action` to an account of the desk; returns the account's username.
pub async fn apply(
    state: &AppState,
    actor: &Actor,
    desk: Desk,
    username: &str,
    action: AccountAction,
) -> Result<Username, RosterError> {
    match action {
        AccountAction::Disable => set_disabled(state, actor, desk, username, true).await?,
        AccountAction::Enable => set_disabled(state, actor, desk, username, false).await?,
        AccountAction::Unlock => {
            let account = find_account(state, desk, username).await?;
            let name = Username::parse(&account.username).map_err(anyhow::Error::from)?;
            return unlock(state, actor, &name).await.map(|()| name);
        }
    }
    Username::parse(username).map_err(|e| anyhow::Error::from(e).into())
}

/// Lifts the lock on a client address (a classroom behind one NAT after many typos).
pub async fn unlock_address(
    state: &AppState,
    actor: &Actor,
    address: &std::net::IpAddr,
) -> Result<(), RosterError> {
    let address = address.to_string();
    let mut tx = state.pool.begin().await?;
    throttle::clear_address(&mut tx, &address).await?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: &actor.label(),
            action: "address.unlock",
            target: Some(&address),
            detail: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Creates a counselor or admin with a password they chose (or the operator gave).
pub async fn create_staff(
    state: &AppState,
    actor: &Actor,
    username: &Username,
    display_name: &DisplayName,
    role: Role,
    password: &NewPassword,
) -> Result<(), RosterError> {
    let hash = state.hasher.hash(password.expose()).await?;
    let mut tx = state.pool.begin().await?;
    let new = db::users::NewUser {
        username,
        display_name,
        role,
        cohort: None::<&Cohort>,
        password_hash: &hash,
    };
    db::users::insert(&mut tx, new).await.map_err(|e| match e {
        InsertUserError::Duplicate => RosterError::Duplicate(username.to_string()),
        InsertUserError::Db(e) => RosterError::Db(e),
    })?;
    db::audit::record(
        &mut tx,
        Entry {
            actor: &actor.label(),
            action: "staff.create",
            target: Some(username.as_str()),
            detail: Some(role.as_str()),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
