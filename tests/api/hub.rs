//! The hub client (`hubdesk::hub::RestHub`) against a real JupyterHub 6.1.1 started from the
//! e2e venv (`$HUBDESK_VENV`, default `~/.cache/hubdesk/venv`; `scripts/e2e-deps.sh` makes it)
//! with the shipped `deploy/jupyterhub_config.py`: configurable-http-proxy from the venv,
//! `SimpleLocalProcessSpawner` running `jupyterhub-singleuser` (jupyter_server) for real, and
//! the `hubdesk` service with the role the shipped config declares.
//!
//! Without a usable venv the hub test fails when `CI` is set and is skipped loudly otherwise.
use std::{
    collections::BTreeSet,
    net::TcpListener,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hubdesk::{
    domain::Username,
    hub::{HubApi, HubError, HubUser, RestHub, StartOutcome, StopOutcome},
};
use secrecy::SecretString;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The role `deploy/jupyterhub_config.py` gives the `hubdesk` service, as hubdesk needs it.
pub(crate) const ROLE: [&str; 5] = [
    "list:users",
    "read:users",
    "read:servers",
    "start:servers",
    "delete:servers",
];

/// What the hub expands ROLE to (`GET /hub/api/user` of the service's token).
const EXPANDED: [&str; 8] = [
    "delete:servers",
    "list:users",
    "read:servers",
    "read:users",
    "read:users:activity",
    "read:users:groups",
    "read:users:name",
    "start:servers",
];

/// The users the test creates: five, with the hub's page size at 2, so listing takes 3 pages.
const USERS: [&str; 5] = ["ada", "bob", "cyd", "dee", "eve"];

/// Upper bound for a server to start or stop on a loaded machine (seen: 3–6 s).
const SERVER_PATIENCE: Duration = Duration::from_secs(90);

const FIXTURE_RUNNING: &str = include_str!("../../src/hub/fixtures/user_running.json");

/// Loaded last by the shipped config (HUB_EXTRA_CONFIG): test-only services, small pages, a
/// spawner that really runs, and stops that answer 202 at once (slow_stop_timeout 0) so the
/// "still stopping" path is taken every time, as a slow container stop takes it in a camp.
const EXTRA_CONFIG: &str = r#"
import json, os

# Creates the test's users (hubdesk itself never holds admin:users).
c.JupyterHub.services.append({"name": "test-admin", "api_token": os.environ["T_ADMIN_TOKEN"]})
c.JupyterHub.load_roles.append(
    {"name": "test-admin", "scopes": ["admin:users", "access:servers"], "services": ["test-admin"]}
)
# The hubdesk role minus one scope each: every scope of the role is needed. (The shipped role
# cannot be read here: a subconfig's lists are lazy appends. The test checks that ROLE expands
# to exactly what the shipped role gives the hubdesk token.)
for scope, (token, scopes) in json.loads(os.environ["T_MINUS_TOKENS"]).items():
    name = "minus-" + scope.replace(":", "-")
    c.JupyterHub.services.append({"name": name, "api_token": token})
    c.JupyterHub.load_roles.append({"name": name, "scopes": scopes, "services": [name]})

c.JupyterHub.api_page_default_limit = 2
c.JupyterHub.tornado_settings = {"slow_stop_timeout": 0}
c.Spawner.cmd = [os.environ["T_SINGLEUSER"]]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
c.SimpleLocalProcessSpawner.home_dir_template = os.environ["T_HOMES"] + "/{username}"
c.Spawner.notebook_dir = os.environ["T_HOMES"] + "/{username}"
c.Spawner.start_timeout = 90
c.Spawner.http_timeout = 90
"#;

fn name(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn client(api: &str, token: &str, timeout: Duration) -> RestHub {
    RestHub::new(api, &SecretString::new(token.into()), timeout).unwrap()
}

// --- the venv ---------------------------------------------------------------------------

pub(crate) struct Venv {
    bin: PathBuf,
}

/// The e2e venv with jupyterhub, configurable-http-proxy and jupyter_server; `None` (after a
/// loud message) when it is incomplete and `CI` is not set.
pub(crate) fn venv() -> Option<Venv> {
    let root = std::env::var_os("HUBDESK_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/hubdesk/venv")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"));
    let bin = root.join("bin");
    let mut missing: Vec<String> = [
        "jupyterhub",
        "configurable-http-proxy",
        "jupyterhub-singleuser",
    ]
    .iter()
    .filter(|exe| !bin.join(exe).is_file())
    .map(|exe| exe.to_string())
    .collect();
    if missing.is_empty() {
        let imports = Command::new(bin.join("python"))
            .args(["-c", "import jupyterhub, oauthenticator, jupyter_server"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !imports.is_ok_and(|s| s.success()) {
            missing.push("python modules jupyterhub, oauthenticator, jupyter_server".into());
        }
    }
    if missing.is_empty() {
        return Some(Venv { bin });
    }
    let message = format!(
        "the hub client test needs a venv at {} with {}: run `bash scripts/e2e-deps.sh` \
         (tests/e2e/requirements.txt) or set HUBDESK_VENV",
        root.display(),
        missing.join(", ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("\n!!!!!!!!!! SKIPPED: {message} !!!!!!!!!!\n");
    None
}

// --- a real hub -------------------------------------------------------------------------

pub(crate) struct RealHub {
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
    /// Public URL (the proxy), e.g. http://127.0.0.1:PORT
    pub(crate) url: String,
    pub(crate) api: String,
    pub(crate) service_token: String,
    pub(crate) admin_token: String,
    /// (scope left out of the role, token of that service)
    pub(crate) minus: Vec<(&'static str, String)>,
}

impl RealHub {
    /// Starts the hub and waits for `GET /hub/api/`; retries on a port taken meanwhile.
    pub(crate) async fn start(venv: &Venv) -> (Self, Duration) {
        Self::start_with(venv, &[]).await
    }

    /// Started with extra environment for the shipped config (e.g. `HUBDESK_URL`).
    pub(crate) async fn start_with(venv: &Venv, env: &[(&str, &str)]) -> (Self, Duration) {
        let mut last = String::new();
        for attempt in 1..=3 {
            let started = Instant::now();
            let mut hub = Self::spawn(venv, attempt, env);
            match hub.ready(Duration::from_secs(60)).await {
                Ok(()) => return (hub, started.elapsed()),
                Err(why) => {
                    last = format!("{why}\n{}", hub.log_tail(80));
                    hub.stop();
                    if !last.to_lowercase().contains("in use") {
                        break;
                    }
                }
            }
        }
        panic!("JupyterHub did not start: {last}");
    }

    fn spawn(venv: &Venv, attempt: u32, env: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "hubdesk-hub-test-{}-{}-{attempt}",
            std::process::id(),
            &token()[..8]
        ));
        let homes = dir.join("homes");
        std::fs::create_dir_all(&homes).unwrap();
        let extra = dir.join("extra_config.py");
        std::fs::write(&extra, EXTRA_CONFIG).unwrap();
        let (public, internal, proxy_api) = (free_port(), free_port(), free_port());
        let url = format!("http://127.0.0.1:{public}");
        let service_token = token();
        let admin_token = token();
        let minus: Vec<(&'static str, String)> = ROLE.iter().map(|s| (*s, token())).collect();
        let minus_json: serde_json::Map<String, Value> = minus
            .iter()
            .map(|(scope, t)| {
                let rest: Vec<&str> = ROLE.iter().copied().filter(|s| s != scope).collect();
                (scope.to_string(), json!([t, rest]))
            })
            .collect();
        let log = dir.join("jupyterhub.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(venv.bin.join("jupyterhub"));
        cmd.arg("-f")
            .arg(repo().join("deploy/jupyterhub_config.py"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            // Its own process group: stopping it reaches whatever it started in that group.
            .process_group(0);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if ["HUB_", "HUBDESK_", "JUPYTERHUB_", "CONFIGPROXY_", "OAUTH"]
                .iter()
                .any(|p| k.starts_with(p))
            {
                cmd.env_remove(k);
            }
        }
        cmd.envs([
            ("HUBDESK_URL", "http://127.0.0.1:9".to_string()),
            ("HUB_OAUTH_CLIENT_SECRET", format!("{}{}", token(), token())),
            ("JUPYTERHUB_CRYPT_KEY", format!("{}{}", token(), token())),
            ("HUB_STATE_DIR", dir.join("state").display().to_string()),
            // The proxy's pid file (runtime state) beside it, so teardown finds the proxy.
            ("HUB_RUNTIME_DIR", dir.join("state").display().to_string()),
            ("HUB_BIND_URL", url.clone()),
            ("HUB_INTERNAL_IP", "127.0.0.1".into()),
            ("HUB_INTERNAL_PORT", internal.to_string()),
            ("HUB_PROXY_API_URL", format!("http://127.0.0.1:{proxy_api}")),
            (
                "HUB_PROXY_COMMAND",
                venv.bin
                    .join("configurable-http-proxy")
                    .display()
                    .to_string(),
            ),
            ("HUB_EXTRA_CONFIG", extra.display().to_string()),
            // The shipped config's name for hubdesk's token.
            ("HUBDESK_HUB_API_TOKEN", service_token.clone()),
            ("T_ADMIN_TOKEN", admin_token.clone()),
            ("T_MINUS_TOKENS", Value::Object(minus_json).to_string()),
            (
                "T_SINGLEUSER",
                venv.bin.join("jupyterhub-singleuser").display().to_string(),
            ),
            ("T_HOMES", homes.display().to_string()),
        ]);
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().expect("start jupyterhub");
        RealHub {
            child: Some(child),
            api: format!("{url}/hub/api/"),
            url,
            dir,
            log,
            service_token,
            admin_token,
            minus,
        }
    }

    async fn ready(&mut self, patience: Duration) -> Result<(), String> {
        let deadline = Instant::now() + patience;
        let http = reqwest::Client::new();
        let mut last = "no answer".to_string();
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                return Err(format!("jupyterhub exited: {status}"));
            }
            match http
                .get(format!("{}/hub/api/", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => return Ok(()),
                Ok(r) => last = format!("/hub/api/ answered {}", r.status()),
                Err(e) => last = format!("/hub/api/: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(format!("not ready after {patience:?} ({last})"))
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM to the hub (it stops the servers and the proxy it started), SIGKILL to its
    /// group after 20 s; then the proxy by its pid file if it is still there.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().to_string();
        let signal = |sig: &str, target: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", target])
                .stderr(Stdio::null())
                .status();
        };
        signal("-TERM", &pid);
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if child.try_wait().ok().flatten().is_none() {
            signal("-KILL", &format!("-{pid}"));
            let _ = child.wait();
        }
        let pid_files = std::fs::read_dir(self.dir.join("state"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("jupyterhub-proxy-") && n.ends_with(".pid"))
            });
        for file in pid_files {
            if let Ok(proxy) = std::fs::read_to_string(file) {
                let proxy = proxy.trim();
                if !proxy.is_empty() && Path::new("/proc").join(proxy).exists() {
                    signal("-TERM", proxy);
                }
            }
        }
    }

    async fn create_users(&self, names: &[&str]) {
        let r = reqwest::Client::new()
            .post(format!("{}users", self.api))
            .header("Authorization", format!("token {}", self.admin_token))
            .json(&json!({ "usernames": names }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "create users: {}", r.text().await.unwrap());
    }

    /// The raw JSON the hubdesk token gets (to compare with the fixtures).
    async fn raw(&self, path: &str, accept: &str) -> Value {
        reqwest::Client::new()
            .get(format!("{}{path}", self.api))
            .header("Authorization", format!("token {}", self.service_token))
            .header("Accept", accept)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn minus(&self, scope: &str) -> RestHub {
        let (_, t) = self.minus.iter().find(|(s, _)| *s == scope).unwrap();
        client(&self.api, t, Duration::from_secs(10))
    }
}

impl Drop for RealHub {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- jupyterhub log (tail) ---\n{}", self.log_tail(120));
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn wait_until(
    hub: &RestHub,
    user: &Username,
    what: &str,
    done: impl Fn(&Option<HubUser>) -> bool,
) -> Option<HubUser> {
    let deadline = Instant::now() + SERVER_PATIENCE;
    loop {
        let seen = hub.user(user).await.unwrap();
        if done(&seen) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {SERVER_PATIENCE:?}; last seen {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until no job is queued or running (the students' homes are made), then starts
/// `cohort`'s servers through hubdesk's API; the job once it has ended.
async fn start_cohort(app: &crate::helpers::TestApp, token: &str, cohort: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    while app
        .count("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
        .await
        > 0
    {
        assert!(Instant::now() < deadline, "the homes' jobs never ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = app
        .client
        .post(app.url(&format!("/api/v1/cohorts/{cohort}/servers/start")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job = r.json::<Value>().await.unwrap()["job"]
        .as_str()
        .unwrap()
        .to_string();
    app.job_done(token, &job).await
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

// --- the tests --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_client_works_against_a_real_hub_with_the_shipped_role() {
    let Some(venv) = venv() else { return };
    let (mut real, hub_start) = RealHub::start(&venv).await;
    eprintln!("hub ready in {hub_start:.1?}");
    real.create_users(&USERS).await;
    let hub = client(&real.api, &real.service_token, Duration::from_secs(10));
    let (ada, bob) = (name("ada"), name("bob"));

    // The token holds the shipped role and nothing more.
    let info = hub.check().await.unwrap();
    assert_eq!(info.version, "6.1.1");
    assert_eq!(
        (info.name.as_str(), info.kind.as_str()),
        ("hubdesk", "service")
    );
    assert_eq!(info.scopes, EXPANDED);

    // All users, through pages of 2 (the hub really pages: the first page has a `next`).
    let first = real
        .raw("users", "application/jupyterhub-pagination+json")
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["_pagination"]["next"]["offset"], 2, "{first}");
    let users = hub.users().await.unwrap();
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, USERS);
    assert!(users.iter().all(|u| u.server.is_none() && !u.admin));
    assert!(hub.active_servers().await.unwrap().is_empty());
    assert_eq!(hub.user(&name("zed")).await.unwrap(), None);

    // Start: the first call runs the spawn; a second one while it is pending gets 202.
    let started_at = OffsetDateTime::now_utc();
    let t0 = Instant::now();
    let second = async {
        let seen = wait_until(&hub, &ada, "ada's spawn pending", |u| {
            u.as_ref()
                .and_then(|u| u.server.as_ref())
                .is_some_and(|s| s.pending.is_some() || s.ready)
        })
        .await
        .unwrap();
        let pending = seen.server.unwrap().pending;
        assert_eq!(
            pending.as_deref(),
            Some("spawn"),
            "seen before the start answered"
        );
        hub.start_server(&ada).await.unwrap()
    };
    let (first_start, second_start) = tokio::join!(hub.start_server(&ada), second);
    let first_start = first_start.unwrap();
    assert!(
        matches!(first_start, StartOutcome::Started | StartOutcome::Pending),
        "{first_start:?}"
    );
    assert_eq!(second_start, StartOutcome::Pending);
    let user = wait_until(&hub, &ada, "ada's server ready", |u| {
        u.as_ref().is_some_and(HubUser::running)
    })
    .await
    .unwrap();
    let server_start = t0.elapsed();
    eprintln!("server start ({first_start:?}) then ready in {server_start:.1?}");
    let server = user.server.clone().unwrap();
    assert!(server.ready && server.pending.is_none());
    assert_eq!(server.url, "/user/ada/");
    let started = server.started.expect("started");
    assert!(
        started >= started_at - time::Duration::seconds(5),
        "{started}"
    );
    assert!(started <= OffsetDateTime::now_utc());
    assert!(server.last_activity.is_some_and(|a| a >= started));
    assert!(user.last_activity.is_some());
    let active = hub.active_servers().await.unwrap();
    assert_eq!(
        active.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["ada"]
    );
    assert!(active[0].running());

    // The fixtures still have the live hub's shape.
    let live = real.raw("users/ada", "application/json").await;
    let fixture: Value = serde_json::from_str(FIXTURE_RUNNING).unwrap();
    assert_eq!(keys(&live), keys(&fixture));
    assert_eq!(keys(&live["servers"][""]), keys(&fixture["servers"][""]));

    // Starting a running server is "started" (the hub's 400 "already running").
    assert_eq!(hub.start_server(&ada).await.unwrap(), StartOutcome::Started);

    // Stop: 202 (slow_stop_timeout 0 here), then polled until the server is gone.
    let t0 = Instant::now();
    assert_eq!(hub.stop_server(&ada).await.unwrap(), StopOutcome::Pending);
    let stopping = hub.user(&ada).await.unwrap().unwrap().server;
    hub.wait_stopped(&ada, Duration::from_secs(60))
        .await
        .unwrap();
    let server_stop = t0.elapsed();
    eprintln!("server stop (202, seen {stopping:?}) then gone in {server_stop:.1?}");
    assert_eq!(hub.user(&ada).await.unwrap().unwrap().server, None);
    assert!(hub.active_servers().await.unwrap().is_empty());
    // Nothing running (204) and no such hub user (404) both count as stopped.
    assert_eq!(hub.stop_server(&ada).await.unwrap(), StopOutcome::Stopped);
    assert_eq!(
        hub.stop_server(&name("zed")).await.unwrap(),
        StopOutcome::Stopped
    );
    hub.stop_and_wait(&ada, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(
        hub.start_server(&name("zed")).await,
        Err(HubError::NotFound("zed".into()))
    );

    // Every scope of the role is needed: without it, its call fails (it never silently
    // reports a server as stopped or an activity as missing).
    let refused = |r: Result<(), HubError>, scope: &str| match r {
        Err(HubError::Unauthorized { hub_message }) => assert!(
            hub_message.contains(scope),
            "without {scope}: {hub_message}"
        ),
        other => panic!("without {scope}: {other:?}"),
    };
    refused(
        real.minus("list:users").users().await.map(drop),
        "list:users",
    );
    refused(
        real.minus("read:users").user(&bob).await.map(drop),
        "read:users",
    );
    refused(
        real.minus("read:servers").user(&bob).await.map(drop),
        "read:servers",
    );
    refused(
        real.minus("start:servers")
            .start_server(&bob)
            .await
            .map(drop),
        "start:servers",
    );
    refused(
        real.minus("delete:servers")
            .stop_server(&bob)
            .await
            .map(drop),
        "delete:servers",
    );
    assert!(hub.user(&bob).await.unwrap().unwrap().server.is_none());

    // A wrong token: refused, in one line, without the token.
    let wrong = client(&real.api, "not-the-token", Duration::from_secs(10));
    let err = wrong.check().await.unwrap_err();
    assert!(matches!(err, HubError::Unauthorized { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the hub refused hubdesk's API token (is the hubdesk service configured with a role?)"
    );
    for err in [
        wrong.users().await.unwrap_err(),
        wrong.start_server(&bob).await.unwrap_err(),
    ] {
        assert_eq!(
            err,
            HubError::Unauthorized {
                hub_message: "Missing or invalid credentials.".into()
            }
        );
        assert!(!err.to_string().contains("not-the-token"));
    }

    // The hub goes down: every call says so in one line.
    real.stop();
    let t0 = Instant::now();
    let err = hub.users().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the hub at {} cannot be reached (connection refused)",
            real.api
        )
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert!(hub.user(&ada).await.unwrap_err().is_unreachable());
    assert!(hub.check().await.unwrap_err().is_unreachable());
    eprintln!(
        "timings: hub start {hub_start:.1?}, server start→ready {server_start:.1?}, \
         stop→gone {server_stop:.1?}"
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable_at_once() {
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}/hub/api/");
    let hub = client(&api, "t", Duration::from_secs(10));
    let t0 = Instant::now();
    let err = hub.users().await.unwrap_err();
    assert_eq!(
        err,
        HubError::Unreachable {
            url: api.clone(),
            reason: "connection refused".into()
        }
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(hub
        .stop_server(&name("ada"))
        .await
        .unwrap_err()
        .is_unreachable());
}

#[tokio::test]
async fn a_hub_that_never_answers_is_unreachable_after_the_timeout() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}/hub/api/", silent.local_addr().unwrap());
    let hub = client(&api, "t", Duration::from_secs(1));
    let t0 = Instant::now();
    let err = hub.check().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the hub at {api} cannot be reached (no answer within 1 s)")
    );
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    drop(silent);
}

/// Issue 7's proof with the real hub: a student's server really runs on their home under the
/// homes root and saves a file through the Jupyter contents API; a reset from hubdesk's API
/// stops that server first (the hub says it is gone), moves the file into the archive, lays a
/// fresh home; a restore brings the file back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_reset_stops_the_real_server_first_and_the_file_survives_in_the_archive() {
    let Some(venv) = venv() else { return };
    let (hub, _) = RealHub::start(&venv).await;
    hub.create_users(&["ada"]).await;
    let homes = hub.dir.join("homes");
    let (api, token, hub_url) = (hub.api.clone(), hub.service_token.clone(), hub.url.clone());
    let app = crate::helpers::spawn_app_with(move |c| {
        c.hub.url = format!("{hub_url}/hub/");
        c.hub.api_url = api;
        c.hub.api_token = Some(SecretString::new(token));
        c.homes.root = Some(homes);
    })
    .await;
    let desk_token = app.api_token().await;
    app.create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    let home = hub.dir.join("homes/ada");
    let job = |id: String| {
        let (app, t) = (&app, desk_token.clone());
        async move { app.job_done(&t, &id).await }
    };
    // The home exists before the server starts (its job ran), then the cohort starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !home.is_dir() {
        assert!(Instant::now() < deadline, "no home for ada");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = start_cohort(&app, &desk_token, "blue").await;
    assert_eq!(started["state"], "succeeded", "{started}");
    let rest = client(&hub.api, &hub.service_token, Duration::from_secs(10));
    let ada = name("ada");
    wait_until(&rest, &ada, "ada's server ready", |u| {
        u.as_ref()
            .and_then(|u| u.server.as_ref())
            .is_some_and(|s| s.ready)
    })
    .await;
    // The student's notebook saves a file (the Jupyter contents API, through the proxy).
    let r = reqwest::Client::new()
        .put(format!("{}/user/ada/api/contents/work.txt", hub.url))
        .header("Authorization", format!("token {}", hub.admin_token))
        .json(&json!({"type": "file", "format": "text", "content": "my analysis"}))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "contents API: {} {}",
        r.status(),
        r.text().await.unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(home.join("work.txt")).unwrap(),
        "my analysis"
    );

    let r = app
        .client
        .post(app.url("/api/v1/students/ada/home/reset"))
        .bearer_auth(&desk_token)
        .json(&json!({"scope": "all", "reason": "fresh start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let reset = job(r.json::<Value>().await.unwrap()["job"]
        .as_str()
        .unwrap()
        .to_string())
    .await;
    assert_eq!(reset["state"], "succeeded", "{reset}");
    assert_eq!(reset["steps"][0]["name"], "server stopped", "{reset}");
    let seen = rest.user(&ada).await.unwrap().unwrap();
    assert!(!seen.running(), "the hub says the server is gone: {seen:?}");
    assert!(!home.join("work.txt").exists(), "a fresh home");
    let archive = reset["result"]["archive"].as_str().unwrap().to_string();
    let archived = app
        .state
        .homes
        .archive_dir()
        .join("ada")
        .join(&archive)
        .join("work.txt");
    assert_eq!(std::fs::read_to_string(&archived).unwrap(), "my analysis");

    let r = app
        .client
        .post(app.url("/api/v1/students/ada/home/restore"))
        .bearer_auth(&desk_token)
        .json(&json!({ "archive": archive }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let restored = job(r.json::<Value>().await.unwrap()["job"]
        .as_str()
        .unwrap()
        .to_string())
    .await;
    assert_eq!(restored["state"], "succeeded", "{restored}");
    assert_eq!(
        std::fs::read_to_string(home.join("work.txt")).unwrap(),
        "my analysis"
    );
}

/// Issue 18's pause at a class's size, against the real hub: ten students' servers really run
/// (jupyter_server processes, started by hubdesk's cohort start); the admin pauses the camp on
/// the students page, and the hub reports every one of them gone within 60 s; a student's login
/// is refused with the message while a counselor's works. (The camp in a box pauses three
/// servers on the swarm, test_camp.py step 6.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_a_ten_student_class_on_the_real_hub_within_a_minute() {
    let Some(venv) = venv() else { return };
    let (hub, _) = RealHub::start(&venv).await;
    let class: Vec<String> = (1..=10).map(|i| format!("s{i:02}")).collect();
    let names: Vec<&str> = class.iter().map(String::as_str).collect();
    hub.create_users(&names).await;
    let homes = hub.dir.join("homes");
    let (api, token, hub_url) = (hub.api.clone(), hub.service_token.clone(), hub.url.clone());
    let app = crate::helpers::spawn_app_with(move |c| {
        c.hub.url = format!("{hub_url}/hub/");
        c.hub.api_url = api;
        c.hub.api_token = Some(SecretString::new(token));
        c.homes.root = Some(homes);
    })
    .await;
    let desk_token = app.api_token().await;
    let mut passwords = Vec::new();
    for n in &names {
        passwords.push(
            app.create_student(&format!("Student {n}"), n, Some("ten"))
                .await,
        );
    }
    app.create_user(
        hubdesk::domain::Role::Counselor,
        "connie",
        crate::helpers::PASSWORD,
    )
    .await;
    // Every home made (their jobs ran), then the cohort's servers start.
    let started = start_cohort(&app, &desk_token, "ten").await;
    assert_eq!(started["state"], "succeeded", "{started}");
    let rest = client(&hub.api, &hub.service_token, Duration::from_secs(10));
    let running = || async {
        let mut up = Vec::new();
        for n in &names {
            if rest
                .user(&name(n))
                .await
                .unwrap()
                .is_some_and(|u| u.running())
            {
                up.push(n.to_string());
            }
        }
        up
    };
    let deadline = Instant::now() + SERVER_PATIENCE * 2;
    while running().await.len() < names.len() {
        assert!(
            Instant::now() < deadline,
            "not all ten started: {:?}",
            running().await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    app.as_admin().await;
    let t0 = Instant::now();
    let r = app
        .post_form_from("/students", "/camp/pause", &[("message", "Fire drill")])
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::SEE_OTHER);
    loop {
        let up = running().await;
        if up.is_empty() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "still running 60 s after the pause: {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = t0.elapsed();
    eprintln!("pause: 10 real student servers gone from the hub in {took:.1?}");
    let r = app.other_browser().login("s01", &passwords[0]).await;
    assert_eq!(r.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("The camp is paused: Fire drill."));
    app.other_browser()
        .login_ok("connie", crate::helpers::PASSWORD)
        .await;
}
