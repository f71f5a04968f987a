//! The hub's JSON (6.1) read into hubdesk's types. Only the fields hubdesk uses are read.
use std::collections::HashMap;

use serde::{Deserialize, Deserializer};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

use super::error::{HubError, HubResult};
use crate::domain::Username;

/// A hub user and their default server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUser {
    /// As the hub spells it (hubdesk's names are valid hub names, not always the reverse).
    pub name: String,
    pub admin: bool,
    /// Last activity anywhere in the hub (login, server, API).
    pub last_activity: Option<OffsetDateTime>,
    /// `servers[""]`: `None` when the default server is not running or pending.
    pub server: Option<ServerState>,
}

impl HubUser {
    /// The name as a hubdesk `Username`; `None` for hub users hubdesk could not have made.
    pub fn username(&self) -> Option<Username> {
        Username::parse(&self.name).ok()
    }

    /// The default server answers (ready, nothing pending).
    pub fn running(&self) -> bool {
        self.server.as_ref().is_some_and(ServerState::running)
    }
}

/// The default server as the hub reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub started: Option<OffsetDateTime>,
    pub last_activity: Option<OffsetDateTime>,
    /// `spawn` or `stop` while the hub is at it (also `check`, `rename` in the hub's code).
    pub pending: Option<String>,
    pub ready: bool,
    /// The server's path under the hub's public URL, e.g. `/user/ada/`.
    pub url: String,
}

impl ServerState {
    pub fn running(&self) -> bool {
        self.ready && self.pending.is_none()
    }
}

/// What the token really holds: `doctor` compares it with the role hubdesk needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubInfo {
    pub version: String,
    /// The token's owner: `hubdesk` (`kind` `service`) when configured as shipped.
    pub name: String,
    pub kind: String,
    /// Expanded scopes, sorted (`read:users` brings `read:users:name` and the like).
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// Running now (201), or it already was (400 "already running").
    Started,
    /// The hub is still starting it (202): poll [`super::HubApi::user`] for `ready`.
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// Stopped now, or nothing was running (204).
    Stopped,
    /// The hub is still stopping it (202): [`super::HubApi::wait_stopped`].
    Pending,
}

// --- wire types -------------------------------------------------------------------------

#[derive(Deserialize)]
struct WireUser {
    name: String,
    #[serde(default)]
    admin: bool,
    /// Outer `None`: the key is missing (the role cannot read it); inner: `null` (never active).
    #[serde(default, deserialize_with = "present")]
    last_activity: Option<Option<String>>,
    /// Missing: the role lacks `read:servers` (a user without servers has `{}`).
    #[serde(default)]
    servers: Option<HashMap<String, WireServer>>,
}

#[derive(Deserialize)]
struct WireServer {
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    last_activity: Option<String>,
    #[serde(default)]
    pending: Option<String>,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    url: String,
}

#[derive(Deserialize)]
struct WirePage {
    items: Vec<serde_json::Value>,
    #[serde(rename = "_pagination")]
    pagination: WirePagination,
}

#[derive(Deserialize)]
struct WirePagination {
    offset: u64,
    #[serde(default)]
    next: Option<WireNext>,
}

/// `_pagination.next`; its `url` is built from the request's Host, so hubdesk follows
/// `offset`/`limit` against its own `api_url` instead.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WireNext {
    pub offset: u64,
    pub limit: u64,
}

#[derive(Deserialize)]
struct WireRoot {
    version: String,
}

