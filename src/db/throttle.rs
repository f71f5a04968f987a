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

/// Counts a failure for `key`; once `threshold` failures fall inside the window, locks the key
/// for `base_secs` doubled per extra failure, capped at `max_secs`. Returns the failure count.
pub async fn record_failure(
    conn: &mut PgConnection,
    key: &str,
    threshold: i32,
    window_secs: i64,
    base_secs: i64,
    max_secs: i64,
) -> sqlx::Result<i32> {
    let failures: i32 = sqlx::query_scalar(
        "INSERT INTO login_throttle AS t (key, failures, first_failure_at, last_failure_at)
         VALUES ($1, 1, now(), now())
         ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN t.last_failure_at < now() - make_interval(secs => $2)
                            THEN 1 ELSE t.failures + 1 END,
            first_failure_at = CASE WHEN t.last_failure_at < now() - make_interval(secs => $2)
                            THEN now() ELSE t.first_failure_at END,
            last_failure_at = now()
         RETURNING failures",
    )
    .bind(key)
    .bind(window_secs as f64)
    .fetch_one(&mut *conn)
    .await?;
    if failures >= threshold {
        let doublings = (failures - threshold).clamp(0, 20) as u32;
        let secs = base_secs.saturating_mul(1i64 << doublings).min(max_secs);
        sqlx::query(
            "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2) WHERE key = $1",
        )
        .bind(key)
        .bind(secs as f64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(failures)
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
