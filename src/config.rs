//! Configuration: defaults → `hubdesk.toml` (or `--config FILE`) → `HUBDESK_*` env.
//! Secrets may be given as `*_file` keys pointing at a file whose content is the secret.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// host:port to listen on.
    pub bind: String,
    /// Where hubdesk keeps its embedded PostgreSQL (when no `database_url`) and other state.
    pub data_dir: PathBuf,
    /// The URL people use to reach hubdesk (login cards, cookies' Secure flag, OIDC issuer).
    pub public_url: String,
    /// The JupyterHub URL students are sent to after login.
    pub hub_url: String,
    /// PostgreSQL URL; when empty, hubdesk runs a private PostgreSQL under `data_dir`.
    /// A secret (it may carry a password): never serialized, `Debug` prints `[REDACTED]`.
    #[serde(default, skip_serializing)]
    pub database_url: Option<SecretString>,
    /// Alternative to `database_url`: a file holding it.
    #[serde(default)]
    pub database_url_file: Option<PathBuf>,
    /// Camp name shown on pages and cards.
    pub camp_name: String,
    /// Behind your own reverse proxy: the client address is the last `X-Forwarded-For` entry
    /// (the one the proxy appends); the rest of the header is the client's and is ignored.
    pub behind_proxy: bool,
    pub session: SessionConfig,
    pub password: PasswordConfig,
    pub throttle: ThrottleConfig,
    pub oidc: OidcConfig,
    pub homes: HomesConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    pub hub: HubConfig,
    // --- cluster desk (src/cluster) ---
    pub cluster: ClusterConfig,
    pub aws: AwsConfig,
    /// Certificates `hubdesk doctor` watches (hubdesk itself serves plain HTTP behind nginx).
    #[serde(default)]
    pub tls: TlsConfig,
    /// How pages show things (the camp's time zone).
    #[serde(default)]
    pub ui: UiConfig,
    /// The camp calendar: capacity and warm servers from the cohorts' class times.
    #[serde(default)]
    pub calendar: CalendarConfig,
}

/// `[calendar]`: how the calendar turns class times into workers and warm servers
/// (`calendar::planner` explains the arithmetic).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CalendarConfig {
    /// The calendar acts on its plan (launches, starts, stops, removals). Off: the calendar
    /// page still shows the plan, and nothing is done.
    pub enabled: bool,
    /// Memory of one worker, bytes; 0 (the default): what EC2 says of `[cluster.worker]
    /// instance_type`.
    pub worker_memory_bytes: u64,
    /// Capacity over the students' guarantees, percent.
    pub headroom_percent: u32,
    /// Never fewer workers than this between classes.
    pub floor: u32,
    /// Workers are launched this long before a class.
    pub lead_mins: u32,
    /// Servers are started this long before a class.
    pub warm_mins: u32,
    /// Capacity stays this long after a class; servers idle longer are stopped then.
    pub grace_mins: u32,
    /// How often the calendar looks at its plan.
    pub tick_secs: u64,
    /// An action hubdesk was down for, by more than this, is recorded as missed, not done
    /// late (a launch for a class that has ended helps nobody).
    pub catch_up_mins: u32,
    /// Tests only: "now" is the RFC 3339 instant in this file (a camp week in minutes).
    pub test_clock_file: Option<PathBuf>,
}

impl CalendarConfig {
    /// The camp's clock: the test clock's file when one is set, else the system's.
    pub fn clock(&self) -> std::sync::Arc<dyn crate::domain::clock::Clock> {
        match &self.test_clock_file {
            Some(path) => {
                std::sync::Arc::new(crate::domain::clock::FileClock { path: path.clone() })
            }
            None => std::sync::Arc::new(crate::domain::clock::SystemClock),
        }
    }

    /// "Now" by the camp's clock.
    pub fn now(&self) -> time::OffsetDateTime {
        let now = match &self.test_clock_file {
            Some(path) => crate::domain::clock::Clock::now(&crate::domain::clock::FileClock {
                path: path.clone(),
            }),
            None => jiff::Timestamp::now(),
        };
        crate::domain::clock::to_offset(now)
    }
}

impl Default for CalendarConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            worker_memory_bytes: 0,
            headroom_percent: 10,
            floor: 0,
            lead_mins: 20,
            warm_mins: 10,
            grace_mins: 15,
            tick_secs: 30,
            catch_up_mins: 30,
            test_clock_file: None,
        }
    }
}

/// `[ui]`: how pages speak to people.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// The camp's time zone, an IANA name (`America/Chicago`): every time on a page is shown
    /// in it, with the UTC time on hover. Default `UTC`.
    pub timezone: TimeZoneName,
}

/// An IANA time zone that exists (in the system's tz database or the copy jiff bundles):
/// parsed when the configuration is read, so a typo stops the start with a clear message.
#[derive(Clone)]
pub struct TimeZoneName {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl TimeZoneName {
    pub fn parse(name: &str) -> anyhow::Result<Self> {
        let name = name.trim();
        let zone = jiff::tz::TimeZone::get(name).map_err(|_| {
            anyhow::anyhow!(
                "unknown time zone {name:?} ([ui] timezone): use an IANA name such as \
                 America/Chicago, Europe/Berlin or UTC"
            )
        })?;
        Ok(Self {
            name: name.to_string(),
            zone,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn zone(&self) -> &jiff::tz::TimeZone {
        &self.zone
    }
}

impl Default for TimeZoneName {
    fn default() -> Self {
        Self {
            name: "UTC".into(),
            zone: jiff::tz::TimeZone::UTC,
        }
    }
}

impl std::fmt::Debug for TimeZoneName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for TimeZoneName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for TimeZoneName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// `[tls]`: the certificates in front of hubdesk and the hub, for `hubdesk doctor`'s date check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM files (a `*` in the file name matches within its directory). Default: the one nginx
    /// serves on the hub node, `/etc/hubdesk/tls/cert.pem` (deploy/hub-node.sh; its key beside
    /// it is root's alone, so no pattern that matches it); files holding only a private key are
    /// skipped. `hubdesk doctor` also trusts these certificates when it asks the hub's public
    /// address (a self-signed camp). Set `cert_files = []` to turn the check off.
    pub cert_files: Vec<String>,
    /// Warn when a certificate ends within this many days.
    pub warn_days: u32,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_files: vec!["/etc/hubdesk/tls/cert.pem".into()],
            warn_days: 14,
        }
    }
}

/// `[metrics]`: who may scrape `/metrics` besides holders of an API token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// A token for Prometheus (`Authorization: Bearer …`); never serialized.
    #[serde(default, skip_serializing)]
    pub scrape_token: Option<SecretString>,
    #[serde(default)]
    pub scrape_token_file: Option<PathBuf>,
}