#[derive(Deserialize)]
struct WireSelf {
    name: String,
    kind: String,
    #[serde(default)]
    scopes: Vec<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn bad_json(what: &str, e: impl std::fmt::Display) -> HubError {
    HubError::Unexpected {
        what: what.to_string(),
        status: 200,
        body: super::error::excerpt(&format!("unreadable JSON: {e}")),
    }
}

fn timestamp(what: &str, raw: Option<String>) -> HubResult<Option<OffsetDateTime>> {
    raw.map(|s| OffsetDateTime::parse(&s, &Rfc3339).map_err(|e| bad_json(what, e)))
        .transpose()
}

fn missing_scope(scope: &str, field: &str) -> HubError {
    HubError::Unauthorized {
        hub_message: format!("the user model has no `{field}`: the hubdesk role lacks {scope}"),
    }
}

fn user_from_wire(what: &str, w: WireUser) -> HubResult<HubUser> {
    let servers = w
        .servers
        .ok_or_else(|| missing_scope("read:servers", "servers"))?;
    let last_activity = w
        .last_activity
        .ok_or_else(|| missing_scope("read:users", "last_activity"))?;
    let server = match servers.into_iter().find(|(name, _)| name.is_empty()) {
        None => None,
        Some((_, s)) => Some(ServerState {
            started: timestamp(what, s.started)?,
            last_activity: timestamp(what, s.last_activity)?,
            pending: s.pending,
            ready: s.ready,
            url: s.url,
        }),
    };
    Ok(HubUser {
        name: w.name,
        admin: w.admin,
        last_activity: timestamp(what, last_activity)?,
        server,
    })
}

/// `GET users/{name}`.
pub(crate) fn parse_user(what: &str, body: &str) -> HubResult<HubUser> {
    let wire: WireUser = serde_json::from_str(body).map_err(|e| bad_json(what, e))?;
    user_from_wire(what, wire)
}

/// One page of `GET users`: its users and where the next page starts. A hub that ignores the
/// pagination header answers a plain list, which is then the whole answer.
pub(crate) fn parse_user_page(
    what: &str,
    body: &str,
) -> HubResult<(Vec<HubUser>, Option<WireNext>)> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| bad_json(what, e))?;
    let (items, next) = if value.is_array() {
        let items: Vec<serde_json::Value> =
            serde_json::from_value(value).map_err(|e| bad_json(what, e))?;
        (items, None)
    } else {
        let page: WirePage = serde_json::from_value(value).map_err(|e| bad_json(what, e))?;
        if let Some(next) = page.pagination.next {
            // A page that does not move forward would be asked for forever.
            if next.offset <= page.pagination.offset || next.limit == 0 {
                return Err(bad_json(what, "_pagination.next does not move forward"));
            }
        }
        (page.items, page.pagination.next)
    };
    let users = items
        .into_iter()
        .map(|item| {
            let wire: WireUser = serde_json::from_value(item).map_err(|e| bad_json(what, e))?;
            user_from_wire(what, wire)
        })
        .collect::<HubResult<Vec<_>>>()?;
    Ok((users, next))
}

