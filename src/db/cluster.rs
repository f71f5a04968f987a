//! What the cluster desk reads from hubdesk's own tables.
use sqlx::PgConnection;
use uuid::Uuid;

/// Student accounts that can log in: the class the cluster must be able to hold.
pub async fn enabled_students(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'student' AND NOT disabled")
        .fetch_one(conn)
        .await
}

/// First half of the two-key advisory lock (the homes use "hubdesk.homes").
const LOCK_CLASS: &str = "hubdesk.cluster";

/// Takes the join-token lock until the end of the caller's transaction (a process that dies
/// releases it with its connection). Reading the token for a launch and deciding to rotate it
/// both happen under it: `crate::cluster::token` explains why.
pub async fn lock_join_token(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext('join-token'))")
        .bind(LOCK_CLASS)
        .execute(conn)
        .await?;
    Ok(())
}

/// Jobs of `kind` other than `except` that are queued or running and have recorded none of
/// the steps in `past` (launches that may still hand out, or depend on, the join token).
pub async fn launches_in_flight(
    conn: &mut PgConnection,
    kind: &str,
    except: Uuid,
    past: &[&str],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM jobs
         WHERE kind = $1 AND id <> $2 AND state IN ('queued', 'running')
           AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(steps) s
                           WHERE s->>'name' = ANY($3))
         ORDER BY created_at",
    )
    .bind(kind)
    .bind(except)
    .bind(past)
    .fetch_all(conn)
    .await
}
