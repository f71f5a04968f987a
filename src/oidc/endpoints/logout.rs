//! RP-initiated logout (the hub's `logout_redirect_url`): ends the hubdesk session and revokes
//! the person's tokens, so the next student on a shared laptop must log in again. A GET by
//! design of the spec. So that a page elsewhere cannot log students out by linking here, a GET
//! from another site that does not come from the hub asks first (a POST with the CSRF token).
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::oidc::Oidc;
use crate::{
    account,
    auth::{session, CurrentUser},
    web::{html, Csrf, MaybeUser, Page, WebError},
};

#[derive(Template)]
#[template(path = "oidc/logged_out.html")]
pub struct LoggedOutPage {
    pub page: Page,
    pub hub_url: String,
}

#[derive(Template)]
#[template(path = "oidc/logout_confirm.html")]
pub struct ConfirmPage {
    pub page: Page,
}

/// Whether a GET to the end-session endpoint comes from this site, the hub, or a typed URL —
/// rather than from a page elsewhere. Browsers without fetch metadata and without a Referer
/// (and scripts) are let through: logging out is the worst they can do.
fn from_a_trusted_place(oidc: &Oidc, req: &HttpRequest) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some("same-origin" | "same-site" | "none") = header("sec-fetch-site") {
        return true;
    }
    let origin_of = |u: &str| {
        url::Url::parse(u)
            .ok()
            .map(|u| u.origin().ascii_serialization())
    };
    match header("referer").and_then(origin_of) {
        Some(origin) => {
            origin_of(&oidc.config.hub_url).as_deref() == Some(origin.as_str())
                || origin_of(&oidc.config.public_url).as_deref() == Some(origin.as_str())
                || oidc.clients.knows_origin(&origin)
        }
        None => header("sec-fetch-site").is_none(),
    }
}

pub async fn end_session(
    oidc: web::Data<Oidc>,
    req: HttpRequest,
    user: MaybeUser,
) -> Result<HttpResponse, WebError> {
    match user.0 {
        Some(user) if !from_a_trusted_place(&oidc, &req) => html(&ConfirmPage {
            page: Page::for_user(&oidc.config, &user, "Log out?"),
        }),
        user => log_out(&oidc, user).await,
    }
}

#[derive(Deserialize)]
pub struct ConfirmForm {}

/// The confirmation's button.
pub async fn end_session_confirmed(
    oidc: web::Data<Oidc>,
    user: MaybeUser,
    _: Csrf<ConfirmForm>,
) -> Result<HttpResponse, WebError> {
    log_out(&oidc, user.0).await
}

async fn log_out(oidc: &Oidc, user: Option<CurrentUser>) -> Result<HttpResponse, WebError> {
    if let Some(user) = user {
        account::login::log_out(&oidc.pool, &oidc.tokens, &user).await?;
        tracing::info!(username = %user.username, "logged out via the hub");
    }
    let page = LoggedOutPage {
        page: Page::anonymous(&oidc.config, String::new(), "Logged out"),
        hub_url: oidc.config.hub_url.clone(),
    };
    let mut resp = html(&page)?;
    resp.add_cookie(&session::removal_cookie(&oidc.config))
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(resp)
}
