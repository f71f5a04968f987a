//! The real peers of the cluster tests: a moto server (EC2) on loopback, the Docker-in-Docker
//! swarm of `tests/swarm`, and the camp tests' "hypervisor" (`tests/e2e/camp_support.py`, run as
//! a process) that boots a worker node container for every instance moto reports running with
//! hubdesk's tags, running the instance's own user-data in it as cloud-init would, and removes
//! it when the instance is terminated.
//!
//! Missing peers: with `CI` set the test fails with a message saying what is missing; elsewhere
//! it is skipped loudly.
use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use aws_sdk_ec2::{
    config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider},
    types::InstanceAttributeName,
};
use base64::Engine;

/// `true` when `what` is there; otherwise fails under CI, and says it skips elsewhere.
pub fn require(what: &str, available: Result<(), String>) -> bool {
    match available {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{what} is required in CI and missing: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED (needs {what}): {why}");
            false
        }
    }
}

pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("HUBDESK_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/hubdesk/venv",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into())
        )
    });
    PathBuf::from(venv).join("bin").join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A moto server of its own, on 127.0.0.1; killed on drop.
pub struct Moto {
    pub url: String,
    child: Child,
}

pub const REGION: &str = "us-east-1";

impl Moto {
    /// `None` (skipped) where moto is not installed.
    pub async fn start(env: &[(&str, &str)]) -> Option<Moto> {
        let bin = venv_bin("moto_server");
        let found = if bin.exists() {
            Ok(())
        } else {
            Err(format!(
                "{} not found: \"$HUBDESK_VENV/bin/pip\" install 'moto[server]'",
                bin.display()
            ))
        };
        if !require("a moto server", found) {
            return None;
        }
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        for _ in 0..150 {
            if let Ok(r) = client.get(format!("{}/moto-api/", moto.url)).send().await {
                if r.status().is_success() {
                    return Some(moto);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer on {}", moto.url);
    }

    pub fn sdk(&self, key: &str, secret: &str) -> aws_config::SdkConfig {
        aws_config::SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                key, secret, None, None, "test",
            )))
            .build()
    }

    /// A client of the test itself (set-up, checks), not counted with hubdesk's calls.
    pub fn client(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk("testing", "testing"))
    }

    /// A moto AMI id (moto ships a list of real ones).
    pub async fn some_ami(&self) -> String {
        let images = self.client().describe_images().send().await.unwrap();
        images
            .images()
            .iter()
            .find(|i| i.root_device_name().is_some())
            .and_then(|i| i.image_id())
            .expect("moto has AMIs")
            .to_string()
    }

    /// A VPC and subnet with `cidr` (the swarm's /24, so instances' private IPs are usable
    /// addresses on the test network) and a security group: (subnet id, group id).
    pub async fn network(&self, cidr: &str) -> (String, String) {
        let c = self.client();
        let vpc = c.create_vpc().cidr_block(cidr).send().await.unwrap();
        let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
        let subnet = c
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(cidr)
            .send()
            .await
            .unwrap();
        let sg = c
            .create_security_group()
            .group_name("workers")
            .description("swarm workers")
            .vpc_id(&vpc_id)
            .send()
            .await
            .unwrap();
        (
            subnet.subnet().unwrap().subnet_id().unwrap().to_string(),
            sg.group_id().unwrap().to_string(),
        )
    }

    /// An IAM user with no policy, made with the server's unauthenticated first calls (start
    /// moto with `INITIAL_NO_AUTH_ACTION_COUNT=2`): (key id, secret).
    pub fn powerless_user(&self) -> (String, String) {
        let script = format!(
            "import boto3\n\
             iam = boto3.client('iam', endpoint_url='{}', region_name='{REGION}',\n\
                 aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             iam.create_user(UserName='nobody')\n\
             k = iam.create_access_key(UserName='nobody')['AccessKey']\n\
             print(k['AccessKeyId'], k['SecretAccessKey'])\n",
            self.url
        );
        let out = Command::new(venv_bin("python"))
            .args(["-c", &script])
            .output()
            .expect("run the venv's python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut parts = text.split_whitespace();
        (
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the host's `docker` CLI; stdout on success, stderr (and stdout) otherwise.
pub fn docker(args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| format!("docker: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

fn engine_available() -> Result<(), String> {
    docker(&["version", "-f", "{{.Server.Version}}"]).map(|_| ())?;
    Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .map_err(|e| format!("mmdebstrap (tests/swarm/images.sh builds the node image): {e}"))?;
    Ok(())
}

/// A DinD swarm from `tests/swarm/swarm.sh`, taken down on drop (also after a panic).
pub struct Swarm {
    pub id: String,
    pub env: HashMap<String, String>,
}

impl Swarm {
    pub async fn up(workers: u32) -> Option<Swarm> {
        if !require("a Docker engine for the DinD swarm", engine_available()) {
            return None;
        }
        let id = format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let swarm_id = id.clone();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(repo().join("tests/swarm/swarm.sh"))
                .args(["up", "-i", &swarm_id, "-w", &workers.to_string()])
                .env("HUBDESK_SWARM_INIT_ARGS", "--dispatcher-heartbeat 1s")
                .stderr(Stdio::inherit())
                .output()
        })
        .await
        .unwrap()
        .expect("run tests/swarm/swarm.sh");
        // From here on, drop takes it down, even if `up` half failed.
        let mut swarm = Swarm {
            id,
            env: HashMap::new(),
        };
        assert!(out.status.success(), "swarm.sh up failed");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some((k, v)) = line.split_once('=') {
                swarm
                    .env
                    .insert(k.to_string(), v.trim_matches('"').to_string());
            }
        }
        Some(swarm)
    }

    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("swarm.sh printed no {key}"))
    }

    pub fn docker_host(&self) -> String {
        self.get("HUBDESK_SWARM_DOCKER_HOST").to_string()
    }

    /// `10.213.N.0/24`
    pub fn subnet(&self) -> String {
        self.get("HUBDESK_SWARM_SUBNET").to_string()
    }

    pub fn worker_engine(&self, n: u32) -> String {
        let nodes = self.get("HUBDESK_SWARM_NODES");
        let ip = nodes
            .split_whitespace()
            .find_map(|p| p.strip_prefix(&format!("worker{n}=")))
            .expect("worker ip");
        format!("tcp://{ip}:2375")
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        let out = Command::new(repo().join("tests/swarm/swarm.sh"))
            .args(["down", &self.id])
            .output();
        if let Err(e) = out {
            eprintln!("swarm.sh down {}: {e}", self.id);
        }
    }
}

