//! The swarm's worker join token lives only as long as the launches that handed it out.
//!
//! A launch writes the token into its instances' user-data, which anything on the instance can
//! read (a notebook through the metadata service, a snapshot of the volume). So when a launch
//! ends (its workers joined, or it failed for good), the token it handed out must stop
//! admitting nodes: the manager rotates the worker token (`ContainerRuntime::rotate_worker_token`).
//!
//! Launches may overlap, and rotating while another launch is still in flight would lock that
//! launch's instances out (they boot with the token of the moment `RunInstances` was called).
//! So **the last launch in flight rotates**: under one PostgreSQL advisory lock (held to the end
//! of a transaction), an ending launch counts the other launches that may still need the token
//! — `cluster.launch` jobs queued or running that have recorded neither `joined` nor a token
//! step — and rotates only when there are none, else it hands the duty on (step
//! `token-handed-on`). Its step is recorded before the lock is released, so the next launch to
//! end sees it as ended: whichever of two overlapping launches ends last finds the other done
//! and rotates. A launch reads the token for its user-data under the same lock (its job row
//! exists since it was queued), so a rotation cannot fall between that read and the launch
//! being counted. A retried `RunInstances` reads the token again, so it renders the current one.
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    jobs::LAUNCH_KIND,
    runtime::JoinInfo,
    service::{Cluster, ClusterError},
};
use crate::{
    db,
    domain::Actor,
    jobs::{JobContext, JobError},
};

/// The launch's workers are all in the swarm.
pub const STEP_JOINED: &str = "joined";
/// This launch ended last and rotated the worker token.
pub const STEP_ROTATED: &str = "token-rotated";
/// This launch ended while others were in flight; the last of them rotates.
pub const STEP_HANDED_ON: &str = "token-handed-on";

/// What an ending launch did with the join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEnd {
    Rotated,
    /// Left to these launches, still in flight.
    HandedOn(Vec<Uuid>),
}

impl TokenEnd {
    pub fn json(&self) -> Value {
        match self {
            Self::Rotated => json!("rotated"),
            Self::HandedOn(ids) => json!({ "handed_on_to": ids }),
        }
    }
}

/// Whether the launch has already dealt with the token (a resumed job does not again).
pub fn settled(ctx: &JobContext) -> bool {
    ctx.is_done(STEP_ROTATED) || ctx.is_done(STEP_HANDED_ON)
}

impl Cluster {
    /// The join token and manager address for a launch's user-data, read under the join-token
    /// lock (see the module's notes).
    pub(super) async fn join_info_for_launch(&self) -> Result<JoinInfo, ClusterError> {
        let mut tx = self.pool.begin().await?;
        db::cluster::lock_join_token(&mut tx).await?;
        let join = self.join_info().await;
        tx.commit().await?;
        join
    }
}

/// Ends the launch `ctx` runs as far as the join token goes: rotates it when no other launch is
/// in flight (audit line `cluster.token_rotated`), else hands the duty on; records the step
/// either way, while still holding the lock. `why` completes the audit line ("joined",
/// "failed").
pub(super) async fn end_launch(
    cluster: &Cluster,
    ctx: &JobContext,
    actor: &Actor,
    why: &str,
) -> Result<TokenEnd, JobError> {
    let launch_id = ctx.id();
    let mut tx = cluster.pool.begin().await?;
    db::cluster::lock_join_token(&mut tx).await?;
    let others = db::cluster::launches_in_flight(
        &mut tx,
        LAUNCH_KIND,
        launch_id,
        &[STEP_JOINED, STEP_ROTATED, STEP_HANDED_ON],
    )
    .await?;
    let end =
        if others.is_empty() {
            cluster.runtime.rotate_worker_token().await.map_err(|e| {
                JobError::Retry(format!("rotating the swarm's worker join token: {e}"))
            })?;
            db::audit::record(
                &mut tx,
                actor,
                "cluster.token_rotated",
                None,
                Some(&format!(
                    "launch {launch_id} {why}: the worker join token in its user-data is void"
                )),
            )
            .await?;
            tracing::info!(launch = %launch_id, "worker join token rotated");
            TokenEnd::Rotated
        } else {
            tracing::info!(
                launch = %launch_id,
                in_flight = ?others,
                "worker join token kept for the launches still in flight"
            );
            TokenEnd::HandedOn(others)
        };
    ctx.step(match end {
        TokenEnd::Rotated => STEP_ROTATED,
        TokenEnd::HandedOn(_) => STEP_HANDED_ON,
    })
    .await?;
    tx.commit().await?;
    Ok(end)
}