/// The JupyterHub REST API (`src/hub/`), reached as the hub service `hubdesk` that
/// `deploy/jupyterhub_config.py` declares.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// The hub as students open it ("Open my notebook"). Empty: the top-level `hub_url`; when
    /// set, `hub_url` follows it.
    pub url: String,
    /// The REST API. Empty: derived from `url` — the path up to its `hub` segment, then `api/`
    /// (`https://h/hub/` and `https://h/hub/home` both give `https://h/hub/api/`).
    pub api_url: String,
    /// The `hubdesk` service's token. A secret: never serialized, `Debug` prints `[REDACTED]`.
    #[serde(default, skip_serializing)]
    pub api_token: Option<SecretString>,
    /// Alternative to `api_token`: a file holding it.
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
    /// Bound on each API call, connecting included; start and stop get 15 s more (the hub
    /// holds them up to its own 10 s `slow_spawn_timeout` / `slow_stop_timeout`).
    pub timeout_secs: u64,
    /// How long to poll a stop the hub answered with 202 before giving up.
    pub stop_wait_secs: u64,
    /// Servers started at once when a cohort is started before class (staggered).
    #[serde(default = "four")]
    pub start_concurrency: usize,
    /// The hub's idle culler's timeout (the shipped config's `HUB_CULL_IDLE_SECS`, 3600); the
    /// roll board says when an idle server will be stopped. 0: no culler.
    #[serde(default = "hour")]
    pub cull_idle_secs: u64,
    /// The hub's `Spawner.start_timeout` (the shipped config's `HUB_SPAWN_START_TIMEOUT`, 180):
    /// a start that vanishes after this long is one the hub gave up on.
    #[serde(default = "three_minutes")]
    pub start_timeout_secs: u64,
    /// How often the spawn timeline looks at the hub and the swarm (one hub call, three
    /// engine calls a look); 0 turns it off (the board still shows what is live).
    #[serde(default = "three")]
    pub timeline_secs: u64,
}

fn three() -> u64 {
    3
}

fn four() -> usize {
    4
}

fn hour() -> u64 {
    3600
}

fn three_minutes() -> u64 {
    180
}

impl HubConfig {
    /// Without a token hubdesk does not talk to the hub (pages say so).
    pub fn api_token(&self) -> Option<&SecretString> {
        self.api_token.as_ref()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn stop_wait(&self) -> Duration {
        Duration::from_secs(self.stop_wait_secs)
    }

    /// The culler's timeout, when it runs.
    pub fn cull_after(&self) -> Option<Duration> {
        (self.cull_idle_secs > 0).then(|| Duration::from_secs(self.cull_idle_secs))
    }

    pub fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs)
    }

    /// The hub's OAuth login handler under its public URL (`…/hub/oauth_login`): it answers with
    /// a redirect to hubdesk's authorize endpoint carrying the hub's `redirect_uri`.
    pub fn oauth_login_url(&self) -> anyhow::Result<url::Url> {
        let url = url::Url::parse(&self.url).context("hub.url is not a URL")?;
        default_api_url(&url)
            .join("../oauth_login")
            .context("hub.url cannot hold paths")
    }

    /// `url` (or `hub_url`) completed, `api_url` derived when empty, the token read from its file.
    fn finish(&mut self, hub_url: &mut String) -> anyhow::Result<()> {
        if self.url.trim().is_empty() {
            self.url = hub_url.clone();
        } else {
            *hub_url = self.url.clone();
        }
        let url = url::Url::parse(&self.url).context("hub.url (or hub_url) is not a URL")?;
        anyhow::ensure!(
            matches!(url.scheme(), "http" | "https"),
            "hub.url must be http(s): {}",
            self.url
        );
        if self.api_url.trim().is_empty() {
            self.api_url = default_api_url(&url).to_string();
        }
        let mut api = url::Url::parse(&self.api_url).context("hub.api_url is not a URL")?;
        anyhow::ensure!(
            matches!(api.scheme(), "http" | "https"),
            "hub.api_url must be http(s): {}",
            self.api_url
        );
        if !api.path().ends_with('/') {
            // Joined with relative paths (`users`): without the slash `api` itself would go.
            api.set_path(&format!("{}/", api.path()));
        }
        self.api_url = api.to_string();
        if self.api_token.is_none() && self.api_token_file.is_none() {
            // The name deploy/jupyterhub_config.py reads: one variable can serve both processes.
            let var = |name| {
                std::env::var(name)
                    .ok()
                    .filter(|v: &String| !v.trim().is_empty())
            };
            self.api_token = var("HUBDESK_HUB_API_TOKEN").map(SecretString::new);
            self.api_token_file = var("HUBDESK_HUB_API_TOKEN_FILE").map(PathBuf::from);
        }
        if let Some(path) = &self.api_token_file {
            anyhow::ensure!(
                self.api_token.is_none(),
                "set hub.api_token or hub.api_token_file, not both"
            );
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading hub.api_token_file {}", path.display()))?;
            self.api_token = Some(SecretString::new(token.trim().to_string()));
        }
        if self
            .api_token
            .as_ref()
            .is_some_and(|t| t.expose_secret().trim().is_empty())
        {
            self.api_token = None;
        }
        anyhow::ensure!(
            self.timeout_secs >= 1,
            "hub.timeout_secs must be at least 1"
        );
        Ok(())
    }
}

