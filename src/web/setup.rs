//! First run: a one-time URL printed at start creates the first admin.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    form::{self, FieldErrors, NewAccount},
    html_status, Page,
};
use crate::{
    auth::{csrf, secret, session},
    db::{self, users::InsertUserError},
    domain::Role,
    error::WebError,
    state::AppState,
};

/// Creates a setup token when there is no admin yet; returns the URL to print.
pub async fn first_run_url(state: &AppState) -> anyhow::Result<Option<String>> {
    let mut conn = state.pool.acquire().await?;
    if db::users::count_role(&mut conn, Role::Admin).await? > 0 {
        db::setup::clear(&mut conn).await?;
        return Ok(None);
    }
    let token = secret::random_token();
    db::setup::insert(&mut conn, &secret::hash_token(&token), 24 * 3600).await?;
    Ok(Some(format!(
        "{}/setup?token={token}",
        state.config.public_url
    )))
}

#[derive(Template)]
#[template(path = "setup.html")]
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

async fn token_ok(state: &AppState, token: &str) -> Result<bool, WebError> {
    let mut conn = state.pool.acquire().await?;
    Ok(db::setup::is_valid(&mut conn, &secret::hash_token(token)).await?)
}

fn page(
    state: &AppState,
    req: &HttpRequest,
    token: String,
    username: String,
    display_name: String,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let anon = csrf::anon_token(state, req);
    let p = SetupPage {
        page: Page::anonymous(state, anon.token, "Set up hubdesk"),
        token,
        username,
        display_name,
        errors,
        min_length: state.config.password.min_length,
    };
    let mut resp = html_status(status, &p)?;
    if let Some(c) = anon.set_cookie {
        resp.add_cookie(&c)
            .map_err(|e| WebError::Internal(e.into()))?;
    }
    Ok(resp)
}

pub async fn form(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<SetupQuery>,
) -> Result<HttpResponse, WebError> {
    let token = q.token.clone().unwrap_or_default();
    if !token_ok(&state, &token).await? {
        return Err(WebError::BadRequest(
            "This setup link is invalid, already used or expired. Restart hubdesk to print a new one (only while no admin exists).".into(),
        ));
    }
    page(
        &state,
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
    #[serde(default)]
    csrf_token: String,
}

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify_anon(&state, &req, &form.csrf_token) {
        return Err(WebError::Csrf);
    }
    if !token_ok(&state, &form.token).await? {
        return Err(WebError::BadRequest(
            "This setup link is invalid, already used or expired.".into(),
        ));
    }
    // The form again, with the messages and what was typed (never the passwords).
    let rerender = |errors| {
        page(
            &state,
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
        state.config.password.min_length,
    );
    if form.password != form.confirm_password {
        errors.add("confirm_password", "The two passwords do not match.");
    }
    let (
        Some(NewAccount {
            username,
            display_name,
            password,
        }),
        true,
    ) = (account, errors.is_empty())
    else {
        return rerender(errors);
    };
    let hash = state.hasher.hash(password.expose()).await?;
    let mut tx = state.pool.begin().await?;
    if !db::setup::consume(&mut tx, &secret::hash_token(&form.token)).await? {
        return Err(WebError::BadRequest(
            "This setup link was just used.".into(),
        ));
    }
    let new = db::users::NewUser {
        username: &username,
        display_name: &display_name,
        role: Role::Admin,
        cohort: None,
        password_hash: &hash,
    };
    let user = match db::users::insert(&mut tx, new).await {
        Ok(u) => u,
        Err(InsertUserError::Duplicate) => {
            errors.add("username", "This username is taken.");
            return rerender(errors);
        }
        Err(InsertUserError::Db(e)) => return Err(e.into()),
    };
    db::setup::clear(&mut tx).await?;
    db::audit::record(
        &mut tx,
        db::audit::Entry {
            actor: "setup",
            action: "staff.create",
            target: Some(username.as_str()),
            detail: Some("first admin"),
        },
    )
    .await?;
    tx.commit().await?;
    let cookie = session::create(&state, user.id, None).await?;
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/students"))
        .cookie(cookie)
        .finish())
}
