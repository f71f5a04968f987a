//! `/announcements` (counselors and admins): post one for a cohort or everyone, see what is on,
//! coming and just ended, end one early; `POST /announcements/{id}/dismiss` (anyone logged in):
//! hide one for oneself.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{post::AnnouncementInput, AnnounceError, Announcements};
use crate::{
    db::announcements::AnnouncementRow,
    domain::Actor,
    web::{
        clock::Moment, form::FieldErrors, html_status, safe_next, see_other, Csrf, Once, Page,
        RequireCounselor, RequireUser, WebError,
    },
};

pub struct Line {
    pub a: AnnouncementRow,
    pub starts: Moment,
    pub ends: Moment,
    /// on | coming | ended
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "announcements/list.html")]
pub struct ListPage {
    pub page: Page,
    pub lines: Vec<Line>,
    pub cohorts: Vec<String>,
    pub errors: FieldErrors,
    pub input: AnnouncementInput,
}

impl ListPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    notice: Option<String>,
}

async fn render(
    announcements: &Announcements,
    config: &crate::config::Config,
    user: &RequireCounselor,
    notice: Option<&str>,
    errors: FieldErrors,
    input: AnnouncementInput,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let page = Page::for_user(config, user, "Announcements").with_notice(notice);
    let now = announcements.now();
    let lines = announcements
        .recent()
        .await
        .map_err(|e| WebError::Internal(e.into()))?
        .into_iter()
        .map(|a| Line {
            starts: page.clock.moment(a.starts_at),
            ends: page.clock.moment(a.ends_at),
            state: if a.ends_at <= now {
                "ended"
            } else if a.starts_at > now {
                "coming"
            } else {
                "on"
            },
            a,
        })
        .collect();
    let mut cohorts = announcements
        .cohorts()
        .await
        .map_err(|e| WebError::Internal(e.into()))?;
    cohorts.retain(|c| user.reach.admits(Some(c)));
    html_status(
        status,
        &ListPage {
            page,
            lines,
            cohorts,
            errors,
            input,
        },
    )
}

/// `GET /announcements`.
pub async fn list(
    announcements: web::Data<Announcements>,
    config: web::Data<crate::config::Config>,
    user: RequireCounselor,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, WebError> {
    let notice = match q.notice.as_deref() {
        Some("posted") => Some("Announcement posted."),
        Some("ended") => Some("Announcement ended."),
        _ => None,
    };
    render(
        &announcements,
        &config,
        &user,
        notice,
        FieldErrors::default(),
        AnnouncementInput::default(),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct PostForm {
    #[serde(default)]
    message: String,
    #[serde(default)]
    cohort: String,
    #[serde(default)]
    starts: String,
    #[serde(default)]
    ends: String,
}

/// `POST /announcements`.
pub async fn post(
    announcements: web::Data<Announcements>,
    config: web::Data<crate::config::Config>,
    user: RequireCounselor,
    form: Once<PostForm>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move {
        let input = AnnouncementInput {
            message: form.message.clone(),
            cohort: form.cohort.clone(),
            starts: form.starts.clone(),
            ends: form.ends.clone(),
        };
        match announcements
            .post(&Actor::User(user.username.clone()), &user.reach, &input)
            .await
        {
            Ok(_) => Ok(see_other("/announcements?notice=posted")),
            Err(AnnounceError::Invalid(fields)) => {
                let mut errors = FieldErrors::default();
                for (f, m) in fields {
                    errors.add(f, m);
                }
                render(
                    &announcements,
                    &config,
                    &user,
                    None,
                    errors,
                    input,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
            Err(AnnounceError::Db(e)) => Err(e.into()),
            Err(e) => Err(WebError::Internal(e.into())),
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct Button {}

/// `POST /announcements/{id}/end`.
pub async fn end(
    announcements: web::Data<Announcements>,
    user: RequireCounselor,
    path: web::Path<i64>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    form.run(move |_, _| async move {
        match announcements
            .end_now(&Actor::User(user.username.clone()), *path)
            .await
        {
            Ok(()) => Ok(see_other("/announcements?notice=ended")),
            Err(AnnounceError::NotFound(_)) => Err(WebError::NotFound),
            Err(AnnounceError::Db(e)) => Err(e.into()),
            Err(e) => Err(WebError::Internal(e.into())),
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct DismissForm {}

/// `POST /announcements/{id}/dismiss`: back to the page it was dismissed on (the Referer's
/// path, when it is one of ours), else the landing page.
pub async fn dismiss(
    announcements: web::Data<Announcements>,
    config: web::Data<crate::config::Config>,
    user: RequireUser,
    req: HttpRequest,
    path: web::Path<i64>,
    _: Csrf<DismissForm>,
) -> Result<HttpResponse, WebError> {
    announcements
        .dismiss(user.id, *path)
        .await
        .map_err(|e| WebError::Internal(e.into()))?;
    let base = config.public_url.trim_end_matches('/');
    let back = req
        .headers()
        .get("Referer")
        .and_then(|r| r.to_str().ok())
        .and_then(|r| r.strip_prefix(base))
        .filter(|p| p.starts_with('/'));
    Ok(see_other(&safe_next(back)))
}
