//! bench/cluster: the cluster page at camp size, against the real peers.
//!
//! A DinD swarm (manager + 2 workers), a moto server, the test hypervisor. Then:
//! 1. launch 3 workers through the real `cluster.launch` job: time from "launch" to "joined";
//! 2. fill moto up to 50 instances with hubdesk's tags, and the swarm with 200 notebook services;
//! 3. the real app (embedded PostgreSQL), an admin session, `GET /cluster` and `GET /api/v1/cluster`
//!    N times each, one after the other: p50/p99 of a full render, engine and EC2 calls per view.
//!
//! A benchmark, not a test: it prints figures and exits 0 unless the run itself broke.
//! Traffic: loopback (moto, hubdesk) and the swarm's own test network only.
#[path = "../tests/api/cluster_peers.rs"]
#[allow(dead_code)]
mod cluster_peers;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use cluster_peers::{Hypervisor, Moto, Swarm};
use hubdesk::{
    app::Application,
    cluster::{
        jobs,
        runtime::{JoinInfo, Notebook, NotebookTask, RuntimeError, SwarmNode, SwarmView},
        Cluster, ContainerRuntime, DockerRuntime, Ec2Fleet,
    },
    config::Config,
    db::{self, EmbeddedPostgres},
    domain::{Actor, DisplayName, NewAccount, NewPassword, Role, Username},
    jobs::BoxFuture,
    state::AppState,
};
use sqlx::Executor;

/// Counts engine calls by kind (one per trait method call, two for `notebooks`).
struct Counting {
    inner: DockerRuntime,
    calls: Arc<Mutex<BTreeMap<&'static str, usize>>>,
    total: Arc<AtomicUsize>,
}

impl Counting {
    fn count(&self, what: &'static str, n: usize) {
        self.total.fetch_add(n, Ordering::SeqCst);
        *self.calls.lock().unwrap().entry(what).or_default() += n;
    }
}

