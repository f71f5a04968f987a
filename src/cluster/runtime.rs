//! The swarm as hubdesk sees it, behind [`ContainerRuntime`]: one implementation over the
//! manager's Docker engine (bollard) and a fake (`super::fake`) for unit tests.
//!
//! A notebook service's spec carries the server's environment, which holds its hub API token.
//! The engine sends it with every service; this module drops it at once: no type here has a
//! field for it, so nothing above can show it.
use std::collections::HashMap;

use bollard::{
    models::{
        LocalNodeState, Node, NodeSpecAvailabilityEnum, NodeSpecRoleEnum, NodeState, Service, Task,
        TaskState,
    },
    query_parameters::{
        DeleteNodeOptions, ListNodesOptions, ListServicesOptions, ListTasksOptions,
        UpdateNodeOptions, UpdateSwarmOptions,
    },
    Docker,
};
use futures_util::future::BoxFuture;
use secrecy::SecretString;
use serde::Serialize;

use super::names;

/// The engine's place in a swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwarmRole {
    NotASwarm,
    Manager,
    Worker,
}

impl SwarmRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotASwarm => "not-a-swarm",
            Self::Manager => "manager",
            Self::Worker => "worker",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmView {
    pub state: SwarmRole,
    /// This engine's swarm node id (empty outside a swarm).
    pub node_id: String,
    /// This engine's swarm address (`NodeAddr`), without a port.
    pub node_addr: String,
}

/// A node's part in the swarm (`Spec.Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Manager,
    Worker,
}

/// A node's health as the managers see it (`Status.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    Ready,
    Down,
    Disconnected,
    Unknown,
}

/// Whether the scheduler may place tasks on a node (`Spec.Availability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

/// `Display` as the engine's own word, for pages and messages.
macro_rules! words {
    ($ty:ty { $($variant:ident => $word:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),*
                }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(NodeRole { Manager => "manager", Worker => "worker" });
words!(NodeStatus { Ready => "ready", Down => "down", Disconnected => "disconnected", Unknown => "unknown" });
words!(Availability { Active => "active", Pause => "pause", Drain => "drain" });

/// One swarm node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SwarmNode {
    pub id: String,
    pub hostname: String,
    pub role: NodeRole,
    pub status: NodeStatus,
    pub availability: Availability,
    pub cpus: f64,
    pub memory_bytes: i64,
    pub engine_version: String,
    /// The address the node talks to the swarm from.
    pub addr: String,
    pub leader: bool,
}

impl SwarmNode {
    pub fn is_ready(&self) -> bool {
        self.status == NodeStatus::Ready
    }

    /// A ready, active worker: where the scheduler places notebooks.
    pub fn takes_notebooks(&self) -> bool {
        self.role == NodeRole::Worker
            && self.is_ready()
            && self.availability == Availability::Active
    }
}

/// A notebook task (of a `jupyter-*` service) and where it is placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notebook {
    pub service: String,
    pub student: String,
    /// Empty while the task waits for a node.
    pub node_id: String,
    pub state: TaskPhase,
}

/// A swarm task's state, parsed once at the seam (the engine's words: `new` … `running`,
/// `complete`, `failed`, `rejected` …); nothing above compares the engine's strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskPhase {
    /// `new`, `allocated`, `pending`: waiting for a node (or for resources on one).
    Pending,
    /// `assigned`, `accepted`, `ready`: placed on a node, not started yet.
    Assigned,
    /// `preparing`: the node pulls the image, mounts the volumes.
    Preparing,
    /// `starting`
    Starting,
    Running,
    /// `complete`, `shutdown`, `remove`: ended because it was asked to (or its process exited 0).
    Ended,
    /// `failed`: the container exited non-zero or could not start.
    Failed,
    /// `rejected`: the node could not run it (image missing, mount refused …).
    Rejected,
    /// `orphaned`: its node went away.
    Orphaned,
}

impl TaskPhase {
    /// The engine's state (`bollard`'s enum) as one of ours.
    pub fn of(state: TaskState) -> Self {
        match state {
            TaskState::NEW | TaskState::ALLOCATED | TaskState::PENDING => Self::Pending,
            TaskState::ASSIGNED | TaskState::ACCEPTED | TaskState::READY => Self::Assigned,
            TaskState::PREPARING => Self::Preparing,
            TaskState::STARTING => Self::Starting,
            TaskState::RUNNING => Self::Running,
            TaskState::COMPLETE | TaskState::SHUTDOWN | TaskState::REMOVE => Self::Ended,
            TaskState::FAILED => Self::Failed,
            TaskState::REJECTED => Self::Rejected,
            TaskState::ORPHANED => Self::Orphaned,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Assigned => "assigned",
            Self::Preparing => "preparing",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Ended => "ended",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Orphaned => "orphaned",
        }
    }

