//! The audit log: who did what to whom, when, in words ("Connie Counselor reset Ada Lovelace's
//! password"), on the camp's clock; the recorded codes stay in the filters and the links.
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use sqlx::PgPool;

use crate::{
    activity::words::{self, Part, People, Sentence},
    config::Config,
    db::{self, audit::AuditFilter},
    domain::Action,
    web::{error::urlencode, html, Moment, Page, RequireCounselor, WebError},
};

/// One entry as the page shows it.
pub struct AuditLine {
    pub when: Moment,
    pub who: Sentence,
    pub what: Sentence,
    pub detail: Option<String>,
    /// The recorded code (`student.disable`), for scripts and the filter.
    pub code: String,
}

#[derive(Template)]
#[template(path = "roster/audit.html")]
pub struct AuditPage {
    pub page: Page,
    pub rows: Vec<AuditLine>,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// Every recorded action, as (code, words), for the filter.
    pub actions: Vec<(String, String)>,
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
        reach: user
            .reach
            .cohorts()
            .map(|c| (user.username.to_string(), c.to_vec())),
    };
    let mut conn = pool.acquire().await?;
    let rows = db::audit::list(&mut conn, &filter).await?;
    let mut actions: Vec<(String, String)> = db::audit::actions(&mut conn)
        .await?
        .into_iter()
        .map(|code| {
            let words = Action::parse(&code).label().to_string();
            (code, words)
        })
        .collect();
    actions.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let people = People::of(&mut conn, words::audit_labels(&rows), user.role.is_admin()).await?;
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
    let page = Page::for_user(&config, &user, "Audit log");
    let rows = rows
        .iter()
        .map(|r| AuditLine {
            when: page.clock.moment(r.at),
            who: people.actor(&r.actor),
            what: words::action(&people, r),
            detail: r.detail.clone(),
            code: r.action.as_str().to_string(),
        })
        .collect();
    html(&AuditPage {
        page,
        rows,
        actor,
        action,
        target,
        actions,
        older_href,
    })
}
