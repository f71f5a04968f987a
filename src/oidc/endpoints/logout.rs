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
    db,
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
    /// Carried through the confirmation, so the browser still returns to the application.
    pub back: LogoutRequest,
}

/// What an RP-initiated logout asks for (OpenID Connect RP-Initiated Logout 1.0 §2).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct LogoutRequest {
    #[serde(default)]
    pub id_token_hint: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub post_logout_redirect_uri: String,
    #[serde(default)]
    pub state: String,
}

/// Where the browser goes after logging out, once the request is understood.
struct Understood {
    /// A registered post-logout redirect URI of the client, with `state` added.
    redirect: Option<String>,
    /// The `sub` of a valid `id_token_hint`.
    hinted_subject: Option<String>,
}

/// Checks the request: the client is the one named by `id_token_hint` (one we signed) or
/// `client_id` (both: they must agree), and `post_logout_redirect_uri` is honoured only when
/// registered for that client, exactly; otherwise the browser stays on our logged-out page.
fn understand(oidc: &Oidc, r: &LogoutRequest) -> Result<Understood, WebError> {
    let hint = (!r.id_token_hint.is_empty())
        .then(|| {
            oidc.keys
                .verify_ours(&r.id_token_hint, &oidc.config.public_url)
        })
        .flatten();
    if !r.id_token_hint.is_empty() && hint.is_none() {
        return Err(WebError::BadRequest(
            "The logout request carries an id_token_hint that hubdesk did not issue.".into(),
        ));
    }
    let hinted_client = hint.as_ref().and_then(|c| match &c["aud"] {
        serde_json::Value::String(a) => Some(a.clone()),
        serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()).map(str::to_string),
        _ => None,
    });
    let client_id = match (hinted_client, r.client_id.as_str()) {
        (Some(h), "") => Some(h),
        (Some(h), c) if h == c => Some(h),
        (Some(_), _) => {
            return Err(WebError::BadRequest(
                "The logout request's client_id and id_token_hint name different applications."
                    .into(),
            ))
        }
        (None, "") => None,
        (None, c) => Some(c.to_string()),
    };
    let client = client_id.as_deref().and_then(|id| oidc.clients.get(id));
    let redirect = client
        .filter(|c| c.has_post_logout_redirect_uri(&r.post_logout_redirect_uri))
        .and_then(|_| url::Url::parse(&r.post_logout_redirect_uri).ok())
        .map(|mut u| {
            if !r.state.is_empty() {
                u.query_pairs_mut().append_pair("state", &r.state);
            }
            u.to_string()
        });
    Ok(Understood {
        redirect,
        hinted_subject: hint.and_then(|c| c["sub"].as_str().map(str::to_string)),
    })
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
    q: web::Query<LogoutRequest>,
) -> Result<HttpResponse, WebError> {
    let request = q.into_inner();
    let understood = understand(&oidc, &request)?;
    let Some(user) = user.0 else {
        return log_out(&oidc, None, understood.redirect).await;
    };
    // A hint naming the person who is logged in proves the application sent them: no
    // question. Otherwise a request from a page elsewhere asks first.
    let hint_is_theirs = match &understood.hinted_subject {
        Some(sub) => {
            let mut conn = oidc.pool.acquire().await?;
            db::users::find_by_id(&mut conn, user.id)
                .await?
                .is_some_and(|u| u.subject.to_string() == *sub)
        }
        None => false,
    };
    if !hint_is_theirs && !from_a_trusted_place(&oidc, &req) {
        return html(&ConfirmPage {
            page: Page::for_user(&oidc.config, &user, "Log out?"),
            back: request,
        });
    }
    log_out(&oidc, Some(user), understood.redirect).await
}

/// The confirmation's button.
pub async fn end_session_confirmed(
    oidc: web::Data<Oidc>,
    user: MaybeUser,
    form: Csrf<LogoutRequest>,
) -> Result<HttpResponse, WebError> {
    let understood = understand(&oidc, &form)?;
    log_out(&oidc, user.0, understood.redirect).await
}

async fn log_out(
    oidc: &Oidc,
    user: Option<CurrentUser>,
    redirect: Option<String>,
) -> Result<HttpResponse, WebError> {
    if let Some(user) = user {
        account::login::log_out(&oidc.pool, &oidc.tokens, &user).await?;
        tracing::info!(username = %user.username, "logged out via the hub");
    }
    let mut resp = match redirect {
        Some(to) => HttpResponse::SeeOther()
            .insert_header(("Location", to))
            .insert_header(("Cache-Control", "no-store"))
            .finish(),
        None => html(&LoggedOutPage {
            page: Page::anonymous(&oidc.config, String::new(), "Logged out"),
            hub_url: oidc.config.hub_url.clone(),
        })?,
    };
    resp.add_cookie(&session::removal_cookie(&oidc.config))
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(resp)
}
