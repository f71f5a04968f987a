//! The cluster desk's service: what the page and the API show (`overview`), and the requests
//! that become jobs (`launch`, `remove`). Holds its handles and nothing else.
use std::{collections::HashMap, sync::Arc, time::Duration};

use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    fleet::{
        FleetError, FleetInstance, InstanceState, InstanceTypeInfo, LaunchRequest, WorkerFleet,
    },
    jobs::{LAUNCH_KIND, REMOVE_KIND},
    metered::{MeteredFleet, MeteredRuntime},
    runtime::{
        ContainerRuntime, JoinInfo, NodeRole, Notebook, RuntimeError, SwarmNode, SwarmRole,
        SwarmView, TaskPhase,
    },
    userdata,
};
use crate::{config::ClusterConfig, db, domain::Actor};

/// Most workers one launch may ask for.
pub const MAX_LAUNCH: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The launch would pass the week's budget; an admin may launch anyway.
    #[error("{0}")]
    OverBudget(super::OverBudget),
    #[error("the week's budget could not be checked: {0:#}")]
    Budget(anyhow::Error),
}

impl ClusterError {
    /// Refused because the instance is not one hubdesk launched.
    pub fn is_not_ours(&self) -> bool {
        matches!(self, Self::Fleet(FleetError::NotOurs(_)))
    }
}

/// The cluster handle: the swarm manager's engine, the EC2 fleet, the database and `[cluster]`.
pub struct Cluster {
    pub(super) runtime: Arc<dyn ContainerRuntime>,
    pub(super) fleet: Arc<dyn WorkerFleet>,
    pub(super) pool: PgPool,
    pub(super) config: ClusterConfig,
    /// How often the jobs look again while waiting (instances running, nodes joined, drained).
    pub(super) poll: Duration,
    /// The instances with this cluster's tag at the last look, and when it was: a removal of
    /// an id not among them is refused without asking EC2 again.
    known: std::sync::Mutex<Option<(tokio::time::Instant, Vec<FleetInstance>)>>,
    /// vCPUs and memory per instance type: fixed facts, asked for once per type.
    types: std::sync::Mutex<HashMap<String, InstanceTypeInfo>>,
}

/// How long a look at the fleet answers "is this one of ours?".
const KNOWN_FOR: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize)]
pub struct SwarmSummary {
    /// `not-a-swarm` | `manager` | `worker` | `unreachable`
    pub state: String,
    /// The address workers join.
    pub manager: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeRow {
    #[serde(flatten)]
    pub node: SwarmNode,
    pub instance_id: Option<String>,
    pub students: Vec<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    pub id: String,
    #[serde(rename = "type")]
    pub instance_type: String,
    pub az: String,
    pub state: InstanceState,
    pub private_ip: String,
    pub launch_time: String,
    pub hourly_cost: f64,
    pub launch_id: Option<String>,
    pub node_id: Option<String>,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    /// Students with a notebook in the swarm (running or waiting).
    pub students: usize,
    /// Enabled student accounts: the class the cluster should hold.
    pub roster: i64,
    pub notebook_bytes: u64,
    /// `students × notebook_bytes`.
    pub needed_bytes: u64,
    /// Memory of ready, active workers.
    pub available_bytes: u64,
    /// How many notebooks the ready workers hold.
    pub fits: u64,
    pub suggestion: Option<String>,
}

/// Everything the cluster page shows, from one look at each side.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub swarm: SwarmSummary,
    pub nodes: Vec<NodeRow>,
    pub instances: Vec<InstanceRow>,
    /// Notebooks waiting for a node.
    pub pending: Vec<String>,
    pub capacity: Capacity,
    pub problems: Vec<String>,
    /// Plain errors from either side; the other side is still shown.
    pub docker_error: Option<String>,
    pub ec2_error: Option<String>,
    pub hourly_cost: f64,
}

impl Overview {
    pub fn node(&self, id: &str) -> Option<&NodeRow> {
        self.nodes.iter().find(|n| n.node.id == id)
    }

