//! `hubdesk docker-proxy`: an allow-list in front of the Docker Engine API, so that hubdesk
//! does not hold the engine's raw socket (which is root on the hub node). It runs as root
//! beside the engine, listens on a unix socket only hubdesk's group may open, and forwards
//! exactly the calls the cluster desk makes ([`rules`]); everything else gets the engine's own
//! error shape, a 403 `{"message": "hubdesk docker-proxy: <METHOD> <path> is not allowed"}`,
//! and a warning in the log. The two writes it admits are checked against the engine's current
//! state ([`inspect`]): a drain may change a node's availability and nothing else, a swarm
//! update may rotate the worker join token and nothing else. Answers lose what hubdesk never
//! needs: every container `Env` of services and tasks (the hub's per-student API tokens) and
//! the manager join token.
//!
//! A mechanism, not a capability: it imports nothing of the crate.
pub mod inspect;
pub mod rules;
pub mod server;

use std::path::Path;

pub use server::{bind, resolve_group, serve, Upstream};

/// `deploy/hubdesk-docker-proxy.service`, printed by `hubdesk docker-proxy --print-unit`.
pub const UNIT: &str = include_str!("../../deploy/hubdesk-docker-proxy.service");

/// Binds `listen` (mode `mode`, group `group` when given) and serves until SIGTERM or SIGINT,
/// then removes the socket.
pub async fn run(
    listen: &Path,
    mode: u32,
    group: Option<&str>,
    upstream: Upstream,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let gid = group.map(resolve_group).transpose().context("--group")?;
    let listener =
        bind(listen, mode, gid).with_context(|| format!("listening on {}", listen.display()))?;
    tracing::info!(
        listen = %listen.display(),
        mode = format!("{mode:04o}"),
        gid,
        %upstream,
        "docker-proxy: serving the cluster desk's calls only"
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        r = serve(listener, upstream) => r.context("accepting connections"),
        _ = term.recv() => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    let _ = std::fs::remove_file(listen);
    tracing::info!("docker-proxy: stopped");
    result
}
