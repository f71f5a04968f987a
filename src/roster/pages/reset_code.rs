//! A one-time reset code for a student: `POST /students/{username}/reset-code` (single-use
//! form) → `GET /reset-codes/{form id}`, which shows the code once, in the browser that asked,
//! with where the student types it; later views say it was shown and offer a new one.
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::Config,
    domain::Actor,
    roster::{reset_code::ResetCode, Roster},
    web::{html, once, see_other, Once, Page, RequireCounselor, WebError},
};

#[derive(Deserialize)]
pub struct Button {}

/// `POST /students/{username}/reset-code`.
pub async fn issue(
    roster: web::Data<Roster>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    let form_id = form.id();
    form.run(move |_, keep| async move {
        let code = roster
            .issue_reset_code(&Actor::User(user.username.clone()), &path)
            .await?;
        let internal = |e: serde_json::Error| WebError::Internal(e.into());
        keep.result(serde_json::json!({"username": code.username}));
        keep.secret(serde_json::to_vec(&code).map_err(internal)?);
        Ok(see_other(&format!("/reset-codes/{form_id}")))
    })
    .await
}

#[derive(Template)]
#[template(path = "roster/reset_code.html")]
pub struct CodePage {
    pub page: Page,
    pub username: String,
    /// The code, on the first view only.
    pub code: Option<ResetCode>,
    /// "10:47 UTC".
    pub until: String,
    /// Where the student types it.
    pub reset_url: String,
}

/// `GET /reset-codes/{form id}`.
pub async fn show(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    user: RequireCounselor,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let spent = once::take(&pool, &config, &req, &user, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let username = spent
        .result
        .as_ref()
        .and_then(|r| r["username"].as_str())
        .ok_or(WebError::NotFound)?
        .to_string();
    let code: Option<ResetCode> = spent.secret.and_then(|s| serde_json::from_slice(&s).ok());
    let page = Page::for_user(&config, &user, format!("Reset code for {username}"));
    let until = code
        .as_ref()
        .map(|c| page.clock.moment(c.expires_at).short)
        .unwrap_or_default();
    html(&CodePage {
        reset_url: format!("{}/reset", config.public_url.trim_end_matches('/')),
        page,
        username,
        code,
        until,
    })
}
