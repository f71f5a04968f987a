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
    /// Provision a camp on AWS from your laptop (credentials and region from the usual AWS
    /// environment: AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_REGION).
    Aws {
        #[command(subcommand)]
        action: AwsAction,
    },
    /// Write the deploy kit's files of this hubdesk (the hub's jupyterhub_config.py and its
    /// spawner module, hubdesk.service) under ROOT, as the hub node's bootstrap does.
    HubFiles {
        /// The file system root to write under (`/` on the hub node).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
    /// Print the single-thread argon2 verify time at the configured parameters.
    BenchHash {
        #[arg(long, default_value_t = 15)]
        rounds: usize,
    },
    /// Serve the Docker Engine API on a unix socket through an allow-list: only the calls the
    /// cluster desk makes, without the notebooks' environments; run as root beside the engine
    /// (deploy/hubdesk-docker-proxy.service), and point [cluster] docker_host at the socket.
    DockerProxy(DockerProxyArgs),
}

#[derive(Debug, clap::Args)]
pub struct DockerProxyArgs {
    /// The socket to create (replaced atomically if it exists).
    #[arg(long, required_unless_present = "print_unit")]
    pub listen: Option<PathBuf>,
    /// The socket's mode, in octal.
    #[arg(long, default_value = "0660", value_parser = octal_mode)]
    pub mode: u32,
    /// The socket's group (a name or a gid): hubdesk's group.
    #[arg(long)]
    pub group: Option<String>,
    /// The engine: unix:///path or tcp://host:port.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    pub upstream: String,
    /// Print the systemd unit (deploy/hubdesk-docker-proxy.service) and exit.
    #[arg(long)]
    pub print_unit: bool,
}

fn octal_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("{s:?} is not an octal mode such as 0660"))
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
pub enum AwsAction {
    /// Print what `up` would create or keep; changes nothing.
    Plan(Box<AwsUpArgs>),
    /// Create what is missing (idempotent), then print the URLs.
    Up(Box<AwsUpArgs>),
    /// Remove everything tagged with this camp (the homes volume only with --delete-homes).
    Down(AwsDownArgs),
}

#[derive(Debug, clap::Args)]
pub struct AwsUpArgs {
    /// The camp (the hubdesk:camp tag); default: camp_name from the configuration, as a slug.
    #[arg(long)]
    pub camp: Option<String>,
    /// Who may SSH to the nodes (CIDR); default: your public address, asked on the terminal.
    #[arg(long)]
    pub ssh_cidr: Option<String>,
    /// No questions.
    #[arg(long)]
    pub yes: bool,
    /// The AMI of every node (default: the newest Amazon Linux 2023 x86_64).
    #[arg(long)]
    pub ami: Option<String>,
    #[arg(long, default_value = "t3.large")]
    pub hub_type: String,
    #[arg(long, default_value = "t3.small")]
    pub nfs_type: String,
    /// The cluster desk's workers (written to the hub node's [cluster.worker]).
    #[arg(long, default_value = "t3.xlarge")]
    pub worker_type: String,
    /// An EC2 key pair for SSH (default: none; the setup link is in the console output).
    #[arg(long)]
    pub key_name: Option<String>,
    /// The hub node's IAM instance profile (name or ARN), so the cluster desk can launch
    /// workers (its role: deploy/iam-policy.json). The hub node's only: workers never get it.
    #[arg(long)]
    pub instance_profile: Option<String>,
    /// The workers' own instance profile (default: none, so no AWS credentials on a worker).
    /// Must not be the hub's: students' code runs on the workers.
    #[arg(long)]
    pub worker_instance_profile: Option<String>,
    /// Size of the homes volume (GB).
    #[arg(long, default_value_t = 100)]
    pub homes_gb: i32,
    /// Root volume of each node (GB).
    #[arg(long, default_value_t = 30)]
    pub root_gb: i32,
    /// Availability zone (default: the first available one).
    #[arg(long)]
    pub az: Option<String>,
    /// Where the hub node downloads hubdesk (a release build for linux x86_64) …
    #[arg(long, requires = "hubdesk_sha256")]
    pub hubdesk_url: Option<String>,
    /// … and the SHA-256 it must have.
    #[arg(long, requires = "hubdesk_url")]
    pub hubdesk_sha256: Option<String>,
    /// Or: a git repository the hub node builds hubdesk from (needs 10-20 minutes).
    #[arg(long, conflicts_with = "hubdesk_url")]
    pub source_url: Option<String>,
    #[arg(long, default_value = "main")]
    pub source_ref: String,
    /// A DNS name pointing at the hub node: Let's Encrypt instead of a self-signed certificate.
    #[arg(long)]
    pub domain: Option<String>,
    /// Contact address for Let's Encrypt.
    #[arg(long, requires = "domain")]
    pub email: Option<String>,
    /// The notebook image every worker runs (pulled by each worker: build deploy/notebook/Dockerfile
    /// and push it to a registry the workers reach, e.g. ECR). Its jupyterhub-singleuser should
    /// match the hub's JupyterHub 6.1.
    #[arg(long, default_value = DEFAULT_NOTEBOOK_IMAGE)]
    pub notebook_image: String,
    /// The hub node's JupyterHub image: used as it is when the node has it (baked into your
    /// AMI), pulled when it names a registry (registry.example/hub:6.1.1), else built on the
    /// node from python:3.12-slim-bookworm and PyPI. JupyterHub 6.1 with deploy/hub/requirements.txt.
    #[arg(long, default_value = DEFAULT_HUB_IMAGE)]
    pub hub_image: String,
}