    /// Failed, rejected or orphaned: the task will not run.
    pub fn is_broken(self) -> bool {
        matches!(self, Self::Failed | Self::Rejected | Self::Orphaned)
    }

    /// On its way to running.
    pub fn is_on_the_way(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Assigned | Self::Preparing | Self::Starting
        )
    }
}

impl std::fmt::Display for TaskPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One task of a notebook service, whatever its state (the spawn timeline reads these): the
/// engine's message and error are kept as the engine wrote them; `board::reasons` turns them
/// into plain words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotebookTask {
    pub service: String,
    pub student: String,
    pub task_id: String,
    /// Empty while the task waits for a node.
    pub node_id: String,
    pub phase: TaskPhase,
    /// The swarm still wants it running (a replaced or stopped task does not).
    pub desired_running: bool,
    /// `Status.Message` ("pending task scheduling", "preparing" …).
    pub message: String,
    /// `Status.Err` ("no suitable node (insufficient resources on 2 nodes)" …).
    pub error: String,
    /// When the task reached its state (`Status.Timestamp`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<time::OffsetDateTime>,
    /// The memory the task reserves (its spec's `Resources.Reservations.MemoryBytes`): what
    /// the scheduler looked for, whatever the cohort's profile says now.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// What a new worker needs to join. The token admits any machine into the swarm: a secret.
#[derive(Debug, Clone)]
pub struct JoinInfo {
    pub token: SecretString,
    /// `host:port` of a manager (`ManagerStatus.Addr` of the engine's own node).
    pub manager_addr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot reach the Docker engine at {host}: {detail}")]
    Unreachable { host: String, detail: String },
    #[error("the Docker engine at {host} is not a swarm manager ({state})")]
    NotAManager { host: String, state: String },
    #[error("no swarm node {0}")]
    NoSuchNode(String),
    #[error("the Docker engine refused: {0}")]
    Refused(String),
}

/// The swarm manager's engine. Every method is one or two engine calls, whatever the size of
/// the swarm: a page view stays a constant number of calls.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Where the engine stands (one `GET /info`).
    fn swarm(&self) -> BoxFuture<'_, Result<SwarmView, RuntimeError>>;
    /// Every node (one `GET /nodes`).
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<SwarmNode>, RuntimeError>>;
    /// Tasks of every `jupyter-*` service that should run, with their student (`GET /services`
    /// + `GET /tasks`).
    fn notebooks(&self) -> BoxFuture<'_, Result<Vec<Notebook>, RuntimeError>>;
    /// Every task of every `jupyter-*` service, whatever its state, newest first (`GET
    /// /services` + `GET /tasks`: two calls whatever the number of notebooks).
    fn notebook_tasks(&self) -> BoxFuture<'_, Result<Vec<NotebookTask>, RuntimeError>>;
    /// Sets a node's availability to `drain`: inspects it and updates it with its whole spec
    /// and current version index (the engine rejects a stale version).
    fn drain<'a>(&'a self, node_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;
    /// Removes a node from the swarm (`force` for a node still up).
    fn remove_node<'a>(
        &'a self,
        node_id: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<(), RuntimeError>>;
    /// The worker join token and the manager's address.
    fn join_info(&self) -> BoxFuture<'_, Result<JoinInfo, RuntimeError>>;
    /// Replaces the worker join token: inspects the swarm for its spec and version, then
    /// updates it with that same spec, that version and `rotateWorkerToken=true` (nothing else
    /// changes). Every token handed out before stops admitting new nodes; nodes already in
    /// the swarm stay.
    fn rotate_worker_token(&self) -> BoxFuture<'_, Result<(), RuntimeError>>;
}

/// [`ContainerRuntime`] over a Docker engine, through bollard.
pub struct DockerRuntime {
    /// Made on the first call that can (bollard refuses to make a unix-socket client while the
    /// socket is missing: Docker not started yet, or down); kept once made.
    docker: std::sync::Mutex<Option<Docker>>,
    host: String,
    /// The API version is negotiated on the first call that reaches the engine (and again
    /// after a failure), so an engine that is down at start-up breaks nothing.
    negotiated: tokio::sync::OnceCell<()>,
}

