//! In-memory stand-ins for the swarm and EC2, sharing one world: instances the fake fleet
//! launches join the fake swarm as nodes (unless told not to), a drain moves notebooks to
//! another worker, and every call is counted. For unit tests and fast integration tests;
//! the proof against the real peers is in `tests/api/cluster.rs`.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use futures_util::future::BoxFuture;
use secrecy::SecretString;

use super::{
    fleet::{
        check_ours, FleetError, FleetInstance, InstanceState, InstanceTypeInfo, LaunchRequest,
        WorkerFleet, TAG_CLUSTER, TAG_LAUNCH, TAG_ROLE,
    },
    runtime::{
        Availability, ContainerRuntime, JoinInfo, NodeRole, NodeStatus, Notebook, NotebookTask,
        RuntimeError, SwarmNode, SwarmRole, SwarmView, TaskPhase,
    },
};

/// Everything the fakes know. Tests reach in through [`FakeWorld::with`].
#[derive(Debug, Default)]
pub struct World {
    pub swarm: Option<SwarmView>,
    pub nodes: Vec<SwarmNode>,
    pub notebooks: Vec<Notebook>,
    /// Tasks that are not running notebooks (pending, failed, rejected …), newest first:
    /// `notebook_tasks` lists them before the running `notebooks`.
    pub tasks: Vec<NotebookTask>,
    pub instances: Vec<FleetInstance>,
    /// Launched instances join the swarm at once.
    pub auto_join: bool,
    /// The next `launch` starts at most this many (a partial launch), once.
    pub partial_once: Option<u32>,
    /// Every fleet call fails with this (AccessDenied, no credentials …).
    pub fleet_error: Option<FleetError>,
    /// The next `launch` fails with this, once (InsufficientInstanceCapacity …).
    pub launch_error_once: Option<FleetError>,
    /// Every runtime call fails with this (engine unreachable).
    pub runtime_error: Option<RuntimeError>,
    /// Calls per method name, both sides.
    pub calls: BTreeMap<String, usize>,
    /// The swarm's worker join token now; each rotation makes a new one.
    pub worker_token: String,
    /// Worker tokens that a rotation replaced (a node presenting one is refused).
    pub retired_tokens: Vec<String>,
    /// The user-data of every `launch` request, in order (what each instance would boot with).
    pub user_data: Vec<String>,
    /// The join token in each launched instance's user-data, by instance id.
    pub instance_tokens: HashMap<String, String>,
    next_id: u32,
}

impl World {
    fn count(&mut self, what: &str) {
        *self.calls.entry(what.to_string()).or_default() += 1;
    }

    pub fn total_calls(&self, prefix: &str) -> usize {
        self.calls
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum()
    }

    /// A ready worker node for `instance` (matched by IP and hostname).
    pub fn join(&mut self, instance: &FleetInstance) {
        let id = format!("node-{}", instance.id);
        if self.nodes.iter().any(|n| n.id == id) {
            return;
        }
        self.nodes
            .push(worker_node(&id, &instance.hostname(), &instance.private_ip));
    }

    /// What the instance's user-data does at boot, as the manager would answer it: joins when
    /// its token is still the swarm's worker token, else is refused (the node stays out).
    pub fn boot(&mut self, instance: &FleetInstance) -> Result<(), String> {
        let token = self
            .instance_tokens
            .get(&instance.id)
            .cloned()
            .ok_or_else(|| format!("{} was not launched with user-data", instance.id))?;
        if token != self.worker_token {
            return Err(format!(
                "{}: a valid join token is necessary to join this cluster",
                instance.id
            ));
        }
        self.join(instance);
        Ok(())
    }
}

/// The token a rendered user-data joins with (`--token '…'`).
fn token_in(user_data: &str) -> Option<String> {
    let rest = user_data.split_once("--token '")?.1;
    Some(rest.split_once('\'')?.0.to_string())
}

