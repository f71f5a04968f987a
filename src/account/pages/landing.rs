//! The student's landing page: the way into their notebook.
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::{
    config::Config,
    web::{html, see_other, MaybeUser, Page, WebError},
};

#[derive(Template)]
#[template(path = "account/home.html")]
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
    config: web::Data<Config>,
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
        page: Page::for_user(&config, &user, "Welcome").with_notice(notice),
        hub_url: config.hub_url.clone(),
        display_name: user.display_name.clone(),
    };
    html(&page)
}
