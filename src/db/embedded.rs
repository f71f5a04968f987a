//! A private PostgreSQL that hubdesk starts (and stops) itself when no `DATABASE_URL` is given.
//!
//! Layout under the data dir: `postgres/` (PGDATA), `postgres.log`. The server listens on a unix
//! socket only (no TCP port), in a directory only its owner can enter. PostgreSQL refuses to run
//! as root, so when hubdesk runs as root the cluster belongs to the `postgres` system user.
use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

pub struct EmbeddedPostgres {
    bin_dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    run_as: Option<String>,
    /// Only the process that started the server stops it; a CLI command run beside a live
    /// `serve` leaves it alone.
    started_here: bool,
}

impl EmbeddedPostgres {
    /// Initialises the cluster on first use and starts it unless it is already running.
    pub fn start(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let data_dir = data_dir
            .canonicalize()
            .with_context(|| format!("resolving data dir {}", data_dir.display()))?;
        let bin_dir = find_bin_dir()?;
        let pgdata = data_dir.join("postgres");
        let socket_dir = socket_dir_for(&data_dir);
        let run_as = if running_as_root() {
            Some("postgres".to_string())
        } else {
            None
        };

        let pg = Self {
            bin_dir,
            pgdata,
            socket_dir,
            run_as,
            started_here: false,
        };
        pg.prepare_dirs(&data_dir)?;
        if !pg.pgdata.join("PG_VERSION").exists() {
            tracing::info!(pgdata = %pg.pgdata.display(), "initialising embedded PostgreSQL");
            pg.run(
                "initdb",
                &[
                    "-D",
                    path_str(&pg.pgdata)?,
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ],
            )?;
        }
        pg.ensure_running()
    }

    /// URL for sqlx: socket directory as `host`, no password (trust on a private socket).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.socket_dir.display()
        )
    }

    fn ensure_running(mut self) -> anyhow::Result<Self> {
        if self.status_running() {
            tracing::info!("embedded PostgreSQL already running; reusing it");
            return Ok(self);
        }
        let log = self.pgdata.with_file_name("postgres.log");
        let opts = format!(
            "-c listen_addresses='' -k {} -c max_connections=100 -c shared_buffers=32MB",
            self.socket_dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&self.pgdata)?,
                "-l",
                path_str(&log)?,
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
        .with_context(|| format!("starting PostgreSQL (see {})", log.display()))?;
        self.started_here = true;
        Ok(self)
    }

    fn status_running(&self) -> bool {
        self.command("pg_ctl")
            .args(["-D", &self.pgdata.to_string_lossy(), "status"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// Stops the server if this process started it.
    pub fn stop(&mut self) {
        if !self.started_here {
            return;
        }
        self.started_here = false;
        let pgdata = self.pgdata.to_string_lossy().to_string();
        if let Err(e) = self.run("pg_ctl", &["-D", &pgdata, "-m", "fast", "-w", "stop"]) {
            tracing::warn!(error = %e, "stopping embedded PostgreSQL");
        }
    }

    fn prepare_dirs(&self, data_dir: &Path) -> anyhow::Result<()> {
        for dir in [&self.pgdata, &self.socket_dir] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        if let Some(user) = &self.run_as {
            let (uid, gid) = lookup_user(user)?;
            for dir in [data_dir, &self.pgdata, &self.socket_dir] {
                if std::fs::metadata(dir)?.uid() != uid {
                    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                        .with_context(|| format!("chown {} to {user}", dir.display()))?;
                }
            }
            // The postgres user must be able to walk down to its data directory.
            for ancestor in data_dir.ancestors().skip(1) {
                let mode = std::fs::metadata(ancestor)?.permissions().mode();
                if mode & 0o001 == 0 {
                    bail!(
                        "the embedded PostgreSQL runs as the `postgres` user, which cannot enter {} \
                         (mode {:o}); choose a data dir it can reach, e.g. HUBDESK_DATA_DIR=/var/lib/hubdesk, \
                         or set DATABASE_URL",
                        ancestor.display(),
                        mode & 0o777
                    );
                }
            }
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin_dir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .command(program)
            .args(args)
            .current_dir("/")
            .output()
            .with_context(|| format!("running {program}"))?;
        if !out.status.success() {
            bail!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path_str(p: &Path) -> anyhow::Result<&str> {
    p.to_str()
        .with_context(|| format!("path is not UTF-8: {}", p.display()))
}

/// Unix socket paths are limited to ~107 bytes; deep data dirs get a socket dir under /tmp.
fn socket_dir_for(data_dir: &Path) -> PathBuf {
    let preferred = data_dir.join("run");
    if preferred.as_os_str().len() + "/.s.PGSQL.5432".len() < 100 {
        return preferred;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    PathBuf::from(format!("/tmp/hubdesk-pg-{short}"))
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

fn lookup_user(name: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .next()
        .with_context(|| format!("no `{name}` system user: install PostgreSQL or set DATABASE_URL"))
}

/// `HUBDESK_PG_BIN`, then the newest `/usr/lib/postgresql/*/bin`, then `pg_config --bindir`.
fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("HUBDESK_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    bail!("PostgreSQL server binaries not found (set HUBDESK_PG_BIN or DATABASE_URL)")
}
