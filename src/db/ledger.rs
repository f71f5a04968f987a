//! The fleet's timeline (migration 0041), for the calendar's cost ledger.
use sqlx::PgConnection;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WorkerSpan {
    pub instance_id: String,
    pub instance_type: String,
    pub hourly_cost: f64,
    pub launched_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

/// A worker seen alive (or first seen): recorded once; its launch time is EC2's.
pub async fn seen(
    conn: &mut PgConnection,
    instance_id: &str,
    instance_type: &str,
    hourly_cost: f64,
    launched_at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO worker_hours (instance_id, instance_type, hourly_cost, launched_at)
         VALUES ($1, $2, $3, $4) ON CONFLICT (instance_id) DO NOTHING",
    )
    .bind(instance_id)
    .bind(instance_type)
    .bind(hourly_cost)
    .bind(launched_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The worker ended at `at` (the first end recorded stands).
pub async fn ended(
    conn: &mut PgConnection,
    instance_id: &str,
    at: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE worker_hours SET ended_at = GREATEST($2, launched_at)
         WHERE instance_id = $1 AND ended_at IS NULL",
    )
    .bind(instance_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Workers not ended yet.
pub async fn open(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT instance_id FROM worker_hours WHERE ended_at IS NULL")
        .fetch_all(conn)
        .await
}

/// Every worker alive at some moment of `[from, to)`.
pub async fn overlapping(
    conn: &mut PgConnection,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> sqlx::Result<Vec<WorkerSpan>> {
    sqlx::query_as(
        "SELECT instance_id, instance_type, hourly_cost, launched_at, ended_at FROM worker_hours
         WHERE launched_at < $2 AND (ended_at IS NULL OR ended_at > $1) ORDER BY launched_at",
    )
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}
