//! What the student pages and the staff page share behind their buttons: a password reset shown
//! on a login card, and disable / enable / unlock. The handlers differ only in who may press
//! them (their extractor) and which accounts they reach (`Scope`).
use actix_web::HttpResponse;

use super::shown::{self, Made};
use crate::{
    auth::CurrentUser,
    domain::{Actor, Username},
    roster::{
        ops::{AccountAction, Scope},
        Roster,
    },
    web::{Keep, WebError},
};

/// The body of a button-only form (reset, disable, enable, unlock): nothing but the CSRF token,
/// which the `Once` extractor checks (with the form's id).
#[derive(serde::Deserialize)]
pub struct Button {}

/// A new generated password for `username`, kept for the login card the result page shows
/// once (the handler runs this through `Once`: a reload or a second click resets nothing).
pub async fn reset_password(
    roster: &Roster,
    user: &CurrentUser,
    scope: Scope,
    username: &str,
    form_id: uuid::Uuid,
    keep: &Keep,
) -> Result<HttpResponse, WebError> {
    let actor = Actor::User(user.username.clone());
    let cred = roster.reset_password(&actor, scope, username).await?;
    let staff = scope == Scope::Staff;
    shown::keep(keep, form_id, Made::Reset, &[cred], staff, vec![])
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
