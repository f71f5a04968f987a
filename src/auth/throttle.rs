//! Failed-login throttling per account and per client address, persisted in PostgreSQL so a
//! restart does not reset it. Unknown users are counted like real ones.
use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::{config::ThrottleConfig, db, domain::Username};

const ACCOUNT_PREFIX: &str = "user:";

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

pub async fn record_failure(
    conn: &mut PgConnection,
    cfg: &ThrottleConfig,
    username: Option<&Username>,
    addr: &str,
) -> sqlx::Result<()> {
    let window = cfg.window_minutes * 60;
    let max = cfg.max_lock_minutes * 60;
    if let Some(u) = username {
        db::throttle::record_failure(
            conn,
            &account_key(u.as_str()),
            cfg.account_failures,
            window,
            cfg.lock_seconds,
            max,
        )
        .await?;
    }
    db::throttle::record_failure(
        conn,
        &address_key(addr),
        cfg.address_failures,
        window,
        cfg.lock_seconds,
        max,
    )
    .await?;
    Ok(())
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
