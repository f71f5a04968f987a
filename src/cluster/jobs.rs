//! The cluster's jobs: `cluster.launch` (launched → running → joined → token-rotated or
//! token-handed-on, see [`super::token`]) and `cluster.remove` (draining → drained → removed →
//! terminated). Both are resumable: every step is recorded, and
//! a resumed launch first counts the instances its launch tag already has and starts only the
//! missing ones, so a crash or a timeout never launches a worker twice.
use std::{sync::Arc, time::Duration};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{
    fleet::{FleetError, FleetInstance, InstanceState},
    service::{node_of, Cluster, ClusterError},
    token::{self, STEP_JOINED},
};
use crate::{
    db,
    domain::{Actor, Username},
    jobs::{BoxFuture, JobContext, JobError, JobHandler},
};

pub const LAUNCH_KIND: &str = "cluster.launch";
pub const REMOVE_KIND: &str = "cluster.remove";

/// `RunInstances` calls one attempt makes before it gives up on a partial launch.
const LAUNCH_ROUNDS: usize = 3;

/// The job handlers of the cluster desk.
pub fn handlers(cluster: &Arc<Cluster>) -> Vec<Arc<dyn JobHandler>> {
    vec![
        Arc::new(LaunchJob(cluster.clone())),
        Arc::new(RemoveJob(cluster.clone())),
    ]
}

/// `{"count": N}`; the launch id (tag `hubdesk:launch`) is the job id.
#[derive(Debug, Deserialize)]
pub struct LaunchPayload {
    pub count: u32,
}

/// `{"instance_id": "i-…"}`
#[derive(Debug, Deserialize)]
pub struct RemovePayload {
    pub instance_id: String,
}

fn fleet_error(e: FleetError) -> JobError {
    if e.is_transient() {
        JobError::Retry(e.to_string())
    } else {
        JobError::Fatal(e.to_string())
    }
}

fn cluster_error(e: ClusterError) -> JobError {
    match e {
        ClusterError::Fleet(f) => fleet_error(f),
        ClusterError::Runtime(r) => JobError::Retry(r.to_string()),
        ClusterError::Db(d) => d.into(),
        ClusterError::BadRequest(m) => JobError::Fatal(m),
        e @ (ClusterError::OverBudget(_) | ClusterError::Budget(_)) => {
            JobError::Fatal(e.to_string())
        }
    }
}

/// The job's actor as the audit log names it.
fn actor_of(label: &str) -> Actor {
    if let Some(name) = label.strip_prefix("token:") {
        return Actor::Token(name.into());
    }
    match label {
        "cli" => Actor::Cli,
        "system" => Actor::System,
        other => Username::parse(other)
            .map(Actor::User)
            .unwrap_or(Actor::System),
    }
}

/// The fleet's timeline for the cost ledger (`db::ledger`): these workers from EC2's launch
/// time, and their end when given. Idempotent (a resumed job writes the same).
async fn record_in_ledger(
    ctx: &JobContext,
    instances: &[FleetInstance],
    hourly_cost: f64,
    ended: Option<time::OffsetDateTime>,
) -> Result<(), JobError> {
    let mut conn = ctx.pool().acquire().await?;
    for i in instances {
        let Ok(launched) = time::OffsetDateTime::parse(
            &i.launch_time,
            &time::format_description::well_known::Rfc3339,
        ) else {
            continue;
        };
        db::ledger::seen(&mut conn, &i.id, &i.instance_type, hourly_cost, launched).await?;
        if let Some(at) = ended {
            db::ledger::ended(&mut conn, &i.id, at).await?;
        }
    }
    Ok(())
}

async fn audit(
    ctx: &JobContext,
    action: &str,
    target: Option<&str>,
    detail: &str,
) -> Result<(), JobError> {
    let mut conn = ctx.pool().acquire().await?;
    db::audit::record(
        &mut conn,
        &actor_of(ctx.actor()),
        action,
        target,
        Some(detail),
    )
    .await?;
    Ok(())
}

pub struct LaunchJob(pub Arc<Cluster>);

impl LaunchJob {
    /// Starts what the launch still lacks. Counts instances by launch tag first (and remembers
    /// what each call returned, as a fresh instance may not be listed yet).
    async fn launch(&self, ctx: &JobContext, count: u32, launch_id: &str) -> Result<(), JobError> {
        let c = &self.0;
        let mut known: Vec<String> = Vec::new();
        for round in 0..=LAUNCH_ROUNDS {
            let found = c.fleet.launched_by(launch_id).await.map_err(fleet_error)?;
            for i in found {
                if !known.contains(&i.id) {
                    known.push(i.id);
                }
            }
            let missing = (count as usize).saturating_sub(known.len()) as u32;
            if missing == 0 {
                return Ok(());
            }
            if round == LAUNCH_ROUNDS {
                break;
            }
            // Read again each round: a retried RunInstances renders the token of now.
            let join = c.join_info_for_launch().await.map_err(cluster_error)?;
            // Deterministic per (launch, instances already there): a retried call after a lost
            // reply is the same request to EC2, which answers with the same reservation.
            let token = format!("hubdesk-{}-{}", ctx.id().simple(), known.len());
            let req = c
                .launch_request(missing, launch_id, &token, &join)
                .map_err(cluster_error)?;
            let started = c.fleet.launch(&req).await.map_err(fleet_error)?;
            tracing::info!(asked = missing, started = started.len(), "RunInstances");
            for i in started {
                if !known.contains(&i.id) {
                    known.push(i.id);
                }
            }
        }
        Err(JobError::Retry(format!(
            "EC2 started {} of {count} workers; the rest will be asked for again",
            known.len()
        )))
    }

