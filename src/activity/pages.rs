//! The jobs pages: the recent jobs, and one job with its steps, refreshing itself until it
//! ends. Both say what the job does to whom ("Reset Ada Lovelace's home") and what came of it,
//! with times on the camp's clock; the raw payload and result are a disclosure for admins.
use actix_web::{web, HttpResponse};
use askama::Template;
use sqlx::PgPool;
use time::{format_description::well_known::Rfc3339, OffsetDateTime};
use uuid::Uuid;

use super::words::{self, Part, People, Sentence};
use crate::{
    config::Config,
    db,
    domain::{activity::step_words, JobKind, Username},
    homes::Homes,
    jobs::{JobRow, JobState},
    web::{html, Clock, Moment, Page, RequireCounselor, WebError},
};

/// One step of a job: its recorded name (for scripts and tests), its words, when.
pub struct StepLine {
    pub name: String,
    pub words: String,
    pub at: Option<Moment>,
}

/// A job as the pages show it.
pub struct JobLine {
    pub id: String,
    /// The kind as recorded (`homes.reset`).
    pub kind: String,
    pub title: Sentence,
    pub state: &'static str,
    pub state_words: &'static str,
    pub actor: Sentence,
    pub created: Moment,
    pub finished: Option<Moment>,
    pub steps: Vec<StepLine>,
    pub error: String,
    /// What a finished job did, in words ("the old home is in the archive (1.2 MiB)").
    pub outcome: Option<String>,
    /// Where the work is picked up (path, link text): a reset's login cards.
    pub next: Option<(String, &'static str)>,
    /// Payload and result as JSON, for the admins' "details".
    pub details: String,
    pub attempts: i32,
    pub done: bool,
    pub running: bool,
    pub queued: bool,
}

impl JobLine {
    fn of(r: JobRow, people: &People, clock: &Clock, archive_bytes: Option<u64>) -> Self {
        let title = words::job_title(people, &r, |t| clock.moment(t).short).capitalised();
        let outcome = words::job_outcome(&r, archive_bytes);
        let next = words::job_next(&r);
        let details = serde_json::to_string_pretty(&serde_json::json!({
            "kind": r.kind,
            "payload": r.payload,
            "result": r.result,
        }))
        .unwrap_or_default();
        Self {
            id: r.id.to_string(),
            title,
            state: r.state.as_str(),
            state_words: words::state_words(r.state),
            actor: people.actor(&r.actor),
            created: clock.moment(r.created_at),
            finished: r.finished_at.map(|t| clock.moment(t)),
            steps: r
                .steps
                .iter()
                .map(|s| StepLine {
                    words: step_words(&s.name),
                    name: s.name.clone(),
                    at: OffsetDateTime::parse(&s.at, &Rfc3339)
                        .ok()
                        .map(|t| clock.time_of_day(t)),
                })
                .collect(),
            error: r.error.clone().unwrap_or_default(),
            outcome,
            next,
            details,
            attempts: r.attempts,
            done: r.state.is_final(),
            running: r.state == JobState::Running,
            queued: r.state == JobState::Queued,
            kind: r.kind,
        }
    }

    /// The kind's short label ("Home reset").
    pub fn label(&self) -> String {
        JobKind::parse(&self.kind).label().to_string()
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
    let mut rows = db::jobs::recent(&mut conn, 100).await?;
    // A counselor of some cohorts sees the jobs they started (a job may name anyone).
    rows.retain(|r| user.reach.is_all() || r.actor == user.username.as_str());
    let people = People::of(&mut conn, words::job_labels(&rows), user.role.is_admin()).await?;
    let page = Page::for_user(&config, &user, "Jobs");
    let jobs = rows
        .into_iter()
        .map(|r| JobLine::of(r, &people, &page.clock, None))
        .collect();
    html(&JobsPage { page, jobs })
}

pub async fn detail(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let missing = || WebError::Missing(format!("no job {}", path.as_str()));
    let id = Uuid::parse_str(&path).map_err(|_| missing())?;
    let mut conn = pool.acquire().await?;
    let row = db::jobs::get(&mut conn, id)
        .await?
        .filter(|r| user.reach.is_all() || r.actor == user.username.as_str())
        .ok_or_else(missing)?;
    let people = People::of(
        &mut conn,
        words::job_labels(std::slice::from_ref(&row)),
        user.role.is_admin(),
    )
    .await?;
    drop(conn);
    let archive_bytes = archive_size(&homes, &row).await;
    let mut page = Page::for_user(&config, &user, "Job");
    let job = JobLine::of(row, &people, &page.clock, archive_bytes);
    page.title = format!("{} ({})", job.title.plain(), job.state_words);
    html(&JobPage {
        page,
        job,
        refresh: 2,
    })
}

/// The size of the archive entry a finished reset or restore made (measured once and kept by
/// `Homes::archives`); `None` when it cannot be read (the page then just leaves it out).
async fn archive_size(homes: &Homes, row: &JobRow) -> Option<u64> {
    let (username, archive) = words::job_archive(row)?;
    let username = Username::parse(&username).ok()?;
    let list = homes.archives(&username).await.ok()?;
    list.into_iter().find(|a| a.id == archive).map(|a| a.bytes)
}
