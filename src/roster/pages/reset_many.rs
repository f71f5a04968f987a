//! Resetting many passwords: the confirmation page (`GET /students/reset-passwords?student=…`
//! or `?cohort=…`), the confirm (`POST`, once per form), and the batch's cards page
//! (`GET /students/cards/{job}`: progress while the job runs, then the cards, readable only in
//! the browser that confirmed and only until the window ends).
use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    http::StatusCode,
    web, HttpRequest, HttpResponse,
};
use askama::Template;
use uuid::Uuid;

use super::cards;
use crate::{
    auth::sealed::OpeningKey,
    config::Config,
    db::users::UserRow,
    domain::Actor,
    jobs::JobState,
    roster::{
        reset_many::{clock, Cards, CardsRead, ResetMany, CARDS_WINDOW},
        Roster, RosterError,
    },
    web::{error::urlencode, html, html_status, Csrf, Page, RequireCounselor, WebError},
};

#[derive(Template)]
#[template(path = "roster/reset_confirm.html")]
pub struct ConfirmPage {
    pub page: Page,
    pub students: Vec<UserRow>,
    pub cohort: String,
    /// The id that makes this confirmation single-use.
    pub form_id: String,
    /// Roughly when the cards stop being readable, if confirmed now.
    pub until: String,
    /// Why nothing can be confirmed (no student chosen, an unknown name).
    pub error: String,
    /// Back to the list as it was filtered.
    pub back: String,
    /// This confirmation was sent already: its job (the page links its cards instead).
    pub done_job: Option<String>,
}

/// The selection as the list's checkboxes or a cohort link send it: `student` repeated,
/// `cohort` once.
fn selection(pairs: &[(String, String)]) -> (Vec<String>, String) {
    let students = pairs
        .iter()
        .filter(|(k, _)| k == "student")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    let cohort = pairs
        .iter()
        .find(|(k, _)| k == "cohort")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    (students, cohort)
}

fn field<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

pub async fn confirm_form(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    // The form id lives in the page's address: Back, reload and a second tab show the same
    // confirmation, and sending it twice resets once.
    let Ok(form_id) = Uuid::parse_str(field(&query, "form")) else {
        let mut pairs: Vec<(String, String)> =
            query.iter().filter(|(k, _)| k != "form").cloned().collect();
        pairs.push(("form".into(), Uuid::new_v4().to_string()));
        let qs = serde_urlencoded::to_string(&pairs)
            .map_err(|e| WebError::Internal(anyhow::anyhow!("re-encoding a selection: {e}")))?;
        return Ok(crate::web::see_other(&format!(
            "/students/reset-passwords?{qs}"
        )));
    };
    let (names, cohort) = selection(&query);
    let back = if cohort.is_empty() {
        "/students".to_string()
    } else {
        format!("/students?cohort={}", urlencode(&cohort))
    };
    let done_job = roster.job_of_form(form_id).await?.map(|j| j.to_string());
    let page = |students, error: String| ConfirmPage {
        page: Page::for_user(&config, &user, "Reset passwords"),
        students,
        cohort: cohort.clone(),
        form_id: form_id.to_string(),
        until: clock(time::OffsetDateTime::now_utc() + CARDS_WINDOW),
        error,
        back: back.clone(),
        done_job: done_job.clone(),
    };
    match roster
        .select_students(
            &user.reach,
            &names,
            Some(cohort.as_str()).filter(|c| !c.is_empty()),
        )
        .await
    {
        Ok(students) => html(&page(students, String::new())),
        Err(RosterError::Invalid(problems)) => {
            let message = problems
                .into_iter()
                .map(|(_, m)| crate::web::form::sentence(&m))
                .collect::<Vec<_>>()
                .join(" ");
            html_status(StatusCode::UNPROCESSABLE_ENTITY, &page(Vec::new(), message))
        }
        Err(RosterError::NotFound(message)) => html_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &page(Vec::new(), crate::web::form::sentence(&message)),
        ),
        Err(e) => Err(e.into()),
    }
}