/// The hub's REST API under its public URL: `…/hub/api/`, whatever page of the hub `url` names
/// (the first `hub` segment is the hub's prefix; without one, `hub/` is added).
fn default_api_url(url: &url::Url) -> url::Url {
    let segments: Vec<&str> = url
        .path_segments()
        .map(|s| s.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let prefix = match segments.iter().position(|s| *s == "hub") {
        Some(i) => &segments[..=i],
        None => &segments[..],
    };
    let mut path = String::from("/");
    for segment in prefix {
        path.push_str(segment);
        path.push('/');
    }
    if prefix.last().is_none_or(|s| *s != "hub") {
        path.push_str("hub/");
    }
    path.push_str("api/");
    let mut api = url.clone();
    api.set_path(&path);
    api.set_query(None);
    api.set_fragment(None);
    api
}

// --- cluster desk (src/cluster): `[cluster]`, `[cluster.worker]`, `[aws]` ---

/// The swarm hubdesk manages and the EC2 workers it launches into it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The cluster desk (pages, API, jobs) is on.
    pub enabled: bool,
    /// The swarm manager's engine: `unix:///var/run/docker.sock` (default) or `tcp://host:2375`.
    pub docker_host: String,
    /// `host:port` workers join (`docker swarm join … ADDR`); empty: the engine's own swarm
    /// address with port 2377.
    pub manager_addr: String,
    /// Memory one notebook needs (the hub's `mem_guarantee`), for the capacity estimate.
    pub notebook_memory_bytes: u64,
    /// The value of the `hubdesk:cluster` tag on every instance hubdesk launches; only
    /// instances with this tag are listed or terminated.
    pub name: String,
    /// How long a launch waits for its instances to join the swarm.
    pub join_timeout_secs: u64,
    /// How long a removal waits for a drained node's notebooks to move.
    pub drain_timeout_secs: u64,
    pub worker: WorkerConfig,
}

/// The template every launched worker is made from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    pub ami: String,
    pub instance_type: String,
    pub subnet_id: String,
    pub security_group_ids: Vec<String>,
    pub key_name: String,
    /// The workers' own IAM instance profile (name or ARN); empty (the default): workers get
    /// no role, so nothing on them holds AWS credentials. Never the hub's: students' code runs
    /// on the workers (`hubdesk doctor` fails when it equals `[aws] hub_instance_profile`).
    pub instance_profile: String,
    pub root_volume_gb: u32,
    /// Extra tags (keys starting `hubdesk:` or `aws:` are reserved).
    pub tags: std::collections::BTreeMap<String, String>,
    /// USD per hour of one worker, shown beside each instance.
    pub hourly_cost: f64,
}

/// EC2 access. Credentials come from the usual AWS chain (environment, profile, instance role).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// Empty: the AWS chain's region (`AWS_REGION`, profile).
    pub region: String,
    /// Empty: the real EC2 endpoint. Also read from `AWS_ENDPOINT_URL` (a test's moto server).
    pub endpoint_url: String,
    /// The hub node's own instance profile (name or ARN; `hubdesk aws up` writes it), so
    /// `hubdesk doctor` fails when `[cluster.worker] instance_profile` is the same one.
    pub hub_instance_profile: String,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            docker_host: "unix:///var/run/docker.sock".into(),
            manager_addr: String::new(),
            notebook_memory_bytes: 2 * 1024 * 1024 * 1024,
            name: "hubdesk".into(),
            join_timeout_secs: 600,
            drain_timeout_secs: 300,
            worker: WorkerConfig::default(),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            ami: String::new(),
            instance_type: "t3.large".into(),
            subnet_id: String::new(),
            security_group_ids: Vec::new(),
            key_name: String::new(),
            instance_profile: String::new(),
            root_volume_gb: 30,
            tags: Default::default(),
            hourly_cost: 0.0832,
        }
    }
}

impl ClusterConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let host = self.docker_host.as_str();
        anyhow::ensure!(
            ["unix://", "tcp://", "http://"]
                .iter()
                .any(|p| host.starts_with(p) && host.len() > p.len()),
            "cluster.docker_host must be unix:///path or tcp://host:port, not {host:?}"
        );
        if !self.manager_addr.is_empty() {
            let (h, p) = self.manager_addr.rsplit_once(':').with_context(|| {
                format!(
                    "cluster.manager_addr {:?} is not host:port",
                    self.manager_addr
                )
            })?;
            anyhow::ensure!(
                !h.is_empty() && p.parse::<u16>().is_ok(),
                "cluster.manager_addr {:?} is not host:port",
                self.manager_addr
            );
        }
        anyhow::ensure!(
            self.notebook_memory_bytes > 0,
            "cluster.notebook_memory_bytes must be positive"
        );
        anyhow::ensure!(
            !self.name.is_empty()
                && self.name.len() <= 64
                && self
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "cluster.name must be 1-64 letters, digits, '-', '_' or '.'"
        );
        let w = &self.worker;
        anyhow::ensure!(
            w.root_volume_gb >= 8,
            "cluster.worker.root_volume_gb must be at least 8"
        );
        anyhow::ensure!(
            w.hourly_cost.is_finite() && w.hourly_cost >= 0.0,
            "cluster.worker.hourly_cost must be a non-negative number"
        );
        anyhow::ensure!(
            !w.instance_type.is_empty(),
            "cluster.worker.instance_type is empty"
        );
        for key in w.tags.keys() {
            anyhow::ensure!(
                !key.starts_with("hubdesk:") && !key.starts_with("aws:") && key != "Name",
                "cluster.worker.tags: {key:?} is reserved (hubdesk:*, aws:*, Name)"
            );
        }
        Ok(())
    }
}

impl AwsConfig {
    fn validate(&self) -> anyhow::Result<()> {
        if !self.endpoint_url.is_empty() {
            url::Url::parse(&self.endpoint_url).context("aws.endpoint_url is not a URL")?;
        }
        Ok(())
    }
}

// --- end of the cluster desk's sections ---

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Lifetime of access tokens: short, the hub refreshes them.
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub id_token_ttl_secs: i64,
    /// Registered relying parties (the hub).
    #[serde(default)]
    pub clients: Vec<OidcClientConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcClientConfig {
    pub id: String,
    #[serde(default, skip_serializing)]
    pub secret: Option<SecretString>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    pub redirect_uris: Vec<String>,
    /// PKCE (S256) required; on by default, as the hub always sends it.
    #[serde(default = "yes")]
    pub require_pkce: bool,
    /// `RS256` (the default, as OpenID Connect Registration §2 says) or `ES256`.
    #[serde(default = "rs256")]
    pub id_token_signed_response_alg: String,
    /// Where RP-initiated logout may send the browser back to (exact match).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Only people in one of these groups (`students`, `counselors`, `admins`, `cohort-…`) may
    /// log in to this client; empty: everyone.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
}

