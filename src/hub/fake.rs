//! An in-memory hub for unit tests of pages and jobs: users and servers set by the test, every
//! call recorded, failures on demand. Integration tests use the real hub (`tests/api/hub.rs`).
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, MutexGuard},
};

use time::OffsetDateTime;

use super::{
    error::{HubError, HubResult},
    model::{HubInfo, HubUser, ServerState, StartOutcome, StopOutcome},
    BoxFuture, HubApi,
};
use crate::domain::Username;

/// One call the fake received, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FakeCall {
    Check,
    Users,
    ActiveServers,
    User(String),
    Start(String),
    Stop(String),
}

struct State {
    users: BTreeMap<String, HubUser>,
    calls: Vec<FakeCall>,
    fail: Option<HubError>,
    start_pending: bool,
    /// Stops answer `Pending` and the server stays `pending: stop` for this many reads.
    stop_polls: u32,
    stopping: HashMap<String, u32>,
    info: HubInfo,
}

pub struct FakeHub {
    state: Mutex<State>,
}

impl Default for FakeHub {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHub {
    /// No users; starts and stops complete at once; `check` reports the shipped role.
    pub fn new() -> Self {
        let scopes = [
            "delete:servers",
            "list:users",
            "read:servers",
            "read:users",
            "read:users:activity",
            "read:users:groups",
            "read:users:name",
            "start:servers",
        ];
        Self {
            state: Mutex::new(State {
                users: BTreeMap::new(),
                calls: Vec::new(),
                fail: None,
                start_pending: false,
                stop_polls: 0,
                stopping: HashMap::new(),
                info: HubInfo {
                    version: "6.1.1".into(),
                    name: "hubdesk".into(),
                    kind: "service".into(),
                    scopes: scopes.map(String::from).to_vec(),
                },
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock already failed; keep the data usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A hub user without a server.
    pub fn add_user(&self, name: &str) {
        self.set_user(HubUser {
            name: name.into(),
            admin: false,
            last_activity: None,
            server: None,
        });
    }

    pub fn set_user(&self, user: HubUser) {
        self.state().users.insert(user.name.clone(), user);
    }

    pub fn remove_user(&self, name: &str) {
        self.state().users.remove(name);
    }

    /// Sets (or clears) a user's default server; adds the user when missing.
    pub fn set_server(&self, name: &str, server: Option<ServerState>) {
        let mut state = self.state();
        let user = state.users.entry(name.into()).or_insert_with(|| HubUser {
            name: name.into(),
            admin: false,
            last_activity: None,
            server: None,
        });
        user.server = server;
    }

    /// A ready server started at `since`.
    pub fn ready_server(name: &str, since: OffsetDateTime) -> ServerState {
        ServerState {
            started: Some(since),
            last_activity: Some(since),
            pending: None,
            ready: true,
            url: format!("/user/{name}/"),
        }
    }

    /// Every call fails with `error` until `fail_with(None)`.
    pub fn fail_with(&self, error: Option<HubError>) {
        self.state().fail = error;
    }

    /// Starts answer `Pending` and leave the server `pending: spawn`.
    pub fn start_pending(&self, pending: bool) {
        self.state().start_pending = pending;
    }

    /// Stops answer `Pending`; the server reads `pending: stop` this many times, then is gone.
    pub fn stop_pending_for(&self, reads: u32) {
        self.state().stop_polls = reads;
    }

    pub fn set_info(&self, info: HubInfo) {
        self.state().info = info;
    }

    pub fn calls(&self) -> Vec<FakeCall> {
        self.state().calls.clone()
    }

    /// The user as the fake holds it now, without recording a call.
    pub fn peek(&self, name: &str) -> Option<HubUser> {
        self.state().users.get(name).cloned()
    }

    /// Records the call; the configured failure, if any.
    fn enter(&self, call: FakeCall) -> HubResult<MutexGuard<'_, State>> {
        let mut state = self.state();
        state.calls.push(call);
        match &state.fail {
            Some(e) => Err(e.clone()),
            None => Ok(state),
        }
    }

    fn read(state: &mut State, name: &str) -> Option<HubUser> {
        if let Some(left) = state.stopping.get_mut(name) {
            if *left == 0 {
                state.stopping.remove(name);
                if let Some(user) = state.users.get_mut(name) {
                    user.server = None;
                }
            } else {
                *left -= 1;
            }
        }
        state.users.get(name).cloned()
    }
}

impl HubApi for FakeHub {
    fn check(&self) -> BoxFuture<'_, HubResult<HubInfo>> {
        let result = self.enter(FakeCall::Check).map(|s| s.info.clone());
        Box::pin(async move { result })
    }

    fn users(&self) -> BoxFuture<'_, HubResult<Vec<HubUser>>> {
        let result = self.enter(FakeCall::Users).map(|mut s| {
            let names: Vec<String> = s.users.keys().cloned().collect();
            names.iter().filter_map(|n| Self::read(&mut s, n)).collect()
        });
        Box::pin(async move { result })
    }

    fn active_servers(&self) -> BoxFuture<'_, HubResult<Vec<HubUser>>> {
        let result = self.enter(FakeCall::ActiveServers).map(|mut s| {
            let names: Vec<String> = s.users.keys().cloned().collect();
            names
                .iter()
                .filter_map(|n| Self::read(&mut s, n))
                .filter(|u| u.server.is_some())
                .collect()
        });
        Box::pin(async move { result })
    }

