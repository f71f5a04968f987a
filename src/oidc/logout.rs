//! RP-initiated logout (the hub's `logout_redirect_url`): ends the hubdesk session and revokes
//! the person's tokens, so the next student on a shared laptop must log in again. A GET by
//! design of the spec; it can only ever log someone out.
use actix_web::{web, HttpResponse};
use askama::Template;

use crate::{
    auth::{session, MaybeUser},
    db,
    error::WebError,
    state::AppState,
    web::{html, Page},
};

#[derive(Template)]
#[template(path = "logged_out.html")]
pub struct LoggedOutPage {
    pub page: Page,
    pub hub_url: String,
}

pub async fn end_session(
    state: web::Data<AppState>,
    user: MaybeUser,
) -> Result<HttpResponse, WebError> {
    if let Some(user) = user.0 {
        let mut tx = state.pool.begin().await?;
        db::sessions::delete(&mut tx, &user.session_hash).await?;
        db::oauth::revoke_user_grants(&mut tx, user.id).await?;
        tx.commit().await?;
        state.oidc.cache.forget_user(user.id);
        tracing::info!(username = %user.username, "logged out via the hub");
    }
    let page = LoggedOutPage {
        page: Page::anonymous(&state, String::new(), "Logged out"),
        hub_url: state.config.hub_url.clone(),
    };
    let mut resp = html(&page)?;
    resp.add_cookie(&session::removal_cookie(&state))
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(resp)
}
