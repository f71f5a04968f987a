use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::domain::{Action, Actor};

/// Writes one audit entry, normally in the transaction of the change it describes. `target` is
/// usually a username; `detail` a short sentence.
pub async fn record(
    conn: &mut PgConnection,
    actor: &Actor,
    action: &str,
    target: Option<&str>,
    detail: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO audit_log (actor, action, target, detail) VALUES ($1, $2, $3, $4)")
        .bind(actor.label())
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: OffsetDateTime,
    pub actor: String,
    /// Its `Display` is the words ("Password reset"); `as_str()` the recorded code.
    pub action: Action,
    pub target: Option<String>,
    pub detail: Option<String>,
}

impl AuditRow {
    /// In UTC, for text outside a page; pages show `at` on the camp's clock (`web::Clock`).
    pub fn when(&self) -> String {
        self.at
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .unwrap_or_default()
    }
}

#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    /// Only entries with an id below this (for "older" paging).
    pub before: Option<i64>,
    pub limit: i64,
    /// A counselor's reach: only their own entries and those about their cohorts' students
    /// (or a cohort of theirs). `None`: every entry.
    pub reach: Option<(String, Vec<String>)>,
}

pub async fn list(conn: &mut PgConnection, f: &AuditFilter) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as(
        "SELECT id, at, actor, action, target, detail FROM audit_log
         WHERE ($1::text IS NULL OR actor = $1)
           AND ($2::text IS NULL OR action = $2)
           AND ($3::text IS NULL OR target = $3)
           AND ($4::bigint IS NULL OR id < $4)
           AND ($7::text[] IS NULL OR actor = $6
                OR target = ANY($7) OR target = ANY(SELECT 'cohort:' || c FROM unnest($7) c)
                OR target IN (SELECT username FROM users
                               WHERE role = 'student' AND cohort = ANY($7)))
         ORDER BY id DESC LIMIT $5",
    )
    .bind(f.actor.as_deref())
    .bind(f.action.as_deref())
    .bind(f.target.as_deref())
    .bind(f.before)
    .bind(f.limit)
    .bind(f.reach.as_ref().map(|(me, _)| me.as_str()))
    .bind(f.reach.as_ref().map(|(_, cohorts)| cohorts.as_slice()))
    .fetch_all(conn)
    .await
}

pub async fn actions(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT DISTINCT action FROM audit_log ORDER BY action")
        .fetch_all(conn)
        .await
}
