//! Announcements (migration 0045).
use sqlx::PgConnection;
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AnnouncementRow {
    pub id: i64,
    pub message: String,
    pub cohort: Option<String>,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub created_by: String,
}

pub struct NewAnnouncement<'a> {
    pub message: &'a str,
    pub cohort: Option<&'a str>,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub created_by: &'a str,
}

pub async fn insert(conn: &mut PgConnection, a: &NewAnnouncement<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "INSERT INTO announcements (message, cohort, starts_at, ends_at, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(a.message)
    .bind(a.cohort)
    .bind(a.starts_at)
    .bind(a.ends_at)
    .bind(a.created_by)
    .fetch_one(conn)
    .await
}

/// Every announcement that has not ended before `since`, soonest first.
pub async fn since(
    conn: &mut PgConnection,
    since: OffsetDateTime,
) -> sqlx::Result<Vec<AnnouncementRow>> {
    sqlx::query_as(
        "SELECT id, message, cohort, starts_at, ends_at, created_by FROM announcements
         WHERE ends_at > $1 ORDER BY starts_at, id",
    )
    .bind(since)
    .fetch_all(conn)
    .await
}

/// Ends it now (if it has not ended); `None` when there is no such announcement.
pub async fn end_now(
    conn: &mut PgConnection,
    id: i64,
    now: OffsetDateTime,
) -> sqlx::Result<Option<AnnouncementRow>> {
    sqlx::query_as(
        "UPDATE announcements
         SET starts_at = least(starts_at, $2 - interval '1 second'), ends_at = least(ends_at, $2)
         WHERE id = $1 RETURNING id, message, cohort, starts_at, ends_at, created_by",
    )
    .bind(id)
    .bind(now)
    .fetch_optional(conn)
    .await
}

pub async fn dismiss(conn: &mut PgConnection, id: i64, user_id: i64) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO announcement_dismissals (announcement_id, user_id)
         SELECT id, $2 FROM announcements WHERE id = $1 ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(user_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// What is on at `now`, each with who dismissed it (the hub's feed).
pub async fn current_with_dismissals(
    conn: &mut PgConnection,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<(AnnouncementRow, Vec<String>)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        a: AnnouncementRow,
        dismissed_by: Vec<String>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT a.id, a.message, a.cohort, a.starts_at, a.ends_at, a.created_by,
                ARRAY(SELECT u.username FROM announcement_dismissals d JOIN users u ON u.id = d.user_id
                      WHERE d.announcement_id = a.id ORDER BY u.username) AS dismissed_by
         FROM announcements a WHERE $1 >= a.starts_at AND $1 < a.ends_at
         ORDER BY a.starts_at, a.id",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.a, r.dismissed_by)).collect())
}