/// The default hub image of `hubdesk aws up`: the name deploy/hub-node.sh builds when it is absent.
pub const DEFAULT_HUB_IMAGE: &str = "hubdesk/jupyterhub:6.1.1";

/// The default notebook image of `hubdesk aws up`: a public Jupyter Docker Stacks image.
pub const DEFAULT_NOTEBOOK_IMAGE: &str = "quay.io/jupyter/scipy-notebook:latest";

#[derive(Debug, clap::Args)]
pub struct AwsDownArgs {
    #[arg(long)]
    pub camp: Option<String>,
    /// No questions.
    #[arg(long)]
    pub yes: bool,
    /// Also delete the homes volume: every student's files.
    #[arg(long)]
    pub delete_homes: bool,
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
    if let Command::HubFiles { root } = &command {
        // Needs no configuration: it runs before the node's hubdesk.toml exists.
        for path in crate::provision::hub_files::write(root)
            .with_context(|| format!("writing the hub files under {}", root.display()))?
        {
            println!("{}", path.display());
        }
        return Ok(());
    }
    if let Command::DockerProxy(args) = command {
        // Runs as root beside the engine: it reads no hubdesk configuration.
        return docker_proxy(args).await;
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
        }
        | Command::HubFiles { .. } => Ok(()),
        Command::BenchHash { rounds } => bench_hash(&config, rounds),
        Command::Doctor { timeout } => doctor(&config, timeout).await,
        Command::Aws { action } => aws(&config, action).await,
        // Answered above, before the configuration is read.
        Command::DockerProxy(_) => Ok(()),
    }
}

