//! The jobs pages: the recent jobs, and one job with its steps, refreshing itself until it ends.
use actix_web::{web, HttpResponse};
use askama::Template;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    config::Config,
    db,
    jobs::{JobRow, JobState},
    web::{html, Page, RequireCounselor, WebError},
};

/// A job as the pages show it.
pub struct JobLine {
    pub id: String,
    pub kind: String,
    pub state: &'static str,
    pub actor: String,
    pub created: String,
    pub finished: String,
    pub steps: Vec<(String, String)>,
    pub error: String,
    pub result: String,
    pub attempts: i32,
    pub done: bool,
}

fn clock(at: &str) -> String {
    // "2026-12-01T10:01:02.123456Z" → "10:01:02"
    at.split('T')
        .nth(1)
        .map(|t| t.chars().take(8).collect())
        .unwrap_or_default()
}

fn when(t: time::OffsetDateTime) -> String {
    t.format(time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
    ))
    .unwrap_or_default()
}

impl From<JobRow> for JobLine {
    fn from(r: JobRow) -> Self {
        Self {
            id: r.id.to_string(),
            kind: r.kind,
            state: r.state.as_str(),
            actor: r.actor,
            created: when(r.created_at),
            finished: r.finished_at.map(when).unwrap_or_default(),
            steps: r
                .steps
                .into_iter()
                .map(|s| (s.name, clock(&s.at)))
                .collect(),
            error: r.error.unwrap_or_default(),
            result: r
                .result
                .filter(|v| !v.is_null())
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
                .unwrap_or_default(),
            attempts: r.attempts,
            done: r.state.is_final(),
        }
    }
}

#[derive(Template)]
#[template(path = "activity/jobs.html")]
pub struct JobsPage {
    pub page: Page,
    pub jobs: Vec<JobLine>,
}

#[derive(Template)]
#[template(path = "activity/job.html")]
pub struct JobPage {
    pub page: Page,
    pub job: JobLine,
    /// Seconds until the page reloads itself while the job runs.
    pub refresh: u32,
}

pub async fn list(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    let mut conn = pool.acquire().await?;
    let jobs = db::jobs::recent(&mut conn, 100).await?;
    html(&JobsPage {
        page: Page::for_user(&config, &user, "Jobs"),
        jobs: jobs.into_iter().map(JobLine::from).collect(),
    })
}

pub async fn detail(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let mut conn = pool.acquire().await?;
    let row = db::jobs::get(&mut conn, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let title = match row.state {
        JobState::Queued | JobState::Running => "Job running",
        JobState::Succeeded => "Job done",
        JobState::Failed => "Job failed",
    };
    html(&JobPage {
        page: Page::for_user(&config, &user, title),
        job: row.into(),
        refresh: 2,
    })
}
