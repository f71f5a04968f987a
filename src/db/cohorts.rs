//! Cohorts, their profiles and class blocks (migration 0040). A cohort exists as soon as a
//! student has it (`users.cohort`); its row here is made the first time someone saves its
//! settings, so [`overview`] lists both kinds.
use sqlx::PgConnection;
use time::{Date, OffsetDateTime, Time};

/// A cohort's saved settings.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CohortRow {
    pub name: String,
    pub slug: String,
    pub timezone: String,
    pub first_day: Option<Date>,
    pub last_day: Option<Date>,
    pub memory_guarantee_mib: i32,
    pub memory_limit_mib: i32,
    pub cpu_limit_millis: i32,
    pub idle_timeout_mins: i32,
    pub updated_at: OffsetDateTime,
}

/// One line of the cohorts page: a name from either source, its students and blocks.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CohortLine {
    pub name: String,
    /// Students with this cohort who can log in.
    pub students: i64,
    pub blocks: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlockRow {
    pub id: i64,
    pub cohort: String,
    /// Weekly: the Monday-first bit set; `None` for a one-off session.
    pub days: Option<i16>,
    pub on_date: Option<Date>,
    pub starts: Time,
    pub ends: Time,
}

const COLUMNS: &str = "name, slug, timezone, first_day, last_day, memory_guarantee_mib, \
    memory_limit_mib, cpu_limit_millis, idle_timeout_mins, updated_at";

/// Every cohort, with or without saved settings, by name.
pub async fn overview(
    conn: &mut PgConnection,
) -> sqlx::Result<Vec<(CohortLine, Option<CohortRow>)>> {
    let lines: Vec<CohortLine> = sqlx::query_as(
        "WITH names AS (
             SELECT cohort AS name FROM users WHERE role = 'student' AND cohort IS NOT NULL
             UNION SELECT name FROM cohorts)
         SELECT n.name,
                (SELECT count(*) FROM users u
                  WHERE u.cohort = n.name AND u.role = 'student' AND NOT u.disabled) AS students,
                (SELECT count(*) FROM cohort_blocks b WHERE b.cohort = n.name) AS blocks
         FROM names n ORDER BY n.name",
    )
    .fetch_all(&mut *conn)
    .await?;
    let rows = all(conn).await?;
    Ok(lines
        .into_iter()
        .map(|l| {
            let saved = rows.iter().find(|r| r.name == l.name).cloned();
            (l, saved)
        })
        .collect())
}

pub async fn all(conn: &mut PgConnection) -> sqlx::Result<Vec<CohortRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM cohorts ORDER BY name"))
        .fetch_all(conn)
        .await
}

pub async fn find(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<CohortRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM cohorts WHERE name = $1"))
        .bind(name)
        .fetch_optional(conn)
        .await
}

/// Every cohort's name: saved ones and students' cohorts.
pub async fn names(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT cohort FROM users WHERE role = 'student' AND cohort IS NOT NULL
         UNION SELECT name FROM cohorts ORDER BY 1",
    )
    .fetch_all(conn)
    .await
}

/// Students of the cohort who can log in.
pub async fn enrolled(conn: &mut PgConnection, name: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE cohort = $1 AND role = 'student' AND NOT disabled",
    )
    .bind(name)
    .fetch_one(conn)
    .await
}

/// Saves a cohort's settings (insert or update).
pub async fn save(conn: &mut PgConnection, row: &CohortRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO cohorts (name, slug, timezone, first_day, last_day, memory_guarantee_mib,
                              memory_limit_mib, cpu_limit_millis, idle_timeout_mins)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (name) DO UPDATE SET
             timezone = EXCLUDED.timezone, first_day = EXCLUDED.first_day,
             last_day = EXCLUDED.last_day, memory_guarantee_mib = EXCLUDED.memory_guarantee_mib,
             memory_limit_mib = EXCLUDED.memory_limit_mib,
             cpu_limit_millis = EXCLUDED.cpu_limit_millis,
             idle_timeout_mins = EXCLUDED.idle_timeout_mins, updated_at = now()",
    )
    .bind(&row.name)
    .bind(&row.slug)
    .bind(&row.timezone)
    .bind(row.first_day)
    .bind(row.last_day)
    .bind(row.memory_guarantee_mib)
    .bind(row.memory_limit_mib)
    .bind(row.cpu_limit_millis)
    .bind(row.idle_timeout_mins)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn blocks(conn: &mut PgConnection, cohort: &str) -> sqlx::Result<Vec<BlockRow>> {
    sqlx::query_as(
        "SELECT id, cohort, days, on_date, starts, ends FROM cohort_blocks WHERE cohort = $1
         ORDER BY on_date NULLS FIRST, starts, id",
    )
    .bind(cohort)
    .fetch_all(conn)
    .await
}

pub async fn all_blocks(conn: &mut PgConnection) -> sqlx::Result<Vec<BlockRow>> {
    sqlx::query_as(
        "SELECT id, cohort, days, on_date, starts, ends FROM cohort_blocks
         ORDER BY cohort, on_date NULLS FIRST, starts, id",
    )
    .fetch_all(conn)
    .await
}

pub async fn add_block(
    conn: &mut PgConnection,
    cohort: &str,
    days: Option<i16>,
    on_date: Option<Date>,
    starts: Time,
    ends: Time,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO cohort_blocks (cohort, days, on_date, starts, ends)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(cohort)
    .bind(days)
    .bind(on_date)
    .bind(starts)
    .bind(ends)
    .fetch_one(conn)
    .await
}

/// Removes one block of the cohort; `false` if it was not there (gone already, or another's).
pub async fn delete_block(conn: &mut PgConnection, cohort: &str, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM cohort_blocks WHERE cohort = $1 AND id = $2")
        .bind(cohort)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