pub fn worker_node(id: &str, hostname: &str, addr: &str) -> SwarmNode {
    SwarmNode {
        id: id.into(),
        hostname: hostname.into(),
        role: NodeRole::Worker,
        status: NodeStatus::Ready,
        availability: Availability::Active,
        cpus: 2.0,
        memory_bytes: 8 * 1024 * 1024 * 1024,
        engine_version: "20.10.24".into(),
        addr: addr.into(),
        leader: false,
    }
}

pub fn notebook(student: &str, node_id: &str) -> Notebook {
    Notebook {
        service: super::names::service_of(student),
        student: student.into(),
        node_id: node_id.into(),
        state: TaskPhase::Running,
    }
}

/// A notebook task in `phase` with the engine's error, as `notebook_tasks` lists it.
pub fn task(student: &str, phase: TaskPhase, error: &str) -> NotebookTask {
    NotebookTask {
        service: super::names::service_of(student),
        student: student.into(),
        task_id: format!("task-{student}-{phase}"),
        node_id: String::new(),
        phase,
        desired_running: !phase.is_broken(),
        message: String::new(),
        error: error.into(),
        at: Some(time::OffsetDateTime::now_utc()),
        memory_bytes: None,
    }
}

/// The shared world; clone it into both fakes.
#[derive(Debug, Clone)]
pub struct FakeWorld(Arc<Mutex<World>>);

impl FakeWorld {
    /// A manager node and no workers, instances auto-join.
    pub fn new() -> Self {
        let mut manager = worker_node("node-manager", "manager", "10.0.0.10");
        manager.role = NodeRole::Manager;
        manager.leader = true;
        Self(Arc::new(Mutex::new(World {
            swarm: Some(SwarmView {
                state: SwarmRole::Manager,
                node_id: "node-manager".into(),
                node_addr: "10.0.0.10".into(),
            }),
            nodes: vec![manager],
            auto_join: true,
            worker_token: "SWMTKN-1-fake-token-0".into(),
            ..World::default()
        })))
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn runtime(&self) -> FakeRuntime {
        FakeRuntime(self.clone())
    }

    pub fn fleet(&self, cluster: &str) -> FakeFleet {
        FakeFleet {
            world: self.clone(),
            cluster: cluster.into(),
        }
    }

    /// An instance tagged for `cluster` (or untagged when `None`), running, not joined.
    pub fn add_instance(&self, cluster: Option<&str>, launch: &str) -> FleetInstance {
        let mut w = self.lock();
        let i = new_instance(&mut w, cluster, launch, "t3.large");
        w.instances.push(i.clone());
        i
    }
}

impl Default for FakeWorld {
    fn default() -> Self {
        Self::new()
    }
}

fn new_instance(w: &mut World, cluster: Option<&str>, launch: &str, ty: &str) -> FleetInstance {
    w.next_id += 1;
    let n = w.next_id;
    let mut tags = BTreeMap::new();
    if let Some(c) = cluster {
        tags.insert(TAG_CLUSTER.to_string(), c.to_string());
        tags.insert(TAG_ROLE.to_string(), "worker".to_string());
        tags.insert(TAG_LAUNCH.to_string(), launch.to_string());
    }
    FleetInstance {
        id: format!("i-{n:017x}"),
        instance_type: ty.into(),
        az: "us-east-1a".into(),
        private_ip: format!("10.0.1.{}", 3 + n),
        private_dns: format!("ip-10-0-1-{}.ec2.internal", 3 + n),
        state: InstanceState::Running,
        launch_time: "2026-12-01T10:00:00Z".into(),
        tags,
    }
}

pub struct FakeRuntime(FakeWorld);

impl FakeRuntime {
    fn call<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut World) -> Result<T, RuntimeError>,
    ) -> Result<T, RuntimeError> {
        let mut w = self.0.lock();
        w.count(&format!("docker.{what}"));
        if let Some(e) = w.runtime_error.clone() {
            return Err(e);
        }
        f(&mut w)
    }
}

