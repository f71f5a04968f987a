//! `hubdesk docker-proxy` in front of the real engine of a Docker-in-Docker swarm manager: the
//! cluster desk's own runtime works through it (nodes, notebooks, drain, remove, the join
//! token and its rotation), everything else is refused, and the same calls straight to the
//! engine succeed (the negative control).
use std::{path::PathBuf, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hubdesk::{
    cluster::{ContainerRuntime, DockerRuntime},
    dockerproxy,
};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::cluster_peers::Swarm;

const HUB_TOKEN: &str = "hub-token-of-ana-that-hubdesk-never-needs-42";

/// The proxy on a socket in a directory of its own; stopped and removed on drop.
struct Proxy {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let dir = std::env::temp_dir().join(format!("hubdesk-proxy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        let socket = dir.join("docker.sock");
        let listener = dockerproxy::bind(&socket, 0o600, None).unwrap();
        let task = tokio::spawn(dockerproxy::serve(listener, upstream.parse().unwrap()));
        Proxy { dir, socket, task }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where a raw request goes: the proxy's socket, or the engine itself.
enum To<'a> {
    Proxy(&'a Proxy),
    Engine(&'a str),
}

/// One HTTP/1.1 request with the target exactly as written (no client normalises `..` or
/// `%2e` here): the status and the body as text.
async fn call(to: &To<'_>, method: &str, target: &str, body: Option<Value>) -> (u16, String) {
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(target)
        .header("host", "docker");
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = req.body(Full::new(Bytes::from(body))).unwrap();
    let resp = match to {
        To::Proxy(p) => {
            let s = tokio::net::UnixStream::connect(&p.socket).await.unwrap();
            exchange(s, req).await
        }
        To::Engine(host) => {
            let addr = host.trim_start_matches("tcp://");
            let s = tokio::net::TcpStream::connect(addr).await.unwrap();
            exchange(s, req).await
        }
    };
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn exchange<S>(
    stream: S,
    req: hyper::Request<Full<Bytes>>,
) -> hyper::Response<hyper::body::Incoming>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender.send_request(req).await.unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The proxy's refusal: 403 in the engine's error shape, naming the method and path.
fn assert_refused((status, body): (u16, String), method: &str, path: &str) {
    assert_eq!(status, 403, "{method} {path}: {body}");
    assert_eq!(
        json_of(&body),
        json!({"message": format!("hubdesk docker-proxy: {method} {path} is not allowed")}),
        "{method} {path}"
    );
}

#[tokio::test]
async fn docker_proxy_admits_the_cluster_desk_and_refuses_everything_else() {
    let Some(swarm) = Swarm::up(1).await else {
        return;
    };
    let engine = swarm.docker_host();
    let tiny = swarm.get("HUBDESK_TINY_IMAGE").to_string();
    let proxy = Proxy::start(&engine);
    let direct = DockerRuntime::connect(&engine).await.unwrap();
    let rt = DockerRuntime::connect(&proxy.host())
        .await
        .expect("version negotiation through the proxy");
    let p = To::Proxy(&proxy);
    let e = To::Engine(&engine);

    // The cluster desk's reads.
    assert_eq!(rt.swarm().await.unwrap().state.as_str(), "manager");
    let nodes = rt.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    let worker = nodes
        .iter()
        .find(|n| n.role == hubdesk::cluster::runtime::NodeRole::Worker)
        .unwrap()
        .clone();
    // What the allow-list costs a page view's call (a fresh upstream connection per request).
    let mut took = Vec::new();
    for rt in [&direct, &rt] {
        let t = std::time::Instant::now();
        for _ in 0..50 {
            rt.nodes().await.unwrap();
        }
        took.push(t.elapsed().as_micros() / 50);
    }
    eprintln!(
        "DOCKER-PROXY GET /nodes: {} µs straight, {} µs through the proxy (mean of 50)",
        took[0], took[1]
    );
    assert_eq!(call(&p, "GET", "/_ping", None).await.0, 200);
    assert_eq!(call(&p, "HEAD", "/v1.41/_ping", None).await.0, 200);
    assert_eq!(
        call(&p, "GET", &format!("/v1.41/nodes/{}", worker.id), None)
            .await
            .0,
        200
    );

    // A notebook as the hub makes it, its hub token in the environment.
    let service = json!({
        "Name": "jupyter-ana",
        "Labels": {"hubdesk.user": "ana"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": tiny, "Env": [format!("JUPYTERHUB_API_TOKEN={HUB_TOKEN}")]},
            "Placement": {"Constraints": ["node.role==worker"]}
        },
        "EndpointSpec": {"Mode": "dnsrr"}
    });
    let (status, body) = call(&e, "POST", "/v1.41/services/create", Some(service.clone())).await;
    assert_eq!(status, 201, "{body}");
    let mut tries = 0;
    let notebooks = loop {
        let nb = rt.notebooks().await.unwrap();
        if !nb.is_empty() {
            break nb;
        }
        tries += 1;
        assert!(tries < 60, "no task for jupyter-ana");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(notebooks[0].student, "ana");

    // The environment is absent through the proxy, present straight from the engine.
    for path in ["/v1.41/services", "/v1.41/tasks"] {
        let (status, through) = call(&p, "GET", path, None).await;
        assert_eq!(status, 200);
        assert!(
            through.contains("jupyter-ana") || through.contains("ServiceID"),
            "{through}"
        );
        assert!(
            !through.contains(HUB_TOKEN),
            "{path} through the proxy: {through}"
        );
        let (status, straight) = call(&e, "GET", path, None).await;
        assert_eq!(status, 200);
        assert!(
            straight.contains(HUB_TOKEN),
            "{path} straight from the engine"
        );
    }
    // So is the manager join token; the worker token (the desk's) stays.
    let swarm_through = json_of(&call(&p, "GET", "/v1.41/swarm", None).await.1);
    let swarm_straight = json_of(&call(&e, "GET", "/v1.41/swarm", None).await.1);
    assert!(swarm_through["JoinTokens"].get("Manager").is_none());
    assert!(swarm_straight["JoinTokens"]["Manager"].is_string());
    assert_eq!(
        swarm_through["JoinTokens"]["Worker"],
        swarm_straight["JoinTokens"]["Worker"]
    );
    let manager_token = swarm_straight["JoinTokens"]["Manager"].clone();

    // Refused through the proxy, each with the engine's error shape.
    let (status, body) = call(
        &e,
        "POST",
        "/v1.41/containers/create?name=hubdesk-proxy-control",
        Some(json!({"Image": tiny, "Cmd": ["sleep", "120"]})),
    )
    .await;
    assert_eq!(status, 201, "the negative control: {body}");
    let control = json_of(&body)["Id"].as_str().unwrap().to_string();
    assert_eq!(
        call(
            &e,
            "POST",
            &format!("/v1.41/containers/{control}/start"),
            None
        )
        .await
        .0,
        204
    );
    let create = json!({"Image": tiny, "Cmd": ["sleep", "1"]});
    assert_refused(
        call(&p, "POST", "/v1.41/containers/create", Some(create.clone())).await,
        "POST",
        "/v1.41/containers/create",
    );
    let mut other_service = service.clone();
    other_service["Name"] = json!("jupyter-mallory");
    assert_refused(
        call(
            &p,
            "POST",
            "/v1.41/services/create",
            Some(other_service.clone()),
        )
        .await,
        "POST",
        "/v1.41/services/create",
    );
    let exec = json!({"Cmd": ["id"], "AttachStdout": true});
    let exec_path = format!("/v1.41/containers/{control}/exec");
    assert_refused(
        call(&p, "POST", &exec_path, Some(exec.clone())).await,
        "POST",
        &exec_path,
    );
    assert_refused(
        call(&p, "GET", "/v1.41/containers/json?", None).await,
        "GET",
        "/v1.41/containers/json",
    );
    for tricky in [
        "/v1.41/nodes/../containers/create",
        "/v1.41/nodes/%2e%2e/containers/create",
        "/v1.41/nodes/%2E%2E/containers/create",
        "/v1.41/nodes%2f..%2fcontainers/create",
    ] {
        assert_refused(
            call(&p, "POST", tricky, Some(create.clone())).await,
            "POST",
            tricky,
        );
    }
    // Through bollard, the reason reaches the caller.
    let err = rt
        .docker()
        .unwrap()
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            bollard::models::ContainerCreateBody {
                image: Some(tiny.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not allowed"), "{err}");

    // A promotion, a spec change, a manager token rotation: refused, nothing changed.
    let node = json_of(
        &call(&e, "GET", &format!("/v1.41/nodes/{}", worker.id), None)
            .await
            .1,
    );
    let version = node["Version"]["Index"].as_u64().unwrap();
    let mut promote = node["Spec"].clone();
    promote["Role"] = json!("manager");
    let update = format!("/v1.41/nodes/{}/update?version={version}", worker.id);
    let (status, body) = call(&p, "POST", &update, Some(promote)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("role"), "{body}");
    let spec = swarm_straight["Spec"].clone();
    let version = swarm_straight["Version"]["Index"].as_u64().unwrap();
    let mut changed = spec.clone();
    changed["Dispatcher"]["HeartbeatPeriod"] = json!(60_000_000_000u64);
    let rotate = format!("/v1.41/swarm/update?version={version}&rotateWorkerToken=true");
    let (status, body) = call(&p, "POST", &rotate, Some(changed)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Dispatcher"), "{body}");
    let both = format!("{rotate}&rotateManagerToken=true");
    assert_refused(
        call(&p, "POST", &both, Some(spec.clone())).await,
        "POST",
        "/v1.41/swarm/update",
    );

    // Straight to the engine the same calls work (then everything made is removed).
    let (status, body) = call(&e, "POST", &exec_path, Some(exec)).await;
    assert_eq!(status, 201, "exec straight to the engine: {body}");
    assert_eq!(
        call(&e, "GET", "/v1.41/containers/json?", None).await.0,
        200
    );
    let (status, body) = call(&e, "POST", "/v1.41/services/create", Some(other_service)).await;
    assert_eq!(status, 201, "{body}");
    let mallory = json_of(&body)["ID"].as_str().unwrap().to_string();
    assert_eq!(
        call(&e, "DELETE", &format!("/v1.41/services/{mallory}"), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &e,
            "DELETE",
            &format!("/v1.41/containers/{control}?force=true"),
            None
        )
        .await
        .0,
        204
    );
    let (_, listed) = call(&e, "GET", "/v1.41/containers/json?all=true", None).await;
    assert!(!listed.contains("hubdesk-proxy-control"), "{listed}");
    let after = json_of(&call(&e, "GET", "/v1.41/swarm", None).await.1);
    assert_eq!(
        after["JoinTokens"]["Manager"], manager_token,
        "manager token unchanged"
    );
    assert_eq!(after["Spec"], spec, "swarm spec unchanged");
    let roles: Vec<String> = direct
        .nodes()
        .await
        .unwrap()
        .iter()
        .map(|n| n.role.as_str().to_string())
        .collect();
    assert_eq!(
        roles.iter().filter(|r| *r == "manager").count(),
        1,
        "{roles:?}"
    );

    // The desk's writes: rotate the worker token, drain and remove the worker.
    let before = rt.join_info().await.unwrap().token.expose_secret().clone();
    rt.rotate_worker_token()
        .await
        .expect("rotation through the proxy");
    let rotated = direct
        .join_info()
        .await
        .unwrap()
        .token
        .expose_secret()
        .clone();
    assert_ne!(before, rotated);
    let after = json_of(&call(&e, "GET", "/v1.41/swarm", None).await.1);
    assert_eq!(after["Spec"], spec, "only the token changed");
    assert_eq!(after["JoinTokens"]["Manager"], manager_token);
    rt.drain(&worker.id).await.expect("drain through the proxy");
    let drained = direct.nodes().await.unwrap();
    let w = drained.iter().find(|n| n.id == worker.id).unwrap();
    assert_eq!(
        (w.availability.as_str(), w.role.as_str()),
        ("drain", "worker")
    );
    rt.remove_node(&worker.id, true)
        .await
        .expect("node rm through the proxy");
    assert!(!direct
        .nodes()
        .await
        .unwrap()
        .iter()
        .any(|n| n.id == worker.id));
    assert_eq!(
        call(&e, "DELETE", "/v1.41/services/jupyter-ana", None)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn docker_proxy_command_serves_its_socket_and_prints_its_unit() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let bin = env!("CARGO_BIN_EXE_hubdesk");
    let unit = std::process::Command::new(bin)
        .args(["docker-proxy", "--print-unit"])
        .output()
        .unwrap();
    assert!(unit.status.success());
    let unit = String::from_utf8(unit.stdout).unwrap();
    assert_eq!(unit, dockerproxy::UNIT);
    assert!(unit.contains(
        "hubdesk docker-proxy --listen /run/hubdesk/docker.sock --mode 0660 --group 100"
    ));

    // An engine that is not there: the calls it admits get a plain 502, the rest a 403.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let dir = std::env::temp_dir().join(format!("hubdesk-proxy-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let socket = dir.join("docker.sock");
    let gid = std::fs::metadata(&dir).unwrap().gid();
    let child = tokio::process::Command::new(bin)
        .args(["docker-proxy", "--listen"])
        .arg(&socket)
        .args(["--mode", "0640", "--group", &gid.to_string()])
        .args(["--upstream", &format!("tcp://127.0.0.1:{port}")])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut tries = 0;
    while !socket.exists() {
        tries += 1;
        assert!(tries < 100, "no socket");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let meta = std::fs::metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.gid(), gid);
    let proxy = Proxy {
        dir: dir.clone(),
        socket: socket.clone(),
        task: tokio::spawn(async { Ok(()) }),
    };
    let (status, body) = call(&To::Proxy(&proxy), "GET", "/v1.41/info", None).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        json_of(&body)["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!(
                "hubdesk docker-proxy: the engine at tcp://127.0.0.1:{port}"
            )),
        "{body}"
    );
    assert_refused(
        call(
            &To::Proxy(&proxy),
            "POST",
            "/v1.41/containers/create",
            Some(json!({})),
        )
        .await,
        "POST",
        "/v1.41/containers/create",
    );

    // SIGTERM: it stops, removes its socket, and its log names the refusal.
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("stops on SIGTERM")
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("docker-proxy refused") && log.contains("/v1.41/containers/create"),
        "{log}"
    );
    assert!(!socket.exists());
}