    pub fn instance(&self, id: &str) -> Option<&InstanceRow> {
        self.instances.iter().find(|i| i.id == id)
    }
}

/// A launched instance shows as "never joined" this long after its launch.
const JOIN_GRACE_SECS: i64 = 600;

impl Cluster {
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        fleet: Arc<dyn WorkerFleet>,
        pool: PgPool,
        config: ClusterConfig,
    ) -> Self {
        Self {
            runtime,
            fleet,
            pool,
            config,
            poll: Duration::from_secs(2),
            known: std::sync::Mutex::new(None),
            types: Default::default(),
        }
    }

    /// The real peers from `[cluster]` and `[aws]`: the manager's engine (contacted on first
    /// use) and EC2 (credentials resolved on first call), each call measured in `metrics`.
    /// Makes no call.
    pub async fn connect(
        pool: PgPool,
        config: &crate::config::Config,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, ClusterError> {
        let runtime = super::runtime::DockerRuntime::lazy(&config.cluster.docker_host)?;
        let fleet = super::fleet::Ec2Fleet::connect(&config.aws, &config.cluster).await;
        Ok(Self::metered(
            Arc::new(runtime),
            Arc::new(fleet),
            pool,
            config.cluster.clone(),
            metrics,
        ))
    }

    /// [`Cluster::new`] with every call of both peers measured in `metrics`.
    pub fn metered(
        runtime: Arc<dyn ContainerRuntime>,
        fleet: Arc<dyn WorkerFleet>,
        pool: PgPool,
        config: ClusterConfig,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Self::new(
            Arc::new(MeteredRuntime::new(runtime, metrics.clone())),
            Arc::new(MeteredFleet::new(fleet, metrics)),
            pool,
            config,
        )
    }

    /// Shorter waits between looks (tests).
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn fleet(&self) -> &Arc<dyn WorkerFleet> {
        &self.fleet
    }

    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }

    /// One look at the swarm (4 engine calls) and at EC2 (1 call, plus 1 the first time an
    /// instance type is seen), side by side, whatever the number of nodes; a failing side is
    /// reported and the other still shown.
    pub async fn overview(&self) -> Overview {
        let docker = async {
            futures_util::try_join!(
                self.runtime.swarm(),
                self.runtime.nodes(),
                self.runtime.notebooks()
            )
        };
        let ec2 = async {
            let instances = self.fleet.instances().await?;
            let mut types: Vec<String> =
                instances.iter().map(|i| i.instance_type.clone()).collect();
            types.push(self.config.worker.instance_type.clone());
            types.sort();
            types.dedup();
            self.remember(&instances);
            let info = self.instance_types(types).await?;
            Ok::<_, FleetError>((instances, info))
        };
        let roster = async {
            let mut conn = self.pool.acquire().await?;
            db::cluster::enabled_students(&mut conn).await
        };
        let (docker, ec2, roster) = tokio::join!(docker, ec2, roster);
        let roster = roster.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "counting students for the capacity estimate");
            0
        });
        assemble(&self.config, docker, ec2, roster, OffsetDateTime::now_utc())
    }

    /// Queues a launch of `count` workers (job `cluster.launch`, launch id = job id) with its
    /// audit entry, in one transaction.
    pub async fn launch(&self, actor: &Actor, count: u32) -> Result<Uuid, ClusterError> {
        let mut tx = self.pool.begin().await?;
        let id = self.launch_in(&mut tx, actor, count).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A launch by hand: refused when it would pass the week's budget (`budget`) unless the
    /// admin says `over_budget`, in which case the audit says so.
    pub async fn launch_by_hand(
        &self,
        actor: &Actor,
        count: u32,
        budget: &dyn super::Budget,
        over_budget: bool,
    ) -> Result<Uuid, ClusterError> {
        let over = if count == 0 || count > MAX_LAUNCH {
            None
        } else {
            budget
                .over_with(count)
                .await
                .map_err(ClusterError::Budget)?
        };
        let mut tx = self.pool.begin().await?;
        let id = self.launch_in(&mut tx, actor, count).await?;
        if let Some(over) = over {
            if !over_budget {
                return Err(ClusterError::OverBudget(over));
            }
            let detail = format!(
                "{count} × {} (job {id}): projected ${:.2}, budget ${:.2}",
                self.config.worker.instance_type, over.projected, over.budget
            );
            db::audit::record(&mut tx, actor, "cluster.over_budget", None, Some(&detail)).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// [`Cluster::launch`] within the caller's transaction (the calendar queues a launch and
    /// records its decision together).
    pub async fn launch_in(
        &self,
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        count: u32,
    ) -> Result<Uuid, ClusterError> {
        if count == 0 || count > MAX_LAUNCH {
            return Err(ClusterError::BadRequest(format!(
                "launch between 1 and {MAX_LAUNCH} workers at a time"
            )));
        }
        if self.config.worker.ami.is_empty() {
            return Err(ClusterError::Fleet(FleetError::Template(
                "[cluster.worker] ami is not set".into(),
            )));
        }
        let id = db::jobs::enqueue(
            &mut *tx,
            LAUNCH_KIND,
            &json!({"count": count}),
            &actor.label(),
            5,
        )
        .await?;
        let detail = format!("{count} × {} (job {id})", self.config.worker.instance_type);
        db::audit::record(&mut *tx, actor, "cluster.launch", None, Some(&detail)).await?;
        Ok(id)
    }

    fn remember(&self, instances: &[FleetInstance]) {
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *known = Some((tokio::time::Instant::now(), instances.to_vec()));
    }

    /// Types asked for before come from memory; the rest in one call (none when all are known).
    async fn instance_types(
        &self,
        types: Vec<String>,
    ) -> Result<HashMap<String, InstanceTypeInfo>, FleetError> {
        let missing: Vec<String> = {
            let known = self
                .types
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            types
                .iter()
                .filter(|t| !known.contains_key(*t))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let fetched = self.fleet.instance_types(&missing).await?;
            self.types
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(fetched);
        }
        let known = self
            .types
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(types
            .iter()
            .filter_map(|t| known.get(t).map(|i| (t.clone(), *i)))
            .collect())
    }

    /// Drops the last look (a launch changed the fleet).
    pub(super) fn forget(&self) {
        *self
            .known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// This cluster's instances, from the last look when it is recent (no call), else from EC2.
    async fn ours(&self) -> Result<Vec<FleetInstance>, ClusterError> {
        let cached = {
            let known = self
                .known
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            known
                .as_ref()
                .filter(|(at, _)| at.elapsed() < KNOWN_FOR)
                .map(|(_, list)| list.clone())
        };
        match cached {
            Some(list) => Ok(list),
            None => {
                let list = self.fleet.instances().await?;
                self.remember(&list);
                Ok(list)
            }
        }
    }

    /// Queues the removal of one worker (job `cluster.remove`). An id that is not among this
    /// cluster's tagged instances is refused (no job, no terminate call, and no EC2 call at all
    /// when the last look is recent); the job checks the tags again before terminating.
    pub async fn remove(&self, actor: &Actor, instance_id: &str) -> Result<Uuid, ClusterError> {
        let mut tx = self.pool.begin().await?;
        let id = self.remove_in(&mut tx, actor, instance_id).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// [`Cluster::remove`] within the caller's transaction.
    pub async fn remove_in(
        &self,
        tx: &mut sqlx::PgConnection,
        actor: &Actor,
        instance_id: &str,
    ) -> Result<Uuid, ClusterError> {
        let valid = instance_id.starts_with("i-")
            && instance_id.len() <= 32
            && instance_id[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Err(ClusterError::BadRequest(format!(
                "{instance_id:?} is not an instance id"
            )));
        }
        let ours = self.ours().await?;
        let instance = ours
            .iter()
            .find(|i| i.id == instance_id)
            .ok_or_else(|| FleetError::NotOurs(instance_id.into()))?;
        super::fleet::check_ours(instance, self.fleet.cluster())?;
        let id = db::jobs::enqueue(
            &mut *tx,
            REMOVE_KIND,
            &json!({"instance_id": instance_id}),
            &actor.label(),
            5,
        )
        .await?;
        db::audit::record(
            &mut *tx,
            actor,
            "cluster.remove",
            Some(instance_id),
            Some(&format!("job {id}")),
        )
        .await?;
        Ok(id)
    }

    /// This cluster's instances (tagged), from the last look when it is recent.
    pub async fn instances(&self) -> Result<Vec<FleetInstance>, ClusterError> {
        self.ours().await
    }

    /// Memory of one worker of `[cluster.worker] instance_type`, bytes, as EC2 describes it
    /// (asked once, then remembered).
    pub async fn worker_memory(&self) -> Result<Option<u64>, ClusterError> {
        let t = self.config.worker.instance_type.clone();
        let types = self.instance_types(vec![t.clone()]).await?;
        Ok(types
            .get(&t)
            .and_then(|i| u64::try_from(i.memory_bytes).ok()))
    }

    /// Checks the worker template with EC2's `DryRun` (permissions, AMI, subnet, profile) and
    /// that the engine can hand out a join token. Launches nothing.
    pub async fn dry_run(&self) -> Result<(), ClusterError> {
        let join = self.join_info().await?;
        let req = dry_run_request(&self.config, &join)?;
        self.fleet.dry_run(&req).await?;
        Ok(())
    }

    /// The join token and the manager address (`[cluster] manager_addr` wins over the engine's).
    pub async fn join_info(&self) -> Result<JoinInfo, ClusterError> {
        let mut join = self.runtime.join_info().await?;
        if !self.config.manager_addr.is_empty() {
            join.manager_addr = self.config.manager_addr.clone();
        }
        Ok(join)
    }

    pub(super) fn launch_request(
        &self,
        count: u32,
        launch_id: &str,
        client_token: &str,
        join: &JoinInfo,
    ) -> Result<LaunchRequest, ClusterError> {
        launch_request(&self.config, count, launch_id, client_token, join)
    }
}

fn launch_request(
    config: &ClusterConfig,
    count: u32,
    launch_id: &str,
    client_token: &str,
    join: &JoinInfo,
) -> Result<LaunchRequest, ClusterError> {
    let user_data = userdata::render(&config.name, launch_id, join)
        .map_err(|e| ClusterError::BadRequest(e.to_string()))?;
    Ok(LaunchRequest {
        count,
        launch_id: launch_id.into(),
        client_token: client_token.into(),
        user_data,
    })
}

/// The request the "check the worker template" button and `hubdesk doctor` send with `DryRun`:
/// one worker, with the user-data rendered from `join`.
pub fn dry_run_request(
    config: &ClusterConfig,
    join: &JoinInfo,
) -> Result<LaunchRequest, ClusterError> {
    launch_request(config, 1, "dry-run", "hubdesk-dry-run", join)
}

/// The node an instance became: same address, else same hostname; a ready node first (a
/// rebooted worker leaves its old, down entry behind).
pub fn node_of<'a>(instance: &FleetInstance, nodes: &'a [SwarmNode]) -> Option<&'a SwarmNode> {
    let host = instance.hostname();
    let mut matches: Vec<&SwarmNode> = nodes
        .iter()
        .filter(|n| {
            (!instance.private_ip.is_empty() && n.addr == instance.private_ip) || n.hostname == host
        })
        .collect();
    matches.sort_by_key(|n| !n.is_ready());
    matches.into_iter().next()
}

type DockerLook = Result<(SwarmView, Vec<SwarmNode>, Vec<Notebook>), RuntimeError>;
type Ec2Look = Result<(Vec<FleetInstance>, HashMap<String, InstanceTypeInfo>), FleetError>;

/// Joins the two looks into the page's view: matches, problems, capacity. Pure.
pub fn assemble(
    config: &ClusterConfig,
    docker: DockerLook,
    ec2: Ec2Look,
    roster: i64,
    now: OffsetDateTime,
) -> Overview {
    let (swarm, nodes, notebooks, docker_error) = match docker {
        Ok((s, n, b)) => (Some(s), n, b, None),
        Err(e) => (None, Vec::new(), Vec::new(), Some(e.to_string())),
    };
    let (instances, types, ec2_error) = match ec2 {
        Ok((i, t)) => (i, t, None),
        Err(e) => (Vec::new(), HashMap::new(), Some(e.to_string())),
    };
    let manager = if !config.manager_addr.is_empty() {
        config.manager_addr.clone()
    } else {
        swarm
            .as_ref()
            .filter(|s| !s.node_addr.is_empty())
            .map(|s| format!("{}:2377", s.node_addr))
            .unwrap_or_default()
    };
    let summary = SwarmSummary {
        state: swarm
            .as_ref()
            .map(|s| s.state.as_str())
            .unwrap_or("unreachable")
            .into(),
        manager,
    };

    let mut students_on: HashMap<&str, Vec<String>> = HashMap::new();
    let mut pending = Vec::new();
    let mut active: Vec<&str> = Vec::new();
    for nb in &notebooks {
        active.push(&nb.student);
        if nb.node_id.is_empty() || nb.state != TaskPhase::Running {
            pending.push(nb.student.clone());
        }
        if !nb.node_id.is_empty() {
            students_on
                .entry(&nb.node_id)
                .or_default()
                .push(nb.student.clone());
        }
    }
    active.sort();
    active.dedup();

    let mut instance_of: HashMap<String, String> = HashMap::new();
    let mut rows_i = Vec::new();
    for i in &instances {
        let node = node_of(i, &nodes);
        let mut problems = Vec::new();
        match node {
            Some(n) => {
                instance_of.insert(n.id.clone(), i.id.clone());
                if !n.is_ready() && i.is_live() {
                    problems.push(format!("its swarm node is {}", n.status));
                }
            }
            None if i.state == InstanceState::Running => {
                let age = launched_secs_ago(&i.launch_time, now);
                if age.is_some_and(|a| a < JOIN_GRACE_SECS) {
                    problems.push("not in the swarm yet (booting)".into());
                } else {
                    problems.push("never joined the swarm".into());
                }
            }
            None => {}
        }
        rows_i.push(InstanceRow {
            id: i.id.clone(),
            instance_type: i.instance_type.clone(),
            az: i.az.clone(),
            state: i.state,
            private_ip: i.private_ip.clone(),
            launch_time: i.launch_time.clone(),
            hourly_cost: config.worker.hourly_cost,
            launch_id: i.launch_id().map(str::to_string),
            node_id: node.map(|n| n.id.clone()),
            problems,
        });
    }

    let notebook_bytes = config.notebook_memory_bytes;
    let mut available: u64 = 0;
    let mut fits: u64 = 0;
    let mut rows_n = Vec::new();
    for n in &nodes {
        let instance_id = instance_of.get(&n.id).cloned();
        let mut problems = Vec::new();
        if !n.is_ready() {
            problems.push(format!("node is {}", n.status));
        }
        if n.role == NodeRole::Worker && instance_id.is_none() && ec2_error.is_none() {
            problems.push("no EC2 instance launched by hubdesk".into());
        }
        if n.takes_notebooks() {
            let instance_mem = instance_id
                .as_ref()
                .and_then(|id| instances.iter().find(|i| &i.id == id))
                .and_then(|i| types.get(&i.instance_type))
                .map(|t| t.memory_bytes);
            let mem = instance_mem.unwrap_or(n.memory_bytes).max(0) as u64;
            available += mem;
            fits += mem / notebook_bytes;
        }
        let mut students = students_on.remove(n.id.as_str()).unwrap_or_default();
        students.sort();
        rows_n.push(NodeRow {
            node: n.clone(),
            instance_id,
            students,
            problems,
        });
    }

    let students = active.len();
    let needed = students as u64 * notebook_bytes;
    let class = (roster.max(0) as u64).max(students as u64);
    let ty = &config.worker.instance_type;
    let per_worker = types
        .get(ty)
        .map(|t| t.memory_bytes.max(0) as u64 / notebook_bytes)
        .unwrap_or(0);
    let suggestion = if class > fits {
        let missing = class - fits;
        match per_worker {
            0 if types.contains_key(ty) => Some(format!(
                "a {ty} cannot hold one notebook of {}: choose a larger type",
                bytes(notebook_bytes)
            )),
            0 => None,
            per => Some(format!(
                "add {} × {ty} for {class} students",
                missing.div_ceil(per)
            )),
        }
    } else {
        None
    };

    let mut problems = Vec::new();
    if let Some(s) = &swarm {
        if s.state != SwarmRole::Manager {
            problems.push(format!(
                "the engine at {} is not a swarm manager ({})",
                config.docker_host,
                s.state.as_str()
            ));
        }
    }
    for r in &rows_n {
        for p in &r.problems {
            problems.push(format!("node {}: {p}", r.node.hostname));
        }
    }
    for r in &rows_i {
        for p in &r.problems {
            problems.push(format!("instance {}: {p}", r.id));
        }
    }
    if !pending.is_empty() {
        problems.push(format!("{} notebook(s) wait for a node", pending.len()));
    }
    let hourly_cost = rows_i
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .count() as f64
        * config.worker.hourly_cost;

    Overview {
        swarm: summary,
        nodes: rows_n,
        instances: rows_i,
        pending,
        capacity: Capacity {
            students,
            roster,
            notebook_bytes,
            needed_bytes: needed,
            available_bytes: available,
            fits,
            suggestion,
        },
        problems,
        docker_error,
        ec2_error,
        hourly_cost,
    }
}

fn launched_secs_ago(launch_time: &str, now: OffsetDateTime) -> Option<i64> {
    let t =
        OffsetDateTime::parse(launch_time, &time::format_description::well_known::Rfc3339).ok()?;
    Some((now - t).whole_seconds())
}

/// `2.0 GiB`
pub fn bytes(n: u64) -> String {
    format!("{:.1} GiB", n as f64 / (1024.0 * 1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fake::{notebook, worker_node, FakeWorld};
    use crate::config::Config;

    const GIB: u64 = 1024 * 1024 * 1024;

    fn config() -> ClusterConfig {
        let mut c = Config::default().cluster;
        c.name = "camp".into();
        c.notebook_memory_bytes = 2 * GIB;
        c
    }

    async fn look(world: &FakeWorld, roster: i64) -> Overview {
        let (rt, fl) = (world.runtime(), world.fleet("camp"));
        let docker = futures_util::try_join!(rt.swarm(), rt.nodes(), rt.notebooks());
        let ec2 = async {
            let i = fl.instances().await?;
            let mut t: Vec<String> = i.iter().map(|i| i.instance_type.clone()).collect();
            t.push("t3.large".into());
            t.dedup();
            let info = fl.instance_types(&t).await?;
            Ok((i, info))
        }
        .await;
        assemble(&config(), docker, ec2, roster, OffsetDateTime::now_utc())
    }

    #[tokio::test]
    async fn cluster_overview_matches_instances_to_nodes_and_flags_problems() {
        let world = FakeWorld::new();
        let joined = world.add_instance(Some("camp"), "l1");
        world.with(|w| w.join(&joined));
        let lost = world.add_instance(Some("camp"), "l1");
        world.add_instance(None, "x"); // not ours: not listed
        world.with(|w| {
            w.nodes.push(worker_node("stray", "worker9", "10.9.9.9"));
            let mut down = worker_node("gone", "worker8", "10.9.9.8");
            down.status = crate::cluster::runtime::NodeStatus::Down;
            w.nodes.push(down);
            w.notebooks
                .push(notebook("bob-smith", &format!("node-{}", joined.id)));
            w.notebooks.push(notebook("ana", ""));
        });
        let o = look(&world, 0).await;
        assert_eq!(o.swarm.state, "manager");
        assert_eq!(o.swarm.manager, "10.0.0.10:2377");
        assert_eq!(o.instances.len(), 2);
        let row = o.instance(&joined.id).unwrap();
        assert_eq!(
            row.node_id.as_deref(),
            Some(format!("node-{}", joined.id).as_str())
        );
        assert!(row.problems.is_empty(), "{:?}", row.problems);
        assert_eq!(
            o.node(&format!("node-{}", joined.id)).unwrap().students,
            ["bob-smith"]
        );
        assert_eq!(
            o.instance(&lost.id).unwrap().problems,
            ["never joined the swarm"] // the fake launched it long ago
        );
        assert_eq!(
            o.node("stray").unwrap().problems,
            ["no EC2 instance launched by hubdesk"]
        );
        assert!(o
            .node("gone")
            .unwrap()
            .problems
            .contains(&"node is down".to_string()));
        assert!(o.node("node-manager").unwrap().problems.is_empty());
        assert_eq!(o.pending, ["ana"]);
        assert!(o.problems.iter().any(|p| p.contains("wait for a node")));
    }

    #[tokio::test]
    async fn cluster_overview_makes_a_constant_number_of_calls() {
        let mut per_view = Vec::new();
        for workers in [0, 3, 40] {
            let world = FakeWorld::new();
            for k in 0..workers {
                let i = world.add_instance(Some("camp"), "l");
                world.with(|w| {
                    w.join(&i);
                    w.notebooks
                        .push(notebook(&format!("s{k}"), &format!("node-{}", i.id)));
                });
            }
            // The real overview (its roster count fails on a pool that reaches no database).
            let pool = sqlx::postgres::PgPoolOptions::new()
                .acquire_timeout(std::time::Duration::from_millis(200))
                .connect_lazy("postgres://nobody@127.0.0.1:1/none")
                .unwrap();
            let cluster = Cluster::new(
                Arc::new(world.runtime()),
                Arc::new(world.fleet("camp")),
                pool,
                config(),
            );
            let o = cluster.overview().await;
            assert_eq!(o.nodes.len(), 1 + workers);
            per_view.push(world.with(|w| (w.total_calls("docker."), w.total_calls("ec2."))));
        }
        assert_eq!(per_view, [(4, 2), (4, 2), (4, 2)]);
    }

    #[tokio::test]
    async fn cluster_capacity_suggests_workers_for_the_class() {
        let world = FakeWorld::new();
        let i = world.add_instance(Some("camp"), "l");
        world.with(|w| {
            w.join(&i);
            for k in 0..4 {
                w.notebooks
                    .push(notebook(&format!("s{k}"), &format!("node-{}", i.id)));
            }
        });
        // One t3.large (8 GiB) holds 4 notebooks of 2 GiB.
        let o = look(&world, 4).await;
        assert_eq!((o.capacity.students, o.capacity.fits), (4, 4));
        assert_eq!(o.capacity.needed_bytes, 8 * GIB);
        assert_eq!(o.capacity.available_bytes, 8 * GIB);
        assert_eq!(o.capacity.suggestion, None);
        let o = look(&world, 80).await;
        assert_eq!(
            o.capacity.suggestion.as_deref(),
            Some("add 19 × t3.large for 80 students")
        );
    }

    #[tokio::test]
    async fn cluster_overview_shows_one_side_when_the_other_fails() {
        let world = FakeWorld::new();
        world.add_instance(Some("camp"), "l");
        world.with(|w| {
            w.runtime_error = Some(RuntimeError::Unreachable {
                host: "tcp://10.0.0.1:2375".into(),
                detail: "connection refused".into(),
            })
        });
        let o = look(&world, 0).await;
        assert_eq!(o.swarm.state, "unreachable");
        assert_eq!(o.instances.len(), 1);
        assert!(o
            .docker_error
            .unwrap()
            .contains("cannot reach the Docker engine"));
        world.with(|w| {
            w.runtime_error = None;
            w.fleet_error = Some(FleetError::AccessDenied {
                code: "UnauthorizedOperation".into(),
                message: "not allowed".into(),
            });
        });
        let o = look(&world, 0).await;
        assert_eq!(o.swarm.state, "manager");
        assert!(o.ec2_error.unwrap().contains("UnauthorizedOperation"));
    }
}
