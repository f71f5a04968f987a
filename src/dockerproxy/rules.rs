//! The allow-list: which requests reach the engine, as a pure function of the method and the
//! request target. Exactly the calls hubdesk's cluster desk makes (`cluster::runtime`, the
//! `doctor` check through it, bollard's version negotiation), with the API version prefix
//! optional:
//!
//! | request | why hubdesk makes it |
//! | --- | --- |
//! | `GET`/`HEAD /_ping`, `GET /version` | health, version negotiation |
//! | `GET /info` | the swarm state of the engine |
//! | `GET /swarm` | the worker join token (the manager token is stripped from the answer) |
//! | `GET /nodes`, `GET /nodes/{id}` | the nodes; a node's spec before a drain |
//! | `GET /services`, `GET /tasks` | students per node (every `Env` stripped from the answer) |
//! | `POST /nodes/{id}/update?version=N` | drain: the node's spec with another availability only |
//! | `DELETE /nodes/{id}[?force=…]` | remove a drained worker |
//! | `POST /swarm/update?version=N&rotateWorkerToken=true` | rotate the worker join token, the spec unchanged |
//!
//! Anything else — containers, exec, images, services create/update, secrets, plugins,
//! promotions — is refused. Paths are matched as written, never decoded or normalised: a
//! `%`, a `\`, an empty, `.` or `..` segment is refused outright, so no spelling of a path can
//! mean one thing here and another to the engine. Queries are parsed and only known keys kept;
//! the query sent upstream is rebuilt from the parsed values.
use url::form_urlencoded;

/// One allowed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Ping,
    Version,
    Info,
    /// `GET /swarm`: the answer loses `JoinTokens.Manager`.
    Swarm,
    Nodes,
    Node(String),
    /// `GET /services`: the answer loses every `Env`.
    Services,
    /// `GET /tasks`: the answer loses every `Env`.
    Tasks,
    /// `POST /nodes/{id}/update`: only with the node's current spec but its availability.
    UpdateNode {
        id: String,
        version: u64,
    },
    RemoveNode {
        id: String,
    },
    /// `POST /swarm/update`: only with the current spec, rotating the worker token only.
    RotateWorkerToken {
        version: u64,
    },
}

impl Call {
    /// The answer must be read whole and rewritten before it goes back.
    pub fn filters_answer(&self) -> bool {
        matches!(self, Self::Swarm | Self::Services | Self::Tasks)
    }
}

/// A request the allow-list admits, and what to send upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub call: Call,
    /// `/v1.41` or empty: the client's API version prefix, passed on.
    pub prefix: String,
    /// The path and query to send upstream: the prefix, the route as matched, and a query
    /// rebuilt from the parsed values only.
    pub target: String,
}

/// Why a request is refused (for the log; the client gets the engine-shaped 403).
pub type Reason = String;

/// Matches one request. `target` is the request target as received (path and query).
pub fn classify(method: &str, target: &str) -> Result<Allowed, Reason> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let segments = segments(path)?;
    let (prefix, route) = match segments.first() {
        Some(first) if is_api_version(first) => (format!("/{first}"), &segments[1..]),
        _ => (String::new(), &segments[..]),
    };
    let query = Query::parse(query.unwrap_or(""))?;
    let route: Vec<&str> = route.iter().map(String::as_str).collect();
    let (call, kept) = match (method, route.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => (Call::Ping, query.only(&[])?),
        ("GET", ["version"]) => (Call::Version, query.only(&[])?),
        ("GET", ["info"]) => (Call::Info, query.only(&[])?),
        ("GET", ["swarm"]) => (Call::Swarm, query.only(&[])?),
        ("GET", ["nodes"]) => (Call::Nodes, query.only(&["filters"])?),
        ("GET", ["nodes", id]) => (Call::Node(object_id(id)?), query.only(&[])?),
        ("GET", ["services"]) => (
            Call::Services,
            query.only(&["filters", "status", "insertDefaults"])?,
        ),
        ("GET", ["tasks"]) => (Call::Tasks, query.only(&["filters"])?),
        ("DELETE", ["nodes", id]) => {
            let kept = query.only(&["force"])?;
            if let Some(force) = query.get("force") {
                parse_bool(force).ok_or_else(|| format!("force={force:?} is not a boolean"))?;
            }
            (Call::RemoveNode { id: object_id(id)? }, kept)
        }
        ("POST", ["nodes", id, "update"]) => {
            query.only(&["version"])?;
            let version = query.version()?;
            let call = Call::UpdateNode {
                id: object_id(id)?,
                version,
            };
            (call, vec![("version".into(), version.to_string())])
        }
        ("POST", ["swarm", "update"]) => {
            query.only(&[
                "version",
                "rotateWorkerToken",
                "rotateManagerToken",
                "rotateManagerUnlockKey",
            ])?;
            let version = query.version()?;
            if query.get("rotateWorkerToken").and_then(parse_bool) != Some(true) {
                return Err("a swarm update must rotate the worker token".into());
            }
            for flag in ["rotateManagerToken", "rotateManagerUnlockKey"] {
                if let Some(v) = query.get(flag) {
                    if parse_bool(v) != Some(false) {
                        return Err(format!("{flag}={v:?} is not allowed"));
                    }
                }
            }
            let kept = vec![
                ("version".into(), version.to_string()),
                ("rotateWorkerToken".into(), "true".into()),
            ];
            (Call::RotateWorkerToken { version }, kept)
        }
        _ => return Err("not a call the cluster desk makes".into()),
    };
    let mut target = prefix.clone();
    for s in &route {
        target.push('/');
        target.push_str(s);
    }
    if !kept.is_empty() {
        target.push('?');
        target.push_str(
            &form_urlencoded::Serializer::new(String::new())
                .extend_pairs(kept)
                .finish(),
        );
    }
    Ok(Allowed {
        call,
        prefix,
        target,
    })
}

