//! The student's landing page: the way into their notebook, and how full their home is.
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use sqlx::PgPool;

use crate::{
    config::Config,
    db,
    homes::quota::{Fill, HomeQuota},
    web::{html, see_other, MaybeUser, Page, WebError},
};

#[derive(Template)]
#[template(path = "account/home.html")]
pub struct HomePage {
    pub page: Page,
    pub hub_url: String,
    pub display_name: String,
    /// The home against its storage limit, at the last background measurement.
    pub quota: HomeQuota,
    /// Course folders handed out into the home (the conflicts are said: where the new copies are).
    pub handouts: Vec<crate::homes::section::HandoutLine>,
}

impl HomePage {
    /// At 90 % of the limit or past it: the page says so, and what to do.
    pub fn warn(&self) -> bool {
        matches!(self.quota.fill, Fill::NearlyFull | Fill::Full)
    }

    pub fn full(&self) -> bool {
        self.quota.fill == Fill::Full
    }
}

#[derive(Deserialize)]
pub struct HomeQuery {
    password_changed: Option<String>,
    /// After "Stop my notebook server": stopped | stopping; after "My notebook is stuck":
    /// restarting.
    server: Option<String>,
}

pub async fn home(
    config: web::Data<Config>,
    pool: web::Data<PgPool>,
    homes: web::Data<crate::homes::Homes>,
    user: MaybeUser,
    q: web::Query<HomeQuery>,
) -> Result<HttpResponse, WebError> {
    let Some(user) = user.0 else {
        return Ok(see_other("/login"));
    };
    if user.role.is_staff() {
        return Ok(see_other("/students"));
    }
    let row = {
        let mut conn = pool.acquire().await?;
        db::users::find_by_id(&mut conn, user.id).await?
    };
    let quota = match &row {
        Some(row) => HomeQuota::of_row(row, config.homes.quota_default),
        None => HomeQuota::new(None, None, None, config.homes.quota_default),
    };
    let notice = match (q.password_changed.as_ref(), q.server.as_deref()) {
        (Some(_), _) => Some("Your password has been changed."),
        (None, Some("stopped")) => {
            Some("Your notebook server is stopped. Open my notebook starts it again.")
        }
        (None, Some("stopping")) => {
            Some("Your notebook server is stopping; it is gone in a few seconds.")
        }
        (None, Some("restarting")) => Some(
            "Your notebook is restarting: it is stopped, then started again. Open my notebook \
             in a minute; your counselors can see it on their board.",
        ),
        _ => None,
    };
    let page = HomePage {
        page: Page::for_user(&config, &user, "Welcome").with_notice(notice),
        hub_url: config.hub_url.clone(),
        display_name: user.display_name.clone(),
        quota,
        handouts: crate::homes::section::handouts(&homes, &user.username).await,
    };
    html(&page)
}
