//! `hubdesk doctor`, the real binary against real peers: a JupyterHub 6.1.1 started with the
//! shipped `deploy/jupyterhub_config.py` (`hub::RealHub`), moto for EC2 and the Docker-in-Docker
//! swarm of `tests/swarm` (`cluster_peers`), homes on real filesystems, certificates made here
//! with chosen dates. Each failure must show as a FAIL line with its fix and a non-zero exit.
use std::{
    path::{Path, PathBuf},
    process::Output,
    time::{Duration, Instant},
};

use crate::{
    cluster_peers::{Moto, Swarm, REGION},
    helpers::{spawn_app, TestApp, HUB_SECRET},
    hub::{venv, RealHub},
};

/// hubdesk's public URL as the doctor runs see it (nothing needs to listen there: the check
/// reads where the hub sends browsers).
const PUBLIC: &str = "http://127.0.0.1:48080";

struct Run {
    ok: bool,
    out: String,
    err: String,
    took: Duration,
}

impl Run {
    fn line(&self, start: &str) -> &str {
        self.out
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?}:\n{}{}", self.out, self.err))
    }

    /// The line and the fix line under it.
    fn with_fix(&self, start: &str) -> String {
        let mut lines = self.out.lines().skip_while(|l| !l.starts_with(start));
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no line starting {start:?}:\n{}", self.out));
        let fix = lines.next().unwrap_or_default();
        assert!(
            fix.contains("fix: "),
            "no fix under {line:?}:\n{}",
            self.out
        );
        format!("{line}\n{fix}")
    }
}

