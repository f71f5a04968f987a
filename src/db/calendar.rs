//! What the calendar decided (migration 0040: `calendar_actions`, `calendar_state`).
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActionRow {
    pub key: String,
    pub at: OffsetDateTime,
    pub kind: String,
    pub cohort: Option<String>,
    pub workers: Option<i32>,
    pub outcome: String,
    pub detail: String,
    pub job_ids: Vec<Uuid>,
    pub decided_at: OffsetDateTime,
}

/// A decision to record.
pub struct Decision<'a> {
    pub key: &'a str,
    pub at: OffsetDateTime,
    pub kind: &'a str,
    pub cohort: Option<&'a str>,
    pub workers: Option<i32>,
    pub outcome: &'a str,
    pub detail: &'a str,
    pub job_ids: &'a [Uuid],
}

/// Records a decision unless one is there (a `held` one is not final: it is replaced);
/// `false`: another tick decided first (the caller's transaction must then be rolled back, with
/// the jobs it queued).
pub async fn record(conn: &mut PgConnection, d: &Decision<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO calendar_actions (key, at, kind, cohort, workers, outcome, detail, job_ids)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (key) DO UPDATE SET outcome = $6, detail = $7, job_ids = $8, decided_at = now()
         WHERE calendar_actions.outcome = 'held'",
    )
    .bind(d.key)
    .bind(d.at)
    .bind(d.kind)
    .bind(d.cohort)
    .bind(d.workers)
    .bind(d.outcome)
    .bind(d.detail)
    .bind(d.job_ids)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Which of these keys are decided for good (`held` is not).
pub async fn decided(conn: &mut PgConnection, keys: &[String]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT key FROM calendar_actions WHERE key = ANY($1) AND outcome <> 'held'")
        .bind(keys)
        .fetch_all(conn)
        .await
}

/// Decisions about actions planned within `[from, to)`, in time order.
pub async fn between(
    conn: &mut PgConnection,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> sqlx::Result<Vec<ActionRow>> {
    sqlx::query_as(
        "SELECT key, at, kind, cohort, workers, outcome, detail, job_ids, decided_at
         FROM calendar_actions WHERE at >= $1 AND at < $2 ORDER BY at, key",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

pub async fn paused(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT paused FROM calendar_state")
        .fetch_optional(conn)
        .await
        .map(|p| p.unwrap_or(false))
}

pub async fn feed_token(conn: &mut PgConnection) -> sqlx::Result<String> {
    sqlx::query_scalar("SELECT feed_token FROM calendar_state")
        .fetch_one(conn)
        .await
}

pub async fn set_paused(conn: &mut PgConnection, paused: bool, by: &str) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO calendar_state (id, paused, changed_by, changed_at) VALUES (TRUE, $1, $2, now())
         ON CONFLICT (id) DO UPDATE SET paused = $1, changed_by = $2, changed_at = now()",
    )
    .bind(paused)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// The week's budget (dollars, `None`: none) and the Monday of the week the calendar may pass it.
pub async fn budget(conn: &mut PgConnection) -> sqlx::Result<(Option<f64>, Option<time::Date>)> {
    Ok(
        sqlx::query_as("SELECT week_budget, over_budget_week FROM calendar_state")
            .fetch_optional(conn)
            .await?
            .unwrap_or((None, None)),
    )
}

pub async fn set_budget(conn: &mut PgConnection, budget: Option<f64>) -> sqlx::Result<()> {
    sqlx::query("UPDATE calendar_state SET week_budget = $1")
        .bind(budget)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn allow_week(conn: &mut PgConnection, monday: time::Date) -> sqlx::Result<()> {
    sqlx::query("UPDATE calendar_state SET over_budget_week = $1")
        .bind(monday)
        .execute(conn)
        .await?;
    Ok(())
}

/// The most workers a grow the calendar holds for the budget (planned since `since`) wants.
pub async fn held_workers(conn: &mut PgConnection, since: OffsetDateTime) -> sqlx::Result<u32> {
    let n: Option<i32> = sqlx::query_scalar(
        "SELECT max(workers) FROM calendar_actions
         WHERE outcome = 'held' AND kind = 'grow' AND at >= $1",
    )
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
}

/// Workers that launches queued or running have not created yet (jobs `cluster.launch`
/// without their `launched` step): they count as present for the calendar's arithmetic.
pub async fn workers_being_launched(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum((payload->>'count')::bigint), 0)::bigint FROM jobs
         WHERE kind = 'cluster.launch' AND state IN ('queued', 'running')
           AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(steps) s
                           WHERE s->>'name' = 'launched')",
    )
    .fetch_one(conn)
    .await
}

/// Students whose server a queued or running stop is stopping.
pub async fn stops_in_flight(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT payload->>'username' FROM jobs
         WHERE kind = 'servers.stop' AND state IN ('queued', 'running')",
    )
    .fetch_all(conn)
    .await
}

/// Which of these launch jobs the calendar queued.
pub async fn launched_by_calendar(
    conn: &mut PgConnection,
    launches: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM jobs WHERE id = ANY($1) AND kind = 'cluster.launch' AND actor = 'system:calendar'",
    )
    .bind(launches)
    .fetch_all(conn)
    .await
}

/// Instances that removals queued or running are taking away.
pub async fn workers_being_removed(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT payload->>'instance_id' FROM jobs
         WHERE kind = 'cluster.remove' AND state IN ('queued', 'running')",
    )
    .fetch_all(conn)
    .await
}