impl ContainerRuntime for Counting {
    fn swarm(&self) -> BoxFuture<'_, Result<SwarmView, RuntimeError>> {
        self.count("GET /info", 1);
        self.inner.swarm()
    }
    fn nodes(&self) -> BoxFuture<'_, Result<Vec<SwarmNode>, RuntimeError>> {
        self.count("GET /nodes", 1);
        self.inner.nodes()
    }
    fn notebooks(&self) -> BoxFuture<'_, Result<Vec<Notebook>, RuntimeError>> {
        self.count("GET /services + GET /tasks", 2);
        self.inner.notebooks()
    }
    fn notebook_tasks(&self) -> BoxFuture<'_, Result<Vec<NotebookTask>, RuntimeError>> {
        self.count("GET /services + GET /tasks (all states)", 2);
        self.inner.notebook_tasks()
    }
    fn drain<'a>(&'a self, node_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.count("drain", 2);
        self.inner.drain(node_id)
    }
    fn remove_node<'a>(
        &'a self,
        node_id: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        self.count("node rm", 1);
        self.inner.remove_node(node_id, force)
    }
    fn join_info(&self) -> BoxFuture<'_, Result<JoinInfo, RuntimeError>> {
        self.count("join info", 2);
        self.inner.join_info()
    }
    fn rotate_worker_token(&self) -> BoxFuture<'_, Result<(), RuntimeError>> {
        self.count("rotate worker token", 2);
        self.inner.rotate_worker_token()
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let views = arg("--views", 100);
    let services = arg("--services", 200);
    let instances = arg("--instances", 50);
    let launch = arg("--launch", 3) as u32;
    let t0 = Instant::now();

    let moto = Moto::start(&[]).await.expect("moto");
    let swarm = Swarm::up(2)
        .await
        .expect("a Docker engine for the DinD swarm");
    eprintln!(
        "bench: swarm up, moto on {} ({} ms)",
        moto.url,
        t0.elapsed().as_millis()
    );
    let hv = Hypervisor::start(&swarm, &moto, "bench").await;
    let (subnet, sg) = moto.network(&swarm.subnet()).await;

    let mut config = Config::default();
    config.cluster.enabled = true;
    config.cluster.name = "bench".into();
    config.cluster.docker_host = swarm.docker_host();
    config.cluster.worker.ami = moto.some_ami().await;
    config.cluster.worker.subnet_id = subnet;
    config.cluster.worker.security_group_ids = vec![sg];
    config.cluster.join_timeout_secs = 180;
    config.aws.region = cluster_peers::REGION.into();
    config.aws.endpoint_url = moto.url.clone();
    // Homes in a scratch directory (the app opens its homes root at start).
    let homes_dir =
        std::env::temp_dir().join(format!("hubdesk-bench-cluster-{}", std::process::id()));
    config.homes.root = Some(homes_dir.join("homes"));
    config.homes.create_root = true;

    // The app's database: a private PostgreSQL under the target dir (left running, as the
    // tests do), one fresh database per run.
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let pg = EmbeddedPostgres::start(&std::path::Path::new(&dir).join("bench-postgres"))?;
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let admin_pool = db::pool_for(&pg.url("postgres")).await?;
    admin_pool
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await?;
    let pool = db::pool_for(&pg.url(&name)).await?;
    db::MIGRATOR.run(&pool).await?;

    let calls = Arc::new(Mutex::new(BTreeMap::new()));
    let total = Arc::new(AtomicUsize::new(0));
    let runtime = Counting {
        inner: DockerRuntime::connect(&config.cluster.docker_host).await?,
        calls: calls.clone(),
        total: total.clone(),
    };
    let fleet = Ec2Fleet::from_sdk(&moto.sdk("testing", "testing"), &config.cluster);
    let ec2 = fleet.counter();
    let cluster = Arc::new(
        Cluster::new(
            Arc::new(runtime),
            Arc::new(fleet),
            pool.clone(),
            config.cluster.clone(),
        )
        .with_poll(Duration::from_millis(200)),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    config.cluster.enabled = false; // the handle is ours, with its counters
    config.bind = format!("127.0.0.1:{port}");
    config.public_url = format!("http://127.0.0.1:{port}");
    let mut state = AppState::new(pool.clone(), config.clone()).await?;
    state.job_handlers.extend(jobs::handlers(&cluster));
    state.cluster = Some(cluster.clone());
    let account = NewAccount {
        username: Username::parse("boss")?,
        display_name: DisplayName::parse("Bench Admin")?,
        password: NewPassword::parse("plum-rocket-lantern-7", 8, "boss")?,
    };
    state
        .roster
        .create_staff(&Actor::System, &account, Role::Admin)
        .await?;
    let app = Application::build_on(listener, state.clone()).await?;
    tokio::spawn(app.run_until_stopped());

    // 1. launch → joined
    let started = Instant::now();
    let job = cluster.launch(&Actor::System, launch).await?;
    state.jobs.wake();
    let row = loop {
        let mut conn = pool.acquire().await?;
        let row = db::jobs::get(&mut conn, job).await?.unwrap();
        if row.state.is_final() {
            break row;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(300),
            "launch took > 300 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let launch_ms = started.elapsed().as_millis();
    anyhow::ensure!(
        row.state.as_str() == "succeeded",
        "launch failed: {:?} {:?}",
        row.error,
        hv.errors()
    );
    eprintln!("bench: {launch} workers joined in {launch_ms} ms");

    // 2. camp size: instances in moto, notebook services in the swarm.
    let raw = moto.client();
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    let extra = instances.saturating_sub(launch as usize) as i32;
    if extra > 0 {
        raw.run_instances()
            .image_id(&config.cluster.worker.ami)
            .instance_type(aws_sdk_ec2::types::InstanceType::T3Large)
            .min_count(extra)
            .max_count(extra)
            .tag_specifications(
                aws_sdk_ec2::types::TagSpecification::builder()
                    .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                    .tags(tag("hubdesk:cluster", "bench"))
                    .tags(tag("hubdesk:role", "worker"))
                    .tags(tag("hubdesk:launch", "bench-filler"))
                    .build(),
            )
            .send()
            .await?;
    }
    let engine = DockerRuntime::connect(&config.cluster.docker_host).await?;
    let tiny = swarm.get("HUBDESK_TINY_IMAGE").to_string();
    let t = Instant::now();
    for k in 0..services {
        use bollard::models::*;
        let spec = ServiceSpec {
            name: Some(format!("jupyter-student-2d{k:03}")),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(tiny.clone()),
                    env: Some(vec!["JUPYTERHUB_API_TOKEN=bench-secret".into()]),
                    ..Default::default()
                }),
                placement: Some(TaskSpecPlacement {
                    constraints: Some(vec!["node.role==worker".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ..Default::default()
            }),
            ..Default::default()
        };
        engine.docker()?.create_service(spec, None).await?;
    }
    let placed = loop {
        let o = cluster.overview().await;
        let running: usize = o.nodes.iter().map(|n| n.students.len()).sum();
        if running >= services || t.elapsed() > Duration::from_secs(600) {
            break running;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    eprintln!(
        "bench: {services} services created, {placed} placed on nodes in {} ms",
        t.elapsed().as_millis()
    );

    // 3. page views
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let login = client
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let marker = "name=\"csrf_token\" value=\"";
    let token = login[login.rfind(marker).unwrap() + marker.len()..]
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = client
        .post(format!("{base}/login"))
        .form(&[
            ("username", "boss"),
            ("password", "plum-rocket-lantern-7"),
            ("csrf_token", &token),
        ])
        .send()
        .await?;
    anyhow::ensure!(r.status() == 303, "admin login: {}", r.status());
    let api_token = hubdesk::auth::secret::random_token();
    {
        let mut conn = pool.acquire().await?;
        db::api_tokens::insert(
            &mut conn,
            None,
            "bench",
            &hubdesk::auth::secret::hash_token(&api_token),
        )
        .await?;
    }

    // Page and API views interleaved, so both meet the same conditions on the machine.
    let targets = [
        ("page GET /cluster", "/cluster", false),
        ("api GET /api/v1/cluster", "/api/v1/cluster", true),
    ];
    let mut ms: Vec<Vec<f64>> = vec![Vec::new(), Vec::new()];
    let mut sizes = [0usize; 2];
    let (d0, e0) = (total.load(Ordering::SeqCst), ec2.get());
    for _ in 0..views {
        for (k, (_, path, bearer)) in targets.iter().enumerate() {
            let t = Instant::now();
            let mut req = client.get(format!("{base}{path}"));
            if *bearer {
                req = req.bearer_auth(&api_token);
            }
            let r = req.send().await?;
            anyhow::ensure!(r.status() == 200, "{path}: {}", r.status());
            let body = r.bytes().await?;
            anyhow::ensure!(
                !String::from_utf8_lossy(&body).contains("bench-secret"),
                "a service's environment leaked"
            );
            sizes[k] = body.len();
            ms[k].push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let n_views = (2 * views) as f64;
    let docker_per = (total.load(Ordering::SeqCst) - d0) as f64 / n_views;
    let ec2_per = (ec2.get() - e0) as f64 / n_views;
    let mut figures = Vec::new();
    for (k, (what, _, _)) in targets.iter().enumerate() {
        let m = &mut ms[k];
        m.sort_by(|a, b| a.partial_cmp(b).unwrap());
        figures.push(format!(
            "{what:<26} n={views} p50={:.1}ms p99={:.1}ms max={:.1}ms bytes={}",
            pct(m, 0.5),
            pct(m, 0.99),
            m[m.len() - 1],
            sizes[k]
        ));
    }
    figures.push(format!(
        "calls per view (both kinds): docker={docker_per} ec2={ec2_per}"
    ));
    // Where a view's time goes: each side alone (they run side by side in a view).
    let mut sides = Vec::new();
    for side in ["docker", "ec2", "roll board's docker"] {
        let mut ms = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            if side == "docker" {
                let r = cluster.runtime();
                let _ = futures_util::try_join!(r.swarm(), r.nodes(), r.notebooks())?;
            } else if side == "roll board's docker" {
                // What one roll board update asks the engine (bench/board's fakes answer at once).
                let r = cluster.runtime();
                let _ = futures_util::try_join!(r.notebook_tasks(), r.nodes())?;
            } else {
                let f = cluster.fleet();
                let i = f.instances().await?;
                let _ = f.instance_types(&[i[0].instance_type.clone()]).await?;
            }
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        sides.push(format!(
            "{side} side alone: p50={:.1}ms p99={:.1}ms",
            pct(&ms, 0.5),
            pct(&ms, 0.99)
        ));
    }
    let o = cluster.overview().await;
    println!(
        "CLUSTER BENCH (debug build; the machine's load: {:?})",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!(
        "setup: {} swarm nodes, {} instances in moto (hubdesk's tag), {} notebook services ({placed} placed)",
        o.nodes.len(),
        o.instances.len(),
        services
    );
    println!("launch→joined: {launch} workers in {launch_ms} ms");
    for f in figures.iter().chain(sides.iter()) {
        println!("{f}");
    }
    println!(
        "engine calls by kind (whole run): {:?}",
        calls.lock().unwrap()
    );
    println!(
        "EC2 calls by kind (whole run): RunInstances={} DescribeInstances={} DescribeInstanceTypes={} DescribeImages={}",
        ec2.of("RunInstances"),
        ec2.of("DescribeInstances"),
        ec2.of("DescribeInstanceTypes"),
        ec2.of("DescribeImages")
    );
    println!("total: {} ms", t0.elapsed().as_millis());

    drop(hv);
    drop(swarm);
    let _ = std::fs::remove_dir_all(&homes_dir);
    pool.close().await;
    admin_pool
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await?;
    std::mem::forget(pg); // left running for the next run, like the tests' PostgreSQL
    Ok(())
}
