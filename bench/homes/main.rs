//! bench/homes: what a reset costs as homes grow, and how long a usage scan of a class takes.
//!
//! ```sh
//! cargo bench --bench homes                       # release build
//! cargo bench --bench homes --profile dev         # reuse a warm debug target dir
//! cargo bench --bench homes -- --big-mib 256 --small-files 20000 --homes 50   # a quick run
//! ```
//!
//! Generates, under `$HUBDESK_BENCH_DIR` (default `/var/tmp`), a homes root with three homes
//! of 10 MiB, 1 GiB and 100,000 small files, then resets each one `--rounds` times (restoring
//! it in between, so every reset moves the same big tree), timing each reset and reading this
//! process's peak RSS around it (`VmHWM`, reset through `/proc/self/clear_refs`). Then lays 300
//! homes (template + 50 files of 4 KiB each) and times `usage` over all of them, one at a time
//! and 8 at a time, and then the background sweep itself (`homes::usage::sweep`: every
//! student's home measured, stored, flagged against its limit, and the NFS node's quota list
//! written). Uses `DATABASE_URL`, or starts a private PostgreSQL under the bench dir.
//! Prints figures; exits non-zero only when the run itself breaks. Everything it made is
//! removed at the end.
#[path = "../support/pg.rs"]
mod pg;

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{stream, StreamExt};
use hubdesk::{
    config::HomesConfig,
    domain::{Actor, Username},
    homes::{Homes, ResetScope},
};

