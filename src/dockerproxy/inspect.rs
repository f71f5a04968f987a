//! What the proxy reads inside bodies (pure functions over JSON): the two writes it admits
//! only with an unchanged spec, and the answers it strips of secrets hubdesk never needs.
use serde_json::Value;

/// Largest request body read for the two inspected writes (a node's or the swarm's spec is a
/// few hundred bytes; the swarm's can carry external CA certificates).
pub const MAX_REQUEST_BODY: usize = 256 * 1024;
/// Largest answer read whole to strip it (`GET /services` of a camp of 500 notebooks is
/// about 2 MB).
pub const MAX_FILTERED_ANSWER: usize = 64 * 1024 * 1024;

/// Why an inspected write is not forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// 400: the body is not a JSON object.
    #[error("{0}")]
    BadBody(String),
    /// 403: it changes what the cluster desk never changes.
    #[error("{0}")]
    Forbidden(String),
    /// 409: the version is not the object's current one (the engine would refuse it too).
    #[error("{0}")]
    Stale(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Self::BadBody(_) => 400,
            Self::Forbidden(_) => 403,
            Self::Stale(_) => 409,
        }
    }
}

fn object(body: &[u8]) -> Result<Value, Refusal> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Refusal::BadBody(format!("the body is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Refusal::BadBody("the body is not a JSON object".into()));
    }
    Ok(v)
}

/// `null` and an absent member mean the same to the engine; clients differ in which they send.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn current_version(inspected: &Value, what: &str, version: u64) -> Result<Value, Refusal> {
    let now = inspected
        .pointer("/Version/Index")
        .and_then(Value::as_u64)
        .ok_or_else(|| Refusal::Forbidden(format!("the engine's {what} has no version")))?;
    if now != version {
        return Err(Refusal::Stale(format!(
            "update out of sequence: version {version}, the {what} is at {now}"
        )));
    }
    Ok(without_nulls(inspected.get("Spec").unwrap_or(&Value::Null)))
}

/// `POST /nodes/{id}/update`: admitted when `version` is the node's current one, the body's
/// `Role` is the node's role (no promotion, no demotion) and nothing but `Availability`
/// differs from the node's spec (labels steer where notebooks run). `inspected` is the
/// engine's `GET /nodes/{id}`. Returns the body to send: the request's, re-serialised, so the
/// engine reads exactly the members compared here.
pub fn node_update(inspected: &Value, version: u64, body: &[u8]) -> Result<Vec<u8>, Refusal> {
    let spec = current_version(inspected, "node", version)?;
    let asked = without_nulls(&object(body)?);
    if asked.get("Role") != spec.get("Role") {
        return Err(Refusal::Forbidden(format!(
            "the node update changes its role from {} to {}",
            spec.get("Role").unwrap_or(&Value::Null),
            asked.get("Role").unwrap_or(&Value::Null)
        )));
    }
    match asked.get("Availability").and_then(Value::as_str) {
        Some("active" | "pause" | "drain") => {}
        _ => {
            return Err(Refusal::Forbidden(
                "the node update sets no availability the cluster desk uses".into(),
            ))
        }
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("Availability");
        }
        v
    };
    if strip(&asked) != strip(&spec) {
        return Err(Refusal::Forbidden(
            "the node update changes more than the node's availability".into(),
        ));
    }
    Ok(serde_json::to_vec(&asked).expect("JSON serialises"))
}

/// `POST /swarm/update`: admitted when `version` is the swarm's current one and the body is
/// the swarm's current spec, unchanged (no CA, raft, dispatcher or autolock change; the query
/// rules already allow only the worker token's rotation). `inspected` is the engine's
/// `GET /swarm`.
pub fn swarm_update(inspected: &Value, version: u64, body: &[u8]) -> Result<Vec<u8>, Refusal> {
    let spec = current_version(inspected, "swarm", version)?;
    let asked = without_nulls(&object(body)?);
    if asked != spec {
        let changed: Vec<String> = match (asked.as_object(), spec.as_object()) {
            (Some(a), Some(s)) => {
                let mut keys: Vec<String> = a
                    .keys()
                    .chain(s.keys())
                    .filter(|k| a.get(*k) != s.get(*k))
                    .cloned()
                    .collect();
                keys.sort();
                keys.dedup();
                keys
            }
            _ => Vec::new(),
        };
        return Err(Refusal::Forbidden(format!(
            "the swarm update changes the swarm's spec ({})",
            changed.join(", ")
        )));
    }
    Ok(serde_json::to_vec(&asked).expect("JSON serialises"))
}

/// Removes the member at `pointer`'s last segment from the object its parent points at.
fn remove(v: &mut Value, parent: &str, key: &str) {
    if let Some(Value::Object(m)) = v.pointer_mut(parent) {
        m.remove(key);
    }
}

/// `GET /services`: every service without its containers' environment (the hub puts each
/// notebook's API token there), in the current and the previous spec.
pub fn services_answer(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    for s in v.as_array_mut().ok_or("not a list of services")? {
        remove(s, "/Spec/TaskTemplate/ContainerSpec", "Env");
        remove(s, "/PreviousSpec/TaskTemplate/ContainerSpec", "Env");
    }
    Ok(serde_json::to_vec(&v).expect("JSON serialises"))
}

/// `GET /tasks`: every task without its container's environment.
pub fn tasks_answer(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    for t in v.as_array_mut().ok_or("not a list of tasks")? {
        remove(t, "/Spec/ContainerSpec", "Env");
    }
    Ok(serde_json::to_vec(&v).expect("JSON serialises"))
}

