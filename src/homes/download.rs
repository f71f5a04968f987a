//! Downloading homes as a zip: one use case for the pages and the API, audited the same way
//! from both (`home.export`). Checks what is asked for, records who took what, and hands back
//! the streaming zip with the file name it goes by; the HTTP side only wraps it in a response.
use std::io;

use bytes::Bytes;
use futures_util::Stream;
use sqlx::PgPool;

use super::Homes;
use crate::{
    db,
    domain::{Actor, OutOfReach, Reach, Role, Username},
};

/// What is downloaded.
#[derive(Debug, Clone)]
pub enum Download {
    /// One student's home (a counselor's, a token's): `home-<username>.zip`.
    Student(Username),
    /// A person's own home, from their landing page.
    Own(Username),
    /// Every home of a cohort, `<username>/…` inside: `homes-<slug>.zip`.
    Cohort(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("no student named '{0}'")]
    NoSuchStudent(String),
    #[error("choose a cohort to download")]
    NoCohort,
    #[error("no students in cohort '{0}'")]
    EmptyCohort(String),
    /// A student or cohort outside the counselor's reach.
    #[error(transparent)]
    NotYours(#[from] OutOfReach),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A zip on its way: its file name (without `.zip`) and its bytes, streamed.
pub struct Zip<S> {
    pub filename: String,
    pub body: S,
}

impl Homes {
    /// Checks (a student or cohort within the actor's `reach`), audits as `actor`, and starts
    /// the zip.
    pub async fn download(
        &self,
        pool: &PgPool,
        actor: &Actor,
        reach: &Reach,
        what: Download,
    ) -> Result<Zip<impl Stream<Item = io::Result<Bytes>> + 'static>, DownloadError> {
        let mut conn = pool.acquire().await?;
        let (students, prefix, target, detail, filename) = match what {
            Download::Student(username) => {
                let student = db::users::find_by_username(&mut conn, &username).await?;
                let Some(student) = student.filter(|s| s.role == Role::Student) else {
                    return Err(DownloadError::NoSuchStudent(username.to_string()));
                };
                reach.check_student(username.as_str(), student.cohort.as_deref())?;
                let name = format!("home-{username}");
                let target = username.to_string();
                (
                    vec![username],
                    false,
                    target,
                    "home as zip".to_string(),
                    name,
                )
            }
            Download::Own(username) => {
                let name = format!("home-{username}");
                let target = username.to_string();
                (
                    vec![username],
                    false,
                    target,
                    "own home as zip".to_string(),
                    name,
                )
            }
            Download::Cohort(cohort) => {
                let cohort = cohort.trim().to_string();
                if cohort.is_empty() {
                    return Err(DownloadError::NoCohort);
                }
                reach.check_cohort(Some(&cohort))?;
                let students = db::users::cohort_usernames(&mut conn, &cohort).await?;
                if students.is_empty() {
                    return Err(DownloadError::EmptyCohort(cohort));
                }
                let detail = format!("{} homes as zip", students.len());
                let name = format!("homes-{}", crate::domain::cohort::slug(&cohort));
                (students, true, format!("cohort:{cohort}"), detail, name)
            }
        };
        db::audit::record(
            &mut conn,
            actor,
            "home.export",
            Some(&target),
            Some(&detail),
        )
        .await?;
        drop(conn);
        Ok(Zip {
            filename,
            body: self.export_zip(students, prefix),
        })
    }
}