    async fn wait_running(
        &self,
        launch_id: &str,
        deadline: Instant,
    ) -> Result<Vec<FleetInstance>, JobError> {
        loop {
            let live = self
                .0
                .fleet
                .launched_by(launch_id)
                .await
                .map_err(fleet_error)?;
            if !live.is_empty() && live.iter().all(|i| i.state == InstanceState::Running) {
                return Ok(live);
            }
            if Instant::now() >= deadline {
                return Err(JobError::Retry(format!(
                    "{} of {} instances running after the wait",
                    live.iter()
                        .filter(|i| i.state == InstanceState::Running)
                        .count(),
                    live.len()
                )));
            }
            tokio::time::sleep(self.0.poll).await;
        }
    }

    async fn wait_joined(
        &self,
        instances: &[FleetInstance],
        deadline: Instant,
    ) -> Result<Vec<(String, String)>, JobError> {
        loop {
            let nodes = self
                .0
                .runtime
                .nodes()
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            let joined: Vec<(String, String)> = instances
                .iter()
                .filter_map(|i| {
                    node_of(i, &nodes)
                        .filter(|n| n.is_ready())
                        .map(|n| (i.id.clone(), n.id.clone()))
                })
                .collect();
            if joined.len() == instances.len() {
                return Ok(joined);
            }
            if Instant::now() >= deadline {
                let waiting: Vec<&str> = instances
                    .iter()
                    .filter(|i| !joined.iter().any(|(id, _)| id == &i.id))
                    .map(|i| i.id.as_str())
                    .collect();
                return Err(JobError::Retry(format!(
                    "not in the swarm after {} s: {} (check the instance's console output: \
                     /var/log/cloud-init-output.log)",
                    self.0.config.join_timeout_secs,
                    waiting.join(", ")
                )));
            }
            tokio::time::sleep(self.0.poll).await;
        }
    }
}

impl JobHandler for LaunchJob {
    fn kind(&self) -> &'static str {
        LAUNCH_KIND
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            let p: LaunchPayload = ctx.payload_as()?;
            if p.count == 0 || p.count > super::service::MAX_LAUNCH {
                return Err(JobError::Fatal(format!(
                    "cannot launch {} workers",
                    p.count
                )));
            }
            let launch_id = ctx.id().to_string();
            if !ctx.is_done("launched") {
                let launched = self.launch(ctx, p.count, &launch_id).await;
                self.0.forget();
                launched?;
                ctx.step("launched").await?;
            }
            let deadline = Instant::now() + Duration::from_secs(self.0.config.join_timeout_secs);
            let instances = self.wait_running(&launch_id, deadline).await?;
            record_in_ledger(ctx, &instances, self.0.config.worker.hourly_cost, None).await?;
            if !ctx.is_done("running") {
                ctx.step("running").await?;
            }
            let joined = self.wait_joined(&instances, deadline).await?;
            if !ctx.is_done(STEP_JOINED) {
                let ids: Vec<&str> = instances.iter().map(|i| i.id.as_str()).collect();
                audit(
                    ctx,
                    "cluster.joined",
                    None,
                    &format!("{} joined: {}", ids.len(), ids.join(", ")),
                )
                .await?;
                ctx.step(STEP_JOINED).await?;
            }
            // The token in these instances' user-data has done its work.
            let join_token = if token::settled(ctx) {
                Value::Null
            } else {
                token::end_launch(&self.0, ctx, &actor_of(ctx.actor()), "joined")
                    .await?
                    .json()
            };
            Ok(json!({
                "launch_id": launch_id,
                "join_token": join_token,
                "instances": instances.iter().map(|i| json!({
                    "id": i.id,
                    "private_ip": i.private_ip,
                    "node_id": joined.iter().find(|(id, _)| id == &i.id).map(|(_, n)| n),
                })).collect::<Vec<_>>(),
            }))
        })
    }

    /// A launch that fails for good (workers that never joined, AccessDenied, …) ends too:
    /// the token it may have handed out must die with it.
    fn failed<'a>(
        &'a self,
        ctx: &'a JobContext,
        _error: &'a str,
    ) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            if !token::settled(ctx) {
                token::end_launch(&self.0, ctx, &actor_of(ctx.actor()), "failed").await?;
            }
            Ok(())
        })
    }
}

pub struct RemoveJob(pub Arc<Cluster>);

