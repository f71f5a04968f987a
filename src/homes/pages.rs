//! The homes buttons on a student's page (reset the home, reset the environment only, restore an
//! archive): each asks for a job and shows its page; and the home section the student page
//! shows (size, archives).
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;

use super::{
    quota::HomeQuota,
    requests::{self, Request},
    ArchiveId, ArchiveInfo, Homes, HomesError, ResetScope,
};
use crate::{
    domain::{Actor, Username},
    jobs::Waker,
    web::{see_other, Once, RequireCounselor, WebError},
};

impl From<HomesError> for WebError {
    fn from(e: HomesError) -> Self {
        match e {
            HomesError::NotFound(what) => Self::Missing(what),
            HomesError::Busy(_)
            | HomesError::UnsafePath(_)
            | HomesError::Interrupted(_)
            | HomesError::OverQuota(_) => Self::Conflict(e.to_string()),
            HomesError::Invalid(_) => Self::BadRequest(e.to_string()),
            HomesError::Db(e) => e.into(),
            other => Self::Internal(other.into()),
        }
    }
}

/// A student's home as their page shows it.
pub struct HomeSection {
    pub exists: bool,
    pub size: String,
    /// The home (measured now) against its storage limit.
    pub quota: HomeQuota,
    pub archives: Vec<ArchiveLine>,
    /// A home operation queued or running, to link to instead of offering buttons.
    pub active_job: Option<String>,
    /// Why the home could not be read (shown in one line; the page still works).
    pub problem: Option<String>,
}

pub struct ArchiveLine {
    pub id: String,
    /// When the archive entry was made (pages show it on the camp's clock).
    pub at: time::OffsetDateTime,
    pub reason: String,
    pub actor: String,
    pub size: String,
    pub environment_only: bool,
}

/// "1.2 GiB", "340 KiB": binary units, the ones storage limits are written in (and
/// `xfs_quota` and `du -h` show), so a size and its limit read alike.
pub fn human_bytes(bytes: u64) -> String {
    crate::config::iec_bytes(bytes)
}

fn line(a: ArchiveInfo) -> ArchiveLine {
    ArchiveLine {
        id: a.id.as_str().to_string(),
        at: a.created_at,
        reason: a.reason,
        actor: a.actor,
        size: human_bytes(a.bytes),
        environment_only: a.scope == ResetScope::Environment,
    }
}

/// What the student page shows about `username`'s home.
pub async fn section(pool: &PgPool, homes: &Homes, username: &Username) -> HomeSection {
    let active_job = match pool.acquire().await {
        Ok(mut conn) => crate::db::homes::active_job(&mut conn, username.as_str())
            .await
            .ok()
            .flatten()
            .map(|id| id.to_string()),
        Err(_) => None,
    };
    let own = match pool.acquire().await {
        Ok(mut conn) => crate::db::users::home_quota_of(&mut conn, username)
            .await
            .ok()
            .flatten()
            .and_then(|b| u64::try_from(b).ok()),
        Err(_) => None,
    };
    let quota =
        |used: Option<u64>, measured| HomeQuota::new(used, measured, own, homes.default_quota());
    let read = async {
        let exists = homes.exists(username).await?;
        let bytes = if exists {
            homes.usage(username).await?
        } else {
            0
        };
        let archives = homes.archives(username).await?;
        Ok::<_, HomesError>((exists, bytes, archives))
    };
    let now = Some(time::OffsetDateTime::now_utc());
    match read.await {
        Ok((exists, bytes, archives)) => HomeSection {
            exists,
            size: human_bytes(bytes),
            quota: quota(exists.then_some(bytes), now),
            archives: archives.into_iter().map(line).collect(),
            active_job,
            problem: None,
        },
        Err(e) => HomeSection {
            exists: false,
            size: String::new(),
            quota: quota(None, None),
            archives: Vec::new(),
            active_job,
            problem: Some(e.to_string()),
        },
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub struct RestoreForm {
    #[serde(default)]
    archive: String,
}

fn student(path: &str) -> Result<Username, WebError> {
    Username::parse(path).map_err(|_| WebError::NotFound)
}

/// `POST /students/{username}/home/reset` (scope `all` | `environment`) → the job's page.
pub async fn reset(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    waker: web::Data<Waker>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: Once<ResetForm>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move {
        let username = student(&path)?;
        let scope = ResetScope::parse(&form.scope).ok_or_else(|| {
            WebError::BadRequest("Choose what to reset: all or environment.".into())
        })?;
        let reason = form.reason.trim();
        let request = Request::Reset {
            scope,
            reason: (!reason.is_empty()).then(|| reason.chars().take(80).collect()),
        };
        let actor = Actor::User(user.username.clone());
        let job = requests::enqueue(&pool, &homes, &actor, &username, request).await?;
        waker.wake();
        Ok(see_other(&format!("/jobs/{job}")))
    })
    .await
}

/// `POST /students/{username}/home/restore` (archive id) → the job's page.
pub async fn restore(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    waker: web::Data<Waker>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: Once<RestoreForm>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move {
        let username = student(&path)?;
        let archive = ArchiveId::parse(form.archive.trim())?;
        let actor = Actor::User(user.username.clone());
        let job =
            requests::enqueue(&pool, &homes, &actor, &username, Request::Restore(archive)).await?;
        waker.wake();
        Ok(see_other(&format!("/jobs/{job}")))
    })
    .await
}

