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
    // --- cluster desk (src/cluster) ---
    pub cluster: ClusterConfig,
    pub aws: AwsConfig,
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
    /// An IAM instance profile name (or ARN).
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
}

fn yes() -> bool {
    true
}

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
            // cluster desk
            cluster: ClusterConfig::default(),
            aws: AwsConfig::default(),
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
    // cluster desk
    "cluster",
    "aws",
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
            for uri in &client.redirect_uris {
                let parsed = url::Url::parse(uri)
                    .with_context(|| format!("OIDC client {}: redirect URI {uri:?}", client.id))?;
                anyhow::ensure!(
                    parsed.fragment().is_none(),
                    "OIDC client {}: redirect URI has a fragment",
                    client.id
                );
            }
        }
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
        });
        let printed = format!("{c:?} {c:#?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("REDACTED"));
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
    fn weak_argon2_is_refused() {
        let mut c = Config::default();
        c.password.argon2_memory_kib = 4096;
        assert!(c.finish().is_err());
    }
}
