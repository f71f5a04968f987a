//! The command line: what each command does, one call per arm. Each command builds only the
//! handles it uses (creating an admin opens the database and a hasher; it makes no signing key).
use std::{
    io::{BufRead, Write},
    path::PathBuf,
    sync::Arc,
};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    app::Application,
    auth::{secret, Hasher, TokenCache},
    config::{self, Config},
    db::Database,
    domain::{Actor, DisplayName, NewAccount, NewPassword, Role, Username},
    roster::Roster,
    state::AppState,
};

#[derive(Debug, Parser)]
#[command(
    name = "hubdesk",
    version,
    about = "The front desk of a teaching JupyterHub"
)]
pub struct Cli {
    /// TOML configuration file (default: ./hubdesk.toml if present).
    #[arg(long, global = true, env = "HUBDESK_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the web server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage admin accounts.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// OpenID Connect helpers.
    Oidc {
        #[command(subcommand)]
        action: OidcAction,
    },
    /// Check a deployment: one line per check, with the fix when it fails; exit code 1 if any
    /// check fails (warnings do not fail).
    Doctor {
        /// Seconds each check may take (a dead peer is a FAIL line, not a hang).
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Print the single-thread argon2 verify time at the configured parameters.
    BenchHash {
        #[arg(long, default_value_t = 15)]
        rounds: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create an admin account.
    Create {
        name: String,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OidcAction {
    /// Print a new random client secret (URL-safe characters only).
    NewSecret,
    /// Make a new id_token signing key: published at once, used for signing after 6 minutes;
    /// the old one stays in JWKS for a day.
    RotateKey,
}

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Create an API token; it is printed once.
    Create { name: String },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Oidc {
        action: OidcAction::NewSecret,
    } = command
    {
        // base64url: URL-safe, so it survives Basic auth and form encoding untouched.
        println!("{}", secret::random_token());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    match command {
        Command::Serve => serve(config).await,
        Command::Migrate => migrate(&config).await,
        Command::Admin {
            action: AdminAction::Create {
                name, display_name, ..
            },
        } => create_admin(&config, &name, display_name.as_deref()).await,
        Command::Token {
            action: TokenAction::Create { name },
        } => create_token(&config, &name).await,
        Command::Oidc {
            action: OidcAction::RotateKey,
        } => rotate_key(&config).await,
        // Answered above, before the configuration is read.
        Command::Oidc {
            action: OidcAction::NewSecret,
        } => Ok(()),
        Command::BenchHash { rounds } => bench_hash(&config, rounds),
        Command::Doctor { timeout } => doctor(&config, timeout).await,
    }
}

async fn open(config: &Config) -> anyhow::Result<Database> {
    let db = Database::connect(config).await?;
    db.migrate().await?;
    Ok(db)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(database = %config::describe_database(config.database_url()), "starting");
    let db = open(&config).await?;
    let state = AppState::new(db.pool.clone(), config.clone()).await?;
    let app = Application::build(state).await?;
    let host = config.bind_addr()?.ip();
    if app.state.oidc.clients.is_empty() {
        tracing::info!("no OIDC clients configured: the hub cannot log in through hubdesk yet");
    }
    println!("hubdesk listening on http://{host}:{}", app.port());
    if let Some(url) = crate::account::setup::first_run_url(&db.pool, &config.public_url).await? {
        println!("First run: open {url} to create the first admin");
    }
    std::io::stdout().flush().ok();
    let result = app.run_until_stopped().await;
    db.close().await;
    result.context("server")
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let db = open(config).await?;
    println!("migrations applied");
    db.close().await;
    Ok(())
}

/// A roster service on the database alone: no signing key, no server.
fn roster_for(config: &Config, db: &Database) -> anyhow::Result<Roster> {
    let hasher = Hasher::new(&config.password, 1)?;
    // No runner in a CLI process: the server's runner finds queued jobs by polling.
    Ok(Roster::new(
        db.pool.clone(),
        hasher,
        Arc::new(TokenCache::default()),
        crate::jobs::Waker::default(),
    ))
}

async fn create_admin(
    config: &Config,
    name: &str,
    display_name: Option<&str>,
) -> anyhow::Result<()> {
    let username = Username::parse(name).context("invalid admin name")?;
    let display_name =
        DisplayName::parse(display_name.unwrap_or(name)).context("invalid display name")?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    let password = NewPassword::parse(password, config.password.min_length, username.as_str())
        .map_err(|e| anyhow::anyhow!("password refused: {e}"))?;
    let db = open(config).await?;
    let account = NewAccount {
        username,
        display_name,
        password,
    };
    let result = roster_for(config, &db)?
        .create_staff(&Actor::Cli, &account, Role::Admin)
        .await;
    db.close().await;
    result.with_context(|| format!("creating admin {}", account.username))?;
    println!("admin {} created", account.username);
    Ok(())
}

async fn create_token(config: &Config, name: &str) -> anyhow::Result<()> {
    let db = open(config).await?;
    let result = roster_for(config, &db)?
        .create_api_token(&Actor::Cli, name)
        .await;
    db.close().await;
    println!("{}", result?);
    Ok(())
}

async fn rotate_key(config: &Config) -> anyhow::Result<()> {
    let db = open(config).await?;
    let rotated = crate::oidc::keys::rotate(&db.pool).await;
    db.close().await;
    let (kids, retired) = rotated.context("rotating the signing keys")?;
    println!(
        "new signing key {}; {retired} key(s) retired (published for another day); \
         running servers publish it within a minute and sign with it after {} minutes",
        kids.join(", "),
        crate::oidc::keys::PUBLISH_AHEAD.as_secs() / 60
    );
    Ok(())
}

async fn doctor(config: &Config, timeout: u64) -> anyhow::Result<()> {
    let timeout = std::time::Duration::from_secs(timeout.max(1));
    let checks = crate::doctor::run(config, timeout).await;
    let mut out = std::io::stdout().lock();
    for c in &checks {
        writeln!(out, "{c}")?;
    }
    let failed = crate::doctor::failed(&checks);
    if failed {
        writeln!(out, "some checks failed")?;
    }
    out.flush()?;
    // Exit here: a check that timed out on a hung mount may still hold a blocking thread, which
    // would keep the runtime (and so the process) from ending.
    std::process::exit(if failed { 1 } else { 0 });
}

fn bench_hash(config: &Config, rounds: usize) -> anyhow::Result<()> {
    let hasher = Hasher::new(&config.password, 1)?;
    let ms = hasher.measure_verify_ms(rounds)?;
    println!("{} verify_ms={ms:.1}", hasher.describe());
    Ok(())
}