impl ContainerRuntime for FakeRuntime {
    fn swarm(&self) -> BoxFuture<'_, Result<SwarmView, RuntimeError>> {
        let r = self.call("info", |w| {
            Ok(w.swarm.clone().unwrap_or(SwarmView {
                state: SwarmRole::NotASwarm,
                node_id: String::new(),
                node_addr: String::new(),
            }))
        });
        Box::pin(async move { r })
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<SwarmNode>, RuntimeError>> {
        let r = self.call("nodes", |w| Ok(w.nodes.clone()));
        Box::pin(async move { r })
    }

    fn notebooks(&self) -> BoxFuture<'_, Result<Vec<Notebook>, RuntimeError>> {
        let r = self
            .call("services", |_| Ok(()))
            .and_then(|_| self.call("tasks", |w| Ok(w.notebooks.clone())));
        Box::pin(async move { r })
    }

    fn notebook_tasks(&self) -> BoxFuture<'_, Result<Vec<NotebookTask>, RuntimeError>> {
        let r = self.call("services", |_| Ok(())).and_then(|_| {
            self.call("tasks", |w| {
                let running = w.notebooks.iter().map(|nb| NotebookTask {
                    service: nb.service.clone(),
                    student: nb.student.clone(),
                    task_id: format!("task-{}", nb.service),
                    node_id: nb.node_id.clone(),
                    phase: nb.state,
                    desired_running: true,
                    message: String::new(),
                    error: String::new(),
                    at: None,
                    memory_bytes: None,
                });
                Ok(w.tasks.iter().cloned().chain(running).collect())
            })
        });
        Box::pin(async move { r })
    }

    fn drain<'a>(&'a self, node_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        let r = self.call("drain", |w| {
            let node = w
                .nodes
                .iter_mut()
                .find(|n| n.id == node_id)
                .ok_or_else(|| RuntimeError::NoSuchNode(node_id.into()))?;
            node.availability = Availability::Drain;
            // The scheduler: move the node's notebooks to another ready, active worker.
            let target = w
                .nodes
                .iter()
                .find(|n| n.id != node_id && n.takes_notebooks())
                .map(|n| n.id.clone());
            for nb in w.notebooks.iter_mut().filter(|nb| nb.node_id == node_id) {
                match &target {
                    Some(t) => nb.node_id = t.clone(),
                    None => {
                        nb.node_id.clear();
                        nb.state = TaskPhase::Pending;
                    }
                }
            }
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn remove_node<'a>(
        &'a self,
        node_id: &'a str,
        _force: bool,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        let r = self.call("node_rm", |w| {
            let before = w.nodes.len();
            w.nodes.retain(|n| n.id != node_id);
            if w.nodes.len() == before {
                return Err(RuntimeError::NoSuchNode(node_id.into()));
            }
            Ok(())
        });
        Box::pin(async move { r })
    }

    fn join_info(&self) -> BoxFuture<'_, Result<JoinInfo, RuntimeError>> {
        let r = self.call("join_info", |w| match &w.swarm {
            Some(s) if s.state == SwarmRole::Manager => Ok(JoinInfo {
                token: SecretString::new(w.worker_token.clone()),
                manager_addr: format!("{}:2377", s.node_addr),
            }),
            _ => Err(RuntimeError::NotAManager {
                host: "fake".into(),
                state: "not-a-swarm".into(),
            }),
        });
        Box::pin(async move { r })
    }

    fn rotate_worker_token(&self) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let r = self.call("rotate_worker_token", |w| match &w.swarm {
            Some(s) if s.state == SwarmRole::Manager => {
                let next = format!("SWMTKN-1-fake-token-{}", w.retired_tokens.len() + 1);
                let old = std::mem::replace(&mut w.worker_token, next);
                w.retired_tokens.push(old);
                Ok(())
            }
            _ => Err(RuntimeError::NotAManager {
                host: "fake".into(),
                state: "not-a-swarm".into(),
            }),
        });
        Box::pin(async move { r })
    }
}

