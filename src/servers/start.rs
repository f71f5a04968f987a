//! Starting a cohort's servers before class (job `servers.start`, staggered): one use case for
//! the page and the API, audited the same way from both.
use sqlx::PgPool;
use uuid::Uuid;

use super::{jobs::StartJob, Servers};
use crate::{
    db,
    domain::{Actor, Username},
};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no hub is configured ([hub] api_token): servers cannot be started from here")]
    NoHub,
    #[error("no students in cohort '{0}'")]
    NoStudents(String),
    #[error("the camp is paused: an admin resumes it on the students page before servers start")]
    CampPaused,
    /// A cohort outside the counselor's reach.
    #[error(transparent)]
    NotYours(#[from] crate::domain::OutOfReach),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Servers {
    /// Queues the start of every server of `cohort`'s students, audited; the job's id.
    pub async fn start_cohort(
        &self,
        pool: &PgPool,
        actor: &Actor,
        reach: &crate::domain::Reach,
        cohort: &str,
    ) -> Result<Uuid, StartError> {
        if !self.configured() {
            return Err(StartError::NoHub);
        }
        let cohort = cohort.trim();
        reach.check_cohort(Some(cohort))?;
        let mut tx = pool.begin().await?;
        if db::camp::pause(&mut tx).await?.is_some() {
            return Err(StartError::CampPaused);
        }
        let students = db::users::cohort_usernames(&mut tx, cohort).await?;
        if students.is_empty() {
            return Err(StartError::NoStudents(cohort.to_string()));
        }
        let job = enqueue_start(&mut tx, actor, cohort, &students).await?;
        tx.commit().await?;
        Ok(job)
    }
}

/// Queues the start of `students`' servers with its audit line, in the caller's transaction.
pub async fn enqueue_start(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    cohort: &str,
    students: &[Username],
) -> sqlx::Result<Uuid> {
    let detail = format!("{} servers", students.len());
    let target = format!("cohort:{cohort}");
    db::audit::record(
        &mut *tx,
        actor,
        "servers.start",
        Some(&target),
        Some(&detail),
    )
    .await?;
    StartJob {
        label: format!("cohort {cohort}"),
        usernames: students.iter().map(|u| u.to_string()).collect(),
    }
    .enqueue(tx, actor)
    .await
}