    fn user<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<Option<HubUser>>> {
        let result = self
            .enter(FakeCall::User(name.to_string()))
            .map(|mut s| Self::read(&mut s, name.as_str()));
        Box::pin(async move { result })
    }

    fn start_server<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<StartOutcome>> {
        let result = self
            .enter(FakeCall::Start(name.to_string()))
            .and_then(|mut s| {
                let pending = s.start_pending;
                s.stopping.remove(name.as_str());
                let user = s
                    .users
                    .get_mut(name.as_str())
                    .ok_or_else(|| HubError::NotFound(name.to_string()))?;
                if user.server.as_ref().is_some_and(|srv| srv.ready) {
                    return Ok(StartOutcome::Started);
                }
                let now = OffsetDateTime::now_utc();
                let mut server = FakeHub::ready_server(name.as_str(), now);
                user.last_activity = Some(now);
                if pending {
                    server.ready = false;
                    server.pending = Some("spawn".into());
                }
                user.server = Some(server);
                Ok(if pending {
                    StartOutcome::Pending
                } else {
                    StartOutcome::Started
                })
            });
        Box::pin(async move { result })
    }

    fn stop_server<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<StopOutcome>> {
        let result = self.enter(FakeCall::Stop(name.to_string())).map(|mut s| {
            let polls = s.stop_polls;
            let Some(user) = s.users.get_mut(name.as_str()) else {
                return StopOutcome::Stopped;
            };
            match user.server.as_mut() {
                None => StopOutcome::Stopped,
                Some(_) if polls == 0 => {
                    user.server = None;
                    StopOutcome::Stopped
                }
                Some(server) => {
                    server.ready = false;
                    server.pending = Some("stop".into());
                    s.stopping.insert(name.to_string(), polls);
                    StopOutcome::Pending
                }
            }
        });
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn name(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    #[tokio::test]
    async fn start_then_stop_records_each_call() {
        let hub = FakeHub::new();
        hub.add_user("ada");
        assert_eq!(
            hub.start_server(&name("ada")).await,
            Ok(StartOutcome::Started)
        );
        assert!(hub.user(&name("ada")).await.unwrap().unwrap().running());
        assert_eq!(
            hub.active_servers().await.unwrap().len(),
            1,
            "ada is active"
        );
        assert_eq!(
            hub.stop_server(&name("ada")).await,
            Ok(StopOutcome::Stopped)
        );
        assert_eq!(hub.peek("ada").unwrap().server, None);
        assert_eq!(
            hub.calls(),
            [
                FakeCall::Start("ada".into()),
                FakeCall::User("ada".into()),
                FakeCall::ActiveServers,
                FakeCall::Stop("ada".into()),
            ]
        );
    }

    #[tokio::test]
    async fn starting_an_unknown_user_is_not_found_and_stopping_one_is_a_no_op() {
        let hub = FakeHub::new();
        assert_eq!(
            hub.start_server(&name("zed")).await,
            Err(HubError::NotFound("zed".into()))
        );
        assert_eq!(
            hub.stop_server(&name("zed")).await,
            Ok(StopOutcome::Stopped)
        );
        assert_eq!(hub.user(&name("zed")).await, Ok(None));
    }

    #[tokio::test]
    async fn a_pending_stop_is_waited_for() {
        let hub = FakeHub::new();
        hub.set_server(
            "ada",
            Some(FakeHub::ready_server("ada", OffsetDateTime::now_utc())),
        );
        hub.stop_pending_for(2);
        hub.stop_and_wait(&name("ada"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(hub.peek("ada").unwrap().server, None);
        let polls = hub
            .calls()
            .iter()
            .filter(|c| matches!(c, FakeCall::User(_)))
            .count();
        assert_eq!(polls, 3, "two reads of `pending: stop`, then gone");
    }

    #[tokio::test]
    async fn a_stop_that_never_ends_times_out() {
        let hub = FakeHub::new();
        hub.set_server(
            "ada",
            Some(FakeHub::ready_server("ada", OffsetDateTime::now_utc())),
        );
        hub.stop_pending_for(u32::MAX);
        let err = hub
            .stop_and_wait(&name("ada"), Duration::from_millis(600))
            .await
            .unwrap_err();
        assert!(matches!(err, HubError::StopTimeout { ref user, .. } if user == "ada"));
    }

    #[tokio::test]
    async fn a_server_running_again_is_not_stopped() {
        let hub = FakeHub::new();
        hub.set_server(
            "ada",
            Some(FakeHub::ready_server("ada", OffsetDateTime::now_utc())),
        );
        assert_eq!(
            hub.wait_stopped(&name("ada"), Duration::from_secs(1)).await,
            Err(HubError::StillRunning { user: "ada".into() })
        );
    }

    #[tokio::test]
    async fn a_told_failure_comes_back_from_every_call() {
        let hub = FakeHub::new();
        let down = HubError::Unreachable {
            url: "http://127.0.0.1:9/hub/api/".into(),
            reason: "connection refused".into(),
        };
        hub.fail_with(Some(down.clone()));
        assert_eq!(hub.users().await, Err(down.clone()));
        assert_eq!(hub.check().await, Err(down.clone()));
        assert_eq!(hub.start_server(&name("ada")).await, Err(down));
        hub.fail_with(None);
        assert_eq!(hub.users().await, Ok(vec![]));
    }

    #[tokio::test]
    async fn it_is_usable_as_a_trait_object() {
        let hub: std::sync::Arc<dyn HubApi> = std::sync::Arc::new(FakeHub::new());
        assert_eq!(hub.check().await.unwrap().name, "hubdesk");
    }
}