pub struct FakeFleet {
    world: FakeWorld,
    cluster: String,
}

impl FakeFleet {
    fn call<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut World) -> Result<T, FleetError>,
    ) -> Result<T, FleetError> {
        let mut w = self.world.lock();
        w.count(&format!("ec2.{what}"));
        if let Some(e) = w.fleet_error.clone() {
            return Err(e);
        }
        f(&mut w)
    }
}

impl WorkerFleet for FakeFleet {
    fn cluster(&self) -> &str {
        &self.cluster
    }

    fn launch<'a>(
        &'a self,
        req: &'a LaunchRequest,
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        let r = self.call("run_instances", |w| {
            if let Some(e) = w.launch_error_once.take() {
                return Err(e);
            }
            w.user_data.push(req.user_data.clone());
            let n = match w.partial_once.take() {
                Some(max) => req.count.min(max),
                None => req.count,
            };
            let mut out = Vec::new();
            for _ in 0..n {
                let i = new_instance(w, Some(&self.cluster), &req.launch_id, "t3.large");
                if let Some(token) = token_in(&req.user_data) {
                    w.instance_tokens.insert(i.id.clone(), token);
                }
                if w.auto_join {
                    w.join(&i);
                }
                w.instances.push(i.clone());
                out.push(i);
            }
            Ok(out)
        });
        Box::pin(async move { r })
    }

    fn dry_run<'a>(&'a self, _req: &'a LaunchRequest) -> BoxFuture<'a, Result<(), FleetError>> {
        let r = self.call("run_instances_dry_run", |_| Ok(()));
        Box::pin(async move { r })
    }

    fn instances(&self) -> BoxFuture<'_, Result<Vec<FleetInstance>, FleetError>> {
        let r = self.call("describe_instances", |w| {
            Ok(w.instances
                .iter()
                .filter(|i| {
                    i.tags.get(TAG_CLUSTER) == Some(&self.cluster)
                        && i.state != InstanceState::Terminated
                })
                .cloned()
                .collect())
        });
        Box::pin(async move { r })
    }

    fn launched_by<'a>(
        &'a self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        let r = self.call("describe_instances", |w| {
            Ok(w.instances
                .iter()
                .filter(|i| {
                    i.is_ours(&self.cluster) && i.launch_id() == Some(launch_id) && i.is_live()
                })
                .cloned()
                .collect())
        });
        Box::pin(async move { r })
    }

    fn describe<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        let r = self.call("describe_instances", |w| {
            let found: Vec<_> = w
                .instances
                .iter()
                .filter(|i| ids.contains(&i.id))
                .cloned()
                .collect();
            if found.is_empty() && !ids.is_empty() {
                return Err(FleetError::NoSuchInstance(ids.join(", ")));
            }
            Ok(found)
        });
        Box::pin(async move { r })
    }

    fn terminate<'a>(
        &'a self,
        instance: &'a FleetInstance,
    ) -> BoxFuture<'a, Result<(), FleetError>> {
        // The gate comes before the call, as in the real fleet: a refusal is not counted.
        let r = check_ours(instance, &self.cluster).and_then(|_| {
            self.call("terminate_instances", |w| {
                if let Some(i) = w.instances.iter_mut().find(|i| i.id == instance.id) {
                    i.state = InstanceState::Terminated;
                }
                Ok(())
            })
        });
        Box::pin(async move { r })
    }

    fn instance_types<'a>(
        &'a self,
        types: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, InstanceTypeInfo>, FleetError>> {
        let r = self.call("describe_instance_types", |_| {
            Ok(types
                .iter()
                .map(|t| {
                    let gib = match t.as_str() {
                        "t3.medium" => 4,
                        "t3.xlarge" => 16,
                        _ => 8,
                    };
                    (
                        t.clone(),
                        InstanceTypeInfo {
                            vcpus: 2,
                            memory_bytes: gib * 1024 * 1024 * 1024,
                        },
                    )
                })
                .collect())
        });
        Box::pin(async move { r })
    }
}
