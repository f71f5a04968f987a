//! Announcements (issue 18): a counselor writes a message for one cohort's students or for
//! everyone, with a start and an end. It shows on hubdesk's pages (the session's query carries
//! the person's current ones, so no page pays another query) and on the hub's pages (the shipped
//! hub configuration reads `/oauth/announcements`); it goes by itself at its end; each person can
//! dismiss one for themselves. Services here import neither `web` nor `state`.
pub mod pages;
pub mod post;

use std::sync::Arc;

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{
    db::{self, announcements::AnnouncementRow},
    domain::{
        clock::{to_offset, Clock},
        Actor,
    },
};

/// Longest message (the column's check says the same).
pub const MAX_MESSAGE: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// Wrong values, a message per field.
    #[error("{}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(&'static str, String)>),
    #[error("no announcement {0}")]
    NotFound(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(Clone)]
pub struct Announcements {
    pub pool: PgPool,
    /// `[ui] timezone`: the zone the form's times are typed in.
    pub zone: jiff::tz::TimeZone,
    /// The camp's clock: an announcement begins and ends by it.
    pub clock: Arc<dyn Clock>,
}

impl Announcements {
    pub fn new(pool: PgPool, zone: jiff::tz::TimeZone, clock: Arc<dyn Clock>) -> Self {
        Self { pool, zone, clock }
    }

    /// Now, by the camp's clock.
    pub fn now(&self) -> OffsetDateTime {
        to_offset(self.clock.now())
    }

    /// Those on now or coming, and those that ended in the last day (for the staff page).
    pub async fn recent(&self) -> Result<Vec<AnnouncementRow>, AnnounceError> {
        let mut conn = self.pool.acquire().await?;
        let since = self.now() - time::Duration::days(1);
        Ok(db::announcements::since(&mut conn, since).await?)
    }

    /// The cohorts a message can be for.
    pub async fn cohorts(&self) -> Result<Vec<String>, AnnounceError> {
        let mut conn = self.pool.acquire().await?;
        Ok(db::users::cohorts(&mut conn).await?)
    }

    /// Ends one now (audited).
    pub async fn end_now(&self, actor: &Actor, id: i64) -> Result<(), AnnounceError> {
        let mut tx = self.pool.begin().await?;
        let a = db::announcements::end_now(&mut tx, id, self.now())
            .await?
            .ok_or(AnnounceError::NotFound(id))?;
        db::audit::record(
            &mut tx,
            actor,
            "announcement.end",
            a.cohort.as_deref().map(cohort_target).as_deref(),
            Some(&a.message),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `user_id` no longer sees it (hubdesk's pages and the hub's).
    pub async fn dismiss(&self, user_id: i64, id: i64) -> Result<(), AnnounceError> {
        let mut conn = self.pool.acquire().await?;
        db::announcements::dismiss(&mut conn, id, user_id).await?;
        Ok(())
    }
}

/// The audit target of a cohort's announcement.
fn cohort_target(cohort: &str) -> String {
    format!("cohort:{cohort}")
}
