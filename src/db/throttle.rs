use sqlx::PgConnection;
use time::OffsetDateTime;

/// The latest lock among `keys`, if any is still in force.
pub async fn locked_until(
    conn: &mut PgConnection,
    keys: &[String],
) -> sqlx::Result<Option<OffsetDateTime>> {
    sqlx::query_scalar(
        "SELECT max(locked_until) FROM login_throttle WHERE key = ANY($1) AND locked_until > now()",
    )
    .bind(keys)
    .fetch_one(conn)
    .await
}

/// The prefix of an account's key (`user:<username>`); addresses are `ip:<address>`.
pub const ACCOUNT_PREFIX: &str = "user:";

/// What counting one failure found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Failures inside the window, this one included.
    pub failures: i32,
    /// The first of them.
    pub first_failure_at: OffsetDateTime,
    /// Set when this failure locked the key (failures during a lock are refused before they
    /// are counted, so every counted failure at or past the threshold begins a new lock).
    pub locked_until: Option<OffsetDateTime>,
    /// How long that lock lasts.
    pub lock_secs: i64,
}

/// Counts a failure for `key`; once `threshold` failures fall inside the window, locks the key
/// for `base_secs` doubled per extra failure, capped at `max_secs`.
pub async fn record_failure(
    conn: &mut PgConnection,
    key: &str,
    threshold: i32,
    window_secs: i64,
    base_secs: i64,
    max_secs: i64,
) -> sqlx::Result<Counted> {
    let (failures, first_failure_at): (i32, OffsetDateTime) = sqlx::query_as(
        "INSERT INTO login_throttle AS t (key, failures, first_failure_at, last_failure_at)
         VALUES ($1, 1, now(), now())
         ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN t.last_failure_at < now() - make_interval(secs => $2)
                            THEN 1 ELSE t.failures + 1 END,
            first_failure_at = CASE WHEN t.last_failure_at < now() - make_interval(secs => $2)
                            THEN now() ELSE t.first_failure_at END,
            last_failure_at = now()
         RETURNING failures, first_failure_at",
    )
    .bind(key)
    .bind(window_secs as f64)
    .fetch_one(&mut *conn)
    .await?;
    let mut counted = Counted {
        failures,
        first_failure_at,
        locked_until: None,
        lock_secs: 0,
    };
    if failures >= threshold {
        let doublings = (failures - threshold).clamp(0, 20) as u32;
        let secs = base_secs.saturating_mul(1i64 << doublings).min(max_secs);
        let until: OffsetDateTime = sqlx::query_scalar(
            "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2)
              WHERE key = $1 RETURNING locked_until",
        )
        .bind(key)
        .bind(secs as f64)
        .fetch_one(&mut *conn)
        .await?;
        counted.locked_until = Some(until);
        counted.lock_secs = secs;
    }
    Ok(counted)
}

/// Forgets failures for `keys` (successful login, or a counselor unlocking an account).
pub async fn clear(conn: &mut PgConnection, keys: &[String]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM login_throttle WHERE key = ANY($1)")
        .bind(keys)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn is_locked(conn: &mut PgConnection, key: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM login_throttle WHERE key = $1 AND locked_until > now())",
    )
    .bind(key)
    .fetch_one(conn)
    .await
}

/// Which of `keys` are locked now.
pub async fn locked_keys(conn: &mut PgConnection, keys: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT key FROM login_throttle WHERE key = ANY($1) AND locked_until > now()",
    )
    .bind(keys)
    .fetch_all(conn)
    .await
}

/// Forgets failures older than the window whose lock (if any) has run out.
pub async fn delete_stale(conn: &mut PgConnection, window_secs: i64) -> sqlx::Result<u64> {
    let n = sqlx::query(
        "DELETE FROM login_throttle
          WHERE last_failure_at < now() - make_interval(secs => $1)
            AND (locked_until IS NULL OR locked_until < now())",
    )
    .bind(window_secs as f64)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n)
}

/// A lock in force on an address (`ip:` keys), for the counselor's banner.
#[derive(Debug, sqlx::FromRow)]
pub struct AddressLock {
    pub address: String,
    pub failures: i32,
    pub locked_until: OffsetDateTime,
}

pub async fn address_locks(conn: &mut PgConnection) -> sqlx::Result<Vec<AddressLock>> {
    sqlx::query_as(
        "SELECT substr(key, 4) AS address, failures, locked_until FROM login_throttle
          WHERE key LIKE 'ip:%' AND locked_until > now()
          ORDER BY locked_until DESC LIMIT 20",
    )
    .fetch_all(conn)
    .await
}

/// A lock in force on an account, for the student list's badge.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountLock {
    pub username: String,
    pub failures: i32,
    pub locked_until: OffsetDateTime,
}

/// The locks in force among `usernames` (one query).
pub async fn account_locks(
    conn: &mut PgConnection,
    usernames: &[&str],
) -> sqlx::Result<Vec<AccountLock>> {
    let keys: Vec<String> = usernames
        .iter()
        .map(|u| format!("{ACCOUNT_PREFIX}{u}"))
        .collect();
    sqlx::query_as(
        "SELECT substr(key, length($2) + 1) AS username, failures, locked_until
           FROM login_throttle WHERE key = ANY($1) AND locked_until > now()",
    )
    .bind(&keys)
    .bind(ACCOUNT_PREFIX)
    .fetch_all(conn)
    .await
}

/// How many students are locked out now (the banner on the student list).
pub async fn locked_students(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM users u JOIN login_throttle t ON t.key = $1 || u.username
          WHERE u.role = 'student' AND t.locked_until > now()",
    )
    .bind(ACCOUNT_PREFIX)
    .fetch_one(conn)
    .await
}