/// The confirm: queue the job (once per form) and send the browser to the batch's cards with
/// the key that opens them.
pub async fn confirm(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    form: Csrf<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let form_id = Uuid::parse_str(field(&form, "form_id")).map_err(|_| {
        WebError::BadRequest(
            "This confirmation is incomplete. Go back to the student list and choose again.".into(),
        )
    })?;
    let (names, cohort) = selection(&form);
    // The confirmation lists every student by name, the cohort only labels the batch: the
    // students confirmed are exactly those shown.
    let students = roster.select_students(&user.reach, &names, None).await?;
    let actor = Actor::User(user.username.clone());
    let cohort = Some(cohort.as_str()).filter(|c| !c.is_empty());
    match roster
        .reset_many(&actor, form_id, &students, cohort)
        .await?
    {
        ResetMany::Started { job, key, until } => {
            let left = (until - time::OffsetDateTime::now_utc()).max(time::Duration::ZERO);
            let cookie = key_cookie(&config, job, key.to_text(), left.whole_seconds());
            Ok(HttpResponse::SeeOther()
                .insert_header(("Location", cards_path(job)))
                .cookie(cookie)
                .finish())
        }
        ResetMany::Already { job } => Ok(HttpResponse::SeeOther()
            .insert_header(("Location", format!("{}?again=1", cards_path(job))))
            .finish()),
    }
}

fn cards_path(job: Uuid) -> String {
    format!("/students/cards/{job}")
}

/// The cookie that holds a batch's opening key: only this browser, only this batch's page,
/// only for the window; never sent to scripts or other sites.
fn key_cookie(config: &Config, job: Uuid, value: String, max_age_secs: i64) -> Cookie<'static> {
    Cookie::build(cookie_name(config, job), value)
        .path(cards_path(job))
        .http_only(true)
        .secure(config.secure_cookies())
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::seconds(max_age_secs))
        .finish()
}

/// `__Secure-` on https (a path-scoped cookie cannot be `__Host-`), plain on http.
fn cookie_name(config: &Config, job: Uuid) -> String {
    let prefix = if config.secure_cookies() {
        "__Secure-"
    } else {
        ""
    };
    format!("{prefix}hubdesk-cards-{}", job.simple())
}

#[derive(Template)]
#[template(path = "roster/reset_status.html")]
pub struct StatusPage {
    pub page: Page,
    pub job: String,
    pub state: &'static str,
    pub total: usize,
    pub done: usize,
    pub error: String,
    pub until: String,
    /// `running`, `expired`, `no-key` or `failed`: which message the page gives.
    pub why: &'static str,
    pub again: bool,
    pub refresh: u32,
}

#[derive(serde::Deserialize)]
pub struct CardsQuery {
    #[serde(default)]
    again: Option<String>,
}

pub async fn cards_page(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
    query: web::Query<CardsQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let job = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let key = req
        .cookie(&cookie_name(&config, job))
        .and_then(|c| OpeningKey::from_text(c.value()));
    let Some(cards) = roster.cards(job, key.as_ref()).await? else {
        return Err(WebError::NotFound);
    };
    let again = query.again.is_some();
    let Cards {
        state,
        total,
        done,
        error,
        until,
        read,
        ..
    } = cards;
    let status = |why: &'static str, code: StatusCode, refresh: u32| {
        let page = StatusPage {
            page: Page::for_user(&config, &user, "New passwords"),
            job: job.to_string(),
            state: state.as_str(),
            total,
            done,
            error: error.clone().unwrap_or_default(),
            until: clock(until),
            why,
            again,
            refresh,
        };
        html_status(code, &page)
    };
    match (state, read) {
        (_, CardsRead::Expired) => status("expired", StatusCode::GONE, 0),
        (_, CardsRead::NoKey) => status("no-key", StatusCode::FORBIDDEN, 0),
        (JobState::Queued | JobState::Running, _) => status("running", StatusCode::OK, 2),
        (JobState::Failed, CardsRead::Open(creds)) if creds.is_empty() => {
            status("failed", StatusCode::OK, 0)
        }
        (state, CardsRead::Open(creds)) => {
            let heading = match creds.len() {
                1 => "New password for 1 student".to_string(),
                n => format!("New passwords for {n} students"),
            };
            let mut page = Page::for_user(&config, &user, "New passwords");
            if again {
                page = page.with_notice(Some(
                    "This reset was already confirmed: nothing was reset again. Here are its cards.",
                ));
            }
            let batch = cards::Batch {
                until: clock(until),
                failed: (state == JobState::Failed).then(|| {
                    format!(
                        "The job stopped after {done} of {total}: {}. The others keep their old \
                         password.",
                        error.clone().unwrap_or_default()
                    )
                }),
                job: job.to_string(),
            };
            cards::render_batch(&config, page, heading, creds, batch)
        }
    }
}