fn rs256() -> String {
    "RS256".into()
}

fn yes() -> bool {
    true
}

// ---- [homes] -------------------------------------------------------------------------------

/// `[homes]`: where the students' home directories live and how new ones are laid.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomesConfig {
    /// The homes root, one directory per username (on the hub node: where the NFS export is
    /// mounted). Default `<data_dir>/homes`, created when missing; a configured root must
    /// exist, so an unmounted export is an error instead of homes on the local disk.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Course materials copied into every new home (files, directories, symlinks as links).
    #[serde(default)]
    pub template: Option<PathBuf>,
    /// Course folders to hand out (issue 19): each directory in it can be copied into the
    /// homes of a cohort as `~/<folder>/`, never overwriting a student's file. Default
    /// `<root>/.courses` (on the homes filesystem, where no notebook mounts it); missing: no
    /// folder to hand out yet.
    #[serde(default)]
    pub courses: Option<PathBuf>,
    /// Owner of the homes: the notebook user of the images (jovyan is 1000:100).
    pub uid: u32,
    pub gid: u32,
    /// Where reset and restore move homes to. Default `<root>/.archive`. Must be on the same
    /// filesystem as `root` (a reset is a rename); `homes::Homes::open` checks it at start.
    #[serde(default)]
    pub archive: Option<PathBuf>,
    /// Every home's storage limit unless a counselor sets another on the student's page
    /// (`"5GiB"`, `"500MiB"`, bytes; `0` = no limit). 5 GiB by default: a camp's notebooks,
    /// data sets of a few hundred MB and a `pip install --user` of a large package or two fit
    /// with room to spare, and a class of 100 cannot promise more than 500 GiB of a volume
    /// sized for real use (most homes stay far below). Enforced on the NFS node (an XFS project
    /// quota per home) and by hubdesk's own operations (a restore never grows a home past it).
    #[serde(default = "default_home_quota")]
    pub quota_default: StorageLimit,
    /// The archive's own limit on the NFS node (its own XFS project); `0` (the default) = none.
    /// Archiving is a rename and the node re-tags archived trees as root, which XFS lets past
    /// the limit: it caps writes that still reach an archived home through an old file handle,
    /// and `xfs_quota report` shows the archive against it.
    #[serde(default)]
    pub archive_quota: StorageLimit,
    /// How often the homes are measured (one instance of a fleet, one home at a time).
    #[serde(default = "default_usage_interval")]
    pub usage_interval_secs: u64,
    /// Set by validation when `root` is the default (then it is created); not a key.
    #[serde(skip)]
    pub create_root: bool,
}

fn default_home_quota() -> StorageLimit {
    StorageLimit::gib(5)
}

fn default_usage_interval() -> u64 {
    600
}

impl Default for HomesConfig {
    fn default() -> Self {
        Self {
            root: None,
            template: None,
            courses: None,
            uid: 1000,
            gid: 100,
            archive: None,
            quota_default: default_home_quota(),
            archive_quota: StorageLimit::NONE,
            usage_interval_secs: default_usage_interval(),
            create_root: false,
        }
    }
}

impl HomesConfig {
    /// Fills the defaults (`<data_dir>/homes`, `<root>/.archive`) and refuses layouts where an
    /// archive or the template would sit where a student's home can be.
    pub fn resolve(&mut self, data_dir: &std::path::Path) -> anyhow::Result<()> {
        if self.root.is_none() {
            self.root = Some(data_dir.join("homes"));
            self.create_root = true;
        }
        let root = self.root.clone().unwrap_or_default();
        anyhow::ensure!(!root.as_os_str().is_empty(), "homes.root is empty");
        let archive = self
            .archive
            .get_or_insert_with(|| root.join(".archive"))
            .clone();
        anyhow::ensure!(
            archive != root,
            "homes.archive must not be the homes root itself ({})",
            root.display()
        );
        // Inside the root, only a dot-name is safe: every other name may be a username.
        for (key, path) in [
            ("archive", Some(&archive)),
            ("template", self.template.as_ref()),
        ] {
            let Some(path) = path else { continue };
            if let Ok(rest) = path.strip_prefix(&root) {
                let first = rest.components().next();
                anyhow::ensure!(
                    first.is_some_and(|c| c.as_os_str().to_string_lossy().starts_with('.')),
                    "homes.{key} {} is inside the homes root where a student's home could be; \
                     use a name starting with '.' (like {}) or a path outside the root",
                    path.display(),
                    root.join(".archive").display()
                );
            }
        }
        anyhow::ensure!(
            self.uid != 0,
            "homes.uid 0 would make every home root's: use the notebook user (1000)"
        );
        for (key, limit) in [
            ("quota_default", self.quota_default),
            ("archive_quota", self.archive_quota),
        ] {
            anyhow::ensure!(
                limit.is_none() || limit >= StorageLimit::MIN,
                "homes.{key} {limit} is too small: at least {} (or 0 for no limit)",
                StorageLimit::MIN
            );
        }
        anyhow::ensure!(
            self.usage_interval_secs >= 10,
            "homes.usage_interval_secs {} is too short: at least 10",
            self.usage_interval_secs
        );
        Ok(())
    }

    pub fn usage_interval(&self) -> Duration {
        Duration::from_secs(self.usage_interval_secs)
    }
}

/// A storage limit (`[homes] quota_default`, `archive_quota`, a student's override), in bytes,
/// parsed from what people write: `5GiB`, `500 MiB`, `2.5 GB`, a plain number of bytes, or
/// `0` / `none` for no limit. Binary units `KiB MiB GiB TiB` (`K M G T` are the same, as
/// `xfs_quota` and `du` read them) and decimal ones `kB MB GB TB`; case does not matter.
/// At most [`StorageLimit::MAX`] (16 TiB, the largest EBS volume the homes can live on).
/// The default value is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StorageLimit(u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageLimitError {
    #[error("{0:?} is not a size: write it like 5GiB, 500MiB or 2.5GB")]
    NotASize(String),
    #[error("{0:?} is more than the most a limit can be, 16 TiB")]
    TooLarge(String),
}

