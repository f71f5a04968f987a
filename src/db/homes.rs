//! The homes journal (`home_ops`), archive metadata (`home_archives`) and the per-home advisory
//! lock. `crate::homes` owns the meaning; this file holds the SQL.
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// First half of the two-key advisory lock: keeps our keys apart from other users of advisory
/// locks in the same database (the job runner's periodic tasks use the one-key form).
const LOCK_CLASS: &str = "hubdesk.homes";

/// Takes the session-level lock of one home without waiting. The lock lives as long as the
/// connection's session (or until [`unlock`]): a process that dies releases it.
///
/// Keys are `hashtext(username)`: two names with the same 32-bit hash share a lock, which only
/// makes one of them wait ("already in progress") for a moment, never lets two in.
pub async fn try_lock(conn: &mut PgConnection, username: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))")
        .bind(LOCK_CLASS)
        .bind(username)
        .fetch_one(conn)
        .await
}

pub async fn unlock(conn: &mut PgConnection, username: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_advisory_unlock(hashtext($1), hashtext($2))")
        .bind(LOCK_CLASS)
        .bind(username)
        .fetch_one(conn)
        .await
}

/// Serialises writers of the NFS node's quota list across instances, until the end of the
/// caller's transaction (a key class of its own: never a home's lock).
pub async fn lock_quota_list(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('hubdesk.quota-list'), 0)")
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpRow {
    pub id: Uuid,
    pub username: String,
    pub kind: String,
    pub state: String,
    #[sqlx(json)]
    pub steps: Vec<String>,
    pub paths: serde_json::Value,
    pub actor: String,
    pub reason: String,
    pub job_id: Option<Uuid>,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    pub recovered: bool,
    pub started_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

const OP_COLUMNS: &str = "id, username, kind, state, steps, paths, actor, reason, job_id, result, \
                          error, recovered, started_at, updated_at, finished_at";

pub struct NewOp<'a> {
    pub id: Uuid,
    pub username: &'a str,
    pub kind: &'a str,
    pub paths: &'a serde_json::Value,
    pub actor: &'a str,
    pub reason: &'a str,
    pub job_id: Option<Uuid>,
}

