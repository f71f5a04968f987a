//! bench/board: the roll board at camp size — what one update costs at 200 students, and that
//! the calls it makes to the hub and the engine do not grow with the class.
//!
//! ```sh
//! cargo bench --bench board                       # release build
//! cargo bench --bench board --profile dev         # reuse a warm debug target dir
//! cargo bench --bench board -- --students 200 --updates 300 --counselors 4
//! ```
//!
//! The real app (HTTP, sessions, askama, PostgreSQL: `DATABASE_URL`, or a private server under
//! `$HUBDESK_BENCH_DIR`, default `/var/tmp`) with the hub and the swarm behind their seams
//! (`FakeHub`, the cluster's `FakeWorld`): a class where 60 % are ready, 15 % idle, 10 %
//! starting with a task held by the scheduler, 5 % failed (recorded by the spawn timeline's
//! sweep), the rest stopped or never logged in. The fakes answer at once, so the figures are
//! hubdesk's own cost of an update (the database, the decisions, the page); what the real
//! engine takes for its two list calls at 200 services is `bench/cluster`'s "docker side"
//! figure, and the hub's one `GET /users?state=active` is one page of JSON.
//!
//! Measures, for `GET /board/live` (the page's self-update, a counselor's session) and `GET
//! /api/v1/board` (a token): p50 / p95 / p99 / max over `--updates` sequential updates, then
//! with `--counselors` boards refreshing at once; the hub and engine calls per update at 10
//! students and at `--students` (they must be equal); and one timeline sweep at that size.
//! Prints figures; exits non-zero when the run itself breaks or the calls per update grow.
//! Under `cargo test` (no `--bench` flag) it is a 30-student smoke run.
#[path = "../support/pg.rs"]
mod pg;

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use hubdesk::{
    app::Application,
    auth::session,
    cluster::{
        fake::{self, FakeWorld},
        runtime::TaskPhase,
        Cluster,
    },
    config::Config,
    db,
    domain::{Actor, DisplayName, NewAccount, NewPassword, Role, Username},
    hub::{FakeHub, HubApi, ServerState},
    roster,
    state::{Adapters, AppState},
};
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

