//! Setting one's own password with a one-time code a counselor gave (`roster::reset_code`).
//! The code is checked like a password, through `auth::gate`: the same throttle as logins
//! (per account and per address), the same constant-time path for unknown names. Whether a
//! code has expired is said only to someone who typed it right.
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{
    auth::{
        access,
        gate::{Checked, Gate},
        throttle, Hasher, TokenCache,
    },
    config::Config,
    db,
    domain::{Actor, NewPassword, Role, Username},
    roster::generate::normalise_code,
};

/// A code as typed into the form.
pub struct Redeem<'a> {
    pub username: &'a str,
    pub code: &'a str,
    pub new_password: &'a NewPassword,
    /// The client address, for the per-address throttle.
    pub addr: &'a str,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Redeemed {
    /// The password is set; every session of the person ended.
    Done(Username),
    /// No such student, no code, or the wrong code (one answer for all).
    Wrong,
    /// The right code, too late.
    Expired,
    Locked(OffsetDateTime),
    Busy,
}

pub async fn redeem(
    pool: &PgPool,
    hasher: &Hasher,
    tokens: &TokenCache,
    config: &Config,
    r: Redeem<'_>,
) -> anyhow::Result<Redeemed> {
    let username = Username::parse_login(r.username).ok();
    let found = match &username {
        Some(u) => {
            let mut conn = pool.acquire().await?;
            match db::users::find_by_username(&mut conn, u).await? {
                Some(user) if user.role == Role::Student && !user.disabled => {
                    db::reset_codes::find(&mut conn, user.id)
                        .await?
                        .map(|code| (user, code))
                }
                _ => None,
            }
        }
        None => None,
    };
    let gate = Gate {
        pool,
        hasher,
        throttle: &config.throttle,
    };
    let stored = found.as_ref().map(|(_, (hash, _))| hash.as_str());
    match gate
        .check(username.as_ref(), r.addr, stored, &normalise_code(r.code))
        .await?
    {
        Checked::Right { .. } => {}
        Checked::Wrong => return Ok(Redeemed::Wrong),
        Checked::Locked(until) => return Ok(Redeemed::Locked(until)),
        Checked::Busy => return Ok(Redeemed::Busy),
    }
    let Some((user, (_, expires_at))) = found else {
        return Ok(Redeemed::Wrong);
    };
    if expires_at < OffsetDateTime::now_utc() {
        let mut conn = pool.acquire().await?;
        db::reset_codes::take(&mut conn, user.id).await?;
        return Ok(Redeemed::Expired);
    }
    let hash = hasher.hash(r.new_password.expose()).await?;
    let mut tx = pool.begin().await?;
    if !db::reset_codes::take(&mut tx, user.id).await? {
        return Ok(Redeemed::Wrong); // used a moment ago, by a parallel request
    }
    db::users::set_password_hash(&mut tx, user.id, &hash).await?;
    throttle::clear_account(&mut tx, &user.username).await?;
    let ended = access::end(&mut tx, user.id, access::Sessions::All).await?;
    let detail = ended.detail("");
    db::audit::record(
        &mut tx,
        &Actor::User(user.username.clone()),
        "account.reset_code",
        Some(user.username.as_str()),
        Some(&detail),
    )
    .await?;
    ended.commit(tx, tokens).await?;
    Ok(Redeemed::Done(user.username))
}
