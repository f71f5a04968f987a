//! The homes buttons on a student's page (reset the home, reset the environment only, restore an
//! archive): each asks for a job and shows its page. The home section the student page shows is
//! `super::section` (a service: the roster's page builds it).
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;

use super::{
    download::{Download, DownloadError},
    handout::{HandOutError, Recipients},
    requests::{self, Request},
    section::human_bytes,
    ArchiveId, Homes, HomesError, ResetScope,
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

impl From<DownloadError> for WebError {
    fn from(e: DownloadError) -> Self {
        match e {
            DownloadError::NoSuchStudent(_) | DownloadError::EmptyCohort(_) => Self::NotFound,
            DownloadError::NoCohort => Self::BadRequest("Choose a cohort to download.".into()),
            DownloadError::NotYours(why) => Self::NotYours(crate::domain::sentence(&why.0)),
            DownloadError::Db(e) => e.into(),
        }
    }
}

/// `GET /students/{username}/home.zip` (counselors).
pub async fn student_zip(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    user: RequireCounselor,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let actor = Actor::User(user.username.clone());
    let zip = homes
        .download(
            &pool,
            &actor,
            &user.reach,
            Download::Student(student(&path)?),
        )
        .await?;
    Ok(crate::web::zip_download(&zip.filename, zip.body))
}

/// `GET /account/home.zip`: a student downloads their own home.
pub async fn own_zip(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    user: crate::web::RequireUser,
) -> Result<HttpResponse, WebError> {
    let actor = Actor::User(user.username.clone());
    let zip = homes
        .download(
            &pool,
            &actor,
            &crate::domain::Reach::All,
            Download::Own(user.username.clone()),
        )
        .await?;
    Ok(crate::web::zip_download(&zip.filename, zip.body))
}

/// `GET /students/homes.zip?cohort=C` (counselors): a cohort's homes, `<username>/…` inside.
pub async fn cohort_zip(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    user: RequireCounselor,
    q: web::Query<CohortQuery>,
) -> Result<HttpResponse, WebError> {
    let actor = Actor::User(user.username.clone());
    let zip = homes
        .download(
            &pool,
            &actor,
            &user.reach,
            Download::Cohort(q.cohort.clone()),
        )
        .await?;
    Ok(crate::web::zip_download(&zip.filename, zip.body))
}

#[derive(Deserialize)]
pub struct CohortQuery {
    #[serde(default)]
    cohort: String,
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

// ---- coursework: hand out a course folder (issue 19) ---------------------------------------

impl From<HandOutError> for WebError {
    fn from(e: HandOutError) -> Self {
        match e {
            HandOutError::Folder(m) | HandOutError::NoStudents(m) => Self::BadRequest(m),
            HandOutError::OutOfReach(r) => Self::NotYours(r.0),
            HandOutError::Homes(e) => e.into(),
            HandOutError::Db(e) => e.into(),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "homes/coursework.html")]
pub struct CourseworkPage {
    pub page: crate::web::Page,
    /// The course folders there are to hand out.
    pub folders: Vec<String>,
    /// Where they come from (`[homes] courses`), for the empty state.
    pub courses_dir: String,
    /// The cohorts this person may hand out to.
    pub cohorts: Vec<String>,
    pub input: HandOutForm,
    pub errors: crate::web::form::FieldErrors,
}

impl CourseworkPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }
}

#[derive(Deserialize, Default, Clone)]
pub struct HandOutForm {
    #[serde(default)]
    pub folder: String,
    #[serde(default)]
    pub cohort: String,
    #[serde(default)]
    pub username: String,
}

async fn render_coursework(
    homes: &Homes,
    config: &crate::config::Config,
    user: &RequireCounselor,
    input: HandOutForm,
    errors: crate::web::form::FieldErrors,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, WebError> {
    let folders = homes.course_folders().await?;
    let mut cohorts = homes.cohort_names().await?;
    cohorts.retain(|c| user.reach.admits(Some(c)));
    crate::web::html_status(
        status,
        &CourseworkPage {
            page: crate::web::Page::for_user(config, user, "Coursework"),
            folders,
            courses_dir: homes.courses_dir().display().to_string(),
            cohorts,
            input,
            errors,
        },
    )
}

/// `GET /coursework`: the course folders and the hand-out form.
pub async fn coursework(
    homes: web::Data<Homes>,
    config: web::Data<crate::config::Config>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    render_coursework(
        &homes,
        &config,
        &user,
        HandOutForm::default(),
        Default::default(),
        actix_web::http::StatusCode::OK,
    )
    .await
}

/// `POST /coursework/handout` (folder; cohort, or one student's username) → the job's page;
/// a wrong field comes back beside it.
pub async fn hand_out(
    homes: web::Data<Homes>,
    config: web::Data<crate::config::Config>,
    waker: web::Data<Waker>,
    user: RequireCounselor,
    form: Once<HandOutForm>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move {
        let mut errors = crate::web::form::FieldErrors::default();
        let to = match (form.username.trim(), form.cohort.trim()) {
            ("", "") => {
                errors.add("to", "Choose a cohort, or give one student's username.");
                None
            }
            ("", cohort) => Some(Recipients::Cohort(cohort.to_string())),
            (name, _) => match Username::parse(name) {
                Ok(u) => Some(Recipients::Student(u)),
                Err(_) => {
                    errors.add("username", format!("{name:?} is not a username."));
                    None
                }
            },
        };
        let answer = match to {
            Some(to) => Some(
                homes
                    .queue_hand_out(
                        &Actor::User(user.username.clone()),
                        &user.reach,
                        &form.folder,
                        &to,
                    )
                    .await,
            ),
            None => None,
        };
        match answer {
            Some(Ok(job)) => {
                waker.wake();
                return Ok(see_other(&format!("/jobs/{job}")));
            }
            Some(Err(HandOutError::Folder(m))) => errors.add("folder", m),
            Some(Err(HandOutError::NoStudents(m))) => {
                let field = if form.username.trim().is_empty() {
                    "to"
                } else {
                    "username"
                };
                errors.add(field, m)
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        render_coursework(
            &homes,
            &config,
            &user,
            form.clone(),
            errors,
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await
    })
    .await
}