/// Seconds a single engine call may take.
const DOCKER_TIMEOUT_SECS: u64 = 30;

impl DockerRuntime {
    /// A client for `host` (`unix:///…` or `tcp://host:port`); makes no call yet, and needs
    /// no engine: one that is missing or down at start-up is an error of each call (the cluster
    /// page says so), never of hubdesk's start, so logins do not depend on Docker.
    pub fn lazy(host: &str) -> Result<Self, RuntimeError> {
        let valid = host.starts_with("unix://")
            || host.starts_with("tcp://")
            || host.starts_with("http://")
            || host.starts_with("https://");
        if !valid {
            return Err(RuntimeError::Unreachable {
                host: host.to_string(),
                detail: "expected unix:///path/to/docker.sock or tcp://host:port".into(),
            });
        }
        Ok(Self {
            docker: std::sync::Mutex::new(None),
            host: host.to_string(),
            negotiated: tokio::sync::OnceCell::new(),
        })
    }

    /// Connects to `host` and negotiates the API version at once (older engines speak older
    /// versions than bollard's default).
    pub async fn connect(host: &str) -> Result<Self, RuntimeError> {
        let rt = Self::lazy(host)?;
        rt.ready().await?;
        Ok(rt)
    }

    /// The engine's client, made now if it could not be before. Clones share the negotiated
    /// API version.
    pub fn docker(&self) -> Result<Docker, RuntimeError> {
        let mut slot = self
            .docker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let made = if let Some(path) = self.host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, DOCKER_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else {
            Docker::connect_with_http(
                &self.host,
                DOCKER_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            )
        }
        .map_err(|e| RuntimeError::Unreachable {
            host: self.host.clone(),
            detail: plain_docker_error(&e),
        })?;
        *slot = Some(made.clone());
        Ok(made)
    }

    /// `negotiate_version()` once: the clone shares the client's version, so this sets ours.
    async fn ready(&self) -> Result<Docker, RuntimeError> {
        let docker = self.docker()?;
        self.negotiated
            .get_or_try_init(|| async {
                docker
                    .clone()
                    .negotiate_version()
                    .await
                    .map(|_| ())
                    .map_err(|e| RuntimeError::Unreachable {
                        host: self.host.clone(),
                        detail: plain_docker_error(&e),
                    })
            })
            .await?;
        Ok(docker)
    }

    fn err(&self, e: bollard::errors::Error) -> RuntimeError {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError {
                status_code: 503,
                message,
            } if message.contains("not a swarm manager") || message.contains("not part of") => {
                // The engine's sentence is long and tells docker-CLI users what to type; the
                // page and doctor say it in their words with the state.
                let state = if message.contains("Worker nodes") {
                    SwarmRole::Worker
                } else {
                    SwarmRole::NotASwarm
                };
                RuntimeError::NotAManager {
                    host: self.host.clone(),
                    state: state.as_str().into(),
                }
            }
            E::DockerResponseServerError {
                status_code: 404,
                message,
            } => RuntimeError::NoSuchNode(message),
            E::DockerResponseServerError { message, .. } => RuntimeError::Refused(message),
            other => RuntimeError::Unreachable {
                host: self.host.clone(),
                detail: plain_docker_error(&other),
            },
        }
    }
}

/// The first line of a transport error, with its cause (hyper's Display alone says "client
/// error (Connect)").
fn plain_docker_error(e: &bollard::errors::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn filters(pairs: &[(&str, &str)]) -> Option<HashMap<String, Vec<String>>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect(),
    )
}

impl ContainerRuntime for DockerRuntime {
    fn swarm(&self) -> BoxFuture<'_, Result<SwarmView, RuntimeError>> {
        Box::pin(async move {
            let docker = self.ready().await?;
            let info = docker.info().await.map_err(|e| self.err(e))?;
            let swarm = info.swarm.unwrap_or_default();
            let active = swarm.local_node_state == Some(LocalNodeState::ACTIVE);
            let state = match (active, swarm.control_available) {
                (false, _) => SwarmRole::NotASwarm,
                (true, Some(true)) => SwarmRole::Manager,
                (true, _) => SwarmRole::Worker,
            };
            Ok(SwarmView {
                state,
                node_id: swarm.node_id.unwrap_or_default(),
                node_addr: swarm.node_addr.unwrap_or_default(),
            })
        })
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<SwarmNode>, RuntimeError>> {
        Box::pin(async move {
            let docker = self.ready().await?;
            let nodes = docker
                .list_nodes(None::<ListNodesOptions>)
                .await
                .map_err(|e| self.err(e))?;
            Ok(nodes.into_iter().map(node_view).collect())
        })
    }

