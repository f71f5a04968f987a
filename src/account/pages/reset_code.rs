//! `/reset`: a student sets their own password with the one-time code a counselor gave them
//! (`roster::reset_code`). No login (that is the point); the double-submit CSRF cookie of the
//! login form; wrong codes count against the login throttle. Success leads to the login form.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use crate::{
    account::reset_code::{redeem, Redeem, Redeemed},
    auth::{csrf, Hasher, TokenCache},
    config::Config,
    domain::NewPassword,
    web::{client_addr, form::FieldErrors, html_status, see_other, AnonCsrf, Page, WebError},
};

#[derive(Template)]
#[template(path = "account/reset.html")]
pub struct ResetPage {
    pub page: Page,
    pub errors: FieldErrors,
    pub min_length: usize,
    pub username: String,
    pub code: String,
}

impl ResetPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }
}

fn render(
    config: &Config,
    req: &HttpRequest,
    errors: FieldErrors,
    username: String,
    code: String,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let token = csrf::anon_token(config, req);
    let mut resp = html_status(
        status,
        &ResetPage {
            page: Page::anonymous(config, token.token, "Set a new password with a code"),
            errors,
            min_length: config.password.min_length,
            username,
            code,
        },
    )?;
    if let Some(c) = token.set_cookie {
        resp.add_cookie(&c)
            .map_err(|e| WebError::Internal(e.into()))?;
    }
    Ok(resp)
}

/// `GET /reset`.
pub async fn form(config: web::Data<Config>, req: HttpRequest) -> Result<HttpResponse, WebError> {
    render(
        &config,
        &req,
        FieldErrors::default(),
        String::new(),
        String::new(),
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /reset`.
pub async fn submit(
    pool: web::Data<PgPool>,
    hasher: web::Data<Hasher>,
    tokens: web::Data<TokenCache>,
    config: web::Data<Config>,
    req: HttpRequest,
    form: AnonCsrf<ResetForm>,
) -> Result<HttpResponse, WebError> {
    let (form, expired) = match form.checked() {
        Ok(form) => (form, false),
        Err(expired) => (expired.0, true),
    };
    let username = form.username.trim().to_string();
    // The code is kept after an error elsewhere (it is short-lived and typed from a counselor's
    // screen); the password never is.
    let again = |errors: FieldErrors, keep_code: bool, status| {
        let code = if keep_code {
            form.code.trim().to_string()
        } else {
            String::new()
        };
        render(&config, &req, errors, username.clone(), code, status)
    };
    let mut errors = FieldErrors::default();
    if expired {
        errors.add("code", "This form had expired. Please try again.");
        return again(errors, true, StatusCode::FORBIDDEN);
    }
    if username.is_empty() {
        errors.add("username", "Enter your username.");
    }
    if form.code.trim().is_empty() {
        errors.add("code", "Enter the code your counselor gave you.");
    }
    let new = errors.check(
        "new_password",
        NewPassword::parse(&form.new_password, config.password.min_length, &username),
    );
    let (Some(new), true) = (new, errors.is_empty()) else {
        return again(errors, true, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let addr = client_addr(&config, &req);
    let outcome = redeem(
        &pool,
        &hasher,
        &tokens,
        &config,
        Redeem {
            username: &username,
            code: &form.code,
            new_password: &new,
            addr: &addr,
        },
    )
    .await?;
    match outcome {
        Redeemed::Done(name) => Ok(see_other(&format!("/login?username={name}&reset=1"))),
        Redeemed::Wrong => {
            errors.add(
                "code",
                "That username and code do not go together. Check both with your counselor.",
            );
            again(errors, false, StatusCode::UNAUTHORIZED)
        }
        Redeemed::Expired => {
            errors.add(
                "code",
                "This code has expired (codes work for 15 minutes). Ask your counselor for a new one.",
            );
            again(errors, false, StatusCode::GONE)
        }
        Redeemed::Locked(_) => {
            errors.add(
                "code",
                "Too many wrong tries. Wait a few minutes, or ask your counselor.",
            );
            again(errors, false, StatusCode::TOO_MANY_REQUESTS)
        }
        Redeemed::Busy => {
            errors.add(
                "code",
                "Many people are logging in right now. Please try again in a moment.",
            );
            again(errors, true, StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}