/// `GET /` (version, no token needed) and `GET user` (the token's owner and scopes).
pub(crate) fn parse_info(root: &str, me: &str) -> HubResult<HubInfo> {
    let root: WireRoot = serde_json::from_str(root).map_err(|e| bad_json("GET /", e))?;
    let me: WireSelf = serde_json::from_str(me).map_err(|e| bad_json("GET user", e))?;
    let mut scopes = me.scopes;
    scopes.sort();
    Ok(HubInfo {
        version: root.version,
        name: me.name,
        kind: me.kind,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    //! Samples captured from a real JupyterHub 6.1.1 (shipped config, SimpleLocalProcessSpawner)
    //! with the hubdesk service's token.
    use time::macros::datetime;

    use super::*;

    const RUNNING: &str = include_str!("fixtures/user_running.json");
    const SPAWN_PENDING: &str = include_str!("fixtures/user_spawn_pending.json");
    const STOP_PENDING: &str = include_str!("fixtures/user_stop_pending.json");
    const STOPPED: &str = include_str!("fixtures/user_stopped.json");
    const PAGE1: &str = include_str!("fixtures/users_page1.json");
    const PAGE2: &str = include_str!("fixtures/users_page2.json");
    const PLAIN: &str = include_str!("fixtures/users_plain_list.json");
    const ACTIVE: &str = include_str!("fixtures/users_active.json");
    const ROOT: &str = include_str!("fixtures/api_root.json");
    const SELF: &str = include_str!("fixtures/self_service.json");

    #[test]
    fn a_running_server_has_its_times_and_ready() {
        let user = parse_user("t", RUNNING).unwrap();
        assert_eq!(user.name, "bob");
        assert!(!user.admin);
        assert_eq!(user.username().unwrap().as_str(), "bob");
        assert_eq!(
            user.last_activity,
            Some(datetime!(2026-12-01 10:03:23.021714 UTC))
        );
        let server = user.server.as_ref().unwrap();
        assert_eq!(
            server.started,
            Some(datetime!(2026-12-01 10:03:17.318435 UTC))
        );
        assert_eq!(
            server.last_activity,
            Some(datetime!(2026-12-01 10:03:23.021714 UTC))
        );
        assert_eq!(server.pending, None);
        assert!(server.ready);
        assert_eq!(server.url, "/user/bob/");
        assert!(user.running());
    }

    #[test]
    fn a_starting_server_is_pending_spawn_and_not_ready() {
        let user = parse_user("t", SPAWN_PENDING).unwrap();
        let server = user.server.as_ref().unwrap();
        assert_eq!(server.pending.as_deref(), Some("spawn"));
        assert!(!server.ready);
        assert!(server.started.is_some());
        assert!(!user.running());
    }

    #[test]
    fn a_stopping_server_is_pending_stop() {
        let user = parse_user("t", STOP_PENDING).unwrap();
        assert_eq!(user.server.unwrap().pending.as_deref(), Some("stop"));
    }

    #[test]
    fn a_stopped_server_is_gone() {
        let user = parse_user("t", STOPPED).unwrap();
        assert_eq!(user.server, None);
        assert!(user.last_activity.is_some());
        assert!(!user.running());
    }

    #[test]
    fn pages_chain_through_next_offset_and_limit() {
        let (users, next) = parse_user_page("t", PAGE1).unwrap();
        assert_eq!(names(&users), ["ada", "bob"]);
        assert_eq!(
            next,
            Some(WireNext {
                offset: 2,
                limit: 2
            })
        );
        let (users, next) = parse_user_page("t", PAGE2).unwrap();
        assert_eq!(names(&users), ["cyd", "expired-eve"]);
        assert_eq!(next, None);
        // A never-active user: last_activity null, no server.
        assert_eq!(users[0].last_activity, None);
        assert_eq!(users[0].server, None);
    }

    #[test]
    fn a_plain_list_is_the_whole_answer() {
        let (users, next) = parse_user_page("t", PLAIN).unwrap();
        assert_eq!(names(&users), ["ada", "bob", "cyd", "expired-eve"]);
        assert_eq!(next, None);
    }

    #[test]
    fn active_lists_only_users_with_a_server() {
        let (users, _) = parse_user_page("t", ACTIVE).unwrap();
        assert_eq!(names(&users), ["bob"]);
        assert!(users[0].running());
    }

    #[test]
    fn a_page_that_does_not_move_forward_is_refused() {
        let stuck = PAGE1.replace(r#""next": {"offset": 2"#, r#""next": {"offset": 0"#);
        assert!(matches!(
            parse_user_page("t", &stuck),
            Err(HubError::Unexpected { .. })
        ));
    }

    #[test]
    fn a_model_without_servers_is_a_missing_scope_not_stopped() {
        let mut v: serde_json::Value = serde_json::from_str(RUNNING).unwrap();
        v.as_object_mut().unwrap().remove("servers");
        let HubError::Unauthorized { hub_message } = parse_user("t", &v.to_string()).unwrap_err()
        else {
            panic!("not Unauthorized")
        };
        assert!(hub_message.contains("read:servers"), "{hub_message}");
    }

    #[test]
    fn a_model_without_last_activity_is_a_missing_scope() {
        let mut v: serde_json::Value = serde_json::from_str(RUNNING).unwrap();
        v.as_object_mut().unwrap().remove("last_activity");
        let HubError::Unauthorized { hub_message } = parse_user("t", &v.to_string()).unwrap_err()
        else {
            panic!("not Unauthorized")
        };
        assert!(hub_message.contains("read:users"), "{hub_message}");
    }

    #[test]
    fn named_servers_are_not_the_default_server() {
        let mut v: serde_json::Value = serde_json::from_str(RUNNING).unwrap();
        let servers = v["servers"].as_object_mut().unwrap();
        let default = servers.remove("").unwrap();
        servers.insert("gpu".into(), default);
        assert_eq!(parse_user("t", &v.to_string()).unwrap().server, None);
    }

    #[test]
    fn a_bad_timestamp_is_unexpected() {
        let broken = RUNNING.replace("2026-12-01T10:03:17.318435Z", "yesterday");
        assert!(matches!(
            parse_user("t", &broken),
            Err(HubError::Unexpected { .. })
        ));
    }

    #[test]
    fn info_has_the_version_and_the_sorted_scopes() {
        let info = parse_info(ROOT, SELF).unwrap();
        assert_eq!(info.version, "6.1.1");
        assert_eq!(info.name, "hubdesk");
        assert_eq!(info.kind, "service");
        assert!(info.scopes.windows(2).all(|w| w[0] <= w[1]));
        for scope in [
            "list:users",
            "read:users",
            "read:servers",
            "start:servers",
            "delete:servers",
        ] {
            assert!(info.scopes.iter().any(|s| s == scope), "{scope}");
        }
    }

    fn names(users: &[HubUser]) -> Vec<&str> {
        users.iter().map(|u| u.name.as_str()).collect()
    }
}