    fn notebooks(&self) -> BoxFuture<'_, Result<Vec<Notebook>, RuntimeError>> {
        Box::pin(async move {
            let docker = self.ready().await?;
            let services = docker.list_services(Some(ListServicesOptions {
                filters: filters(&[("name", names::SERVICE_PREFIX)]),
                status: None,
            }));
            let tasks = docker.list_tasks(Some(ListTasksOptions {
                filters: filters(&[("desired-state", "running")]),
            }));
            let (services, tasks) =
                futures_util::try_join!(services, tasks).map_err(|e| self.err(e))?;
            Ok(notebooks_of(services, tasks))
        })
    }

    fn notebook_tasks(&self) -> BoxFuture<'_, Result<Vec<NotebookTask>, RuntimeError>> {
        Box::pin(async move {
            let docker = self.ready().await?;
            let services = docker.list_services(Some(ListServicesOptions {
                filters: filters(&[("name", names::SERVICE_PREFIX)]),
                status: None,
            }));
            let tasks = docker.list_tasks(None::<ListTasksOptions>);
            let (services, tasks) =
                futures_util::try_join!(services, tasks).map_err(|e| self.err(e))?;
            Ok(tasks_of(services, tasks))
        })
    }

    fn drain<'a>(&'a self, node_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let docker = self.ready().await?;
            let node = docker
                .inspect_node(node_id)
                .await
                .map_err(|e| self.err(e))?;
            let mut spec = node.spec.unwrap_or_default();
            if spec.availability == Some(NodeSpecAvailabilityEnum::DRAIN) {
                return Ok(());
            }
            spec.availability = Some(NodeSpecAvailabilityEnum::DRAIN);
            let version = node.version.and_then(|v| v.index).unwrap_or_default() as i64;
            docker
                .update_node(node_id, spec, UpdateNodeOptions { version })
                .await
                .map_err(|e| self.err(e))
        })
    }

    fn remove_node<'a>(
        &'a self,
        node_id: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let docker = self.ready().await?;
            docker
                .delete_node(node_id, Some(DeleteNodeOptions { force }))
                .await
                .map_err(|e| self.err(e))
        })
    }

    fn join_info(&self) -> BoxFuture<'_, Result<JoinInfo, RuntimeError>> {
        Box::pin(async move {
            let docker = self.ready().await?;
            let view = self.swarm().await?;
            if view.state != SwarmRole::Manager {
                return Err(RuntimeError::NotAManager {
                    host: self.host.clone(),
                    state: view.state.as_str().into(),
                });
            }
            let swarm = docker.inspect_swarm().await.map_err(|e| self.err(e))?;
            let token = swarm.join_tokens.and_then(|t| t.worker).ok_or_else(|| {
                RuntimeError::Refused("the swarm has no worker join token".into())
            })?;
            Ok(JoinInfo {
                token: SecretString::new(token),
                manager_addr: format!("{}:2377", view.node_addr),
            })
        })
    }

    fn rotate_worker_token(&self) -> BoxFuture<'_, Result<(), RuntimeError>> {
        Box::pin(async move {
            let docker = self.ready().await?;
            let swarm = docker.inspect_swarm().await.map_err(|e| self.err(e))?;
            let version = swarm.version.and_then(|v| v.index).unwrap_or_default() as i64;
            let spec = swarm.spec.unwrap_or_default();
            let options = UpdateSwarmOptions {
                version,
                rotate_worker_token: true,
                rotate_manager_token: false,
                rotate_manager_unlock_key: false,
            };
            docker
                .update_swarm(spec, options)
                .await
                .map_err(|e| self.err(e))
        })
    }
}

