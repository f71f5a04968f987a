//! Logging in and out: the gated password check, the throttle, session rotation, and ending
//! access at logout.
use actix_web::cookie::Cookie;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{
    auth::{
        access,
        gate::{Checked, Gate},
        session, throttle, CurrentUser, Hasher, TokenCache,
    },
    config::Config,
    db,
    domain::{Role, Username},
};

/// What a login attempt came to.
pub enum Outcome {
    /// Logged in: set this cookie.
    LoggedIn {
        cookie: Cookie<'static>,
        username: Username,
    },
    /// Wrong username or password (one message for both).
    Wrong,
    Locked(OffsetDateTime),
    Disabled,
    /// A student while the camp is paused: what they are told (maybe empty).
    CampPaused(String),
    Busy,
}

/// A login as typed into the form.
pub struct Attempt<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// The client address, for the per-address throttle.
    pub addr: &'a str,
    /// The session this browser had, if any: it ends here (the id is rotated at login).
    pub old_session: Option<Vec<u8>>,
    pub user_agent: Option<&'a str>,
}

/// Passwords longer than this are not hashed at all (a cheap way to burn CPU otherwise).
const MAX_PASSWORD: usize = 1024;

pub async fn log_in(
    pool: &PgPool,
    hasher: &Hasher,
    config: &Config,
    a: Attempt<'_>,
) -> anyhow::Result<Outcome> {
    if a.password.len() > MAX_PASSWORD {
        return Ok(Outcome::Wrong);
    }
    let username = Username::parse_login(a.username).ok();
    let account = match &username {
        Some(u) => {
            let mut conn = pool.acquire().await?;
            db::users::find_login(&mut conn, u).await?
        }
        None => None,
    };
    let gate = Gate {
        pool,
        hasher,
        throttle: &config.throttle,
    };
    let stored = account.as_ref().map(|u| u.password_hash.as_str());
    let rehashed = match gate
        .check(username.as_ref(), a.addr, stored, a.password)
        .await?
    {
        Checked::Right { rehashed } => rehashed,
        Checked::Wrong => return Ok(Outcome::Wrong),
        Checked::Locked(until) => return Ok(Outcome::Locked(until)),
        Checked::Busy => return Ok(Outcome::Busy),
    };
    let Some(account) = account else {
        // A right password for no account cannot happen (the dummy hash verifies as "No").
        return Ok(Outcome::Wrong);
    };
    let user = account.user;
    let mut conn = pool.acquire().await?;
    if let Some(new_hash) = rehashed {
        db::users::set_password_hash(&mut conn, user.id, &new_hash).await?;
    }
    if user.disabled {
        return Ok(Outcome::Disabled);
    }
    if user.role == Role::Student {
        if let Some(pause) = db::camp::pause(&mut conn).await? {
            return Ok(Outcome::CampPaused(pause.message));
        }
    }
    throttle::clear_account(&mut conn, &user.username).await?;
    db::board::logged_in(&mut conn, user.id).await?;
    if let Some(old) = &a.old_session {
        db::sessions::delete(&mut conn, old).await?;
    }
    drop(conn);
    let cookie = session::create(pool, config, user.id, a.user_agent).await?;
    tracing::info!(username = %user.username, "login");
    Ok(Outcome::LoggedIn {
        cookie,
        username: user.username,
    })
}

/// Ends this session and the hub's hold on the person's identity (their grants), whether the
/// person logged out here or through the hub's end-session redirect.
pub async fn log_out(pool: &PgPool, tokens: &TokenCache, user: &CurrentUser) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let ended = access::end(&mut tx, user.id, access::Sessions::This(&user.session_hash)).await?;
    ended.commit(tx, tokens).await?;
    Ok(())
}