impl RemoveJob {
    /// Students whose notebook tasks are on `node_id`.
    async fn students_on(&self, node_id: &str) -> Result<Vec<String>, JobError> {
        let notebooks = self
            .0
            .runtime
            .notebooks()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let mut s: Vec<String> = notebooks
            .into_iter()
            .filter(|n| n.node_id == node_id)
            .map(|n| n.student)
            .collect();
        s.sort();
        s.dedup();
        Ok(s)
    }
}

impl RemoveJob {
    /// Nothing left on the node, and each of its students runs again elsewhere.
    async fn moved(&self, node_id: &str, students: &[String]) -> Result<bool, JobError> {
        let notebooks = self
            .0
            .runtime
            .notebooks()
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?;
        let left = notebooks.iter().any(|n| n.node_id == node_id);
        let all_elsewhere = students.iter().all(|s| {
            notebooks.iter().any(|n| {
                &n.student == s
                    && n.state == super::runtime::TaskPhase::Running
                    && !n.node_id.is_empty()
                    && n.node_id != node_id
            })
        });
        Ok(!left && all_elsewhere)
    }
}

impl JobHandler for RemoveJob {
    fn kind(&self) -> &'static str {
        REMOVE_KIND
    }

    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            let c = &self.0;
            let p: RemovePayload = ctx.payload_as()?;
            let instance = c
                .fleet
                .describe(std::slice::from_ref(&p.instance_id))
                .await
                .map_err(fleet_error)?
                .into_iter()
                .find(|i| i.id == p.instance_id)
                .ok_or_else(|| JobError::Fatal(format!("no instance {}", p.instance_id)))?;
            super::fleet::check_ours(&instance, c.fleet.cluster()).map_err(fleet_error)?;

            let nodes = c
                .runtime
                .nodes()
                .await
                .map_err(|e| JobError::Retry(e.to_string()))?;
            let node_id = node_of(&instance, &nodes).map(|n| n.id.clone());
            let students = match &node_id {
                Some(n) => self.students_on(n).await?,
                None => Vec::new(),
            };
            let mut moved = true;
            if let Some(node) = &node_id {
                if !ctx.is_done("draining") {
                    c.runtime
                        .drain(node)
                        .await
                        .map_err(|e| JobError::Retry(e.to_string()))?;
                    ctx.step("draining").await?;
                }
                if !ctx.is_done("drained") {
                    let deadline =
                        Instant::now() + Duration::from_secs(c.config.drain_timeout_secs);
                    while !self.moved(node, &students).await? {
                        if Instant::now() >= deadline {
                            moved = false;
                            tracing::warn!(node, "drain timed out; removing the node anyway");
                            break;
                        }
                        tokio::time::sleep(c.poll).await;
                    }
                    ctx.step("drained").await?;
                }
                if !ctx.is_done("removed") {
                    match c.runtime.remove_node(node, true).await {
                        Ok(()) | Err(super::runtime::RuntimeError::NoSuchNode(_)) => {}
                        Err(e) => return Err(JobError::Retry(e.to_string())),
                    }
                    ctx.step("removed").await?;
                }
            }
            if !ctx.is_done("terminated") {
                if instance.state != InstanceState::Terminated {
                    c.fleet.terminate(&instance).await.map_err(fleet_error)?;
                }
                let detail = format!(
                    "node {}; students moved: {}",
                    node_id.as_deref().unwrap_or("none"),
                    if students.is_empty() {
                        "none".to_string()
                    } else {
                        students.join(", ")
                    }
                );
                audit(ctx, "cluster.terminated", Some(&instance.id), &detail).await?;
                // The ledger's end of this worker: the terminate call, to the second.
                let now = time::OffsetDateTime::now_utc();
                record_in_ledger(
                    ctx,
                    std::slice::from_ref(&instance),
                    c.config.worker.hourly_cost,
                    Some(now),
                )
                .await?;
                ctx.step("terminated").await?;
            }
            Ok(json!({
                "instance_id": instance.id,
                "node_id": node_id,
                "students": students,
                "moved": moved,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_job_actor_comes_back_from_its_label() {
        assert_eq!(actor_of("token:sync"), Actor::Token("sync".into()));
        assert_eq!(actor_of("cli"), Actor::Cli);
        assert_eq!(
            actor_of("boss"),
            Actor::User(Username::parse("boss").unwrap())
        );
        assert_eq!(actor_of("Not A Name"), Actor::System);
    }

    #[test]
    fn cluster_job_errors_retry_only_what_can_pass() {
        assert!(matches!(
            fleet_error(FleetError::InsufficientCapacity {
                instance_type: "t3.large".into(),
                message: "none".into()
            }),
            JobError::Retry(_)
        ));
        assert!(matches!(
            fleet_error(FleetError::InvalidAmi("x".into())),
            JobError::Fatal(_)
        ));
        assert!(matches!(
            fleet_error(FleetError::AccessDenied {
                code: "UnauthorizedOperation".into(),
                message: String::new()
            }),
            JobError::Fatal(_)
        ));
    }
}
