//! The real peers of the cluster tests: a moto server (EC2) on loopback, the Docker-in-Docker
//! swarm of `tests/swarm`, and a small "hypervisor" that boots a worker node container for every
//! instance moto reports running with hubdesk's tags, running the instance's own user-data in it
//! as cloud-init would, and removes it when the instance is terminated.
//!
//! Missing peers: with `CI` set the test fails with a message saying what is missing; elsewhere
//! it is skipped loudly.
use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use aws_sdk_ec2::{
    config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider},
    types::{Filter, InstanceAttributeName},
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

/// Boots instances as worker node containers on the swarm's network.
pub struct Hypervisor {
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// instance id → container name, for instances booted and not yet stopped.
    pub running: Arc<Mutex<HashMap<String, String>>>,
    /// What went wrong booting (user-data output included).
    pub errors: Arc<Mutex<Vec<String>>>,
    /// instance id → the user-data's output.
    pub boot_logs: Arc<Mutex<HashMap<String, String>>>,
}

struct Host {
    swarm_id: String,
    network: String,
    subnet_prefix: String,
    node_image: String,
    privileges: Vec<String>,
    ami_volume: String,
}

impl Hypervisor {
    /// Prepares the "AMI" (a node's /var/lib/docker with the tiny image loaded, as a worker AMI
    /// has its notebook image baked in), then watches moto every 300 ms.
    pub async fn start(swarm: &Swarm, ec2: aws_sdk_ec2::Client, cluster: &str) -> Hypervisor {
        let host = Arc::new(
            tokio::task::spawn_blocking({
                let (id, net, subnet) = (
                    swarm.id.clone(),
                    swarm.get("HUBDESK_SWARM_NETWORK").to_string(),
                    swarm.subnet(),
                );
                let (manager, node_image, tiny) = (
                    swarm.get("HUBDESK_SWARM_MANAGER").to_string(),
                    swarm.get("HUBDESK_NODE_IMAGE").to_string(),
                    swarm.get("HUBDESK_TINY_IMAGE").to_string(),
                );
                move || prepare(&id, &net, &subnet, &manager, &node_image, &tiny)
            })
            .await
            .unwrap()
            .expect("prepare the hypervisor's AMI"),
        );
        let hv = Hypervisor {
            stop: Arc::new(AtomicBool::new(false)),
            task: None,
            running: Default::default(),
            errors: Default::default(),
            boot_logs: Default::default(),
        };
        let (stop, running, errors, logs) = (
            hv.stop.clone(),
            hv.running.clone(),
            hv.errors.clone(),
            hv.boot_logs.clone(),
        );
        let cluster = cluster.to_string();
        let task = tokio::spawn(async move {
            let mut booting: Vec<String> = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let described = ec2
                    .describe_instances()
                    .filters(
                        Filter::builder()
                            .name("tag:hubdesk:cluster")
                            .values(&cluster)
                            .build(),
                    )
                    .send()
                    .await;
                if let Ok(out) = described {
                    for inst in out.reservations().iter().flat_map(|r| r.instances()) {
                        let id = inst.instance_id().unwrap_or_default().to_string();
                        let state = inst
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_string())
                            .unwrap_or_default();
                        if state == "running" && !booting.contains(&id) {
                            booting.push(id.clone());
                            let ip = inst.private_ip_address().unwrap_or_default().to_string();
                            let (ec2, host, running, errors, logs) = (
                                ec2.clone(),
                                host.clone(),
                                running.clone(),
                                errors.clone(),
                                logs.clone(),
                            );
                            let id = id.clone();
                            tokio::spawn(async move {
                                match boot(&ec2, &host, &id, &ip).await {
                                    Ok((name, log)) => {
                                        running.lock().unwrap().insert(id.clone(), name);
                                        logs.lock().unwrap().insert(id, log);
                                    }
                                    Err(e) => errors.lock().unwrap().push(format!("{id}: {e}")),
                                }
                            });
                        }
                        let gone = matches!(state.as_str(), "shutting-down" | "terminated");
                        let name = running.lock().unwrap().get(&id).cloned();
                        if let (true, Some(name)) = (gone, name) {
                            let _ = tokio::task::spawn_blocking(move || {
                                docker(&["rm", "-f", "-v", &name])
                            })
                            .await;
                            running.lock().unwrap().remove(&id);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        let mut hv = hv;
        hv.task = Some(task);
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
    /// Stops watching; the containers and volumes go with the swarm (same label).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
        }
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

fn prepare(
    id: &str,
    network: &str,
    subnet: &str,
    manager: &str,
    node_image: &str,
    tiny: &str,
) -> Result<Host, String> {
    let privileges = privileges_of(manager)?;
    let label = format!("hubdesk-test={id}");
    let ami_volume = format!("hubdesk-test-{id}-ami");
    docker(&["volume", "create", "--label", &label, &ami_volume])?;
    let seed = format!("hubdesk-test-{id}-ami");
    let mut args: Vec<String> = [
        "run",
        "-d",
        "--name",
        &seed,
        "--label",
        &label,
        "--network",
        "none",
        "-v",
        &format!("{ami_volume}:/var/lib/docker"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(privileges.iter().cloned());
    args.push(node_image.into());
    docker(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut up = false;
    for _ in 0..200 {
        if docker(&["exec", &seed, "docker", "version"]).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if !up {
        return Err(format!(
            "the AMI seed's dockerd did not start: {:?}",
            docker(&["logs", &seed])
        ));
    }
    // Load the tiny image from a `docker save` of the host engine.
    let mut save = Command::new("docker")
        .args(["save", tiny])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let load = Command::new("docker")
        .args(["exec", "-i", &seed, "docker", "load", "-q"])
        .stdin(save.stdout.take().unwrap())
        .output()
        .map_err(|e| e.to_string())?;
    save.wait().map_err(|e| e.to_string())?;
    if !load.status.success() {
        return Err(format!(
            "loading {tiny}: {}",
            String::from_utf8_lossy(&load.stderr)
        ));
    }
    docker(&["stop", "-t", "20", &seed])?;
    docker(&["rm", "-v", &seed])?;
    Ok(Host {
        swarm_id: id.into(),
        network: network.into(),
        subnet_prefix: subnet.trim_end_matches("0/24").to_string(),
        node_image: node_image.into(),
        privileges,
        ami_volume,
    })
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

/// One instance's boot: a disk from the AMI, the machine (a node container whose engine is
/// not started: that is the user-data's job), the kernel's cgroup set-up (the node image's
/// entrypoint without its last line), then the user-data itself. The node image has Docker
/// but no NFS client: a stand-in `mount.nfs` plays the installed package, so the script's
/// "install if missing" step finds both and skips (this network reaches no package mirror).
async fn boot(
    ec2: &aws_sdk_ec2::Client,
    host: &Host,
    instance: &str,
    ip: &str,
) -> Result<(String, String), String> {
    let script = user_data(ec2, instance).await?;
    let (id, network, prefix, image, privileges, ami) = (
        host.swarm_id.clone(),
        host.network.clone(),
        host.subnet_prefix.clone(),
        host.node_image.clone(),
        host.privileges.clone(),
        host.ami_volume.clone(),
    );
    let instance = instance.to_string();
    let ip = ip.to_string();
    tokio::task::spawn_blocking(move || {
        let label = format!("hubdesk-test={id}");
        let name = format!("hubdesk-test-{id}-{instance}");
        let disk = format!("{name}-docker");
        docker(&["volume", "create", "--label", &label, &disk])?;
        docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{ami}:/from:ro"),
            "-v",
            &format!("{disk}:/to"),
            "--entrypoint",
            "/bin/cp",
            &image,
            "-a",
            "/from/.",
            "/to/",
        ])?;
        let hostname = format!("ip-{}", ip.replace('.', "-"));
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            "--hostname",
            &hostname,
            "--label",
            &label,
            "--label",
            &format!("hubdesk-test.instance={instance}"),
            "--network",
            &network,
            "-v",
            &format!("{disk}:/var/lib/docker"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if ip.starts_with(&prefix) {
            args.extend(["--ip".to_string(), ip.clone()]);
        }
        args.extend(privileges);
        args.extend(
            [
                "--entrypoint",
                "/usr/bin/tini",
                &image,
                "--",
                "sleep",
                "infinity",
            ]
            .map(String::from),
        );
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        docker(&[
            "exec",
            &name,
            "sh",
            "-c",
            "sed '/^exec dockerd/d' /usr/local/bin/node-entrypoint.sh > /tmp/hubdesk-prep.sh \
             && sh /tmp/hubdesk-prep.sh \
             && { command -v mount.nfs >/dev/null || ln -s /bin/true /usr/sbin/mount.nfs; }",
        ])?;
        let mut put = Command::new("docker")
            .args([
                "exec",
                "-i",
                &name,
                "sh",
                "-c",
                "mkdir -p /var/lib/cloud && cat > /var/lib/cloud/user-data",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        std::io::Write::write_all(&mut put.stdin.take().unwrap(), &script)
            .map_err(|e| e.to_string())?;
        put.wait().map_err(|e| e.to_string())?;
        let run = Command::new("docker")
            .args(["exec", &name, "sh", "/var/lib/cloud/user-data"])
            .output()
            .map_err(|e| e.to_string())?;
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        if !run.status.success() {
            return Err(format!("user-data failed: {log}"));
        }
        Ok((name, log))
    })
    .await
    .map_err(|e| e.to_string())?
}
