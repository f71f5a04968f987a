//! The first-run setup page (the one-time URL printed at start).
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use sqlx::PgPool;

use crate::{
    account::setup::{self, SetupError},
    auth::{csrf, session, Hasher},
    config::Config,
    roster::RosterError,
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

fn page(
    config: &Config,
    req: &HttpRequest,
    token: String,
    username: String,
    display_name: String,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let anon = csrf::anon_token(config, req);
    let p = SetupPage {
        page: Page::anonymous(config, anon.token, "Set up hubdesk"),
        token,
        username,
        display_name,
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
        String::new(),
        String::new(),
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
    // The form again, with the messages and what was typed (never the passwords).
    let rerender = |errors| {
        page(
            &config,
            &req,
            form.token.clone(),
            form.username.clone(),
            form.display_name.clone(),
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
