//! The first-run setup page (the one-time URL printed at start).
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use sqlx::PgPool;

use crate::{
    account::setup::{self, SetupError},
    auth::{csrf, session, Hasher},
    config::Config,
    roster::{self, RosterError},
    web::{
        form::{self, FieldErrors},
        html_status, AnonCsrf, Page, WebError,
    },
};

#[derive(Template)]
#[template(path = "account/setup.html")]
pub struct SetupPage {
    pub page: Page,
    pub token: String,
    pub username: String,
    pub display_name: String,
    /// The passwords as typed, kept when the error is elsewhere (see `submit`).
    pub password: String,
    pub confirm_password: String,
    pub errors: FieldErrors,
    pub min_length: usize,
}

impl SetupPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }
}

#[derive(Deserialize)]
pub struct SetupQuery {
    token: Option<String>,
}

/// What the form holds when it is shown (again).
#[derive(Default)]
struct Typed {
    username: String,
    display_name: String,
    password: String,
    confirm_password: String,
}

fn page(
    config: &Config,
    req: &HttpRequest,
    token: String,
    typed: Typed,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let anon = csrf::anon_token(config, req);
    let p = SetupPage {
        page: Page::anonymous(config, anon.token, "Set up hubdesk"),
        token,
        username: typed.username,
        display_name: typed.display_name,
        password: typed.password,
        confirm_password: typed.confirm_password,
        errors,
        min_length: config.password.min_length,
    };
    let mut resp = html_status(status, &p)?;
    if let Some(c) = anon.set_cookie {
        resp.add_cookie(&c)
            .map_err(|e| WebError::Internal(e.into()))?;
    }
    Ok(resp)
}

pub async fn form(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    req: HttpRequest,
    q: web::Query<SetupQuery>,
) -> Result<HttpResponse, WebError> {
    let token = q.token.clone().unwrap_or_default();
    if !setup::token_is_valid(&pool, &token).await? {
        return Err(WebError::BadRequest(
            "This setup link is invalid, already used or expired. Restart hubdesk to print a new one (only while no admin exists).".into(),
        ));
    }
    page(
        &config,
        &req,
        token,
        Typed::default(),
        FieldErrors::default(),
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct SetupForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm_password: String,
}

pub async fn submit(
    pool: web::Data<PgPool>,
    hasher: web::Data<Hasher>,
    config: web::Data<Config>,
    req: HttpRequest,
    form: AnonCsrf<SetupForm>,
) -> Result<HttpResponse, WebError> {
    let form = form.checked().map_err(|_| WebError::Csrf)?;
    if !setup::token_is_valid(&pool, &form.token).await? {
        return Err(WebError::BadRequest(
            "This setup link is invalid, already used or expired.".into(),
        ));
    }
    // The form again, with the messages and what was typed. The two passwords are kept
    // when the error is in another field (the page is no-store and goes back over the
    // connection they came by; retyping both to fix a username helps nobody); when either
    // password field is wrong both are cleared: which one was mistyped is unknown.
    let rerender = |errors: FieldErrors| {
        let keep = errors.get("password").is_empty() && errors.get("confirm_password").is_empty();
        let typed = Typed {
            username: form.username.clone(),
            display_name: form.display_name.clone(),
            password: if keep {
                form.password.clone()
            } else {
                String::new()
            },
            confirm_password: if keep {
                form.confirm_password.clone()
            } else {
                String::new()
            },
        };
        page(
            &config,
            &req,
            form.token.clone(),
            typed,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let mut errors = FieldErrors::default();
    let account = form::new_account(
        &mut errors,
        &form.username,
        &form.display_name,
        &form.password,
        config.password.min_length,
    );
    if form.password != form.confirm_password {
        errors.add("confirm_password", "The two passwords do not match.");
    }
    // `admin` is the name everyone tries first: offer free ones instead of a bare refusal.
    let mut conn = pool.acquire().await?;
    if let Some(hint) =
        roster::ops::reserved_hint_for(&mut conn, &form.username, &form.display_name).await?
    {
        errors.add("username", hint);
    }
    drop(conn);
    let (Some(account), true) = (account, errors.is_empty()) else {
        return rerender(errors);
    };
    let user_id = match setup::create_first_admin(&pool, &hasher, &form.token, &account).await {
        Ok(id) => id,
        Err(SetupError::Roster(RosterError::Duplicate(_))) => {
            errors.add("username", "This username is taken.");
            return rerender(errors);
        }
        Err(SetupError::TokenSpent) => {
            return Err(WebError::BadRequest(
                "This setup link was just used.".into(),
            ))
        }
        Err(SetupError::Roster(e)) => return Err(e.into()),
    };
    let cookie = session::create(&pool, &config, user_id, None).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/students"))
        .cookie(cookie)
        .finish())
}