/// The path's segments, refusing every spelling that a server could read differently.
fn segments(path: &str) -> Result<Vec<String>, Reason> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("the path does not start with /".into());
    };
    if let Some(b) = rest
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || b"/._-".contains(b)))
    {
        return Err(format!("the path holds {:?}", b as char));
    }
    let segments: Vec<String> = rest.split('/').map(str::to_string).collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("an empty, . or .. path segment".into());
    }
    Ok(segments)
}

/// `v1.41`
fn is_api_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return false;
    };
    let digits = |p: &str| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// A node id or name: what the engine accepts in `/nodes/{id}`, without any `/`.
fn object_id(s: &str) -> Result<String, Reason> {
    let ok = s.len() <= 128
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a node id"))
    }
}

/// Go's `strconv.ParseBool`, which the engine uses for its flags.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// A query as (decoded) pairs; a key given twice is refused (servers differ in which one wins).
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Result<Self, Reason> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(format!("the query gives {k:?} twice"));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(pairs))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs, when every key is one of `allowed`.
    fn only(&self, allowed: &[&str]) -> Result<Vec<(String, String)>, Reason> {
        match self.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("the query key {k:?} is not allowed here")),
            None => Ok(self.0.clone()),
        }
    }

    fn version(&self) -> Result<u64, Reason> {
        let v = self.get("version").ok_or("no version in the query")?;
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("version={v:?} is not a number"));
        }
        v.parse().map_err(|_| format!("version={v:?} is too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(method: &str, target: &str) -> Allowed {
        classify(method, target).unwrap_or_else(|r| panic!("{method} {target}: {r}"))
    }

    fn refused(method: &str, target: &str) -> Reason {
        match classify(method, target) {
            Ok(a) => panic!("{method} {target} was allowed as {a:?}"),
            Err(r) => r,
        }
    }

    #[test]
    fn dockerproxy_admits_what_the_cluster_desk_calls_with_or_without_a_version() {
        for (m, t, call) in [
            ("GET", "/_ping", Call::Ping),
            ("HEAD", "/_ping", Call::Ping),
            ("GET", "/version", Call::Version),
            ("GET", "/v1.41/info", Call::Info),
            ("GET", "/v1.53/swarm", Call::Swarm),
            ("GET", "/v1.41/nodes", Call::Nodes),
            (
                "GET",
                "/v1.41/nodes/9ib81ot6uwdeptrticknz3ro8",
                Call::Node("9ib81ot6uwdeptrticknz3ro8".into()),
            ),
            (
                "GET",
                "/v1.41/services?filters=%7B%22name%22%3A%5B%22jupyter-%22%5D%7D",
                Call::Services,
            ),
            (
                "GET",
                "/tasks?filters=%7B%22desired-state%22%3A%5B%22running%22%5D%7D",
                Call::Tasks,
            ),
            (
                "DELETE",
                "/v1.41/nodes/abc?force=true",
                Call::RemoveNode { id: "abc".into() },
            ),
            (
                "POST",
                "/v1.41/nodes/abc/update?version=12",
                Call::UpdateNode {
                    id: "abc".into(),
                    version: 12,
                },
            ),
        ] {
            assert_eq!(allowed(m, t).call, call, "{m} {t}");
        }
        let a = allowed(
            "POST",
            "/v1.41/swarm/update?version=10&rotateWorkerToken=true&rotateManagerToken=false&rotateManagerUnlockKey=false",
        );
        assert_eq!(a.call, Call::RotateWorkerToken { version: 10 });
        assert_eq!(a.prefix, "/v1.41");
        assert_eq!(
            a.target,
            "/v1.41/swarm/update?version=10&rotateWorkerToken=true"
        );
        assert_eq!(
            allowed(
                "GET",
                "/v1.41/services?filters=%7B%22name%22%3A%5B%22jupyter-%22%5D%7D"
            )
            .target,
            "/v1.41/services?filters=%7B%22name%22%3A%5B%22jupyter-%22%5D%7D",
            "the query is rebuilt to the same bytes"
        );
        assert_eq!(allowed("GET", "/info").target, "/info");
    }

    #[test]
    fn dockerproxy_refuses_every_other_call() {
        for (m, t) in [
            ("POST", "/v1.41/containers/create"),
            ("POST", "/containers/create?name=x"),
            ("GET", "/v1.41/containers/json?all=1"),
            ("GET", "/containers/json?"),
            ("POST", "/v1.41/containers/abc/exec"),
            ("POST", "/v1.41/exec/abc/start"),
            ("POST", "/v1.41/services/create"),
            ("POST", "/v1.41/services/abc/update?version=3"),
            ("GET", "/v1.41/services/abc"),
            ("DELETE", "/v1.41/services/abc"),
            ("GET", "/v1.41/secrets"),
            ("POST", "/v1.41/images/create?fromImage=x"),
            ("POST", "/v1.41/swarm/init"),
            ("POST", "/v1.41/swarm/leave?force=1"),
            ("POST", "/v1.41/swarm/join"),
            ("GET", "/v1.41/swarm/unlockkey"),
            ("POST", "/v1.41/plugins/pull"),
            ("GET", "/v1.41/events"),
            ("POST", "/v1.41/nodes/abc"),
            ("PUT", "/v1.41/nodes/abc/update?version=1"),
            ("DELETE", "/v1.41/nodes"),
            ("POST", "/v1.41/info"),
            ("HEAD", "/v1.41/info"),
            ("GET", "/v1.41/nodes/abc/update"),
        ] {
            refused(m, t);
        }
    }

    #[test]
    fn dockerproxy_refuses_path_tricks() {
        for t in [
            "/v1.41/nodes/../containers/create",
            "/v1.41/nodes/%2e%2e/containers/create",
            "/v1.41/nodes/%2E%2E/containers/create",
            "/v1.41/nodes%2f..%2fcontainers/create",
            "/v1.41/./containers/create",
            "/v1.41//nodes",
            "/v1.41/nodes/",
            "/nodes/..",
            "/v1.41/nodes/a\\..\\b",
            "nodes",
            "/v1.41/nodes/abc%00",
            "/v1.41/nodes/.hidden",
            "/v1.41/v1.41/nodes",
            "/v1.41.0/nodes",
            "/V1.41/nodes",
        ] {
            let why = refused("GET", t);
            assert!(!why.is_empty(), "{t}");
        }
        assert!(refused("GET", "/v1.41/nodes/%2e%2e/x").contains('%'));
        assert!(refused("GET", "/v1.41/nodes/../x").contains(".."));
    }

    #[test]
    fn dockerproxy_refuses_rotations_and_queries_it_does_not_make() {
        for t in [
            "/v1.41/swarm/update?version=10",
            "/v1.41/swarm/update?version=10&rotateWorkerToken=false",
            "/v1.41/swarm/update?version=10&rotateWorkerToken=true&rotateManagerToken=true",
            "/v1.41/swarm/update?version=10&rotateWorkerToken=true&rotateManagerToken=1",
            "/v1.41/swarm/update?version=10&rotateWorkerToken=true&rotateManagerUnlockKey=true",
            "/v1.41/swarm/update?version=10&rotateWorkerToken=true&rotateManagerToken=maybe",
            "/v1.41/swarm/update?rotateWorkerToken=true",
            "/v1.41/swarm/update?version=-1&rotateWorkerToken=true",
            "/v1.41/swarm/update?version=10&rotateWorkerToken=true&rotateWorkerToken=true",
            "/v1.41/swarm/update?version=10&version=11&rotateWorkerToken=true",
            "/v1.41/swarm/update?version=10&rotateWorkerToken=true&other=1",
        ] {
            refused("POST", t);
        }
        refused("POST", "/v1.41/nodes/abc/update");
        refused("POST", "/v1.41/nodes/abc/update?version=1&role=manager");
        refused("DELETE", "/v1.41/nodes/abc?force=please");
        refused("GET", "/v1.41/info?x=1");
        refused("GET", "/v1.41/nodes?filters=a&filters=b");
    }
}
