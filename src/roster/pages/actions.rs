//! What the student pages and the staff page share behind their buttons: a password reset shown
//! on a login card, and disable / enable / unlock. The handlers differ only in who may press
//! them (their extractor) and which accounts they reach (`Scope`).
use actix_web::HttpResponse;

use super::cards;
use crate::{
    auth::CurrentUser,
    config::Config,
    domain::{Actor, Username},
    roster::{
        ops::{AccountAction, Scope},
        Roster,
    },
    web::{Page, WebError},
};

/// The body of a button-only form (reset, disable, enable, unlock): nothing but the CSRF token,
/// which the `Csrf` extractor checks.
#[derive(serde::Deserialize)]
pub struct Button {}

/// A new generated password for `username`, shown once on a login card.
pub async fn reset_password(
    roster: &Roster,
    config: &Config,
    user: &CurrentUser,
    scope: Scope,
    username: &str,
) -> Result<HttpResponse, WebError> {
    let actor = Actor::User(user.username.clone());
    let cred = roster.reset_password(&actor, scope, username).await?;
    let heading = format!("New password for {}", cred.username);
    cards::render(
        config,
        Page::for_user(config, user, "New password"),
        heading,
        vec![cred],
    )
}

/// Applies the action named by the URL's last segment (unknown: 404); returns the account's
/// name and the action, for the redirect.
pub async fn account_action(
    roster: &Roster,
    user: &CurrentUser,
    scope: Scope,
    (username, action): (String, String),
) -> Result<(Username, AccountAction), WebError> {
    let action = AccountAction::parse(&action).ok_or(WebError::NotFound)?;
    let actor = Actor::User(user.username.clone());
    let name = roster.apply(&actor, scope, &username, action).await?;
    Ok((name, action))
}