struct Args {
    students: usize,
    updates: usize,
    counselors: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        students: 200,
        updates: 300,
        counselors: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value =
            || -> anyhow::Result<String> { it.next().context("a value after the flag") };
        match flag.as_str() {
            "--students" => a.students = value()?.parse()?,
            "--updates" => a.updates = value()?.parse()?,
            "--counselors" => a.counselors = value()?.parse()?,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    let mut a = args()?;
    // Under `cargo test` (no `--bench`): a small smoke run, failing if the calls grow.
    if !std::env::args().any(|a| a == "--bench") {
        a = Args {
            students: 30,
            updates: 5,
            counselors: 2,
        };
    }
    let base = std::path::PathBuf::from(
        std::env::var("HUBDESK_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()),
    )
    .join(format!("hubdesk-bench-board-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run(&a, &base));
    let _ = std::fs::remove_dir_all(&base);
    result
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn line(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{what:<44} n={:<4} p50 {:>6.1} ms  p95 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        ms.len(),
        pct(&ms, 50.0),
        pct(&ms, 95.0),
        pct(&ms, 99.0),
        ms.last().copied().unwrap_or_default()
    );
}

/// A class of `n`: ready, idle, starting (held), failed, stopped, never logged in.
async fn class(
    state: &AppState,
    hub: &FakeHub,
    world: &FakeWorld,
    from: usize,
    n: usize,
) -> anyhow::Result<()> {
    let mut csv = String::from("display_name,username,cohort\n");
    for i in from..from + n {
        csv.push_str(&format!("Student {i},student-{i:03},Morning\n"));
    }
    let rows = roster::import::parse(csv.as_bytes()).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let mut conn = state.pool.acquire().await?;
    let plan = roster::import::plan(&mut conn, rows)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    drop(conn);
    state
        .roster
        .create_students(&Actor::System, &hubdesk::domain::Reach::All, &plan, "bench")
        .await?;
    let now = OffsetDateTime::now_utc();
    for i in from..from + n {
        let user = format!("student-{i:03}");
        let slot = i % 20;
        let server = match slot {
            0..=11 => Some(FakeHub::ready_server(
                &user,
                now - time::Duration::minutes(20),
            )),
            12..=14 => {
                let mut s = FakeHub::ready_server(&user, now - time::Duration::minutes(50));
                s.last_activity = Some(now - time::Duration::minutes(30));
                Some(s)
            }
            15..=17 => Some(ServerState {
                started: Some(now - time::Duration::seconds(40)),
                last_activity: None,
                pending: Some("spawn".into()),
                ready: false,
                url: String::new(),
            }),
            _ => None,
        };
        if slot <= 14 {
            world.with(|w| {
                w.notebooks
                    .push(fake::notebook(&user, &format!("node-w{}", 1 + i % 3)))
            });
        }
        if (15..=17).contains(&slot) {
            world.with(|w| {
                w.tasks.push(fake::task(
                    &user,
                    TaskPhase::Pending,
                    "no suitable node (insufficient resources on 3 nodes)",
                ))
            });
        }
        if slot <= 17 {
            hub.set_server(&user, server);
        } else if slot == 18 {
            hub.add_user(&user);
        }
    }
    sqlx::query("UPDATE users SET last_login_at = now() WHERE role = 'student' AND right(username, 1) <> '9'")
        .execute(&state.pool)
        .await?;
    Ok(())
}

async fn run(a: &Args, base: &std::path::Path) -> anyhow::Result<()> {
    let bench_db = pg::BenchDb::open(base, "bench_board").await?;
    let pool = bench_db.pool.clone();

    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        database_url: Some(SecretString::new(bench_db.url.clone())),
        data_dir: base.join("data"),
        public_url: format!("http://127.0.0.1:{port}"),
        ..Config::default()
    };
    config.hub.api_token = Some(SecretString::new("fake-hub-adapter".into()));
    config.hub.timeline_secs = 0; // swept once below, timed
    config.homes.resolve(&config.data_dir.clone())?;
    let hub = Arc::new(FakeHub::new());
    let world = FakeWorld::new();
    for n in 1..=3 {
        world.with(|w| {
            w.nodes.push(fake::worker_node(
                &format!("node-w{n}"),
                &format!("worker-{n}"),
                "10.0.1.9",
            ))
        });
    }
    let mut state = AppState::with_adapters(
        pool.clone(),
        config,
        Adapters {
            hub: Some(hub.clone() as Arc<dyn HubApi>),
        },
    )
    .await?;
    let cluster = Arc::new(Cluster::new(
        Arc::new(world.runtime()),
        Arc::new(world.fleet(&state.config.cluster.name)),
        pool.clone(),
        state.config.cluster.clone(),
    ));
    state.cluster = Some(cluster.clone());
    state.board.cluster = Some(cluster);
    let app = Application::build_on(listener, state).await?;
    let state = app.state.clone();
    tokio::spawn(app.run_until_stopped());
    let base_url = format!("http://127.0.0.1:{port}");

    // A counselor's session and an API token.
    let account = NewAccount {
        username: Username::parse("connie")?,
        display_name: DisplayName::parse("Connie Counselor")?,
        password: NewPassword::parse("a long bench password 1", 8, "connie")?,
    };
    let counselor = state
        .roster
        .create_staff(&Actor::System, &account, Role::Counselor)
        .await?;
    let cookie = session::create(&pool, &state.config, counselor.id, None).await?;
    let cookie = format!("{}={}", cookie.name(), cookie.value());
    let token = hubdesk::auth::secret::random_token();
    {
        let mut conn = pool.acquire().await?;
        db::api_tokens::insert(
            &mut conn,
            None,
            "bench",
            &hubdesk::auth::secret::hash_token(&token),
        )
        .await?;
    }
    let http = reqwest::Client::new();
    let live = |http: reqwest::Client, cookie: String, url: String| async move {
        let t = Instant::now();
        let r = http.get(url).header("Cookie", cookie).send().await?;
        anyhow::ensure!(r.status() == 200, "GET /board/live: {}", r.status());
        let body = r.bytes().await?;
        Ok::<_, anyhow::Error>((t.elapsed().as_secs_f64() * 1000.0, body.len()))
    };
    let calls = || (hub.calls().len(), world.with(|w| w.total_calls("")));

    // Calls per update at 10 students, then at the full class.
    class(&state, &hub, &world, 0, 10).await?;
    let before = calls();
    live(
        http.clone(),
        cookie.clone(),
        format!("{base_url}/board/live"),
    )
    .await?;
    let small = calls();
    class(&state, &hub, &world, 10, a.students.saturating_sub(10)).await?;
    // The timeline's sweep at full size (it opens a start for each held task).
    let t = Instant::now();
    let report = state.board.sweep().await?;
    let sweep_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mid = calls();
    let (_, bytes) = live(
        http.clone(),
        cookie.clone(),
        format!("{base_url}/board/live"),
    )
    .await?;
    let big = calls();
    let per_small = (small.0 - before.0, small.1 - before.1);
    let per_big = (big.0 - mid.0, big.1 - mid.1);

    let mut page = Vec::with_capacity(a.updates);
    for _ in 0..a.updates {
        page.push(
            live(
                http.clone(),
                cookie.clone(),
                format!("{base_url}/board/live"),
            )
            .await?
            .0,
        );
    }
    let mut api = Vec::with_capacity(a.updates);
    for _ in 0..a.updates {
        let t = Instant::now();
        let r = http
            .get(format!("{base_url}/api/v1/board"))
            .bearer_auth(&token)
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "GET /api/v1/board: {}", r.status());
        r.bytes().await?;
        api.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let mut together = Vec::new();
    for _ in 0..(a.updates / a.counselors.max(1)).max(1) {
        let round = futures_util::future::join_all((0..a.counselors).map(|_| {
            live(
                http.clone(),
                cookie.clone(),
                format!("{base_url}/board/live"),
            )
        }))
        .await;
        for r in round {
            together.push(r?.0);
        }
    }

    println!(
        "bench/board: {} students, {} nodes, fakes for the hub and the engine",
        a.students, 4
    );
    println!(
        "calls per update: hub {} / engine {} at 10 students; hub {} / engine {} at {} ({})",
        per_small.0,
        per_small.1,
        per_big.0,
        per_big.1,
        a.students,
        if per_small == per_big {
            "constant"
        } else {
            "GROWS"
        }
    );
    anyhow::ensure!(
        per_small == per_big,
        "the calls per update grow with the class: {per_small:?} at 10, {per_big:?} at {}",
        a.students
    );
    line("GET /board/live (sequential)", page);
    line("GET /api/v1/board (sequential)", api);
    line(
        &format!("GET /board/live ({} counselors at once)", a.counselors),
        together,
    );
    println!(
        "live part: {} KB; one timeline sweep: {sweep_ms:.1} ms ({report:?})",
        bytes / 1024
    );
    let _ = state
        .config
        .database_url
        .as_ref()
        .map(|u| u.expose_secret().len());
    bench_db.close().await?;
    Ok(())
}