impl StorageLimit {
    /// No limit.
    pub const NONE: Self = Self(0);
    /// The smallest limit that is one (a home below it cannot even hold its dotfiles).
    pub const MIN: Self = Self(1 << 20);
    /// 16 TiB: the largest gp3 EBS volume.
    pub const MAX: Self = Self(1 << 44);

    pub const fn gib(n: u64) -> Self {
        Self(n << 30)
    }

    /// A limit of exactly `bytes` (`0`: none); more than [`Self::MAX`] is refused.
    pub fn from_bytes(bytes: u64) -> Result<Self, StorageLimitError> {
        if bytes > Self::MAX.0 {
            return Err(StorageLimitError::TooLarge(bytes.to_string()));
        }
        Ok(Self(bytes))
    }

    pub fn parse(raw: &str) -> Result<Self, StorageLimitError> {
        let text = raw.trim().to_ascii_lowercase();
        let bad = || StorageLimitError::NotASize(raw.trim().to_string());
        if matches!(text.as_str(), "none" | "unlimited" | "no limit") {
            return Ok(Self::NONE);
        }
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let unit: u128 = match unit.trim_start() {
            "" | "b" => 1,
            "k" | "ki" | "kib" => 1 << 10,
            "m" | "mi" | "mib" => 1 << 20,
            "g" | "gi" | "gib" => 1 << 30,
            "t" | "ti" | "tib" => 1 << 40,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            "tb" => 1_000_000_000_000,
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty()
            || whole.len() > 20
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut bytes = whole * unit;
        if !fraction.is_empty() {
            let digits: u128 = fraction.parse().map_err(|_| bad())?;
            bytes += digits * unit / 10u128.pow(fraction.len() as u32);
        }
        if bytes > u128::from(Self::MAX.0) {
            return Err(StorageLimitError::TooLarge(raw.trim().to_string()));
        }
        Ok(Self(bytes as u64))
    }

    /// The limit in bytes; `None` for no limit.
    pub fn bytes(self) -> Option<u64> {
        (self.0 > 0).then_some(self.0)
    }

    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for StorageLimit {
    /// `5 GiB`, `1.5 GiB`, `no limit` (binary units, what the parser reads back).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 0 {
            return f.write_str("no limit");
        }
        f.write_str(&iec_bytes(self.0))
    }
}

/// Bytes in binary units, one decimal where it is not whole: `512 B`, `1.5 KiB`, `5 GiB`.
pub fn iec_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    while unit < UNITS.len() - 1 && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let value = bytes as f64 / (1u64 << (10 * unit)) as f64;
    let tenths = (value * 10.0).round() / 10.0;
    if tenths.fract() == 0.0 {
        format!("{tenths:.0} {}", UNITS[unit])
    } else {
        format!("{tenths:.1} {}", UNITS[unit])
    }
}

impl Serialize for StorageLimit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for StorageLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(b) => Self::from_bytes(b),
            Raw::Text(t) => Self::parse(&t),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod storage_limit_tests {
    use super::*;

    #[test]
    fn storage_limit_reads_what_people_write() {
        for (raw, bytes) in [
            ("5GiB", 5u64 << 30),
            ("5 gib", 5 << 30),
            ("5G", 5 << 30),
            ("500MiB", 500 << 20),
            ("2.5 GB", 2_500_000_000),
            ("1.5GiB", 3 << 29),
            ("0.5 TiB", 1 << 39),
            ("1048576", 1 << 20),
            ("16TiB", 1 << 44),
            ("0", 0),
            ("none", 0),
            (" 3 kB ", 3000),
        ] {
            assert_eq!(StorageLimit::parse(raw).unwrap().0, bytes, "{raw}");
        }
        for bad in [
            "", "five", "5 gigs", "-1", "1e9", ".", "5GiB!", "1..2G", "0x10",
        ] {
            assert!(
                matches!(
                    StorageLimit::parse(bad),
                    Err(StorageLimitError::NotASize(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            StorageLimit::parse("17TiB"),
            Err(StorageLimitError::TooLarge(_))
        ));
        assert!(StorageLimit::parse("99999999999999999999999").is_err());
        assert!(StorageLimit::from_bytes((1 << 44) + 1).is_err());
    }

    #[test]
    fn storage_limit_prints_what_it_reads_back() {
        for (bytes, text) in [
            (5u64 << 30, "5 GiB"),
            (3 << 29, "1.5 GiB"),
            (500 << 20, "500 MiB"),
            (0, "no limit"),
        ] {
            let limit = StorageLimit(bytes);
            assert_eq!(limit.to_string(), text);
            assert_eq!(StorageLimit::parse(text).unwrap(), limit);
        }
        assert_eq!(iec_bytes(512), "512 B");
        assert_eq!(iec_bytes(3_000_000), "2.9 MiB");
        assert_eq!(iec_bytes(2_500_000_000), "2.3 GiB");
    }

    #[test]
    fn homes_quota_settings_come_from_toml_and_env_and_are_checked() {
        let read = |text: &str| {
            Figment::from(Toml::string(text))
                .extract::<HomesConfig>()
                .map_err(|e| e.to_string())
        };
        let c = read("uid = 1000\ngid = 100\nquota_default = \"2GiB\"\narchive_quota = 0").unwrap();
        assert_eq!(c.quota_default, StorageLimit::gib(2));
        assert!(c.archive_quota.is_none());
        assert_eq!(c.usage_interval_secs, 600);
        let c = read("uid = 1000\ngid = 100\nquota_default = 10737418240").unwrap();
        assert_eq!(c.quota_default, StorageLimit::gib(10));
        assert!(read("uid = 1\ngid = 1\nquota_default = \"lots\"").is_err());
        let mut c = HomesConfig {
            quota_default: StorageLimit(1000),
            ..HomesConfig::default()
        };
        assert!(c.resolve(std::path::Path::new("/d")).is_err(), "1000 bytes");
        let mut c = HomesConfig {
            usage_interval_secs: 1,
            ..HomesConfig::default()
        };
        assert!(c.resolve(std::path::Path::new("/d")).is_err());
        assert_eq!(HomesConfig::default().quota_default.to_string(), "5 GiB");
    }
}

// ---- end [homes] ---------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionConfig {
    /// A session unused this long ends.
    pub idle_timeout_minutes: u64,
    /// A session ends this long after login, used or not.
    pub absolute_timeout_hours: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    /// argon2id memory cost in KiB (OWASP floor 19456).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Concurrent hashes; each takes `argon2_memory_kib` of RAM. 0 = number of cores.
    pub max_concurrent_hashes: usize,
    /// Minimum length of a password a person chooses.
    pub min_length: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// Failed logins for one account before it is locked for a while.
    pub account_failures: i32,
    /// Failed logins from one address before it is locked for a while (a classroom shares one NAT).
    pub address_failures: i32,
    /// Base lockout, doubled for each further failure, capped at `max_lock_minutes`.
    pub lock_seconds: i64,
    pub max_lock_minutes: i64,
    /// Failures older than this are forgotten.
    pub window_minutes: i64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("hubdesk-data"),
            public_url: String::new(),
            hub_url: "http://127.0.0.1:8000/hub/".into(),
            database_url: None,
            database_url_file: None,
            camp_name: "Data Science Camp".into(),
            behind_proxy: false,
            session: SessionConfig {
                idle_timeout_minutes: 12 * 60,
                absolute_timeout_hours: 7 * 24,
            },
            password: PasswordConfig {
                argon2_memory_kib: 19_456,
                argon2_iterations: 2,
                argon2_parallelism: 1,
                max_concurrent_hashes: 0,
                min_length: 8,
            },
            throttle: ThrottleConfig {
                account_failures: 5,
                address_failures: 100,
                lock_seconds: 30,
                max_lock_minutes: 15,
                window_minutes: 15,
            },
            oidc: OidcConfig {
                access_token_ttl_secs: 600,
                refresh_token_ttl_secs: 7 * 24 * 3600,
                id_token_ttl_secs: 600,
                clients: Vec::new(),
            },
            metrics: MetricsConfig::default(),
            homes: HomesConfig::default(),
            hub: HubConfig {
                url: String::new(),
                api_url: String::new(),
                api_token: None,
                api_token_file: None,
                timeout_secs: 10,
                stop_wait_secs: 60,
                start_concurrency: 4,
                cull_idle_secs: 3600,
                start_timeout_secs: 180,
                timeline_secs: 3,
            },
            // cluster desk
            cluster: ClusterConfig::default(),
            aws: AwsConfig::default(),
            tls: TlsConfig::default(),
            ui: UiConfig::default(),
            calendar: CalendarConfig::default(),
        }
    }
}

