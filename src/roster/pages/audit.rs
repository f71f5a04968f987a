//! The audit log: who did what to whom, when.
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use sqlx::PgPool;

use crate::{
    config::Config,
    db::{
        self,
        audit::{AuditFilter, AuditRow},
    },
    web::{error::urlencode, html, Page, RequireCounselor, WebError},
};

#[derive(Template)]
#[template(path = "roster/audit.html")]
pub struct AuditPage {
    pub page: Page,
    pub rows: Vec<AuditRow>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub actions: Vec<String>,
    pub older_href: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    before: Option<i64>,
}

const PAGE: i64 = 100;

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub async fn list(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    user: RequireCounselor,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, WebError> {
    let filter = AuditFilter {
        actor: non_empty(&q.actor),
        action: non_empty(&q.action),
        target: non_empty(&q.target),
        before: q.before,
        limit: PAGE,
    };
    let mut conn = pool.acquire().await?;
    let rows = db::audit::list(&mut conn, &filter).await?;
    let actions = db::audit::actions(&mut conn).await?;
    let (actor, action, target) = (
        filter.actor.clone().unwrap_or_default(),
        filter.action.clone().unwrap_or_default(),
        filter.target.clone().unwrap_or_default(),
    );
    let older_href = (rows.len() as i64 == PAGE).then(|| {
        format!(
            "/audit?actor={}&action={}&target={}&before={}",
            urlencode(&actor),
            urlencode(&action),
            urlencode(&target),
            rows.last().map(|r| r.id).unwrap_or(0)
        )
    });
    html(&AuditPage {
        page: Page::for_user(&config, &user, "Audit log"),
        rows,
        actor,
        action,
        target,
        actions,
        older_href,
    })
}
