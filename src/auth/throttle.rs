//! Failed-login throttling per account and per client address, persisted in PostgreSQL so a
//! restart does not reset it. Unknown users are counted like real ones.
//!
//! Every lock that begins is one audit line (`login.locked` for an account, `address.locked`
//! for a client address) that sums up the failures behind it, and one warning in the server
//! log; each failure is an info line there. Never the password; a username only as parsed
//! (`[a-z][a-z0-9-]{0,31}`, so bounded and inert), and text that is no username not at all.
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::{
    config::ThrottleConfig,
    db::{self, throttle::Counted, throttle::ACCOUNT_PREFIX},
    domain::{Actor, Username},
};

pub fn account_key(username: &str) -> String {
    format!("{ACCOUNT_PREFIX}{username}")
}

pub fn address_key(addr: &str) -> String {
    format!("ip:{addr}")
}

/// Until when the login is refused, if it is.
pub async fn locked_until(
    conn: &mut PgConnection,
    username: Option<&Username>,
    addr: &str,
) -> sqlx::Result<Option<OffsetDateTime>> {
    let mut keys = vec![address_key(addr)];
    if let Some(u) = username {
        keys.push(account_key(u.as_str()));
    }
    db::throttle::locked_until(conn, &keys).await
}

/// Who failed a password check.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    /// The name typed, if it parses as a username at all.
    pub username: Option<&'a Username>,
    /// Whether an account of that name exists (unknown names are throttled the same way).
    pub known: bool,
    /// The client address.
    pub addr: &'a str,
}

/// Counts a failed password check against the account and the address; a lock that begins is
/// audited (in the caller's transaction) and logged.
pub async fn record_failure(
    conn: &mut PgConnection,
    cfg: &ThrottleConfig,
    failure: Failure<'_>,
) -> sqlx::Result<()> {
    let Failure {
        username,
        known,
        addr,
    } = failure;
    let window = cfg.window_minutes * 60;
    let max = cfg.max_lock_minutes * 60;
    tracing::info!(
        user = username.map(Username::as_str).unwrap_or("(not a username)"),
        known,
        addr,
        "failed password"
    );
    if let Some(u) = username {
        let counted = db::throttle::record_failure(
            conn,
            &account_key(u.as_str()),
            cfg.account_failures,
            window,
            cfg.lock_seconds,
            max,
        )
        .await?;
        if counted.locked_until.is_some() {
            let summary = lock_summary(&counted, &format!(", the last from {addr}"));
            tracing::warn!(user = u.as_str(), known, addr, %summary, "account locked");
            let (target, detail) = if known {
                (Some(u.as_str()), summary)
            } else {
                (None, format!("no account named '{u}': {summary}"))
            };
            db::audit::record(conn, &Actor::System, "login.locked", target, Some(&detail)).await?;
        }
    }
    let counted = db::throttle::record_failure(
        conn,
        &address_key(addr),
        cfg.address_failures,
        window,
        cfg.lock_seconds,
        max,
    )
    .await?;
    if counted.locked_until.is_some() {
        let summary = lock_summary(&counted, " (any username)");
        tracing::warn!(addr, %summary, "address locked");
        db::audit::record(
            conn,
            &Actor::System,
            "address.locked",
            Some(addr),
            Some(&format!("logins from {addr} {summary}")),
        )
        .await?;
    }
    Ok(())
}

/// "locked for 30 s after 5 failed logins between 10:41:02 and 10:41:37 UTC, the last from …"
fn lock_summary(c: &Counted, tail: &str) -> String {
    let until = c.locked_until.unwrap_or(c.first_failure_at);
    let last = until - time::Duration::seconds(c.lock_secs);
    let span = if c.failures > 1 {
        format!(
            "between {} and {} UTC",
            clock(c.first_failure_at),
            clock(last)
        )
    } else {
        format!("at {} UTC", clock(last))
    };
    format!(
        "locked for {} after {} failed login{} {span}{tail}",
        duration_words(c.lock_secs),
        c.failures,
        if c.failures == 1 { "" } else { "s" },
    )
}

fn clock(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

/// "30 s", "2 min", "1 h 5 min": a lock's length.
pub fn duration_words(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 3600 => format!("{} min", (s + 30) / 60),
        s => {
            let m = (s % 3600 + 30) / 60;
            if m == 0 {
                format!("{} h", s / 3600)
            } else {
                format!("{} h {m} min", s / 3600)
            }
        }
    }
}

pub async fn clear_account(conn: &mut PgConnection, username: &Username) -> sqlx::Result<()> {
    db::throttle::clear(conn, &[account_key(username.as_str())]).await
}

/// Which of `usernames` have their login locked now (one query).
pub async fn locked_accounts(
    conn: &mut PgConnection,
    usernames: &[&str],
) -> sqlx::Result<Vec<String>> {
    let keys: Vec<String> = usernames.iter().map(|u| account_key(u)).collect();
    let locked = db::throttle::locked_keys(conn, &keys).await?;
    Ok(locked
        .into_iter()
        .filter_map(|k| k.strip_prefix(ACCOUNT_PREFIX).map(str::to_string))
        .collect())
}

pub async fn account_locked(conn: &mut PgConnection, username: &Username) -> sqlx::Result<bool> {
    db::throttle::is_locked(conn, &account_key(username.as_str())).await
}

pub async fn clear_address(conn: &mut PgConnection, addr: &str) -> sqlx::Result<()> {
    db::throttle::clear(conn, &[address_key(addr)]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_summed_up_in_words() {
        let first = time::macros::datetime!(2026-07-01 10:41:02 UTC);
        let c = Counted {
            failures: 5,
            first_failure_at: first,
            locked_until: Some(time::macros::datetime!(2026-07-01 10:42:07 UTC)),
            lock_secs: 30,
        };
        assert_eq!(
            lock_summary(&c, ", the last from 203.0.113.7"),
            "locked for 30 s after 5 failed logins between 10:41:02 and 10:41:37 UTC, \
             the last from 203.0.113.7"
        );
        assert_eq!(duration_words(240), "4 min");
        assert_eq!(duration_words(900), "15 min");
        assert_eq!(duration_words(3900), "1 h 5 min");
    }
}