/// Top-level configuration keys (a `HUBDESK_<KEY>` variable sets one).
const KEYS: &[&str] = &[
    "bind",
    "data_dir",
    "public_url",
    "hub_url",
    "database_url",
    "database_url_file",
    "camp_name",
    "behind_proxy",
    "session",
    "password",
    "throttle",
    "oidc",
    "metrics",
    "homes",
    "hub",
    // cluster desk
    "cluster",
    "aws",
    "tls",
    "ui",
    "calendar",
];

/// `HUBDESK_*` variables that are read elsewhere, not configuration keys.
const HANDLED_ELSEWHERE: &[&str] = &[
    "config",
    "pg_bin",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_client_secret_file",
    "oidc_redirect_uris",
    "oidc_require_pkce",
    "oidc_id_token_alg",
    // The hub's name for hubdesk's service token (deploy/jupyterhub_config.py), also read here.
    "hub_api_token",
    "hub_api_token_file",
    // The log format (src/telemetry.rs): read before the configuration, for every command.
    "log_format",
];

impl Config {
    /// Loads defaults, then the TOML file (explicit path must exist; `hubdesk.toml` is optional),
    /// then `HUBDESK_*` variables (`HUBDESK_SESSION__IDLE_TIMEOUT_MINUTES` for nested keys) and
    /// `DATABASE_URL`.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} not found", path.display());
                fig = fig.merge(Toml::file(path));
            }
            None => fig = fig.merge(Toml::file("hubdesk.toml")),
        }
        // Only variables that name a configuration key are configuration; others (the CLI's
        // HUBDESK_CONFIG, the OIDC single-client shortcut, HUBDESK_PG_BIN, or a neighbour's
        // variable such as the hub's HUBDESK_URL) are left alone, with a warning for unknown ones.
        let keys = |k: &figment::value::UncasedStr| {
            let key = k.as_str().to_ascii_lowercase();
            let top = key.split("__").next().unwrap_or_default();
            let known = KEYS.contains(&top);
            if !known && !HANDLED_ELSEWHERE.contains(&key.as_str()) {
                tracing::warn!(
                    "ignoring HUBDESK_{}: not a configuration key",
                    k.as_str().to_ascii_uppercase()
                );
            }
            known
        };
        fig = fig
            .merge(Env::prefixed("HUBDESK_").filter(keys).split("__"))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database_url".into()),
            )
            // cluster desk: the AWS SDK's own variable names the EC2 endpoint (moto in tests).
            .merge(
                Env::raw()
                    .only(&["AWS_ENDPOINT_URL"])
                    .map(|_| "aws.endpoint_url".into()),
            );
        let mut config: Config = fig.extract().context("invalid configuration")?;
        config.add_env_client()?;
        config.finish()?;
        Ok(config)
    }

    /// The single-client shortcut: `HUBDESK_OIDC_CLIENT_ID`, `HUBDESK_OIDC_CLIENT_SECRET` (or
    /// `_FILE`) and `HUBDESK_OIDC_REDIRECT_URIS` (comma-separated).
    fn add_env_client(&mut self) -> anyhow::Result<()> {
        let Ok(id) = std::env::var("HUBDESK_OIDC_CLIENT_ID") else {
            return Ok(());
        };
        let redirect_uris = std::env::var("HUBDESK_OIDC_REDIRECT_URIS")
            .context("HUBDESK_OIDC_CLIENT_ID is set but HUBDESK_OIDC_REDIRECT_URIS is not")?
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        self.oidc.clients.retain(|c| c.id != id);
        self.oidc.clients.push(OidcClientConfig {
            id,
            secret: std::env::var("HUBDESK_OIDC_CLIENT_SECRET")
                .ok()
                .map(SecretString::new),
            secret_file: std::env::var("HUBDESK_OIDC_CLIENT_SECRET_FILE")
                .ok()
                .map(PathBuf::from),
            redirect_uris,
            require_pkce: std::env::var("HUBDESK_OIDC_REQUIRE_PKCE")
                .map(|v| v != "false")
                .unwrap_or(true),
            id_token_signed_response_alg: std::env::var("HUBDESK_OIDC_ID_TOKEN_ALG")
                .unwrap_or_else(|_| rs256()),
            post_logout_redirect_uris: Vec::new(),
            allowed_groups: Vec::new(),
        });
        Ok(())
    }

    fn finish(&mut self) -> anyhow::Result<()> {
        for client in &mut self.oidc.clients {
            if let Some(path) = &client.secret_file {
                let secret = std::fs::read_to_string(path)
                    .with_context(|| format!("reading secret_file of OIDC client {}", client.id))?;
                client.secret = Some(SecretString::new(secret.trim().to_string()));
            }
            let secret = client
                .secret
                .as_ref()
                .map(|s| s.expose_secret().as_str())
                .unwrap_or("");
            anyhow::ensure!(
                secret.len() >= 32,
                "OIDC client {}: secret must be at least 32 characters (`hubdesk oidc new-secret` makes one)",
                client.id
            );
            anyhow::ensure!(
                secret.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || c == '~'),
                "OIDC client {}: use URL-safe characters only in the secret (a '+' breaks Basic auth in the hub)",
                client.id
            );
            anyhow::ensure!(
                !client.redirect_uris.is_empty(),
                "OIDC client {}: no redirect_uris",
                client.id
            );
            anyhow::ensure!(
                // The algorithms `oidc::keys::Alg` offers.
                matches!(
                    client.id_token_signed_response_alg.as_str(),
                    "RS256" | "ES256"
                ),
                "OIDC client {}: id_token_signed_response_alg must be RS256 or ES256, not {:?}",
                client.id,
                client.id_token_signed_response_alg
            );
            for uri in client
                .redirect_uris
                .iter()
                .chain(&client.post_logout_redirect_uris)
            {
                let parsed = url::Url::parse(uri)
                    .with_context(|| format!("OIDC client {}: redirect URI {uri:?}", client.id))?;
                anyhow::ensure!(
                    parsed.fragment().is_none(),
                    "OIDC client {}: redirect URI has a fragment",
                    client.id
                );
            }
        }
        if let Some(path) = &self.metrics.scrape_token_file {
            let token = std::fs::read_to_string(path)
                .with_context(|| format!("reading metrics.scrape_token_file {}", path.display()))?;
            self.metrics.scrape_token = Some(SecretString::new(token.trim().to_string()));
        }
        if let Some(t) = &self.metrics.scrape_token {
            anyhow::ensure!(
                t.expose_secret().len() >= 32,
                "metrics.scrape_token must be at least 32 characters (`hubdesk oidc new-secret` makes one)"
            );
        }
        // [homes]
        self.homes
            .resolve(&self.data_dir)
            .context("invalid [homes] configuration")?;
        // end [homes]
        if let Some(path) = &self.database_url_file {
            let url = std::fs::read_to_string(path)
                .with_context(|| format!("reading database_url_file {}", path.display()))?;
            self.database_url = Some(SecretString::new(url.trim().to_string()));
        }
        if self
            .database_url
            .as_ref()
            .is_some_and(|u| u.expose_secret().trim().is_empty())
        {
            self.database_url = None;
        }
        if self.public_url.is_empty() {
            self.public_url = format!("http://{}", self.bind);
        }
        self.public_url = self.public_url.trim_end_matches('/').to_string();
        url::Url::parse(&self.public_url).context("public_url is not a URL")?;
        url::Url::parse(&self.hub_url).context("hub_url is not a URL")?;
        self.hub.finish(&mut self.hub_url)?;
        anyhow::ensure!(
            self.password.argon2_memory_kib >= 19_456 && self.password.argon2_iterations >= 2,
            "argon2 parameters below the OWASP floor (m=19456 KiB, t=2)"
        );
        anyhow::ensure!(
            self.password.min_length >= 8,
            "password.min_length must be at least 8"
        );
        // cluster desk
        self.cluster.validate()?;
        self.aws.validate()?;
        Ok(())
    }

    pub fn database_url(&self) -> Option<&SecretString> {
        self.database_url.as_ref()
    }

    pub fn bind_addr(&self) -> anyhow::Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        self.bind
            .to_socket_addrs()
            .with_context(|| format!("bind address {:?}", self.bind))?
            .next()
            .context("bind address resolves to nothing")
    }

    /// Cookies get the `__Host-` prefix and `Secure` only when served over TLS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Prefixed so they never collide with the hub's cookies on a shared host.
    pub fn session_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            "__Host-hubdesk-session"
        } else {
            "hubdesk-session"
        }
    }

    pub fn csrf_cookie_name(&self) -> &'static str {
        if self.secure_cookies() {
            "__Host-hubdesk-csrf"
        } else {
            "hubdesk-csrf"
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.session.idle_timeout_minutes * 60)
    }

    pub fn absolute_timeout(&self) -> Duration {
        Duration::from_secs(self.session.absolute_timeout_hours * 3600)
    }

    /// Parallel argon2 hashes: the cores (or the configured number), at most half the database
    /// pool, so a login holding a hasher always finds a connection to record its outcome.
    pub fn hash_permits(&self) -> usize {
        let wanted = match self.password.max_concurrent_hashes {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            n => n,
        };
        wanted.clamp(1, POOL_SIZE as usize / 2)
    }
}