/// Boots instances as worker node containers on the swarm's network: the camp tests' own
/// hypervisor (`tests/e2e/camp_support.py`, class `Hypervisor`), run as a process, so there is
/// one hypervisor for the Rust and the Python tests. It prepares the "AMI" (a node's
/// /var/lib/docker with the tiny image loaded, as a worker AMI has its notebook image baked in),
/// then watches moto and boots every running instance tagged `hubdesk:cluster=<cluster>` from
/// its own user-data; it tells what happens as JSON lines, read here into the maps below.
pub struct Hypervisor {
    child: Child,
    /// instance id → container name, for instances booted and not yet stopped.
    pub running: Arc<Mutex<HashMap<String, String>>>,
    /// What went wrong booting (user-data output included).
    pub errors: Arc<Mutex<Vec<String>>>,
    /// instance id → the user-data's output.
    pub boot_logs: Arc<Mutex<HashMap<String, String>>>,
}

impl Hypervisor {
    pub async fn start(swarm: &Swarm, moto: &Moto, cluster: &str) -> Hypervisor {
        let mut child = Command::new(venv_bin("python"))
            .arg(repo().join("tests/e2e/camp_support.py"))
            .args([
                "hypervisor",
                "--swarm-id",
                &swarm.id,
                "--moto-url",
                &moto.url,
            ])
            .args([
                "--cluster",
                cluster,
                "--ami-image",
                swarm.get("HUBDESK_TINY_IMAGE"),
            ])
            .envs(&swarm.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the hypervisor (tests/e2e/camp_support.py)");
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let hv = Hypervisor {
            running: Default::default(),
            errors: Default::default(),
            boot_logs: Default::default(),
            child,
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let (running, errors, logs) = (hv.running.clone(), hv.errors.clone(), hv.boot_logs.clone());
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(stdout) {
                let Ok(line) = line else { break };
                let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
                    eprintln!("hypervisor: {line}");
                    continue;
                };
                let text = |k: &str| msg[k].as_str().unwrap_or_default().to_string();
                if msg.get("ready").is_some() {
                    let _ = ready_tx.send(Ok(()));
                } else if msg.get("failed").is_some() {
                    let _ = ready_tx.send(Err(text("failed")));
                } else if msg.get("booted").is_some() {
                    let id = text("booted");
                    running
                        .lock()
                        .unwrap()
                        .insert(id.clone(), text("container"));
                    logs.lock().unwrap().insert(id, text("log"));
                } else if msg.get("removed").is_some() {
                    running.lock().unwrap().remove(&text("removed"));
                } else if msg.get("error").is_some() {
                    errors.lock().unwrap().push(text("error"));
                }
            }
            let _ = ready_tx.send(Err("the hypervisor exited".into()));
        });
        let ready = tokio::task::spawn_blocking(move || {
            ready_rx
                .recv_timeout(Duration::from_secs(900))
                .unwrap_or_else(|e| Err(format!("no word from the hypervisor: {e}")))
        })
        .await
        .unwrap();
        if let Err(e) = ready {
            panic!("the hypervisor could not start: {e}");
        }
        hv
    }

    pub fn container_of(&self, instance: &str) -> Option<String> {
        self.running.lock().unwrap().get(instance).cloned()
    }

    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }
}