/// The zip response for `students`' homes (`filename` without the extension).
pub fn zip_response(
    homes: &Homes,
    students: Vec<Username>,
    prefix: bool,
    filename: &str,
) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{filename}.zip\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(homes.export_zip(students, prefix))
}

/// Records who downloaded what.
pub async fn audit_export(
    pool: &PgPool,
    actor: &Actor,
    target: &str,
    detail: &str,
) -> Result<(), WebError> {
    let mut conn = pool.acquire().await?;
    crate::db::audit::record(&mut conn, actor, "home.export", Some(target), Some(detail)).await?;
    Ok(())
}

/// `GET /students/{username}/home.zip` (counselors).
pub async fn student_zip(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    user: RequireCounselor,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let username = student(&path)?;
    let mut conn = pool.acquire().await?;
    if !crate::db::users::is_student(&mut conn, &username).await? {
        return Err(WebError::NotFound);
    }
    drop(conn);
    let actor = Actor::User(user.username.clone());
    audit_export(&pool, &actor, username.as_str(), "home as zip").await?;
    Ok(zip_response(
        &homes,
        vec![username.clone()],
        false,
        &format!("home-{username}"),
    ))
}

/// `GET /account/home.zip`: a student downloads their own home.
pub async fn own_zip(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    user: crate::web::RequireUser,
) -> Result<HttpResponse, WebError> {
    let actor = Actor::User(user.username.clone());
    audit_export(&pool, &actor, user.username.as_str(), "own home as zip").await?;
    Ok(zip_response(
        &homes,
        vec![user.username.clone()],
        false,
        &format!("home-{}", user.username),
    ))
}

/// `GET /students/homes.zip?cohort=C` (counselors): a cohort's homes, `<username>/…` inside.
pub async fn cohort_zip(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    user: RequireCounselor,
    q: web::Query<CohortQuery>,
) -> Result<HttpResponse, WebError> {
    let cohort = q.cohort.trim();
    if cohort.is_empty() {
        return Err(WebError::BadRequest("Choose a cohort to download.".into()));
    }
    let students = cohort_students(&pool, cohort).await?;
    if students.is_empty() {
        return Err(WebError::NotFound);
    }
    let actor = Actor::User(user.username.clone());
    let detail = format!("{} homes as zip", students.len());
    audit_export(&pool, &actor, &format!("cohort:{cohort}"), &detail).await?;
    let slug = crate::domain::cohort::slug(cohort);
    Ok(zip_response(
        &homes,
        students,
        true,
        &format!("homes-{slug}"),
    ))
}

#[derive(Deserialize)]
pub struct CohortQuery {
    #[serde(default)]
    cohort: String,
}

/// The students of `cohort`, by username.
pub async fn cohort_students(pool: &PgPool, cohort: &str) -> Result<Vec<Username>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    crate::db::users::cohort_usernames(&mut conn, cohort).await
}

/// The archive purge, admins only: the one operation that deletes students' files.
#[derive(askama::Template)]
#[template(path = "homes/purge.html")]
pub struct PurgePage {
    pub page: crate::web::Page,
    /// The date the form proposes (30 days ago), `YYYY-MM-DD`.
    pub suggested: String,
    pub error: String,
}

fn day(t: time::OffsetDateTime) -> String {
    t.format(time::macros::format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// `GET /homes/purge`.
pub async fn purge_form(
    config: web::Data<crate::config::Config>,
    user: crate::web::RequireAdmin,
    q: web::Query<PurgeQuery>,
) -> Result<HttpResponse, WebError> {
    let notice = q.notice.clone();
    crate::web::html(&PurgePage {
        page: crate::web::Page::for_user(&config, &user, "Purge old archives")
            .with_notice(notice.as_deref()),
        suggested: day(time::OffsetDateTime::now_utc() - time::Duration::days(30)),
        error: String::new(),
    })
}

#[derive(Deserialize)]
pub struct PurgeQuery {
    notice: Option<String>,
}

#[derive(Deserialize)]
pub struct PurgeForm {
    #[serde(default)]
    before: String,
}

/// `POST /homes/purge` (field `before`, a date): deletes archive entries made before that day.
pub async fn purge(
    homes: web::Data<Homes>,
    config: web::Data<crate::config::Config>,
    user: crate::web::RequireAdmin,
    form: Once<PurgeForm>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move { purge_before(&homes, &config, &user, &form).await })
        .await
}

async fn purge_before(
    homes: &Homes,
    config: &crate::config::Config,
    user: &crate::web::RequireAdmin,
    form: &PurgeForm,
) -> Result<HttpResponse, WebError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let Ok(date) = time::Date::parse(form.before.trim(), &format) else {
        let page = PurgePage {
            page: crate::web::Page::for_user(config, user, "Purge old archives"),
            suggested: form.before.clone(),
            error: "Enter a date like 2026-07-01.".into(),
        };
        return crate::web::html_status(actix_web::http::StatusCode::UNPROCESSABLE_ENTITY, &page);
    };
    let cutoff = date.midnight().assume_utc();
    let actor = Actor::User(user.username.clone());
    let report = homes.purge_archives_older_than(cutoff, &actor).await?;
    let notice = format!(
        "Deleted {} archive(s) made before {}, {} freed{}.",
        report.removed.len(),
        day(cutoff),
        human_bytes(report.bytes),
        if report.busy.is_empty() {
            String::new()
        } else {
            format!("; {} home(s) busy, purged next time", report.busy.len())
        }
    );
    Ok(see_other(&format!(
        "/homes/purge?notice={}",
        crate::web::error::urlencode(&notice)
    )))
}
