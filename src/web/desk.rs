//! What the student pages and the staff page share behind their buttons: a password reset shown
//! on a login card, and disable / enable / unlock. The handlers differ only in who may press
//! them (their extractor) and which accounts they reach (`Desk`).
use actix_web::HttpResponse;

use super::{cards, form::CsrfForm, Page};
use crate::{
    auth::CurrentUser,
    domain::Username,
    error::WebError,
    roster::{
        self,
        ops::{AccountAction, Desk},
    },
    state::AppState,
};

/// A new generated password for `username`, shown once on a login card.
pub async fn reset_password(
    state: &AppState,
    user: &CurrentUser,
    form: &CsrfForm,
    desk: Desk,
    username: &str,
) -> Result<HttpResponse, WebError> {
    let actor = form.actor(user)?;
    let cred = roster::ops::reset_password(state, &actor, desk, username).await?;
    let heading = format!("New password for {}", cred.username);
    cards::render(
        state,
        Page::for_user(state, user, "New password"),
        heading,
        vec![cred],
    )
}

/// Applies the action named by the URL's last segment (unknown: 404); returns the account's
/// name and the action, for the redirect.
pub async fn account_action(
    state: &AppState,
    user: &CurrentUser,
    form: &CsrfForm,
    desk: Desk,
    (username, action): (String, String),
) -> Result<(Username, AccountAction), WebError> {
    let action = AccountAction::parse(&action).ok_or(WebError::NotFound)?;
    let actor = form.actor(user)?;
    let name = roster::ops::apply(state, &actor, desk, &username, action).await?;
    Ok((name, action))
}
