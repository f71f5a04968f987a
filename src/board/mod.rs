//! The roll board (issue 18): where every student of a cohort is right now — ready, starting
//! (for how long, held by what), failed (one plain reason), idle (and when the culler stops
//! it), stopped, never logged in — and each student's spawn timeline (the last 20 starts with
//! the swarm task's states). A look costs a constant number of calls whatever the class size:
//! one to the hub (`state=active`), three to the engine (services, tasks, nodes), two queries.
//! Services here import no `web` or `state`.
pub mod api;
pub mod look;
pub mod pages;
pub mod reasons;
pub mod roll;
pub mod starts;
pub mod sweep;

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;

use crate::{cluster::Cluster, servers::Servers};

/// The board's handle: the database, the hub (through `Servers`) and, with the cluster desk
/// on, the swarm.
#[derive(Clone)]
pub struct Board {
    pub pool: PgPool,
    pub servers: Servers,
    pub cluster: Option<Arc<Cluster>>,
    /// The hub's idle culler's timeout (`[hub] cull_idle_secs`; `None`: no culler).
    pub cull_after: Option<Duration>,
    /// The hub's `Spawner.start_timeout` (`[hub] start_timeout_secs`): a start that vanishes
    /// after this long was given up by the hub.
    pub start_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    /// A cohort outside the counselor's reach.
    #[error(transparent)]
    NotYours(#[from] crate::domain::OutOfReach),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}
