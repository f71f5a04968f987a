//! Admins manage counselors and other admins.
use std::collections::HashMap;

use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{home::capitalise, html, html_status, see_other, Page};
use crate::{
    auth::{csrf, RequireAdmin},
    db::{self, users::UserRow},
    domain::{DisplayName, NewPassword, Role, Username},
    error::WebError,
    roster::{self, Actor, RosterError},
    state::AppState,
};

#[derive(Template)]
#[template(path = "staff.html")]
pub struct StaffPage {
    pub page: Page,
    pub staff: Vec<UserRow>,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub errors: HashMap<&'static str, String>,
    pub min_length: usize,
}

impl StaffPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field).cloned().unwrap_or_default()
    }
}

#[derive(Deserialize)]
pub struct StaffQuery {
    created: Option<String>,
}

pub async fn list(
    state: web::Data<AppState>,
    user: RequireAdmin,
    q: web::Query<StaffQuery>,
) -> Result<HttpResponse, WebError> {
    let mut conn = state.pool.acquire().await?;
    let staff = db::users::list_staff(&mut conn).await?;
    let notice = q.created.as_ref().map(|u| format!("Account {u} created."));
    html(&StaffPage {
        page: Page::for_user(&state, &user, "Staff").with_notice(notice.as_deref()),
        staff,
        username: String::new(),
        display_name: String::new(),
        role: "counselor".into(),
        errors: HashMap::new(),
        min_length: state.config.password.min_length,
    })
}

#[derive(Deserialize)]
pub struct StaffForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf_token: String,
}

pub async fn create(
    state: web::Data<AppState>,
    user: RequireAdmin,
    form: web::Form<StaffForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify_user(&user, &form.csrf_token) {
        return Err(WebError::Csrf);
    }
    let mut errors = HashMap::new();
    let username = Username::parse(&form.username.trim().to_ascii_lowercase())
        .map_err(|e| errors.insert("username", format!("{}.", capitalise(&e.to_string()))))
        .ok();
    if let Some(u) = &username {
        let mut conn = state.pool.acquire().await?;
        if db::users::find_by_username(&mut conn, u).await?.is_some() {
            errors.insert("username", "This username is taken.".into());
        }
    }
    let display_name = DisplayName::parse(&form.display_name)
        .map_err(|e| errors.insert("display_name", format!("Name: {e}.")))
        .ok();
    let role = match Role::parse(&form.role) {
        Some(r @ (Role::Counselor | Role::Admin)) => Some(r),
        _ => {
            errors.insert("role", "Choose counselor or admin.".into());
            None
        }
    };
    let password = NewPassword::parse(
        &form.password,
        state.config.password.min_length,
        username.as_ref().map(Username::as_str).unwrap_or(""),
    )
    .map_err(|e| errors.insert("password", format!("{}.", capitalise(&e.to_string()))))
    .ok();
    if let (Some(u), Some(d), Some(r), Some(p)) = (&username, &display_name, role, &password) {
        match roster::ops::create_staff(&state, &Actor::User(user.username.clone()), u, d, r, p)
            .await
        {
            Ok(()) => return Ok(see_other(&format!("/staff?created={u}"))),
            Err(RosterError::Duplicate(_)) => {
                errors.insert("username", "This username is taken.".into());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut conn = state.pool.acquire().await?;
    let staff = db::users::list_staff(&mut conn).await?;
    let page = StaffPage {
        page: Page::for_user(&state, &user, "Staff"),
        staff,
        username: form.username.clone(),
        display_name: form.display_name.clone(),
        role: form.role.clone(),
        errors,
        min_length: state.config.password.min_length,
    };
    html_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}
