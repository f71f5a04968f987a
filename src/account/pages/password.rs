//! Changing one's own password.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use crate::{
    account,
    auth::{
        gate::{Checked, Gate},
        Hasher, TokenCache,
    },
    config::Config,
    db,
    domain::NewPassword,
    web::{
        client_addr, form::FieldErrors, html, html_status, see_other, Csrf, Page, RequireUser,
        WebError,
    },
};

#[derive(Template)]
#[template(path = "account/password.html")]
pub struct PasswordPage {
    pub page: Page,
    pub errors: FieldErrors,
    pub min_length: usize,
    /// The new password and its confirmation as typed, kept when the error is elsewhere.
    pub new_password: String,
    pub confirm_password: String,
}

impl PasswordPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }
}

pub async fn form(config: web::Data<Config>, user: RequireUser) -> Result<HttpResponse, WebError> {
    html(&PasswordPage {
        page: Page::for_user(&config, &user, "Change password"),
        errors: FieldErrors::default(),
        min_length: config.password.min_length,
        new_password: String::new(),
        confirm_password: String::new(),
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
}

pub async fn submit(
    pool: web::Data<PgPool>,
    hasher: web::Data<Hasher>,
    tokens: web::Data<TokenCache>,
    config: web::Data<Config>,
    req: HttpRequest,
    user: RequireUser,
    form: Csrf<PasswordForm>,
) -> Result<HttpResponse, WebError> {
    // Per field, after an error: the *current* password is never sent back (it is the
    // credential itself, checked against the throttle; echoing it into a page puts it within
    // reach of anything that reads the page, and retyping it is cheap). The *new* password
    // and its confirmation are kept when the error is elsewhere (a mistyped current
    // password), so they need not be invented and typed twice again; when either of them is
    // refused both are cleared, since which one was mistyped is unknown. The page is no-store.
    let page = |errors: FieldErrors, status| {
        let keep =
            errors.get("new_password").is_empty() && errors.get("confirm_password").is_empty();
        let kept = |v: &String| if keep { v.clone() } else { String::new() };
        let page = PasswordPage {
            page: Page::for_user(&config, &user, "Change password"),
            new_password: kept(&form.new_password),
            confirm_password: kept(&form.confirm_password),
            errors,
            min_length: config.password.min_length,
        };
        html_status(status, &page)
    };
    let mut errors = FieldErrors::default();
    // Guessing the current password from an unattended session counts like failed logins.
    let addr = client_addr(&config, &req);
    let mut conn = pool.acquire().await?;
    let stored = db::users::password_hash(&mut conn, user.id)
        .await?
        .ok_or(WebError::NotFound)?;
    drop(conn);
    let gate = Gate {
        pool: &pool,
        hasher: &hasher,
        throttle: &config.throttle,
    };
    let checked = gate
        .check(
            Some(&user.username),
            &addr,
            Some(&stored),
            &form.current_password,
        )
        .await?;
    match checked {
        Checked::Right { .. } => {}
        Checked::Wrong => errors.add("current_password", "That is not your current password."),
        Checked::Locked(_) => {
            errors.add(
                "current_password",
                "Too many wrong passwords. Try again later, or ask a counselor.",
            );
            return page(errors, StatusCode::TOO_MANY_REQUESTS);
        }
        Checked::Busy => {
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
            config.password.min_length,
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
    account::password::change(&pool, &hasher, &tokens, &user, &new).await?;
    Ok(see_other("/?password_changed=1"))
}