impl Drop for Hypervisor {
    /// Closes its stdin (it stops watching) and waits a moment; the containers and volumes go
    /// with the swarm (same label).
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The node containers' privileges, copied from the manager (`swarm.sh` chose them: plain
/// `--privileged` where the engine allows it, near-privileged otherwise).
fn privileges_of(manager: &str) -> Result<Vec<String>, String> {
    let json = docker(&["inspect", "-f", "{{json .HostConfig}}", manager])?;
    let hc: serde_json::Value = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    if hc["Privileged"] == true {
        return Ok(vec!["--privileged".into()]);
    }
    let mut args = Vec::new();
    let list = |k: &str| -> Vec<String> {
        hc[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    for c in list("CapAdd") {
        args.extend(["--cap-add".to_string(), c]);
    }
    for c in list("CapDrop") {
        args.extend(["--cap-drop".to_string(), c]);
    }
    for s in list("SecurityOpt") {
        args.extend(["--security-opt".to_string(), s]);
    }
    for r in list("DeviceCgroupRules") {
        args.extend(["--device-cgroup-rule".to_string(), r]);
    }
    for d in hc["Devices"].as_array().cloned().unwrap_or_default() {
        if let Some(p) = d["PathOnHost"].as_str() {
            args.extend(["--device".to_string(), p.to_string()]);
        }
    }
    Ok(args)
}

/// An instance's user-data as EC2 keeps it (`DescribeInstanceAttribute userData`, base64),
/// decoded: what anything on the instance can read back from the metadata service.
pub async fn user_data(ec2: &aws_sdk_ec2::Client, instance: &str) -> Result<Vec<u8>, String> {
    let attr = ec2
        .describe_instance_attribute()
        .instance_id(instance)
        .attribute(InstanceAttributeName::UserData)
        .send()
        .await
        .map_err(|e| format!("user-data: {e:?}"))?;
    let b64 = attr
        .user_data()
        .and_then(|u| u.value())
        .ok_or("no user-data")?
        .to_string();
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("user-data is not base64: {e}"))
}

/// A machine of the test's own on the swarm's network, in no swarm: the node image with its
/// engine started by the image's entrypoint and the swarm nodes' privileges (what a rogue
/// machine next to the workers would be). For trying join tokens by hand; removed on drop.
pub struct SpareNode {
    pub name: String,
}

/// What a spare node is made from (plain data, to start it on the blocking pool).
pub struct SpareSpec {
    name: String,
    hostname: String,
    label: String,
    network: String,
    ip: String,
    manager: String,
    image: String,
}

impl Swarm {
    /// `last_octet` picks its address on the swarm's /24, away from the nodes (.10–) and the
    /// instances moto numbers from the bottom.
    pub fn spare_node(&self, tag: &str, last_octet: u8) -> SpareSpec {
        SpareSpec {
            name: format!("hubdesk-test-{}-spare-{tag}", self.id),
            hostname: format!("spare-{tag}"),
            label: format!("hubdesk-test={}", self.id),
            network: self.get("HUBDESK_SWARM_NETWORK").to_string(),
            ip: format!("{}{last_octet}", self.subnet().trim_end_matches("0/24")),
            manager: self.get("HUBDESK_SWARM_MANAGER").to_string(),
            image: self.get("HUBDESK_NODE_IMAGE").to_string(),
        }
    }
}

impl SpareSpec {
    /// Starts it and waits for its engine (blocking).
    pub fn start(self) -> Result<SpareNode, String> {
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &self.name,
            "--hostname",
            &self.hostname,
            "--label",
            &self.label,
            "--network",
            &self.network,
            "--ip",
            &self.ip,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(privileges_of(&self.manager)?);
        args.push(self.image.clone());
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        let node = SpareNode { name: self.name };
        for _ in 0..200 {
            if docker(&["exec", &node.name, "docker", "version"]).is_ok() {
                return Ok(node);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("{}: dockerd did not start", node.name))
    }
}

impl SpareNode {
    /// This engine's swarm node id (empty outside a swarm).
    pub fn node_id(&self) -> String {
        docker(&[
            "exec",
            &self.name,
            "docker",
            "info",
            "-f",
            "{{.Swarm.NodeID}}",
        ])
        .unwrap_or_default()
    }

    pub fn leave(&self) -> Result<String, String> {
        docker(&["exec", &self.name, "docker", "swarm", "leave", "--force"])
    }
}

impl Drop for SpareNode {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }
}
