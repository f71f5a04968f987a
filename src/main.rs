use std::io::{BufRead, Write};

use anyhow::{bail, Context};
use clap::Parser;
use hubdesk::{
    auth::{secret, Hasher},
    cli::{AdminAction, Cli, Command, OidcAction, TokenAction},
    config::{self, Config},
    db::{self, Database},
    domain::{DisplayName, NewPassword, Role, Username},
    roster::{self, Actor},
    startup::Application,
    state::AppState,
    telemetry,
    web::setup,
};

#[tokio::main]
async fn main() {
    telemetry::init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("hubdesk: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Oidc {
        action: OidcAction::NewSecret,
    }) = &cli.command
    {
        // base64url: URL-safe, so it survives Basic auth and form encoding untouched.
        println!("{}", secret::random_token());
        return Ok(());
    }
    let config = Config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let db = open(&config).await?;
            println!("migrations applied");
            db.close().await;
            Ok(())
        }
        Command::Admin {
            action:
                AdminAction::Create {
                    name,
                    password_stdin: _,
                    display_name,
                },
        } => {
            let username = Username::parse(&name).context("invalid admin name")?;
            let display = DisplayName::parse(display_name.as_deref().unwrap_or(&name))
                .context("invalid display name")?;
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading password from stdin")?;
            let password = line.trim_end_matches(['\n', '\r']);
            let password =
                NewPassword::parse(password, config.password.min_length, username.as_str())
                    .map_err(|e| anyhow::anyhow!("password refused: {e}"))?;
            let db = open(&config).await?;
            let state = state_for(&config, &db).await?;
            let result = roster::ops::create_staff(
                &state,
                &Actor::System,
                &username,
                &display,
                Role::Admin,
                &password,
            )
            .await;
            db.close().await;
            result.with_context(|| format!("creating admin {username}"))?;
            println!("admin {username} created");
            Ok(())
        }
        Command::Token {
            action: TokenAction::Create { name },
        } => {
            let name = name.trim().to_string();
            if name.is_empty() || name.len() > 64 {
                bail!("token name must be 1-64 characters");
            }
            let db = open(&config).await?;
            let token = secret::random_token();
            let mut conn = db.pool.acquire().await?;
            let created = db::tokens::insert(&mut conn, &name, &secret::hash_token(&token)).await?;
            if created {
                db::audit::record(
                    &mut conn,
                    db::audit::Entry {
                        actor: "cli",
                        action: "token.create",
                        target: Some(&name),
                        detail: None,
                    },
                )
                .await?;
            }
            drop(conn);
            db.close().await;
            if !created {
                bail!("a token named {name:?} exists already");
            }
            println!("{token}");
            Ok(())
        }
        Command::Oidc {
            action: OidcAction::RotateKey,
        } => {
            let db = open(&config).await?;
            let rotated = hubdesk::oidc::keys::rotate(&db.pool).await;
            db.close().await;
            let (kid, retired) = rotated.context("rotating the signing key")?;
            println!(
                "new signing key {kid}; {retired} key(s) retired (published for another day); \
                 running servers publish it within a minute and sign with it after {} minutes",
                hubdesk::oidc::keys::PUBLISH_AHEAD.as_secs() / 60
            );
            Ok(())
        }
        // Answered above, before the configuration is read.
        Command::Oidc {
            action: OidcAction::NewSecret,
        } => Ok(()),
        Command::BenchHash { rounds } => {
            let hasher = Hasher::new(&config.password, 1)?;
            let ms = hasher.measure_verify_ms(rounds)?;
            println!("{} verify_ms={ms:.1}", hasher.describe());
            Ok(())
        }
    }
}

async fn open(config: &Config) -> anyhow::Result<Database> {
    let db = Database::connect(config).await?;
    db.migrate().await?;
    Ok(db)
}

async fn state_for(config: &Config, db: &Database) -> anyhow::Result<AppState> {
    AppState::new(db.pool.clone(), config.clone()).await
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(database = %config::describe_database(&config.database_url()), "starting");
    let db = open(&config).await?;
    let app = Application::build(config.clone(), db.pool.clone()).await?;
    let host = config.bind_addr()?.ip();
    if app.state.oidc.clients.is_empty() {
        tracing::info!("no OIDC clients configured: the hub cannot log in through hubdesk yet");
    }
    println!("hubdesk listening on http://{host}:{}", app.port());
    if let Some(url) = setup::first_run_url(&app.state).await? {
        println!("First run: open {url} to create the first admin");
    }
    std::io::stdout().flush().ok();
    let result = app.run_until_stopped().await;
    db.close().await;
    result.context("server")
}