async fn docker_proxy(args: DockerProxyArgs) -> anyhow::Result<()> {
    if args.print_unit {
        print!("{}", crate::dockerproxy::UNIT);
        return Ok(());
    }
    let upstream: crate::dockerproxy::Upstream = args
        .upstream
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--upstream: {e}"))?;
    let listen = args.listen.context("--listen is required")?;
    crate::dockerproxy::run(&listen, args.mode, args.group.as_deref(), upstream).await
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

// --- hubdesk aws (src/provision) ---------------------------------------------------------

fn camp_of(
    config: &Config,
    flag: Option<&str>,
) -> anyhow::Result<crate::provision::model::CampName> {
    use crate::provision::model::CampName;
    Ok(match flag {
        Some(name) => CampName::parse(name)?,
        None => CampName::slug(&config.camp_name)?,
    })
}

fn interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Asks a yes/no question on the terminal; `--yes` answers it, a non-terminal refuses.
fn confirm(yes: bool, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    anyhow::ensure!(
        interactive(),
        "not a terminal: add --yes to go ahead without questions"
    );
    print!("{question} [y/N] ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

async fn ssh_cidr(
    config: &Config,
    args: &AwsUpArgs,
) -> anyhow::Result<crate::provision::model::Cidr> {
    use crate::provision::model::Cidr;
    if let Some(c) = &args.ssh_cidr {
        return Ok(c.parse::<Cidr>()?);
    }
    // Never ask the internet for our address when talking to a stand-in for EC2 (moto).
    anyhow::ensure!(
        config.aws.endpoint_url.is_empty(),
        "--ssh-cidr is required when AWS_ENDPOINT_URL is set"
    );
    let detected = crate::provision::detect_public_cidr().await;
    if args.yes || !interactive() {
        return Ok(detected?);
    }
    let offer = detected.as_ref().map(|c| c.to_string()).unwrap_or_default();
    print!("SSH to the nodes from which address (CIDR)? [{offer}] ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    match line.trim() {
        "" => Ok(detected?),
        typed => Ok(typed.parse::<Cidr>()?),
    }
}

async fn aws(config: &Config, action: AwsAction) -> anyhow::Result<()> {
    use crate::provision::{
        apply,
        cloud::{Cloud, Ec2Cloud},
        plan,
    };
    let cloud = Ec2Cloud::connect(&config.aws).await;
    let region = cloud.region();
    anyhow::ensure!(
        !region.is_empty(),
        "no AWS region: set AWS_REGION (or region in your AWS profile, or [aws] region)"
    );
    let mut out = std::io::stdout();
    match action {
        AwsAction::Down(args) => {
            let camp = camp_of(config, args.camp.as_deref())?;
            let world = cloud.look(&camp).await?;
            let plan = plan::down(&world, args.delete_homes);
            println!("camp {camp} in {region}:");
            print!("{plan}");
            if plan.steps.is_empty() {
                return Ok(());
            }
            if !confirm(args.yes, "Remove these?")? {
                println!("nothing removed");
                return Ok(());
            }
            apply::down(&cloud, &world, &plan, &mut out, apply::Patience::default()).await?;
            for v in &plan.kept_volumes {
                println!(
                    "kept the homes volume {v}: `hubdesk aws up` attaches it again; to delete the \
                     students' files for good: hubdesk aws down --camp {camp} --delete-homes \
                     (or aws ec2 delete-volume --volume-id {v})"
                );
            }
            println!("camp {camp} is down");
            Ok(())
        }
        AwsAction::Plan(args) => {
            let (spec, world) = aws_spec(config, &cloud, &region, &args).await?;
            let plan = plan::up(&world, &spec)?;
            println!("camp {} in {region} ({}):", spec.camp, plan.az);
            print!("{plan}");
            Ok(())
        }
        AwsAction::Up(args) => {
            let (spec, world) = aws_spec(config, &cloud, &region, &args).await?;
            let plan = plan::up(&world, &spec)?;
            println!("camp {} in {region} ({}):", spec.camp, plan.az);
            print!("{plan}");
            if !plan.is_empty() && !confirm(args.yes, "Create these?")? {
                println!("nothing created");
                return Ok(());
            }
            let camp = apply::up(
                &cloud,
                &spec,
                &config.camp_name,
                &plan,
                &mut out,
                apply::Patience::default(),
            )
            .await?;
            print!("{}", crate::provision::summary(&camp, &spec));
            Ok(())
        }
    }
}

/// The parsed flags, and the look at the account the plan is made from.
async fn aws_spec(
    config: &Config,
    cloud: &crate::provision::cloud::Ec2Cloud,
    region: &str,
    args: &AwsUpArgs,
) -> anyhow::Result<(
    crate::provision::model::CampSpec,
    crate::provision::model::World,
)> {
    use crate::provision::{
        cloud::Cloud,
        model::{self, BinarySource, CampSpec},
        ProvisionError,
    };
    let camp = camp_of(config, args.camp.as_deref())?;
    let hub_type = model::instance_type(&args.hub_type)?;
    let nfs_type = model::instance_type(&args.nfs_type)?;
    let worker_type = model::instance_type(&args.worker_type)?;
    let bad = |m: String| ProvisionError::BadInput(m);
    if !(1..=16384).contains(&args.homes_gb) {
        return Err(bad("--homes-gb must be 1-16384".into()).into());
    }
    if !(8..=16384).contains(&args.root_gb) {
        return Err(bad("--root-gb must be 8-16384".into()).into());
    }
    let binary = match (&args.hubdesk_url, &args.hubdesk_sha256, &args.source_url) {
        (Some(url), Some(sha), _) => {
            let parsed = url::Url::parse(url).map_err(|e| bad(format!("--hubdesk-url: {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(bad("--hubdesk-url must be http(s)".into()).into());
            }
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad("--hubdesk-sha256 must be 64 hex digits".into()).into());
            }
            Some(BinarySource::Release {
                url: url.clone(),
                sha256: sha.to_ascii_lowercase(),
            })
        }
        (_, _, Some(url)) => {
            url::Url::parse(url).map_err(|e| bad(format!("--source-url: {e}")))?;
            Some(BinarySource::Git {
                url: url.clone(),
                rev: args.source_ref.clone(),
            })
        }
        _ => None,
    };
    let domain = args.domain.as_deref().map(model::domain).transpose()?;
    if let Some(e) = &args.email {
        let ok = e.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty() && d.contains('.') && !e.contains(char::is_whitespace)
        });
        if !ok {
            return Err(bad(format!("--email {e:?} is not an address")).into());
        }
    }
    let key_name = args.key_name.clone().filter(|k| !k.is_empty());
    let (instance_profile, worker_instance_profile) = model::instance_profiles(
        args.instance_profile.as_deref(),
        args.worker_instance_profile.as_deref(),
    )?;
    let ssh_from = ssh_cidr(config, args).await?;
    let ami = cloud.image(args.ami.as_deref()).await?;
    let world = cloud.look(&camp).await?;
    Ok((
        CampSpec {
            camp,
            region: region.to_string(),
            ssh_from,
            az: args.az.clone(),
            ami,
            hub_type,
            nfs_type,
            worker_type,
            key_name,
            instance_profile,
            worker_instance_profile,
            homes_gb: args.homes_gb,
            root_gb: args.root_gb,
            binary,
            domain,
            email: args.email.clone(),
            notebook_image: model::image_ref("--notebook-image", &args.notebook_image)?,
            hub_image: model::image_ref("--hub-image", &args.hub_image)?,
        },
        world,
    ))
}