fn output(out: Output, took: Duration) -> Run {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "doctor panicked:\n{text}\n{err}");
    Run {
        ok: out.status.success(),
        out: text,
        err: err.into_owned(),
        took,
    }
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(under: &Path) -> Self {
        let d = under.join(format!("hubdesk-doctor-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What every run shares: the test's database, homes and certificates in a scratch directory,
/// no cluster, no hub token (each test adds what it checks).
struct Doctor {
    app: TestApp,
    dir: Scratch,
}

impl Doctor {
    async fn new() -> Self {
        let app = spawn_app().await;
        let dir = Scratch::new(&std::env::temp_dir());
        std::fs::create_dir_all(dir.0.join("homes")).unwrap();
        std::fs::create_dir_all(dir.0.join("template/course")).unwrap();
        std::fs::write(dir.0.join("template/course/week1.ipynb"), "{}").unwrap();
        let cert = cert(-30, 200);
        std::fs::write(dir.0.join("fine.pem"), cert).unwrap();
        Doctor { app, dir }
    }

    /// With doctor's default timeout (10 s): moto on a loaded 2-core machine can take seconds.
    async fn run(&self, env: &[(&str, &str)]) -> Run {
        self.run_with_timeout(10, env).await
    }

    async fn run_with_timeout(&self, secs: u64, env: &[(&str, &str)]) -> Run {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubdesk"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("HUBDESK_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        let homes = self.dir.0.join("homes").display().to_string();
        let template = self.dir.0.join("template").display().to_string();
        let tls = format!("[\"{}\"]", self.dir.0.join("fine.pem").display());
        cmd.args(["doctor", "--timeout", &secs.to_string()])
            .env("DATABASE_URL", self.app.database_url())
            .env("HUBDESK_DATA_DIR", &self.dir.0)
            .env("HUBDESK_PUBLIC_URL", PUBLIC)
            .env("HUBDESK_HOMES__ROOT", homes)
            .env("HUBDESK_HOMES__TEMPLATE", template)
            .env("HUBDESK_TLS__CERT_FILES", tls)
            .env("HUBDESK_OIDC_CLIENT_ID", "jupyterhub")
            .env("HUBDESK_OIDC_CLIENT_SECRET", HUB_SECRET)
            .env(
                "HUBDESK_OIDC_REDIRECT_URIS",
                "http://127.0.0.1:8000/hub/oauth_callback",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .kill_on_drop(true);
        // An empty value removes the variable.
        for (k, v) in env {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let started = Instant::now();
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("doctor ended within 120 s")
            .expect("run hubdesk doctor");
        output(out, started.elapsed())
    }
}

/// A self-signed PEM certificate valid from `from` to `to` days from now.
fn cert(from: i64, to: i64) -> String {
    let mut p = rcgen::CertificateParams::new(vec!["hub.camp.example".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(from);
    p.not_after = now + time::Duration::days(to);
    let key = rcgen::KeyPair::generate().unwrap();
    p.self_signed(&key).unwrap().pem()
}

#[tokio::test]
async fn doctor_without_peers_checks_config_database_homes_and_certificates() {
    let d = Doctor::new().await;
    // No hub runs at hub_url: the one failure is the hub login (and nothing hangs).
    let closed = format!("http://127.0.0.1:{}/hub/", free_port());
    let r = d
        .run(&[
            ("HUBDESK_HUB_URL", &closed),
            (
                "HUBDESK_OIDC_REDIRECT_URIS",
                "http://127.0.0.1:8000/hub/oauth_callback",
            ),
        ])
        .await;
    assert!(!r.ok, "{}", r.out);
    assert!(r.line("ok   database").contains("PostgreSQL"), "{}", r.out);
    assert!(r.line("ok   migrations").contains("applied"));
    assert!(r.line("ok   signing keys").contains("ES256, RS256"));
    assert!(r.line("ok   oidc clients").contains("jupyterhub"));
    assert!(r.line("WARN public_url").contains("is not https"));
    assert!(r.with_fix("WARN hub api").contains("no [hub] api_token"));
    let login = r.with_fix("FAIL hub login");
    assert!(
        login.contains("cannot connect") && login.contains("fix: start the hub"),
        "{login}"
    );
    let homes = r.line("ok   homes");
    assert!(
        homes.contains("writable, archive")
            && homes.contains("template")
            && homes.contains("(1 entries)"),
        "{homes}"
    );
    assert!(r.line("ok   cluster").contains("off"));
    assert!(
        r.line("ok   tls certificate").contains("self-signed"),
        "{}",
        r.out
    );
    assert!(r.out.ends_with("some checks failed\n"), "{}", r.out);

    // No OIDC client at all: a FAIL with its fix.
    let r = d
        .run(&[("HUBDESK_HUB_URL", &closed), ("HUBDESK_OIDC_CLIENT_ID", "")])
        .await;
    assert!(!r.ok);
    assert!(
        r.with_fix("FAIL oidc clients")
            .contains("fix: add [[oidc.clients]]"),
        "{}",
        r.out
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn doctor_gives_up_on_a_hub_that_never_answers() {
    let d = Doctor::new().await;
    // Accepts connections and never answers (a hung hub).
    let tarpit = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tarpit.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = tarpit.accept().await {
            conns.push(c);
        }
    });
    let hub = format!("http://127.0.0.1:{port}/hub/");
    let r = d
        .run_with_timeout(
            3,
            &[
                ("HUBDESK_HUB_URL", &hub),
                ("HUBDESK_HUB_API_TOKEN", "some-token"),
                (
                    "HUBDESK_OIDC_REDIRECT_URIS",
                    "http://127.0.0.1:8000/hub/oauth_callback",
                ),
            ],
        )
        .await;
    held.abort();
    assert!(!r.ok);
    assert!(
        r.with_fix("FAIL hub api").contains("no answer within 3 s"),
        "{}",
        r.out
    );
    assert!(
        r.with_fix("FAIL hub login")
            .contains("no answer within 3 s"),
        "{}",
        r.out
    );
    assert!(r.took < Duration::from_secs(15), "took {:?}", r.took);
}

#[tokio::test]
async fn doctor_checks_the_real_hubs_token_scopes_and_login_redirect() {
    let Some(venv) = venv() else { return };
    let (hub, _) = RealHub::start_with(&venv, &[("HUBDESK_URL", PUBLIC)]).await;
    let d = Doctor::new().await;
    let hub_url = format!("{}/hub/", hub.url);
    let callback = format!("{}/hub/oauth_callback", hub.url);
    let base = |token: &str, redirect: &str| -> Vec<(String, String)> {
        vec![
            ("HUBDESK_HUB_URL".into(), hub_url.clone()),
            ("HUBDESK_HUB_API_TOKEN".into(), token.into()),
            ("HUBDESK_OIDC_REDIRECT_URIS".into(), redirect.into()),
        ]
    };
    let run = |env: Vec<(String, String)>| {
        let d = &d;
        async move {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            d.run(&env).await
        }
    };

    // All green: the shipped role, the hub's own callback registered.
    let r = run(base(&hub.service_token, &callback)).await;
    assert!(r.ok, "{}", r.out);
    assert!(!r.out.contains("FAIL"), "{}", r.out);
    let api = r.line("ok   hub api");
    assert!(
        api.contains("JupyterHub 6.") && api.contains("token of service hubdesk"),
        "{api}"
    );
    assert_eq!(
        r.line("ok   hub scopes")
            .split_whitespace()
            .skip(3)
            .collect::<Vec<_>>()
            .join(" "),
        "list:users, read:users, read:servers, start:servers, delete:servers"
    );
    let login = r.line("ok   hub login");
    assert!(
        login.contains(&format!("{PUBLIC}/oauth/authorize as jupyterhub"))
            && login.contains(&format!("callback {callback} registered")),
        "{login}"
    );

    // A wrong token.
    let r = run(base("not-the-token", &callback)).await;
    assert!(!r.ok);
    let line = r.with_fix("FAIL hub api");
    assert!(line.contains("refused hubdesk's token"), "{line}");
    assert!(
        line.contains("fix: [hub] api_token") && line.contains("`hubdesk` service"),
        "{line}"
    );

    // A token whose role lacks start:servers: named, with what needs it.
    let minus = &hub
        .minus
        .iter()
        .find(|(s, _)| *s == "start:servers")
        .unwrap()
        .1;
    let r = run(base(minus, &callback)).await;
    assert!(!r.ok);
    let line = r.with_fix("FAIL hub scopes");
    assert!(
        line.contains("the token lacks start:servers (POST users/{name}/server"),
        "{line}"
    );
    assert!(
        line.contains("fix: add the missing ones to the scopes of the `hubdesk` role"),
        "{line}"
    );
    assert!(r
        .line("ok   hub api")
        .contains("service minus-start-servers"));

    // More than hubdesk needs (the test's admin service): warned.
    let r = run(base(&hub.admin_token, &callback)).await;
    let warn = r.with_fix("WARN hub scopes");
    assert!(
        warn.contains("more than hubdesk needs") && warn.contains("access:servers"),
        "{warn}"
    );
    assert!(warn.contains("fix: remove them from"), "{warn}");
    assert!(
        r.with_fix("WARN hub api")
            .contains("not the hubdesk service's"),
        "{}",
        r.out
    );

    // The hub's callback is not registered for the client.
    let r = run(base(
        &hub.service_token,
        "https://elsewhere.example/hub/oauth_callback",
    ))
    .await;
    assert!(!r.ok);
    let line = r.with_fix("FAIL hub login");
    assert!(
        line.contains(&format!(
            "the hub's callback {callback} is not a redirect URI of client jupyterhub"
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!("fix: add {callback} to redirect_uris")),
        "{line}"
    );

    // The hub sends browsers to another hubdesk than ours.
    let mut env = base(&hub.service_token, &callback);
    env.push((
        "HUBDESK_PUBLIC_URL".into(),
        "https://desk.camp.example".into(),
    ));
    let r = run(env).await;
    assert!(!r.ok);
    let line = r.with_fix("FAIL hub login");
    assert!(
        line.contains(&format!("the hub sends browsers to {PUBLIC}/oauth/authorize, not to hubdesk's https://desk.camp.example/oauth/authorize")),
        "{line}"
    );
    assert!(
        line.contains("fix: set HUBDESK_URL=https://desk.camp.example in the hub's environment"),
        "{line}"
    );
}

#[tokio::test]
async fn doctor_checks_docker_and_the_worker_template_on_moto_and_a_dind_swarm() {
    let (Some(moto), Some(strict)) = tokio::join!(
        Moto::start(&[]),
        Moto::start(&[("MOTO_ENABLE_AMI_VALIDATION", "true")]),
    ) else {
        return;
    };
    let Some(swarm) = Swarm::up(0).await else {
        return;
    };
    let d = Doctor::new().await;
    let ami = moto.some_ami().await;
    let docker_host = swarm.docker_host();
    let hub_url = format!("http://127.0.0.1:{}/hub/", free_port());
    let env = |endpoint: &str, ami: &str, docker: &str| -> Vec<(String, String)> {
        [
            ("HUBDESK_HUB_URL", hub_url.as_str()),
            (
                "HUBDESK_OIDC_REDIRECT_URIS",
                "http://127.0.0.1:8000/hub/oauth_callback",
            ),
            ("HUBDESK_CLUSTER__ENABLED", "true"),
            ("HUBDESK_CLUSTER__NAME", "camp"),
            ("HUBDESK_CLUSTER__DOCKER_HOST", docker),
            ("HUBDESK_CLUSTER__WORKER__AMI", ami),
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let run = |env: Vec<(String, String)>| {
        let d = &d;
        async move {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            d.run(&env).await
        }
    };

    let r = run(env(&moto.url, &ami, &docker_host)).await;
    let docker = r.line("ok   docker");
    assert!(
        docker.contains(&format!("swarm manager at {docker_host}"))
            && docker.contains("1 nodes, 1 ready"),
        "{}",
        r.out
    );
    assert!(r
        .line("ok   ec2")
        .contains("credentials accepted; 0 instances tagged hubdesk:cluster=camp"));
    let template = r.line("ok   worker template");
    assert!(
        template.contains(&format!(
            "DryRun of RunInstances would have succeeded (t3.large from {ami})"
        )),
        "{template}"
    );
    assert!(
        !template.contains("stand-in"),
        "the manager's join token was used: {template}"
    );
    // Only the hub (not running here) fails.
    let fails: Vec<&str> = r.out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 1, "{}", r.out);
    assert!(fails[0].starts_with("FAIL hub login"));

    // An AMI that does not exist (moto validating AMIs).
    let r = run(env(&strict.url, "ami-0123456789abcdef0", &docker_host)).await;
    let line = r.with_fix("FAIL worker template");
    assert!(
        line.contains("the worker AMI cannot be used")
            && line.contains("fix: set [cluster.worker] ami"),
        "{line}"
    );

    // Nothing listens at the engine's address: FAIL at once, and the EC2 check still runs
    // (with a stand-in join token).
    let dead = format!("tcp://127.0.0.1:{}", free_port());
    let r = run(env(&moto.url, &ami, &dead)).await;
    let line = r.with_fix("FAIL docker");
    assert!(
        line.contains(&format!("cannot reach the Docker engine at {dead}")),
        "{line}"
    );
    assert!(line.contains("fix: is dockerd running there"), "{line}");
    assert!(r.took < Duration::from_secs(20), "took {:?}", r.took);
    assert!(r
        .line("ok   worker template")
        .contains("stand-in join token"));

    // An engine that is not in a swarm: the host's own, asked read-only (`GET /info`) and
    // only when it is not in a swarm (the tests never make it one).
    let host_state = crate::cluster_peers::docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]);
    if host_state.as_deref() == Ok("inactive") {
        let r = run(env(&moto.url, &ami, "unix:///var/run/docker.sock")).await;
        let line = r.with_fix("FAIL docker");
        assert!(
            line.contains("is not a swarm manager (not-a-swarm)"),
            "{line}"
        );
        assert!(line.contains("docker swarm init"), "{line}");
    } else {
        eprintln!(
            "the host engine is in a swarm ({host_state:?}): its not-a-manager case is not checked"
        );
    }
}

#[tokio::test]
async fn doctor_fails_an_archive_on_another_filesystem_and_an_unreadable_template() {
    use std::os::unix::fs::MetadataExt;
    let d = Doctor::new().await;
    let hub_url = format!("http://127.0.0.1:{}/hub/", free_port());
    let shm = Path::new("/dev/shm");
    let tmp = std::env::temp_dir();
    let other = shm.is_dir()
        && std::fs::metadata(shm).unwrap().dev() != std::fs::metadata(&tmp).unwrap().dev();
    if crate::cluster_peers::require(
        "/dev/shm on another filesystem than the temp dir",
        if other {
            Ok(())
        } else {
            Err("same st_dev".into())
        },
    ) {
        let archive = Scratch::new(shm);
        let r = d
            .run(&[
                ("HUBDESK_HUB_URL", &hub_url),
                ("HUBDESK_HOMES__ARCHIVE", &archive.0.display().to_string()),
            ])
            .await;
        assert!(!r.ok);
        let line = r.with_fix("FAIL homes");
        assert!(
            line.contains("is not on the same filesystem as the homes root"),
            "{line}"
        );
        assert!(line.contains("fix: leave [homes] archive unset"), "{line}");
    }
    // A template that is not there.
    let missing = d.dir.0.join("no-template").display().to_string();
    let r = d
        .run(&[
            ("HUBDESK_HUB_URL", &hub_url),
            ("HUBDESK_HOMES__TEMPLATE", &missing),
        ])
        .await;
    let line = r.with_fix("FAIL homes");
    assert!(line.contains("opening the homes template"), "{line}");
    // A homes root that is not there (the export not mounted).
    let unmounted = d.dir.0.join("not-mounted").display().to_string();
    let r = d
        .run(&[
            ("HUBDESK_HUB_URL", &hub_url),
            ("HUBDESK_HOMES__ROOT", &unmounted),
        ])
        .await;
    let line = r.with_fix("FAIL homes");
    assert!(line.contains("is the export mounted?"), "{line}");
}

#[tokio::test]
async fn doctor_reads_certificate_dates() {
    let d = Doctor::new().await;
    let hub_url = format!("http://127.0.0.1:{}/hub/", free_port());
    let tls = d.dir.0.join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    std::fs::write(tls.join("hub.pem"), cert(-60, 300)).unwrap();
    std::fs::write(tls.join("desk.pem"), cert(-85, 5)).unwrap();
    let pattern = format!("[\"{}/*.pem\"]", tls.display());
    let r = d
        .run(&[
            ("HUBDESK_HUB_URL", &hub_url),
            ("HUBDESK_TLS__CERT_FILES", &pattern),
        ])
        .await;
    let soon = r.with_fix("WARN tls certificate");
    assert!(
        soon.contains("desk.pem") && (soon.contains("(in 4 days)") || soon.contains("(in 5 days)")),
        "{soon}"
    );
    assert!(
        r.line("ok   tls certificate").contains("hub.pem"),
        "{}",
        r.out
    );
    assert!(!r.out.contains("FAIL tls"), "{}", r.out);

    std::fs::write(tls.join("old.pem"), cert(-400, -2)).unwrap();
    let r = d
        .run(&[
            ("HUBDESK_HUB_URL", &hub_url),
            ("HUBDESK_TLS__CERT_FILES", &pattern),
        ])
        .await;
    assert!(!r.ok);
    let line = r.with_fix("FAIL tls certificate");
    assert!(
        line.contains("old.pem") && line.contains("expired on"),
        "{line}"
    );
    assert!(line.contains("fix: renew it"), "{line}");
}

/// The scopes doctor demands are the ones the shipped role grants (and `hub.rs` proves each is
/// needed against the real hub).
#[test]
fn doctor_demands_exactly_the_shipped_roles_scopes() {
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/jupyterhub_config.py"),
    )
    .unwrap();
    // The last `"name": "hubdesk"` is the role's (the service's comes first).
    let role = config
        .rsplit("\"name\": \"hubdesk\"")
        .next()
        .expect("the hubdesk role in load_roles");
    let list = role
        .split("\"scopes\":")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .expect("its scopes");
    let shipped: Vec<&str> = list
        .trim_start_matches([' ', '['])
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .filter(|s| !s.is_empty())
        .collect();
    let demanded: Vec<&str> = hubdesk::hub::SCOPES.iter().map(|(s, _)| *s).collect();
    assert_eq!(shipped, demanded);
    assert_eq!(demanded, crate::hub::ROLE);
}

#[tokio::test]
async fn doctor_fails_when_workers_get_the_hubs_instance_profile() {
    let d = Doctor::new().await;
    let hub_url = format!("http://127.0.0.1:{}/hub/", free_port());
    let run = |worker: &'static str| {
        let (d, hub_url) = (&d, hub_url.clone());
        async move {
            d.run(&[
                ("HUBDESK_HUB_URL", &hub_url),
                ("HUBDESK_AWS__HUB_INSTANCE_PROFILE", "Camp-Hub"),
                ("HUBDESK_CLUSTER__WORKER__INSTANCE_PROFILE", worker),
            ])
            .await
        }
    };
    // The hub's profile by ARN, in other case: the same profile to IAM.
    let r = run("arn:aws:iam::123456789012:instance-profile/camps/camp-hub").await;
    assert!(!r.ok);
    let line = r.with_fix("FAIL worker profile");
    assert!(
        line.contains("workers get the hub node's instance profile")
            && line.contains("fix: give the workers a role of their own"),
        "{line}"
    );
    // The negative control: the workers' own profile is fine (only the absent hub fails).
    let r = run("camp-worker").await;
    assert!(
        r.line("ok   worker profile")
            .contains("camp-worker, not the hub node's (Camp-Hub)"),
        "{}",
        r.out
    );
    let fails: Vec<&str> = r.out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 1, "{}", r.out);
    assert!(fails[0].starts_with("FAIL hub login"), "{}", r.out);
}
