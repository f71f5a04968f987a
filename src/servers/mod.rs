//! Notebook servers, as the hub runs them: who is running since when, stop one, start a
//! cohort's before class (staggered, as a job), stop a student's server before their home is
//! reset. hubdesk works without a hub (no token configured, or the hub down): pages then say so
//! in one line and everything else goes on. Services here import no `web` or `state`.
pub mod api;
pub mod jobs;
pub mod pages;
pub mod pause;
pub mod start;
pub mod stop;
pub mod unstick;

use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::{
    domain::Username,
    hub::{HubApi, HubError, ServerState, StopOutcome},
};

/// The hub, if configured, and how servers are handled. The app's hub is a
/// [`crate::hub::MeteredHub`]: every call's latency is in `/metrics`.
#[derive(Clone)]
pub struct Servers {
    pub hub: Option<Arc<dyn HubApi>>,
    pub stop_wait: Duration,
    pub start_concurrency: usize,
}

/// What a page says when no hub is configured.
pub const NOT_CONFIGURED: &str =
    "no hub is configured ([hub] api_token), so hubdesk cannot show or stop notebook servers";

/// Why server state is unknown, in one line for a page.
pub fn problem(servers: &Servers, e: &HubError) -> String {
    if servers.configured() {
        e.to_string()
    } else {
        NOT_CONFIGURED.to_string()
    }
}

impl Servers {
    pub fn configured(&self) -> bool {
        self.hub.is_some()
    }

    fn hub(&self) -> Result<&Arc<dyn HubApi>, HubError> {
        self.hub.as_ref().ok_or_else(|| HubError::Unreachable {
            url: "(none)".into(),
            reason: "no hub API token is configured ([hub] api_token)".into(),
        })
    }

    /// The running (or starting) default servers by username: one call to the hub.
    pub async fn running(&self) -> Result<HashMap<String, ServerState>, HubError> {
        let users = self.hub()?.active_servers().await;
        Ok(users?
            .into_iter()
            .filter_map(|u| u.server.map(|s| (u.name, s)))
            .collect())
    }

    /// Why the student's last start failed, in the hub's words (`None`: it did not, or the
    /// hub does not say).
    pub async fn spawn_failure(&self, name: &Username) -> Result<Option<String>, HubError> {
        self.hub()?.spawn_failure(name).await
    }

    /// One student's default server, if it runs.
    pub async fn of(&self, name: &Username) -> Result<Option<ServerState>, HubError> {
        let user = self.hub()?.user(name).await;
        Ok(user?.and_then(|u| u.server))
    }

    /// Asks the hub to stop the server; `Pending` when it is still stopping.
    pub async fn stop(&self, name: &Username) -> Result<StopOutcome, HubError> {
        self.hub()?.stop_server(name).await
    }

    /// Stops and waits until it is gone (a home reset must not run beside a live server).
    pub async fn stop_and_wait(&self, name: &Username) -> Result<(), HubError> {
        self.hub()?.stop_and_wait(name, self.stop_wait).await
    }

    /// Best effort, for a disabled account: a failure is logged, the disable stands.
    pub async fn stop_quietly(&self, name: &Username) {
        if self.hub.is_none() {
            return;
        }
        if let Err(e) = self.stop(name).await {
            tracing::warn!(username = %name, error = %e, "could not stop the notebook server");
        }
    }
}

/// A student's server as their page shows it.
pub struct ServerLine {
    pub running: bool,
    pub since: String,
    pub last_activity: String,
    pub pending: String,
}

impl ServerLine {
    pub fn of(s: &crate::hub::ServerState) -> Self {
        Self {
            running: s.running(),
            since: ago(s.started),
            last_activity: ago(s.last_activity),
            pending: s.pending.clone().unwrap_or_default(),
        }
    }
}

/// "3 min ago", "2 h ago" for a page.
pub fn ago(t: Option<time::OffsetDateTime>) -> String {
    let Some(t) = t else {
        return "never".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    match secs {
        0..=59 => "just now".into(),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}