struct Args {
    big_mib: u64,
    small_files: u64,
    homes: usize,
    rounds: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        big_mib: 1024,
        small_files: 100_000,
        homes: 300,
        rounds: 11,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value =
            || -> anyhow::Result<String> { it.next().context("a value after the flag") };
        match flag.as_str() {
            "--big-mib" => a.big_mib = value()?.parse()?,
            "--small-files" => a.small_files = value()?.parse()?,
            "--homes" => a.homes = value()?.parse()?,
            "--rounds" => a.rounds = value()?.parse()?,
            "--bench" => {} // cargo bench passes it
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Starts a new peak-RSS window (Linux: `echo 5 > /proc/self/clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Writes `total` bytes of data into `files` files under `dir` from one reused 1 MiB buffer.
fn fill(dir: &Path, files: u64, total: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let buf: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let per = total / files;
    for i in 0..files {
        let mut f = std::fs::File::create(dir.join(format!("data-{i:03}.bin")))?;
        let mut left = per;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
    }
    Ok(())
}

fn small_files(dir: &Path, n: u64) -> anyhow::Result<()> {
    let per_dir = 1000;
    for i in 0..n {
        let d = dir.join(format!("d{:03}", i / per_dir));
        if i % per_dir == 0 {
            std::fs::create_dir_all(&d)?;
        }
        std::fs::write(d.join(format!("f{i:06}.py")), format!("x = {i}\n"))?;
    }
    Ok(())
}

fn template(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("notebooks"))?;
    std::fs::write(dir.join("README.md"), "# Camp\n")?;
    for i in 0..20 {
        std::fs::write(
            dir.join(format!("notebooks/lesson-{i:02}.ipynb")),
            vec![b'x'; 10 << 10],
        )?;
    }
    std::os::unix::fs::symlink("/srv/data", dir.join("data"))?;
    Ok(())
}

fn du(path: &Path) -> String {
    std::process::Command::new("du")
        .args(["-sh", path.to_str().unwrap_or(".")])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench targets too; figures are for `cargo bench` only.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench/homes: run it with `cargo bench --bench homes` (skipped under cargo test)");
        return Ok(());
    }
    let a = args()?;
    let base_dir = std::env::var("HUBDESK_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let base = PathBuf::from(base_dir).join(format!("hubdesk-bench-homes-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let result = run(&a, &base).await;
    let t = Instant::now();
    std::fs::remove_dir_all(&base).ok();
    eprintln!(
        "cleaned up {} in {:.1} s",
        base.display(),
        t.elapsed().as_secs_f64()
    );
    result
}

async fn run(a: &Args, base: &Path) -> anyhow::Result<()> {
    // PostgreSQL: DATABASE_URL's server, or a private one (kept only for this run).
    let bench_db = pg::BenchDb::open(base, "bench_homes").await?;
    let pool = bench_db.pool.clone();

    let root = base.join("homes");
    std::fs::create_dir_all(&root)?;
    template(&base.join("template"))?;
    let mut config = HomesConfig {
        root: Some(root.clone()),
        template: Some(base.join("template")),
        ..HomesConfig::default()
    };
    config.resolve(base)?;
    let homes = Homes::open(&config, pool.clone()).await?;
    let actor = Actor::System;

    println!(
        "bench/homes  (root {}, {} rounds per home)",
        root.display(),
        a.rounds
    );
    println!("process RSS at start: {:.1} MiB", mib(status_kib("VmRSS:")));

    // ---- reset time and peak RSS, by home size --------------------------------------------
    let kinds: [(&str, &str); 3] = [
        ("small-10m", "10 MiB in 10 files"),
        ("big-1g", "1 GiB in 16 files"),
        ("many-files", "small files"),
    ];
    for (user, _) in &kinds {
        homes
            .create(&Username::parse(user)?, &actor)
            .await
            .with_context(|| format!("creating {user}"))?;
    }
    let t = Instant::now();
    fill(&root.join("small-10m/files"), 10, 10 << 20).context("10 MiB home")?;
    fill(&root.join("big-1g/files"), 16, a.big_mib << 20).context("1 GiB home")?;
    small_files(&root.join("many-files/src"), a.small_files).context("small files")?;
    println!("generated the homes in {:.1} s", t.elapsed().as_secs_f64());

    println!();
    println!(
        "{:<12} {:>10} {:>10} {:>12} {:>12} {:>12} {:>14}",
        "home", "du", "usage MiB", "reset p50", "reset max", "restore p50", "peak RSS MiB"
    );
    // Rounds go across the three homes (small, big, many, small, …) so that load from
    // elsewhere on the machine falls on all of them alike.
    let mut timings: Vec<(Vec<Duration>, Vec<Duration>, u64)> =
        kinds.iter().map(|_| (Vec::new(), Vec::new(), 0)).collect();
    let mut sizes = Vec::new();
    for (user, _) in &kinds {
        let u = Username::parse(user)?;
        sizes.push((du(&root.join(user)), homes.usage(&u).await?));
    }
    for _ in 0..a.rounds {
        for (i, (user, _)) in kinds.iter().enumerate() {
            let u = Username::parse(user)?;
            reset_peak();
            let t = Instant::now();
            let out = homes.reset(&u, ResetScope::All, "bench", &actor).await?;
            timings[i].0.push(t.elapsed());
            timings[i].2 = timings[i].2.max(status_kib("VmHWM:"));
            let id = out.archive.context("an archive")?;
            // Back again (also a rename; the fresh copy goes to the archive), so every round
            // resets the same big tree.
            reset_peak();
            let t = Instant::now();
            homes.restore(&u, &id, &actor).await?;
            timings[i].1.push(t.elapsed());
            timings[i].2 = timings[i].2.max(status_kib("VmHWM:"));
        }
    }
    let mut medians = Vec::new();
    for (i, (user, what)) in kinds.iter().enumerate() {
        let (resets, restores, peak) = &timings[i];
        let p50 = median(resets.clone());
        medians.push(p50);
        println!(
            "{:<12} {:>10} {:>10.1} {:>10.2}ms {:>10.2}ms {:>10.2}ms {:>14.1}   ({what})",
            user,
            sizes[i].0,
            sizes[i].1 as f64 / (1 << 20) as f64,
            ms(p50),
            ms(*resets.iter().max().unwrap()),
            ms(median(restores.clone())),
            mib(*peak),
        );
    }
    let (min, max) = (
        medians.iter().min().copied().unwrap_or_default(),
        medians.iter().max().copied().unwrap_or_default(),
    );
    println!(
        "reset p50 ratio largest/smallest: {:.2} (flat = rename; the template copy dominates)",
        max.as_secs_f64() / min.as_secs_f64().max(1e-9)
    );

    // ---- usage scan of a class ------------------------------------------------------------
    println!();
    let users: Vec<Username> = (0..a.homes)
        .map(|i| Username::parse(&format!("s{i:03}")))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for u in &users {
        homes.create(u, &actor).await?;
        for d in 0..5 {
            let dir = root.join(u.as_str()).join(format!("week{d}"));
            std::fs::create_dir_all(&dir)?;
            for f in 0..10 {
                std::fs::write(dir.join(format!("n{f}.ipynb")), vec![b'y'; 4 << 10])?;
            }
        }
    }
    println!(
        "laid {} homes (create, template of 22 entries) + 50 files each in {:.2} s",
        users.len(),
        t.elapsed().as_secs_f64()
    );
    // Warm: the files were just written. (Dropping the kernel's caches would give a cold
    // figure but slows everyone else on a shared machine.)
    reset_peak();
    let t = Instant::now();
    let mut total = 0u64;
    for u in &users {
        total += homes.usage(u).await?;
    }
    let serial = t.elapsed();
    let t = Instant::now();
    let sums: Vec<u64> = stream::iter(users.iter().map(|u| homes.usage(u)))
        .buffer_unordered(8)
        .map(|r| r.unwrap_or(0))
        .collect()
        .await;
    let parallel = t.elapsed();
    anyhow::ensure!(
        sums.iter().sum::<u64>() == total,
        "usage changed between scans"
    );
    println!(
        "usage of {} homes ({:.1} MiB allocated, warm cache): one at a time {:.0} ms ({:.2} ms/home), 8 at a time {:.0} ms; peak RSS {:.1} MiB",
        users.len(),
        total as f64 / (1 << 20) as f64,
        ms(serial),
        ms(serial) / users.len() as f64,
        ms(parallel),
        mib(status_kib("VmHWM:")),
    );
    // The sweep the app runs every `[homes] usage_interval_secs`: the students' accounts
    // first (it measures students, not directories).
    for u in &users {
        sqlx::query(
            "INSERT INTO users (subject, username, display_name, role, password_hash)
             VALUES ($1, $2, $2, 'student', 'x')",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(u.as_str())
        .execute(&pool)
        .await?;
    }
    let t = Instant::now();
    let report = hubdesk::homes::usage::sweep(&homes).await?;
    let sweep = t.elapsed();
    anyhow::ensure!(
        report.measured == users.len() && report.list_written,
        "{report:?}"
    );
    let list = std::fs::metadata(root.join(hubdesk::homes::quota::QUOTA_LIST))?.len();
    println!(
        "usage sweep of {} students (measure, store, flag, write the {list}-byte quota list): {:.0} ms ({:.2} ms/home); the list alone: {:.1} ms",
        report.measured,
        ms(sweep),
        ms(sweep) / users.len() as f64,
        {
            let t = Instant::now();
            homes.write_quota_list().await?;
            ms(t.elapsed())
        },
    );
    let u = Username::parse("many-files")?;
    let t = Instant::now();
    homes.usage(&u).await?;
    println!(
        "usage of the {}-file home: {:.0} ms (warm)",
        a.small_files,
        ms(t.elapsed())
    );

    bench_db.close().await?;
    Ok(())
}