fn node_view(n: Node) -> SwarmNode {
    let spec = n.spec.unwrap_or_default();
    let desc = n.description.unwrap_or_default();
    let res = desc.resources.unwrap_or_default();
    let status = n.status.unwrap_or_default();
    SwarmNode {
        id: n.id.unwrap_or_default(),
        hostname: desc.hostname.unwrap_or_default(),
        role: match spec.role {
            Some(NodeSpecRoleEnum::MANAGER) => NodeRole::Manager,
            _ => NodeRole::Worker,
        },
        status: match status.state {
            Some(NodeState::READY) => NodeStatus::Ready,
            Some(NodeState::DOWN) => NodeStatus::Down,
            Some(NodeState::DISCONNECTED) => NodeStatus::Disconnected,
            _ => NodeStatus::Unknown,
        },
        availability: match spec.availability {
            Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
            Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
            _ => Availability::Active,
        },
        cpus: res.nano_cpus.unwrap_or_default() as f64 / 1e9,
        memory_bytes: res.memory_bytes.unwrap_or_default(),
        engine_version: desc
            .engine
            .and_then(|e| e.engine_version)
            .unwrap_or_default(),
        addr: status.addr.unwrap_or_default(),
        leader: n.manager_status.and_then(|m| m.leader).unwrap_or_default(),
    }
}

/// Every task of the notebook services, newest first, with its state parsed.
fn tasks_of(services: Vec<Service>, tasks: Vec<Task>) -> Vec<NotebookTask> {
    let by_id = services_by_id(services);
    let mut out: Vec<NotebookTask> = tasks
        .into_iter()
        .filter_map(|t| {
            let (service, student) = by_id.get(t.service_id.as_deref()?)?.clone();
            let status = t.status.unwrap_or_default();
            let memory_bytes = t
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.reservations.as_ref())
                .and_then(|r| r.memory_bytes)
                .and_then(|b| u64::try_from(b).ok())
                .filter(|b| *b > 0);
            Some(NotebookTask {
                service,
                student,
                task_id: t.id.unwrap_or_default(),
                node_id: t.node_id.unwrap_or_default(),
                phase: TaskPhase::of(status.state.unwrap_or(TaskState::PENDING)),
                desired_running: t.desired_state == Some(TaskState::RUNNING),
                message: status.message.unwrap_or_default(),
                error: status.err.unwrap_or_default(),
                at: status.timestamp.as_ref().and_then(engine_time),
                memory_bytes,
            })
        })
        .collect();
    out.sort_by(|a, b| b.at.cmp(&a.at).then(a.task_id.cmp(&b.task_id)));
    out
}

/// The engine's RFC 3339 timestamps (nanoseconds and all).
fn engine_time(raw: &bollard::models::BollardDate) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()
}

/// Notebook services by id: (name, student). Only the name and labels of a service are read;
/// its task template (image, environment, mounts) is dropped here.
fn services_by_id(services: Vec<Service>) -> HashMap<String, (String, String)> {
    let mut by_id: HashMap<String, (String, String)> = HashMap::new();
    for s in services {
        let Some(spec) = s.spec else { continue };
        let Some(name) = spec.name else { continue };
        if !name.starts_with(names::SERVICE_PREFIX) {
            continue; // the engine's name filter matches anywhere in the name
        }
        let container_labels = spec
            .task_template
            .and_then(|t| t.container_spec)
            .and_then(|c| c.labels);
        let label = spec
            .labels
            .as_ref()
            .and_then(|l| l.get(names::USER_LABEL).cloned())
            .or_else(|| container_labels.and_then(|l| l.get(names::USER_LABEL).cloned()));
        let student = label
            .filter(|l| !l.is_empty())
            .or_else(|| names::student_of_service(&name))
            .unwrap_or_default();
        by_id.insert(s.id.unwrap_or_default(), (name, student));
    }
    by_id
}

