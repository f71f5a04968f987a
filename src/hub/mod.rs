//! The JupyterHub REST API, as the hub service `hubdesk` sees it: who has a notebook server,
//! since when, last activity; start and stop the default server.
//!
//! [`HubApi`] is the seam: [`RestHub`] is the one real implementation (reqwest, the service's
//! token in `Authorization: token …`), [`FakeHub`] an in-memory one for unit tests of pages
//! and jobs. Facts of the real hub (6.1.1, measured in `tests/api/hub.rs`):
//! - `GET users` pages with `Accept: application/jupyterhub-pagination+json` (`items` +
//!   `_pagination.next`); without the header at most `api_page_max_limit` (200) users come back.
//! - The default server is `servers[""]`; a user without one has `servers: {}`. A token whose
//!   role lacks `read:servers` gets no `servers` key at all, which is not "stopped": parsing
//!   refuses it ([`HubError::Unauthorized`]) instead of reporting every server as stopped.
//! - `POST users/{n}/server`: 201 started, 202 still starting (after the hub's 10 s
//!   `slow_spawn_timeout`), 400 "already running". A service's start does not need the student's
//!   fresh login (the hub logs "cannot refresh on cross-user requests" and spawns).
//! - `DELETE users/{n}/server`: 204 stopped (also when nothing ran), 202 still stopping (after
//!   `slow_stop_timeout`, 10 s): poll the user until `servers[""]` is gone ([`HubApi::wait_stopped`]).
//! - The hub holds start and stop requests up to those 10 s: they get [`SLOW_ANSWER`]
//!   more than `hub.timeout_secs` (a start on a loaded machine took 9 s before its 201).
//! - A wrong token and a missing scope are both 403 (`Missing or invalid credentials.` /
//!   `Action is not authorized with current scopes; requires any of [start:servers]`).
mod error;
mod fake;
mod metered;
mod model;
mod rest;
mod scopes;

use std::time::Duration;

pub use error::{HubError, HubResult};
pub use fake::{FakeCall, FakeHub};
pub use futures_util::future::BoxFuture;
pub use metered::MeteredHub;
pub use model::{HubInfo, HubUser, ServerState, StartOutcome, StopOutcome};
pub use rest::{RestHub, SLOW_ANSWER};
pub use scopes::{ScopeReport, SCOPES};

use crate::domain::Username;

/// How often [`HubApi::wait_stopped`] asks the hub again.
pub const STOP_POLL: Duration = Duration::from_millis(250);

/// The calls hubdesk makes on the hub. Object-safe (`Arc<dyn HubApi>` in the app state).
pub trait HubApi: Send + Sync {
    /// The hub's version and the scopes the token really holds (`GET /`, `GET /user`): what
    /// `doctor` shows, and the first call that fails when the token or the role is wrong.
    fn check(&self) -> BoxFuture<'_, HubResult<HubInfo>>;

    /// Every hub user, page by page.
    fn users(&self) -> BoxFuture<'_, HubResult<Vec<HubUser>>>;

    /// Users whose default or named server is running or pending (`state=active`).
    fn active_servers(&self) -> BoxFuture<'_, HubResult<Vec<HubUser>>>;

    /// One user; `None` when the hub has no such user (they never logged in to the hub).
    fn user<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<Option<HubUser>>>;

    /// Starts the default server. Already running counts as started; a user the hub does not
    /// know is [`HubError::NotFound`] (the hub creates users at their first login).
    fn start_server<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<StartOutcome>>;

    /// Stops the default server. Nothing running counts as stopped, and so does a user the hub
    /// does not know (nothing of theirs can run).
    fn stop_server<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<StopOutcome>>;

    /// Why the user's last start failed, in the hub's words: JupyterHub answers `GET
    /// users/{name}/server/progress` for a start that failed (and is not pending again) with
    /// one event, "Spawn failed: …" (the spawner's exception). `None` when it did not fail, is
    /// pending again, or the hub does not say within a few seconds. One call, made by the spawn
    /// timeline for a start that ended with no reason of its own (a task that failed and was
    /// removed between two looks).
    fn spawn_failure<'a>(
        &'a self,
        _name: &'a Username,
    ) -> BoxFuture<'a, HubResult<Option<String>>> {
        Box::pin(async { Ok(None) })
    }

    /// Polls the user until the default server is gone. A server that is ready or starting
    /// instead of stopping is [`HubError::StillRunning`] (its stop failed, or someone started
    /// it again): whoever waits (a home reset) must not go on as if it were stopped.
    fn wait_stopped<'a>(
        &'a self,
        name: &'a Username,
        timeout: Duration,
    ) -> BoxFuture<'a, HubResult<()>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let server = self.user(name).await?.and_then(|u| u.server);
                match server {
                    None => return Ok(()),
                    Some(s) if s.pending.as_deref() == Some("stop") => {}
                    // Listed but neither pending nor ready: a stopped server the hub keeps.
                    Some(s) if s.pending.is_none() && !s.ready => return Ok(()),
                    // Ready, or starting again: not stopped, whatever the hub said before.
                    Some(_) => {
                        return Err(HubError::StillRunning {
                            user: name.to_string(),
                        })
                    }
                }
                if tokio::time::Instant::now() + STOP_POLL > deadline {
                    return Err(HubError::StopTimeout {
                        user: name.to_string(),
                        secs: timeout.as_secs(),
                    });
                }
                tokio::time::sleep(STOP_POLL).await;
            }
        })
    }

    /// Stop, and when the hub answers "still stopping", wait up to `timeout` for it.
    fn stop_and_wait<'a>(
        &'a self,
        name: &'a Username,
        timeout: Duration,
    ) -> BoxFuture<'a, HubResult<()>> {
        Box::pin(async move {
            match self.stop_server(name).await? {
                StopOutcome::Stopped => Ok(()),
                StopOutcome::Pending => self.wait_stopped(name, timeout).await,
            }
        })
    }
}