/// Journals an operation as running. A unique violation (SQLSTATE 23505) means another
/// operation on the home is unfinished.
pub async fn insert_op(conn: &mut PgConnection, op: &NewOp<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO home_ops (id, username, kind, paths, actor, reason, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(op.id)
    .bind(op.username)
    .bind(op.kind)
    .bind(op.paths)
    .bind(op.actor)
    .bind(op.reason)
    .bind(op.job_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends a completed step; false when the op is no longer running (someone else finished it).
pub async fn record_step(conn: &mut PgConnection, id: Uuid, step: &str) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE home_ops SET steps = CASE WHEN steps @> jsonb_build_array($2::text) THEN steps
                                          ELSE steps || jsonb_build_array($2::text) END,
                updated_at = now()
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(step)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Replaces the plan (recovery re-plans a temp directory); false when no longer running.
pub async fn set_paths(
    conn: &mut PgConnection,
    id: Uuid,
    paths: &serde_json::Value,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE home_ops SET paths = $2, updated_at = now() WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(paths)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

/// Notes an error on a still-running op (its recovery failed; the next attempt shows why).
pub async fn note_error(conn: &mut PgConnection, id: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE home_ops SET error = $2, updated_at = now() WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends an op: `done`, `rolled_back` or `failed`. False when it had already ended.
pub async fn finish_op(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    result: Option<&serde_json::Value>,
    error: Option<&str>,
    recovered: bool,
) -> sqlx::Result<bool> {
    Ok(sqlx::query(
        "UPDATE home_ops SET state = $2, result = $3, error = COALESCE($4, error), recovered = $5,
                finished_at = now(), updated_at = now()
         WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(state)
    .bind(result)
    .bind(error)
    .bind(recovered)
    .execute(conn)
    .await?
    .rows_affected()
        == 1)
}

pub async fn get_op(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<OpRow>> {
    sqlx::query_as(&format!("SELECT {OP_COLUMNS} FROM home_ops WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Every unfinished op, oldest first (what `recover` looks at).
pub async fn running_ops(conn: &mut PgConnection) -> sqlx::Result<Vec<OpRow>> {
    sqlx::query_as(&format!(
        "SELECT {OP_COLUMNS} FROM home_ops WHERE state = 'running' ORDER BY started_at, id"
    ))
    .fetch_all(conn)
    .await
}

pub async fn running_for(conn: &mut PgConnection, username: &str) -> sqlx::Result<Vec<OpRow>> {
    sqlx::query_as(&format!(
        "SELECT {OP_COLUMNS} FROM home_ops WHERE state = 'running' AND username = $1
         ORDER BY started_at, id"
    ))
    .bind(username)
    .fetch_all(conn)
    .await
}

/// The op a job ran, newest first: a resumed job returns the result of the one that finished.
pub async fn ops_for_job(conn: &mut PgConnection, job_id: Uuid) -> sqlx::Result<Vec<OpRow>> {
    sqlx::query_as(&format!(
        "SELECT {OP_COLUMNS} FROM home_ops WHERE job_id = $1 ORDER BY started_at DESC, id"
    ))
    .bind(job_id)
    .fetch_all(conn)
    .await
}

/// Recent ops on one home, newest first (a student page's history).
pub async fn ops_for(
    conn: &mut PgConnection,
    username: &str,
    limit: i64,
) -> sqlx::Result<Vec<OpRow>> {
    sqlx::query_as(&format!(
        "SELECT {OP_COLUMNS} FROM home_ops WHERE username = $1
         ORDER BY started_at DESC, id LIMIT $2"
    ))
    .bind(username)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// A queued or running homes job for this username (`homes.reset`, `homes.restore`, or a
/// `homes.create_many` naming it), so the HTTP layer can answer 409 before enqueueing a second.
pub async fn active_job(conn: &mut PgConnection, username: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM jobs
         WHERE kind LIKE 'homes.%' AND state IN ('queued', 'running')
           AND (payload->>'username' = $1 OR payload->'usernames' ? $1)
         ORDER BY created_at LIMIT 1",
    )
    .bind(username)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ArchiveRow {
    pub username: String,
    pub id: String,
    pub scope: String,
    pub reason: String,
    pub actor: String,
    pub op_id: Uuid,
    pub created_at: OffsetDateTime,
    pub bytes: Option<i64>,
    pub gone_at: Option<OffsetDateTime>,
    pub gone_reason: Option<String>,
}

const ARCHIVE_COLUMNS: &str =
    "username, id, scope, reason, actor, op_id, created_at, bytes, gone_at, gone_reason";

pub struct NewArchive<'a> {
    pub username: &'a str,
    pub id: &'a str,
    pub scope: &'a str,
    pub reason: &'a str,
    pub actor: &'a str,
    pub op_id: Uuid,
    pub created_at: OffsetDateTime,
}

/// Records an archive entry; a second call for the same entry (recovery) changes nothing.
pub async fn insert_archive(conn: &mut PgConnection, a: &NewArchive<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO home_archives (username, id, scope, reason, actor, op_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username, id) DO NOTHING",
    )
    .bind(a.username)
    .bind(a.id)
    .bind(a.scope)
    .bind(a.reason)
    .bind(a.actor)
    .bind(a.op_id)
    .bind(a.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every row for a user, gone or not (ids are never reused), newest first.
pub async fn archives_of(conn: &mut PgConnection, username: &str) -> sqlx::Result<Vec<ArchiveRow>> {
    sqlx::query_as(&format!(
        "SELECT {ARCHIVE_COLUMNS} FROM home_archives WHERE username = $1
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(username)
    .fetch_all(conn)
    .await
}

pub async fn archive_id_taken(
    conn: &mut PgConnection,
    username: &str,
    id: &str,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM home_archives WHERE username = $1 AND id = $2)",
    )
    .bind(username)
    .bind(id)
    .fetch_one(conn)
    .await
}

pub async fn set_archive_bytes(
    conn: &mut PgConnection,
    username: &str,
    id: &str,
    bytes: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE home_archives SET bytes = $3 WHERE username = $1 AND id = $2")
        .bind(username)
        .bind(id)
        .bind(bytes)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks an entry as no longer in the archive: `restored` into place or `purged`.
pub async fn mark_archive_gone(
    conn: &mut PgConnection,
    username: &str,
    id: &str,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE home_archives SET gone_at = now(), gone_reason = $3
         WHERE username = $1 AND id = $2 AND gone_at IS NULL",
    )
    .bind(username)
    .bind(id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Live rows created before `cutoff` (purge candidates), per user.
pub async fn archives_before(
    conn: &mut PgConnection,
    cutoff: OffsetDateTime,
) -> sqlx::Result<Vec<ArchiveRow>> {
    sqlx::query_as(&format!(
        "SELECT {ARCHIVE_COLUMNS} FROM home_archives WHERE gone_at IS NULL AND created_at < $1
         ORDER BY username, created_at"
    ))
    .bind(cutoff)
    .fetch_all(conn)
    .await
}