/// Joins tasks to their notebook services.
fn notebooks_of(services: Vec<Service>, tasks: Vec<Task>) -> Vec<Notebook> {
    let by_id = services_by_id(services);
    let mut out: Vec<Notebook> = tasks
        .into_iter()
        .filter_map(|t| {
            let (service, student) = by_id.get(t.service_id.as_deref()?)?.clone();
            let state = TaskPhase::of(t.status.and_then(|s| s.state).unwrap_or(TaskState::PENDING));
            Some(Notebook {
                service,
                student,
                node_id: t.node_id.unwrap_or_default(),
                state,
            })
        })
        .collect();
    out.sort_by(|a, b| a.student.cmp(&b.student).then(a.service.cmp(&b.service)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ServiceSpec, TaskSpec, TaskSpecContainerSpec, TaskStatus};

    fn service(id: &str, name: &str, label: Option<&str>) -> Service {
        Service {
            id: Some(id.into()),
            spec: Some(ServiceSpec {
                name: Some(name.into()),
                labels: label.map(|l| HashMap::from([(names::USER_LABEL.into(), l.into())])),
                task_template: Some(TaskSpec {
                    container_spec: Some(TaskSpecContainerSpec {
                        env: Some(vec!["JUPYTERHUB_API_TOKEN=cluster-secret-token".into()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn task(service: &str, node: &str, state: TaskState) -> Task {
        Task {
            service_id: Some(service.into()),
            node_id: Some(node.into()),
            status: Some(TaskStatus {
                state: Some(state),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn cluster_notebooks_map_by_label_then_by_name_and_drop_the_environment() {
        let services = vec![
            service("s1", "jupyter-bob-2dsmith", None),
            service("s2", "jupyter-x", Some("ana")),
            service("s3", "hub-jupyter-other", None),
        ];
        let tasks = vec![
            task("s1", "n1", TaskState::RUNNING),
            task("s2", "n2", TaskState::PENDING),
            task("s3", "n2", TaskState::RUNNING),
        ];
        let nb = notebooks_of(services, tasks);
        assert_eq!(nb.len(), 2);
        assert_eq!(
            (nb[0].student.as_str(), nb[0].node_id.as_str()),
            ("ana", "n2")
        );
        assert_eq!(nb[0].state, TaskPhase::Pending);
        assert_eq!(nb[1].student, "bob-smith");
        assert_eq!(nb[1].service, "jupyter-bob-2dsmith");
        let shown = format!("{nb:?} {}", serde_json::to_string(&nb).unwrap());
        assert!(!shown.contains("cluster-secret-token"), "{shown}");
    }

    #[test]
    fn cluster_notebook_tasks_keep_every_state_with_the_engines_words_newest_first() {
        // As `GET /tasks` answers (moby 20.10): a task held by the scheduler and an older one
        // the node rejected.
        let tasks: Vec<Task> = serde_json::from_value(serde_json::json!([
            {"ID": "t-old", "ServiceID": "s1", "NodeID": "n2", "DesiredState": "shutdown",
             "Status": {"Timestamp": "2026-07-06T09:00:01.123456789Z", "State": "rejected",
                        "Message": "preparing", "Err": "No such image: hubdesk/notebook:4f2a"}},
            {"ID": "t-new", "ServiceID": "s1", "DesiredState": "running",
             "Status": {"Timestamp": "2026-07-06T09:00:07.5Z", "State": "pending",
                        "Message": "pending task scheduling",
                        "Err": "no suitable node (insufficient resources on 2 nodes)"}},
            {"ID": "t-other", "ServiceID": "s3", "DesiredState": "running",
             "Status": {"State": "running"}}
        ]))
        .unwrap();
        let services = vec![
            service("s1", "jupyter-ana", None),
            service("s3", "hub", None),
        ];
        let got = tasks_of(services, tasks);
        assert_eq!(got.len(), 2, "only notebook services: {got:?}");
        assert_eq!(got[0].task_id, "t-new");
        assert_eq!(got[0].phase, TaskPhase::Pending);
        assert!(got[0].desired_running);
        assert_eq!(
            got[0].error,
            "no suitable node (insufficient resources on 2 nodes)"
        );
        assert_eq!(got[0].at.unwrap().unix_timestamp(), 1_783_328_407);
        assert_eq!(got[1].phase, TaskPhase::Rejected);
        assert!(!got[1].desired_running && got[1].phase.is_broken());
        assert_eq!(
            (got[1].student.as_str(), got[1].node_id.as_str()),
            ("ana", "n2")
        );
    }

    #[test]
    fn cluster_node_view_reads_what_the_page_shows() {
        let json = serde_json::json!({
            "ID": "n1", "Version": {"Index": 9},
            "Spec": {"Role": "worker", "Availability": "drain"},
            "Description": {"Hostname": "ip-10-0-0-4",
                "Resources": {"NanoCPUs": 2000000000i64, "MemoryBytes": 8000000000i64},
                "Engine": {"EngineVersion": "20.10.24"}},
            "Status": {"State": "down", "Addr": "10.0.0.4"}
        });
        let node: Node = serde_json::from_value(json).unwrap();
        let v = node_view(node);
        assert_eq!(v.hostname, "ip-10-0-0-4");
        assert_eq!(
            (v.role.as_str(), v.status.as_str(), v.availability.as_str()),
            ("worker", "down", "drain")
        );
        assert_eq!(v.cpus, 2.0);
        assert_eq!(v.memory_bytes, 8_000_000_000);
        assert_eq!(v.engine_version, "20.10.24");
        assert_eq!(v.addr, "10.0.0.4");
    }
}
