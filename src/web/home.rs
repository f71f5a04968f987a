//! The student's landing page and password change.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{client_addr, form::FieldErrors, html, html_status, see_other, Page};
use crate::{
    auth::{csrf, password::Gated, throttle, MaybeUser, RequireUser, Verified},
    db,
    domain::NewPassword,
    error::WebError,
    state::AppState,
};

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub page: Page,
    pub hub_url: String,
    pub display_name: String,
}

#[derive(Deserialize)]
pub struct HomeQuery {
    password_changed: Option<String>,
}

pub async fn home(
    state: web::Data<AppState>,
    user: MaybeUser,
    q: web::Query<HomeQuery>,
) -> Result<HttpResponse, WebError> {
    let Some(user) = user.0 else {
        return Ok(see_other("/login"));
    };
    if user.role.is_staff() {
        return Ok(see_other("/students"));
    }
    let notice = q
        .password_changed
        .as_ref()
        .map(|_| "Your password has been changed.");
    let page = HomePage {
        page: Page::for_user(&state, &user, "Welcome").with_notice(notice),
        hub_url: state.config.hub_url.clone(),
        display_name: user.display_name.clone(),
    };
    html(&page)
}

#[derive(Template)]
#[template(path = "password.html")]
pub struct PasswordPage {
    pub page: Page,
    pub errors: FieldErrors,
    pub min_length: usize,
}

impl PasswordPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }
}

pub async fn password_form(
    state: web::Data<AppState>,
    user: RequireUser,
) -> Result<HttpResponse, WebError> {
    html(&PasswordPage {
        page: Page::for_user(&state, &user, "Change password"),
        errors: FieldErrors::default(),
        min_length: state.config.password.min_length,
    })
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
    #[serde(default)]
    csrf_token: String,
}

pub async fn password_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: RequireUser,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify_user(&user, &form.csrf_token) {
        return Err(WebError::Csrf);
    }
    let page = |errors, status| {
        let page = PasswordPage {
            page: Page::for_user(&state, &user, "Change password"),
            errors,
            min_length: state.config.password.min_length,
        };
        html_status(status, &page)
    };
    let mut errors = FieldErrors::default();
    // Guessing the current password from an unattended session counts like failed logins.
    let addr = client_addr(&state, &req);
    let mut conn = state.pool.acquire().await?;
    let row = db::users::find_by_id(&mut conn, user.id)
        .await?
        .ok_or(WebError::NotFound)?;
    drop(conn);
    // As at login: the lock is checked holding a hasher, and a wrong guess keeps it until the
    // failure is recorded, so parallel guesses meet the lock.
    let gate = || async {
        let mut conn = state.pool.acquire().await?;
        Ok(throttle::locked_until(&mut conn, Some(&user.username), &addr).await?)
    };
    let stored = Some(row.password_hash.as_str());
    match state
        .hasher
        .verify_gated(stored, &form.current_password, gate)
        .await?
    {
        Gated::Verified(Verified::No, hasher) => {
            let mut conn = state.pool.acquire().await?;
            let cfg = &state.config.throttle;
            throttle::record_failure(&mut conn, cfg, Some(&user.username), &addr).await?;
            drop(hasher);
            errors.add("current_password", "That is not your current password.")
        }
        Gated::Verified(Verified::Yes | Verified::YesRehashed(_), _) => {}
        Gated::Refused(_) => {
            errors.add(
                "current_password",
                "Too many wrong passwords. Try again later, or ask a counselor.",
            );
            return page(errors, StatusCode::TOO_MANY_REQUESTS);
        }
        Gated::Busy => {
            errors.add(
                "current_password",
                "The server is busy. Please try again in a moment.",
            );
            return page(errors, StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    let new = errors.check(
        "new_password",
        NewPassword::parse(
            &form.new_password,
            state.config.password.min_length,
            user.username.as_str(),
        ),
    );
    if form.new_password != form.confirm_password {
        errors.add("confirm_password", "The two new passwords do not match.");
    }
    if form.new_password == form.current_password && !form.new_password.is_empty() {
        errors.add(
            "new_password",
            "The new password must differ from the current one.",
        );
    }
    let (Some(new), true) = (new, errors.is_empty()) else {
        return page(errors, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let hash = state.hasher.hash(new.expose()).await?;
    let mut tx = state.pool.begin().await?;
    db::users::set_password_hash(&mut tx, user.id, &hash).await?;
    // Other devices lose their sessions and the hub its tokens (a stolen refresh token dies
    // here); this browser stays logged in, so the hub signs it in again without a password.
    let ended = db::sessions::delete_others(&mut tx, user.id, &user.session_hash).await?;
    let revoked = db::oauth::revoke_user_grants(&mut tx, user.id).await?;
    let detail = format!("{ended} other session(s) ended, {revoked} hub authorization(s) revoked");
    db::audit::record(
        &mut tx,
        db::audit::Entry {
            actor: user.username.as_str(),
            action: "account.change_password",
            target: Some(user.username.as_str()),
            detail: Some(&detail),
        },
    )
    .await?;
    tx.commit().await?;
    state.oidc.cache.forget_user(user.id);
    Ok(see_other("/?password_changed=1"))
}