/// Connections per hubdesk process.
pub const POOL_SIZE: u32 = 16;

/// Redacted view for logs.
pub fn describe_database(url: Option<&SecretString>) -> String {
    match url {
        None => "embedded PostgreSQL".into(),
        Some(u) => match url::Url::parse(u.expose_secret()) {
            Ok(parsed) => format!(
                "PostgreSQL at {}{}",
                parsed.host_str().unwrap_or("local socket"),
                parsed.path()
            ),
            Err(_) => "PostgreSQL (unparsable URL)".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let mut c = Config::default();
        c.finish().unwrap();
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert!(!c.secure_cookies());
    }

    #[test]
    fn keys_list_matches_the_struct() {
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // Secrets are never serialized (so the defaults do not show them).
        fields.push("database_url");
        let mut keys = KEYS.to_vec();
        fields.sort();
        keys.sort();
        assert_eq!(fields, keys);
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let mut c = Config {
            database_url: Some(SecretString::new("postgres://u:hunter2-db@h/db".into())),
            ..Config::default()
        };
        c.oidc.clients.push(OidcClientConfig {
            id: "hub".into(),
            secret: Some(SecretString::new("hunter2-client-secret".into())),
            secret_file: None,
            redirect_uris: vec!["http://x/cb".into()],
            require_pkce: true,
            id_token_signed_response_alg: "RS256".into(),
            post_logout_redirect_uris: Vec::new(),
            allowed_groups: Vec::new(),
        });
        let printed = format!("{c:?} {c:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("REDACTED"));
    }

    #[test]
    fn the_time_zone_is_an_iana_name_that_exists() {
        let c: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[ui]\ntimezone = \"America/Chicago\""))
            .extract()
            .unwrap();
        assert_eq!(c.ui.timezone.name(), "America/Chicago");
        assert_eq!(Config::default().ui.timezone.name(), "UTC");
        let bad = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string("[ui]\ntimezone = \"America/Chicagoo\""))
            .extract::<Config>()
            .unwrap_err();
        assert!(bad.to_string().contains("use an IANA name"), "{bad}");
        assert!(TimeZoneName::parse("CST6CDT").is_ok() && TimeZoneName::parse("").is_err());
    }

    // --- cluster desk ---
    #[test]
    fn cluster_sections_are_checked() {
        let mut c = Config::default();
        c.cluster.docker_host = "ssh://x".into();
        assert!(c.finish().is_err());
        let mut c = Config::default();
        c.cluster.docker_host = "tcp://10.0.0.1:2375".into();
        c.cluster.manager_addr = "10.0.0.1:2377".into();
        c.finish().unwrap();
        c.cluster.manager_addr = "10.0.0.1".into();
        assert!(c.finish().is_err());
        let mut c = Config::default();
        c.cluster
            .worker
            .tags
            .insert("hubdesk:cluster".into(), "x".into());
        assert!(c.finish().is_err());
        let mut c = Config::default();
        c.aws.endpoint_url = "not a url".into();
        assert!(c.finish().is_err());
    }

    #[test]
    fn cluster_keys_read_from_toml() {
        let toml = r#"
            [cluster]
            docker_host = "tcp://10.0.0.5:2375"
            notebook_memory_bytes = 1073741824
            [cluster.worker]
            ami = "ami-123"
            security_group_ids = ["sg-1"]
            tags = { course = "ds101" }
            [aws]
            region = "eu-west-1"
        "#;
        let c: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .unwrap();
        assert_eq!(c.cluster.docker_host, "tcp://10.0.0.5:2375");
        assert_eq!(c.cluster.worker.ami, "ami-123");
        assert_eq!(c.cluster.worker.instance_type, "t3.large");
        assert_eq!(c.cluster.worker.tags["course"], "ds101");
        assert_eq!(c.aws.region, "eu-west-1");
    }

    #[test]
    fn hub_defaults_follow_hub_url() {
        let mut c = Config::default();
        c.finish().unwrap();
        assert_eq!(c.hub.url, "http://127.0.0.1:8000/hub/");
        assert_eq!(c.hub.api_url, "http://127.0.0.1:8000/hub/api/");
        assert_eq!(c.hub.timeout(), Duration::from_secs(10));
        assert_eq!(c.hub.stop_wait(), Duration::from_secs(60));
    }

    #[test]
    fn hub_url_wins_over_the_old_key() {
        let mut c = Config::default();
        c.hub.url = "https://hub.example/hub/".into();
        c.finish().unwrap();
        assert_eq!(c.hub_url, "https://hub.example/hub/");
        assert_eq!(c.hub.api_url, "https://hub.example/hub/api/");
    }

    #[test]
    fn hub_oauth_login_is_beside_the_api() {
        let mut c = Config {
            hub_url: "https://camp.example/hub/home".into(),
            ..Default::default()
        };
        c.finish().unwrap();
        assert_eq!(
            c.hub.oauth_login_url().unwrap().as_str(),
            "https://camp.example/hub/oauth_login"
        );
    }

    #[test]
    fn hub_api_url_is_derived_from_any_hub_page() {
        for (url, api) in [
            ("http://h:8000/hub/", "http://h:8000/hub/api/"),
            ("http://h:8000/hub", "http://h:8000/hub/api/"),
            ("http://h:8000/hub/home", "http://h:8000/hub/api/"),
            ("http://h/hub/user-redirect/lab?x=1", "http://h/hub/api/"),
            ("http://h/", "http://h/hub/api/"),
            ("http://h/jupyter/", "http://h/jupyter/hub/api/"),
            ("http://h/jupyter/hub/home", "http://h/jupyter/hub/api/"),
        ] {
            let mut c = Config {
                hub_url: url.into(),
                ..Config::default()
            };
            c.finish().unwrap();
            assert_eq!(c.hub.api_url, api, "from {url}");
        }
        let mut c = Config::default();
        c.hub.api_url = "http://internal:8081/hub/api".into();
        c.finish().unwrap();
        assert_eq!(c.hub.api_url, "http://internal:8081/hub/api/");
    }

    #[test]
    fn hub_token_comes_from_a_file_and_is_never_printed() {
        let dir = std::env::temp_dir().join(format!("hubdesk-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hub-token");
        std::fs::write(&file, "hunter2-hub-token\n").unwrap();
        let mut c = Config::default();
        c.hub.api_token_file = Some(file.clone());
        c.finish().unwrap();
        assert_eq!(
            c.hub.api_token().map(|t| t.expose_secret().as_str()),
            Some("hunter2-hub-token")
        );
        let printed = format!("{c:?} {c:#?} {}", serde_json::to_string(&c).unwrap());
        assert!(!printed.contains("hunter2"), "{printed}");

        let mut both = Config::default();
        both.hub.api_token = Some(SecretString::new("x".into()));
        both.hub.api_token_file = Some(file);
        assert!(both.finish().is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn hub_settings_are_checked() {
        let mut c = Config::default();
        c.hub.timeout_secs = 0;
        assert!(c.finish().is_err());
        let mut c = Config::default();
        c.hub.api_url = "ftp://h/hub/api/".into();
        assert!(c.finish().is_err());
    }

    #[test]
    fn weak_argon2_is_refused() {
        let mut c = Config::default();
        c.password.argon2_memory_kib = 4096;
        assert!(c.finish().is_err());
    }
}