/// `GET /swarm`: without the manager join token (a machine holding it joins as a manager).
pub fn swarm_answer(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !v.is_object() {
        return Err("not a swarm".into());
    }
    remove(&mut v, "/JoinTokens", "Manager");
    Ok(serde_json::to_vec(&v).expect("JSON serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Value {
        json!({"ID": "n1", "Version": {"Index": 21},
               "Spec": {"Labels": {}, "Role": "worker", "Availability": "active"},
               "Status": {"State": "ready"}})
    }

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn dockerproxy_node_update_may_change_the_availability_only() {
        let drain = bytes(json!({"Labels": {}, "Role": "worker", "Availability": "drain"}));
        let sent = node_update(&node(), 21, &drain).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&sent).unwrap()["Availability"],
            "drain"
        );
        // nulls are absent members (bollard leaves them out, other clients send them)
        let with_null =
            bytes(json!({"Labels": {}, "Name": null, "Role": "worker", "Availability": "drain"}));
        assert!(node_update(&node(), 21, &with_null).is_ok());

        let promote = bytes(json!({"Labels": {}, "Role": "manager", "Availability": "active"}));
        let e = node_update(&node(), 21, &promote).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.to_string().contains("role"), "{e}");
        // Go matches member names without regard to case: a second "role" must not pass.
        let sneaky = bytes(
            json!({"Labels": {}, "Role": "worker", "role": "manager", "Availability": "drain"}),
        );
        assert_eq!(node_update(&node(), 21, &sneaky).unwrap_err().status(), 403);
        let labels =
            bytes(json!({"Labels": {"gpu": "yes"}, "Role": "worker", "Availability": "active"}));
        assert_eq!(node_update(&node(), 21, &labels).unwrap_err().status(), 403);
        let no_role = bytes(json!({"Labels": {}, "Availability": "drain"}));
        assert_eq!(
            node_update(&node(), 21, &no_role).unwrap_err().status(),
            403
        );
        let odd = bytes(json!({"Labels": {}, "Role": "worker", "Availability": "gone"}));
        assert_eq!(node_update(&node(), 21, &odd).unwrap_err().status(), 403);

        assert_eq!(node_update(&node(), 20, &drain).unwrap_err().status(), 409);
        assert_eq!(
            node_update(&node(), 21, b"not json").unwrap_err().status(),
            400
        );
        assert_eq!(node_update(&node(), 21, b"[1]").unwrap_err().status(), 400);
    }

    fn swarm() -> Value {
        json!({"ID": "s", "Version": {"Index": 10},
               "Spec": {"Name": "default", "Labels": {},
                        "Orchestration": {"TaskHistoryRetentionLimit": 5},
                        "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0,
                                 "LogEntriesForSlowFollowers": 500, "ElectionTick": 10,
                                 "HeartbeatTick": 1},
                        "Dispatcher": {"HeartbeatPeriod": 5000000000u64},
                        "CAConfig": {"NodeCertExpiry": 7776000000000000u64},
                        "TaskDefaults": {}, "EncryptionConfig": {"AutoLockManagers": false}},
               "JoinTokens": {"Worker": "SWMTKN-1-w", "Manager": "SWMTKN-1-m"}})
    }

    #[test]
    fn dockerproxy_swarm_update_only_with_the_current_spec() {
        let spec = swarm()["Spec"].clone();
        assert!(swarm_update(&swarm(), 10, &bytes(spec.clone())).is_ok());
        assert_eq!(
            swarm_update(&swarm(), 9, &bytes(spec.clone()))
                .unwrap_err()
                .status(),
            409
        );
        let mut ca = spec.clone();
        ca["CAConfig"]["NodeCertExpiry"] = json!(3600000000000u64);
        let e = swarm_update(&swarm(), 10, &bytes(ca)).unwrap_err();
        assert_eq!(e.status(), 403);
        assert!(e.to_string().contains("CAConfig"), "{e}");
        let mut autolock = spec.clone();
        autolock["EncryptionConfig"]["AutoLockManagers"] = json!(true);
        assert_eq!(
            swarm_update(&swarm(), 10, &bytes(autolock))
                .unwrap_err()
                .status(),
            403
        );
        let mut extra = spec;
        extra["raft"] = json!({"ElectionTick": 3});
        assert_eq!(
            swarm_update(&swarm(), 10, &bytes(extra))
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn dockerproxy_answers_lose_environments_and_the_manager_token() {
        let services = bytes(json!([
            {"ID": "s1", "Spec": {"Name": "jupyter-ana",
                "TaskTemplate": {"ContainerSpec": {"Image": "nb", "Env": ["JUPYTERHUB_API_TOKEN=secret-1"]}}},
             "PreviousSpec": {"Name": "jupyter-ana",
                "TaskTemplate": {"ContainerSpec": {"Image": "nb", "Env": ["JUPYTERHUB_API_TOKEN=secret-0"]}}}},
            {"ID": "s2", "Spec": {"Name": "plain", "TaskTemplate": {}}}
        ]));
        let out = String::from_utf8(services_answer(&services).unwrap()).unwrap();
        assert!(!out.contains("secret-"), "{out}");
        assert!(
            out.contains("jupyter-ana") && out.contains("\"Image\":\"nb\""),
            "{out}"
        );
        let tasks = bytes(
            json!([{"ID": "t1", "Spec": {"ContainerSpec": {"Env": ["T=secret-2"], "Image": "nb"}}}]),
        );
        let out = String::from_utf8(tasks_answer(&tasks).unwrap()).unwrap();
        assert!(
            !out.contains("secret-2") && out.contains("\"Image\":\"nb\""),
            "{out}"
        );
        let out = String::from_utf8(swarm_answer(&bytes(swarm())).unwrap()).unwrap();
        assert!(
            !out.contains("SWMTKN-1-m") && out.contains("SWMTKN-1-w"),
            "{out}"
        );
        assert!(services_answer(b"{}").is_err());
    }
}
