//! Server jobs: `servers.start` (a cohort's servers before class, a few at a time, one step per
//! student) and `servers.stop` (waits for a stop the hub answered with 202); and the hook that
//! stops a student's server before their home is reset or restored.
use std::sync::Arc;

use futures_util::{stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Servers;
use crate::{
    db,
    domain::{Actor, Username},
    hub::{HubError, StartOutcome},
    jobs::{BoxFuture, JobContext, JobError, JobHandler},
};

pub const START_KIND: &str = "servers.start";
pub const STOP_KIND: &str = "servers.stop";
pub const RESTART_KIND: &str = "servers.restart";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartJob {
    /// What the job page says it is for ("cohort blue").
    pub label: String,
    pub usernames: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopJob {
    pub username: String,
}

/// "My notebook is stuck": stop (interrupting a pending start), wait until gone, start.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartJob {
    pub username: String,
}

/// Queues a job of `kind` with `payload`, in the caller's transaction (3 attempts).
async fn enqueue(
    conn: &mut PgConnection,
    kind: &str,
    payload: &impl Serialize,
    actor: &Actor,
) -> sqlx::Result<Uuid> {
    let json = serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(e.into()))?;
    db::jobs::enqueue(conn, kind, &json, &actor.label(), 3).await
}

impl RestartJob {
    pub async fn enqueue(&self, conn: &mut PgConnection, actor: &Actor) -> sqlx::Result<Uuid> {
        enqueue(conn, RESTART_KIND, self, actor).await
    }
}

impl StartJob {
    pub async fn enqueue(&self, conn: &mut PgConnection, actor: &Actor) -> sqlx::Result<Uuid> {
        enqueue(conn, START_KIND, self, actor).await
    }
}

impl StopJob {
    pub async fn enqueue(&self, conn: &mut PgConnection, actor: &Actor) -> sqlx::Result<Uuid> {
        enqueue(conn, STOP_KIND, self, actor).await
    }
}

pub fn retry(e: HubError) -> JobError {
    match e {
        HubError::Unauthorized { .. } => JobError::fatal(e),
        other => JobError::retry(other),
    }
}

struct Start(Servers);
struct Stop(Servers);
struct Restart(Servers);

impl JobHandler for Restart {
    fn kind(&self) -> &'static str {
        RESTART_KIND
    }
    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        Box::pin(async move {
            let job: RestartJob = ctx.payload_as()?;
            let u = Username::parse(&job.username).map_err(JobError::fatal)?;
            if !ctx.is_done("stopped") {
                self.0.stop_and_wait(&u).await.map_err(retry)?;
                ctx.step("stopped").await?;
            }
            let hub = self
                .0
                .hub
                .as_ref()
                .ok_or_else(|| JobError::fatal("no hub configured"))?;
            match hub.start_server(&u).await {
                Ok(_) => ctx.step("started").await?,
                Err(HubError::NotFound(_)) => {
                    return Err(JobError::fatal(
                        "the hub does not know this student yet: open the notebook once first",
                    ))
                }
                Err(e) => return Err(retry(e)),
            }
            Ok(json!({"username": job.username}))
        })
    }
}

impl JobHandler for Start {
    fn kind(&self) -> &'static str {
        START_KIND
    }
    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        Box::pin(async move {
            let job: StartJob = ctx.payload_as()?;
            let hub = self
                .0
                .hub
                .as_ref()
                .ok_or_else(|| JobError::fatal("no hub configured"))?;
            let todo: Vec<Username> = job
                .usernames
                .iter()
                .filter(|u| !ctx.is_done(&format!("started {u}")))
                .filter_map(|u| Username::parse(u).ok())
                .collect();
            // A few at a time: the hub and the workers take a class's worth of spawns badly
            // all at once.
            let results: Vec<(Username, Result<StartOutcome, HubError>)> =
                stream::iter(todo.into_iter().map(|u| async move {
                    let r = hub.start_server(&u).await;
                    (u, r)
                }))
                .buffer_unordered(self.0.start_concurrency.max(1))
                .collect()
                .await;
            let mut failed = Vec::new();
            for (u, r) in results {
                match r {
                    Ok(_) => ctx.step(&format!("started {u}")).await?,
                    // Never logged in: the hub has no such user yet (created at first login).
                    Err(HubError::NotFound(_)) => {
                        ctx.step(&format!("skipped {u} (never logged in)")).await?
                    }
                    Err(HubError::Unauthorized { .. }) => {
                        return Err(JobError::fatal("the hub refused hubdesk's API token"))
                    }
                    Err(e) => failed.push(format!("{u}: {e}")),
                }
            }
            if !failed.is_empty() {
                return Err(JobError::Retry(failed.join("; ")));
            }
            Ok(json!({"label": job.label, "students": job.usernames.len()}))
        })
    }
}

impl JobHandler for Stop {
    fn kind(&self) -> &'static str {
        STOP_KIND
    }
    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        Box::pin(async move {
            let job: StopJob = ctx.payload_as()?;
            let u = Username::parse(&job.username).map_err(JobError::fatal)?;
            self.0.stop_and_wait(&u).await.map_err(retry)?;
            ctx.step("stopped").await?;
            Ok(json!({"username": job.username}))
        })
    }
}

/// The job handlers of this capability.
pub fn handlers(servers: Servers) -> Vec<Arc<dyn JobHandler>> {
    vec![
        Arc::new(Start(servers.clone())),
        Arc::new(Stop(servers.clone())),
        Arc::new(Restart(servers)),
    ]
}
