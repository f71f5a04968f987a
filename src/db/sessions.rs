use sqlx::PgConnection;

use super::users::UserRow;
use time::OffsetDateTime;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
}

pub async fn insert(
    conn: &mut PgConnection,
    id_hash: &[u8],
    user_id: i64,
    csrf_token: &str,
    user_agent: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id_hash, user_id, csrf_token, user_agent) VALUES ($1, $2, $3, $4)",
    )
    .bind(id_hash)
    .bind(user_id)
    .bind(csrf_token)
    .bind(user_agent.map(|ua| ua.chars().take(200).collect::<String>()))
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Debug, sqlx::FromRow)]
struct SessionUserRow {
    csrf_token: String,
    session_created_at: OffsetDateTime,
    last_seen_at: OffsetDateTime,
    dismissed_notices: Vec<String>,
    camp_paused: Option<String>,
    announcements: Vec<String>,
    reach_cohorts: Option<Vec<String>>,
    #[sqlx(flatten)]
    user: UserRow,
}

pub struct SessionWithUser {
    pub session: SessionRow,
    pub user: UserRow,
    /// The setup notices this person has dismissed (`db::notices`).
    pub dismissed_notices: Vec<String>,
    /// While the camp is paused, what students are told (`db::camp`).
    pub camp_paused: Option<String>,
    /// Announcements on now for this person and not dismissed: `"<id>:<message>"`.
    pub announcements: Vec<String>,
    /// The person's reach over students (`domain::Reach::from_column`): NULL for admins and
    /// counselors of every cohort, the assigned cohorts otherwise, none for students.
    pub reach_cohorts: Option<Vec<String>>,
}

/// The session and its user in one round trip (every page view asks); the announcements on
/// at `now` (the camp's clock).
pub async fn find_with_user(
    conn: &mut PgConnection,
    id_hash: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Option<SessionWithUser>> {
    let row: Option<SessionUserRow> = sqlx::query_as(
        "SELECT s.csrf_token, s.created_at AS session_created_at, s.last_seen_at,
                u.id, u.subject, u.username, u.display_name, u.role, u.cohort, u.disabled,
                u.created_at, u.home_bytes, u.home_measured_at, u.home_quota_bytes,
                ARRAY(SELECT d.notice FROM dismissed_notices d WHERE d.user_id = u.id)
                    AS dismissed_notices,
                (SELECT p.message FROM camp_pause p WHERE p.paused_at IS NOT NULL) AS camp_paused,
                ARRAY(SELECT a.id::text || ':' || a.message FROM announcements a
                      WHERE $2 >= a.starts_at AND $2 < a.ends_at
                        AND (a.cohort IS NULL OR (u.role = 'student' AND a.cohort = u.cohort))
                        AND NOT EXISTS (SELECT 1 FROM announcement_dismissals d
                                        WHERE d.announcement_id = a.id AND d.user_id = u.id)
                      ORDER BY a.starts_at, a.id) AS announcements,
                CASE u.role WHEN 'admin' THEN NULL WHEN 'counselor' THEN u.cohorts
                            ELSE '{}'::text[] END AS reach_cohorts
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = $1",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| SessionWithUser {
        session: SessionRow {
            user_id: r.user.id,
            csrf_token: r.csrf_token,
            created_at: r.session_created_at,
            last_seen_at: r.last_seen_at,
        },
        user: r.user,
        dismissed_notices: r.dismissed_notices,
        camp_paused: r.camp_paused,
        announcements: r.announcements,
        reach_cohorts: r.reach_cohorts,
    }))
}

pub async fn touch(conn: &mut PgConnection, id_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = now() WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn delete(conn: &mut PgConnection, id_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(id_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends every session of a user (password reset, disable); returns how many ended.
pub async fn delete_for_user(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Ends every session of a user except one (after a password change, the other devices).
pub async fn delete_others(
    conn: &mut PgConnection,
    user_id: i64,
    keep: &[u8],
) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

pub async fn delete_expired(
    conn: &mut PgConnection,
    idle_secs: i64,
    absolute_secs: i64,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM sessions WHERE last_seen_at < now() - make_interval(secs => $1)
                                OR created_at < now() - make_interval(secs => $2)",
    )
    .bind(idle_secs as f64)
    .bind(absolute_secs as f64)
    .execute(conn)
    .await?
    .rows_affected())
}
