//! The cluster desk: the Docker Swarm whose manager is the hub node ([`ContainerRuntime`],
//! bollard) and the EC2 workers that join it ([`WorkerFleet`], aws-sdk-ec2). [`Cluster`] shows
//! both side by side (nodes, students per node, instances, problems, capacity); launching and
//! removing workers are resumable jobs ([`jobs`]).
//!
//! The services here import neither `web` nor `state`.
pub mod api;
pub mod budget;
pub mod fake;
pub mod fleet;
pub mod jobs;
pub mod metered;
pub mod names;
pub mod pages;
pub mod runtime;
pub mod service;
pub mod token;
pub mod userdata;

pub use budget::{Budget, NoBudget, OverBudget};
pub use fleet::{Ec2Fleet, FleetError, FleetInstance, WorkerFleet};
pub use runtime::{ContainerRuntime, DockerRuntime, RuntimeError};
pub use service::{Cluster, ClusterError, Overview};
