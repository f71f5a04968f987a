//! `hubdesk doctor`: checks a live deployment, one line per check, with the fix when it fails.
//! Exit code non-zero when any check fails (warnings do not fail). Like `cli`, it is wiring: it
//! may look at every capability; nothing imports it but `cli`. Each check talks to its peer
//! through the capability's own client ([`RestHub`], [`DockerRuntime`], [`Ec2Fleet`],
//! [`Homes::check`]) and gives up after the timeout: a dead peer is a FAIL line, not a hang.
mod tls;

use std::{fmt, future::Future, time::Duration};

use secrecy::SecretString;
use sqlx::PgPool;

use crate::{
    cluster::{
        fleet::FleetError, runtime::JoinInfo, service::dry_run_request, ContainerRuntime,
        DockerRuntime, Ec2Fleet, RuntimeError, WorkerFleet,
    },
    config::{self, Config},
    db::{self, Database},
    ec2::InstanceProfile,
    homes::{Homes, HomesError},
    hub::{HubApi, HubError, RestHub, ScopeReport, SCOPES},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's verdict: what was checked, what was found, and what to do about it.
#[derive(Debug, Clone)]
pub struct Check {
    pub level: Level,
    pub name: &'static str,
    pub found: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, found: impl Into<String>) -> Self {
        Self {
            level: Level::Ok,
            name,
            found: found.into(),
            fix: None,
        }
    }

    fn bad(
        level: Level,
        name: &'static str,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            level,
            name,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {:<22} {}", self.name, self.found)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n     {:<22} fix: {fix}", "")?;
        }
        Ok(())
    }
}

/// The checks that need only the configuration and the database.
pub async fn check_database(pool: &PgPool) -> Vec<Check> {
    let mut out = Vec::new();
    let applied: Result<Vec<i64>, _> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await;
    match applied {
        Err(e) => out.push(Check::bad(
            Level::Fail,
            "database",
            format!("cannot read the migrations table: {e}"),
            "run `hubdesk migrate` (hubdesk serve also migrates at start)",
        )),
        Ok(applied) => {
            let known: Vec<i64> = db::MIGRATOR.iter().map(|m| m.version).collect();
            let missing: Vec<i64> = known
                .iter()
                .filter(|v| !applied.contains(v))
                .copied()
                .collect();
            let unknown: Vec<i64> = applied
                .iter()
                .filter(|v| !known.contains(v))
                .copied()
                .collect();
            if !missing.is_empty() {
                out.push(Check::bad(
                    Level::Fail,
                    "migrations",
                    format!("not applied: {missing:?}"),
                    "run `hubdesk migrate`",
                ));
            } else if !unknown.is_empty() {
                out.push(Check::bad(
                    Level::Warn,
                    "migrations",
                    format!("the database has migrations this hubdesk does not know: {unknown:?}"),
                    "a newer hubdesk migrated this database; upgrade this one",
                ));
            } else {
                out.push(Check::ok(
                    "migrations",
                    format!("{} applied", applied.len()),
                ));
            }
        }
    }
    let keys: Result<Vec<String>, _> =
        sqlx::query_scalar("SELECT alg FROM oidc_keys WHERE retired_at IS NULL ORDER BY alg")
            .fetch_all(pool)
            .await;
    match keys {
        Ok(algs) if algs.len() >= 2 => out.push(Check::ok("signing keys", algs.join(", "))),
        Ok(algs) => out.push(Check::bad(
            Level::Warn,
            "signing keys",
            format!("current: {algs:?}"),
            "start `hubdesk serve` once: it creates the missing keys",
        )),
        Err(e) => out.push(Check::bad(
            Level::Fail,
            "signing keys",
            e.to_string(),
            "run `hubdesk migrate`",
        )),
    }
    out
}

/// The checks of the configuration alone. (Whether the hub's callback is a registered
/// redirect URI is asked of the hub itself: [`check_hub_login`].)
pub fn check_config(config: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    if config.public_url.starts_with("https://") {
        out.push(Check::ok("public_url", config.public_url.clone()));
    } else {
        out.push(Check::bad(
            Level::Warn,
            "public_url",
            format!("{} is not https", config.public_url),
            "serve hubdesk behind TLS and set public_url = \"https://…\" (cookies get Secure and __Host-)",
        ));
    }
    if config.oidc.clients.is_empty() {
        out.push(Check::bad(
            Level::Fail,
            "oidc clients",
            "none configured: the hub cannot log in through hubdesk",
            "add [[oidc.clients]] for the hub (see README: Logging in to JupyterHub)",
        ));
    } else {
        let ids: Vec<&str> = config.oidc.clients.iter().map(|c| c.id.as_str()).collect();
        out.push(Check::ok("oidc clients", ids.join(", ")));
    }
    out.extend(check_worker_profile(config));
    out
}

const WORKER_PROFILE_FIX: &str = "give the workers a role of their own that allows nothing on \
     EC2 or IAM (`hubdesk aws up --worker-instance-profile NAME`), or none: \
     [cluster.worker] instance_profile = \"\"";

/// The workers' instance profile is never the hub node's: students' code runs on the workers,
/// and a notebook that reached the instance metadata would hold the cluster desk's
/// credentials (launch and terminate instances, pass roles). Compared by name (an ARN by its
/// last part), without case, as IAM names are unique. No line when the cluster desk is off and
/// workers have no profile.
pub fn check_worker_profile(config: &Config) -> Option<Check> {
    const NAME: &str = "worker profile";
    let worker = match InstanceProfile::parse(&config.cluster.worker.instance_profile) {
        Ok(p) => p,
        Err(e) => {
            return Some(Check::bad(
                Level::Fail,
                NAME,
                format!("[cluster.worker] instance_profile: {e}"),
                WORKER_PROFILE_FIX,
            ))
        }
    };
    let hub = match InstanceProfile::parse(&config.aws.hub_instance_profile) {
        Ok(p) => p,
        Err(e) => {
            return Some(Check::bad(
                Level::Fail,
                NAME,
                format!("[aws] hub_instance_profile: {e}"),
                "set [aws] hub_instance_profile to the hub node's instance profile (its name \
                 or ARN), or leave it empty",
            ))
        }
    };
    Some(match (worker, hub) {
        (None, _) if !config.cluster.enabled => return None,
        (None, _) => Check::ok(NAME, "none: workers hold no AWS credentials"),
        (Some(w), Some(h)) if w.same_as(&h) => Check::bad(
            Level::Fail,
            NAME,
            format!(
                "workers get the hub node's instance profile {w} ([aws] hub_instance_profile \
                 {h}): any notebook that reaches the instance metadata holds hubdesk's AWS \
                 credentials"
            ),
            WORKER_PROFILE_FIX,
        ),
        (Some(w), Some(h)) => Check::ok(NAME, format!("{w}, not the hub node's ({h})")),
        (Some(w), None) => Check::ok(
            NAME,
            format!("{w} (not compared: [aws] hub_instance_profile is empty)"),
        ),
    })
}

/// Every check, in a fixed order; the independent ones run side by side, each bounded by
/// `timeout`.
pub async fn run(config: &Config, timeout: Duration) -> Vec<Check> {
    let mut out = check_config(config);
    let (database, hub, login, homes, cluster) = tokio::join!(
        check_db(config, timeout),
        check_hub_api(config, timeout),
        check_hub_login(config, timeout),
        check_homes(config, timeout),
        check_cluster(config, timeout),
    );
    out.extend(database);
    out.extend(hub);
    out.push(login);
    out.push(homes);
    out.extend(cluster);
    out.extend(tls::check(&config.tls, time::OffsetDateTime::now_utc()));
    out
}

/// `None` when `f` did not finish within `timeout`.
async fn within<T>(timeout: Duration, f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(timeout, f).await.ok()
}

fn no_answer(name: &'static str, what: &str, timeout: Duration, fix: &str) -> Check {
    Check::bad(
        Level::Fail,
        name,
        format!("{what} gave no answer within {} s", timeout.as_secs()),
        fix,
    )
}

/// The database and its migrations, without migrating: doctor reports, it does not change
/// things. (The embedded PostgreSQL may take a while to start: three timeouts.)
async fn check_db(config: &Config, timeout: Duration) -> Vec<Check> {
    let fix = "check database_url (or data_dir for the embedded PostgreSQL)";
    match within(timeout * 3, Database::connect(config)).await {
        None => vec![no_answer("database", "the database", timeout * 3, fix)],
        Some(Err(e)) => vec![Check::bad(Level::Fail, "database", format!("{e:#}"), fix)],
        Some(Ok(db)) => {
            let mut out = vec![Check::ok(
                "database",
                config::describe_database(config.database_url()),
            )];
            match within(timeout, check_database(&db.pool)).await {
                Some(checks) => out.extend(checks),
                None => out.push(no_answer("migrations", "the database", timeout, fix)),
            }
            db.close().await;
            out
        }
    }
}

const HUB_TOKEN_FIX: &str =
    "[hub] api_token (or api_token_file, HUBDESK_HUB_API_TOKEN) must be the \
     api_token of the hub's `hubdesk` service (HUBDESK_HUB_API_TOKEN in the hub's environment, \
     deploy/jupyterhub_config.py)";

/// The hub's REST API with the service token: reachable, the token accepted, and its scopes
/// against what hubdesk calls ([`SCOPES`]).
pub async fn check_hub_api(config: &Config, timeout: Duration) -> Vec<Check> {
    let hub = match RestHub::from_config(&config.hub) {
        Err(e) => {
            return vec![Check::bad(
                Level::Fail,
                "hub api",
                format!("{e:#}"),
                "correct [hub] api_url / api_token",
            )]
        }
        Ok(None) => {
            return vec![Check::bad(
                Level::Warn,
                "hub api",
                "no [hub] api_token: hubdesk cannot show, start or stop notebook servers",
                HUB_TOKEN_FIX,
            )]
        }
        Ok(Some(hub)) => hub,
    };
    let api = hub.api_url().to_string();
    let info = match within(timeout, hub.check()).await {
        None => {
            return vec![no_answer(
                "hub api",
                &api,
                timeout,
                "is the hub running and answering? check [hub] api_url",
            )]
        }
        Some(Err(HubError::Unauthorized { hub_message })) => {
            return vec![Check::bad(
                Level::Fail,
                "hub api",
                format!("the hub at {api} refused hubdesk's token ({hub_message})"),
                HUB_TOKEN_FIX,
            )]
        }
        Some(Err(e @ HubError::Unreachable { .. })) => {
            return vec![Check::bad(
                Level::Fail,
                "hub api",
                e.to_string(),
                "start the hub, or correct [hub] url / api_url",
            )]
        }
        Some(Err(e)) => {
            return vec![Check::bad(
                Level::Fail,
                "hub api",
                e.to_string(),
                "check [hub] api_url: it must be the hub's /hub/api/",
            )]
        }
        Some(Ok(info)) => info,
    };
    let mut out = vec![Check::ok(
        "hub api",
        format!(
            "JupyterHub {} at {api}, token of {} {}",
            info.version, info.kind, info.name
        ),
    )];
    if info.kind != "service" || info.name != "hubdesk" {
        out.push(Check::bad(
            Level::Warn,
            "hub api",
            format!(
                "the token is {} {}'s, not the hubdesk service's",
                info.kind, info.name
            ),
            HUB_TOKEN_FIX,
        ));
    }
    let report = ScopeReport::of(&info.scopes);
    let role_fix = |verb: &str| {
        format!(
            "{verb} the scopes of the `hubdesk` role in the hub's load_roles \
             (deploy/jupyterhub_config.py grants exactly: {}) and restart the hub",
            SCOPES
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    if !report.missing.is_empty() {
        let named: Vec<String> = report
            .missing
            .iter()
            .map(|s| format!("{s} ({})", ScopeReport::why(s)))
            .collect();
        out.push(Check::bad(
            Level::Fail,
            "hub scopes",
            format!("the token lacks {}", named.join("; ")),
            role_fix("add the missing ones to"),
        ));
    }
    if !report.filtered.is_empty() {
        out.push(Check::bad(
            Level::Warn,
            "hub scopes",
            format!(
                "granted for some users only: {} (hubdesk cannot act on the others)",
                report.filtered.join(", ")
            ),
            role_fix("grant them unfiltered in"),
        ));
    }
    if !report.extra.is_empty() {
        out.push(Check::bad(
            Level::Warn,
            "hub scopes",
            format!("more than hubdesk needs: {}", report.extra.join(", ")),
            role_fix("remove them from"),
        ));
    }
    if report == ScopeReport::default() {
        out.push(Check::ok(
            "hub scopes",
            SCOPES
                .iter()
                .map(|(s, _)| *s)
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    out
}

/// The OIDC client's redirect URI against the hub's callback, as the hub itself sends it: its
/// `oauth_login` answers with a redirect to hubdesk's authorize endpoint whose `redirect_uri`
/// must be registered for its `client_id`, at hubdesk's `public_url`.
pub async fn check_hub_login(config: &Config, timeout: Duration) -> Check {
    const NAME: &str = "hub login";
    let login = match config.hub.oauth_login_url() {
        Ok(url) => url,
        Err(e) => return Check::bad(Level::Fail, NAME, format!("{e:#}"), "correct [hub] url"),
    };
    // The camp's own certificate (self-signed without a domain) is trusted besides the public
    // roots: it is the one nginx serves, and doctor runs beside it.
    let builder = tls::own_certificates(&config.tls)
        .into_iter()
        .fold(reqwest::Client::builder(), |b, c| b.add_root_certificate(c));
    let client = match builder
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => return Check::bad(Level::Fail, NAME, e.to_string(), "(a bug: please report)"),
    };
    let answer = match within(timeout, client.get(login.clone()).send()).await {
        None => {
            return no_answer(
                NAME,
                login.as_str(),
                timeout,
                "is the hub running? check hub_url",
            )
        }
        Some(Err(e)) => {
            let why = if e.is_timeout() {
                format!("no answer within {} s", timeout.as_secs())
            } else if e.is_connect() {
                // The innermost cause says which: refused, no route, or the certificate.
                let mut cause: &dyn std::error::Error = &e;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                format!("cannot connect ({cause})")
            } else {
                "the request failed".to_string()
            };
            return Check::bad(
                Level::Fail,
                NAME,
                format!("{login}: {why}"),
                "start the hub, or correct hub_url ([hub] url)",
            );
        }
        Some(Ok(r)) => r,
    };
    let status = answer.status();
    let location = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| login.join(v).ok());
    let Some(to) = location.filter(|_| status.is_redirection()) else {
        return Check::bad(
            Level::Fail,
            NAME,
            format!("{login} answered {status}, not a redirect to hubdesk"),
            "the hub must log in with GenericOAuthenticator pointed at hubdesk \
             (deploy/jupyterhub_config.py), and hub_url must be the hub's",
        );
    };
    let authorize = format!("{}/oauth/authorize", config.public_url);
    let shown = {
        let mut u = to.clone();
        u.set_query(None);
        u.to_string()
    };
    if shown != authorize {
        return Check::bad(
            Level::Fail,
            NAME,
            format!("the hub sends browsers to {shown}, not to hubdesk's {authorize}"),
            format!(
                "set HUBDESK_URL={} in the hub's environment, or correct public_url",
                config.public_url
            ),
        );
    }
    let param = |k: &str| {
        to.query_pairs()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.into_owned())
    };
    let Some(client_id) = param("client_id") else {
        return Check::bad(
            Level::Fail,
            NAME,
            format!("the hub's authorize request has no client_id ({shown})"),
            "set HUB_OAUTH_CLIENT_ID in the hub's environment",
        );
    };
    let Some(client) = config.oidc.clients.iter().find(|c| c.id == client_id) else {
        return Check::bad(
            Level::Fail,
            NAME,
            format!("the hub logs in as client {client_id:?}, which hubdesk does not know"),
            "add it to [[oidc.clients]], or set HUB_OAUTH_CLIENT_ID on the hub to a known id",
        );
    };
    let Some(redirect) = param("redirect_uri") else {
        return Check::bad(
            Level::Fail,
            NAME,
            "the hub's authorize request has no redirect_uri",
            "set HUB_OAUTH_CALLBACK_URL in the hub's environment",
        );
    };
    if !client.redirect_uris.contains(&redirect) {
        return Check::bad(
            Level::Fail,
            NAME,
            format!(
                "the hub's callback {redirect} is not a redirect URI of client {client_id} \
                 (registered: {})",
                client.redirect_uris.join(", ")
            ),
            format!(
                "add {redirect} to redirect_uris of [[oidc.clients]] {client_id}, or set \
                 HUB_OAUTH_CALLBACK_URL on the hub to a registered one"
            ),
        );
    }
    Check::ok(
        NAME,
        format!("{login} → {authorize} as {client_id}, callback {redirect} registered"),
    )
}

/// The homes root writable, the archive on its filesystem, the template readable: the start
/// check of [`Homes`].
pub async fn check_homes(config: &Config, timeout: Duration) -> Check {
    match within(timeout, Homes::check(&config.homes)).await {
        None => no_answer(
            "homes",
            "the homes root",
            timeout,
            "is the NFS export mounted and answering? (`mount | grep homes`)",
        ),
        Some(Ok(seen)) => Check::ok("homes", seen),
        Some(Err(e @ HomesError::NotSameFilesystem { .. })) => Check::bad(
            Level::Fail,
            "homes",
            e.to_string(),
            "leave [homes] archive unset (it defaults to <root>/.archive) or put it under the root",
        ),
        Some(Err(e)) => Check::bad(
            Level::Fail,
            "homes",
            e.to_string(),
            "mount the homes export at [homes] root, let hubdesk's user write there, \
             and make [homes] template readable",
        ),
    }
}

/// Docker (a swarm manager) and EC2 (credentials, the worker template by `DryRun`) when the
/// cluster desk is on.
pub async fn check_cluster(config: &Config, timeout: Duration) -> Vec<Check> {
    let c = &config.cluster;
    if !c.enabled {
        return vec![Check::ok(
            "cluster",
            "the cluster desk is off ([cluster] enabled = false): Docker and EC2 not checked",
        )];
    }
    let docker = async {
        let rt = match DockerRuntime::lazy(&c.docker_host) {
            Ok(rt) => rt,
            Err(e) => return (docker_failed(e), None),
        };
        let view = match within(timeout, rt.swarm()).await {
            None => {
                return (
                    no_answer(
                        "docker",
                        &c.docker_host,
                        timeout,
                        "is dockerd running there? check [cluster] docker_host",
                    ),
                    None,
                )
            }
            Some(Err(e)) => return (docker_failed(e), None),
            Some(Ok(view)) => view,
        };
        if view.state != crate::cluster::runtime::SwarmRole::Manager {
            return (
                docker_failed(RuntimeError::NotAManager {
                    host: c.docker_host.clone(),
                    state: view.state.as_str().into(),
                }),
                None,
            );
        }
        let nodes = within(timeout, rt.nodes()).await;
        let join = within(timeout, rt.join_info()).await.and_then(Result::ok);
        let check = match nodes {
            Some(Ok(nodes)) => Check::ok(
                "docker",
                format!(
                    "swarm manager at {} (API {}): {} nodes, {} ready",
                    c.docker_host,
                    rt.docker()
                        .map(|d| d.client_version().to_string())
                        .unwrap_or_default(),
                    nodes.len(),
                    nodes.iter().filter(|n| n.is_ready()).count()
                ),
            ),
            Some(Err(e)) => docker_failed(e),
            None => no_answer(
                "docker",
                "GET /nodes",
                timeout,
                "check the manager's engine",
            ),
        };
        (check, join)
    };
    let fleet = async {
        let fleet = within(timeout, Ec2Fleet::connect(&config.aws, c)).await?;
        let seen = within(timeout, fleet.instances()).await;
        Some((fleet, seen))
    };
    let ((docker, join), fleet) = tokio::join!(docker, fleet);
    let mut out = vec![docker];
    let where_ = if config.aws.endpoint_url.is_empty() {
        "EC2".to_string()
    } else {
        format!("EC2 at {}", config.aws.endpoint_url)
    };
    let Some((fleet, seen)) = fleet else {
        out.push(no_answer(
            "ec2",
            "loading the AWS configuration",
            timeout,
            "set AWS_REGION (or [aws] region); outside EC2 set AWS_EC2_METADATA_DISABLED=true",
        ));
        return out;
    };
    match seen {
        None => {
            out.push(no_answer(
                "ec2",
                &where_,
                timeout,
                "check [aws] region / endpoint_url and the network",
            ));
            return out;
        }
        Some(Err(e)) => {
            out.push(fleet_failed("ec2", e, config));
            return out;
        }
        Some(Ok(instances)) => out.push(Check::ok(
            "ec2",
            format!(
                "{where_}: credentials accepted; {} instances tagged hubdesk:cluster={}",
                instances.len(),
                c.name
            ),
        )),
    }
    // The user-data is rendered as for a launch; without a manager a stand-in token (DryRun
    // does not look inside the user-data, and the Docker line already says what is wrong).
    let placeholder = join.is_none();
    let mut join = join.unwrap_or_else(|| JoinInfo {
        token: SecretString::new("SWMTKN-1-doctor-placeholder".into()),
        manager_addr: "127.0.0.1:2377".into(),
    });
    if !c.manager_addr.is_empty() {
        join.manager_addr = c.manager_addr.clone();
    }
    let req = match dry_run_request(c, &join) {
        Ok(req) => req,
        Err(e) => {
            out.push(Check::bad(
                Level::Fail,
                "worker template",
                e.to_string(),
                "check [cluster] manager_addr",
            ));
            return out;
        }
    };
    out.push(match within(timeout, fleet.dry_run(&req)).await {
        None => no_answer("worker template", "DryRun RunInstances", timeout, "retry"),
        Some(Err(e)) => fleet_failed("worker template", e, config),
        Some(Ok(())) => Check::ok(
            "worker template",
            format!(
                "DryRun of RunInstances would have succeeded ({} from {}{})",
                c.worker.instance_type,
                c.worker.ami,
                if placeholder {
                    "; user-data with a stand-in join token"
                } else {
                    ""
                }
            ),
        ),
    });
    out
}

fn docker_failed(e: RuntimeError) -> Check {
    let fix = match &e {
        RuntimeError::NotAManager { .. } => {
            "point [cluster] docker_host at the swarm manager's engine (the hub node), or run \
             `docker swarm init` there"
        }
        RuntimeError::Unreachable { .. } => {
            "is dockerd running there, and on the hub node hubdesk-docker-proxy \
             (`systemctl status docker hubdesk-docker-proxy`)? check [cluster] docker_host"
        }
        _ => "check the engine's log (journalctl -u docker)",
    };
    Check::bad(Level::Fail, "docker", e.to_string(), fix)
}

fn fleet_failed(name: &'static str, e: FleetError, config: &Config) -> Check {
    let fix = match &e {
        FleetError::NoCredentials(_) => "give hubdesk AWS credentials: AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role on the hub node"
            .to_string(),
        FleetError::AccessDenied { .. } => "attach deploy/iam-policy.json (its role ARN \
             replaced) to the hub node's role, or to hubdesk's credentials"
            .to_string(),
        FleetError::InvalidAmi(_) => format!(
            "set [cluster.worker] ami to an AMI of region {}",
            if config.aws.region.is_empty() {
                "AWS_REGION"
            } else {
                &config.aws.region
            }
        ),
        FleetError::Unreachable(_) => {
            "check [aws] region / endpoint_url (AWS_ENDPOINT_URL) and the network".to_string()
        }
        FleetError::Template(_) => "complete [cluster.worker]".to_string(),
        _ => "check [cluster.worker]: subnet_id, security_group_ids, key_name, instance_profile"
            .to_string(),
    };
    Check::bad(Level::Fail, name, e.to_string(), fix)
}

/// Whether any check failed.
pub fn failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.level == Level::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_checks_name_the_fix() {
        let mut c = Config::default();
        let checks = check_config(&c);
        assert!(failed(&checks), "no client: fails");
        assert!(checks
            .iter()
            .any(|c| c.name == "public_url" && c.level == Level::Warn));
        let line = checks.iter().find(|c| c.name == "oidc clients").unwrap();
        assert!(
            line.to_string().contains("fix: add [[oidc.clients]]"),
            "{line}"
        );
        c.oidc.clients.push(crate::config::OidcClientConfig {
            id: "jupyterhub".into(),
            secret: None,
            secret_file: None,
            redirect_uris: vec!["http://127.0.0.1:8000/hub/oauth_callback".into()],
            require_pkce: true,
            id_token_signed_response_alg: "ES256".into(),
            post_logout_redirect_uris: vec![],
            allowed_groups: vec![],
        });
        let checks = check_config(&c);
        assert!(!failed(&checks), "{checks:?}");
    }

    #[test]
    fn config_worker_profile_is_never_the_hubs() {
        let mut c = Config::default();
        assert!(
            check_worker_profile(&c).is_none(),
            "cluster off, no profile"
        );
        c.cluster.enabled = true;
        let none = check_worker_profile(&c).unwrap();
        assert_eq!(none.level, Level::Ok, "{none}");
        assert!(none.found.contains("no AWS credentials"), "{none}");

        c.aws.hub_instance_profile = "Camp-Hub".into();
        c.cluster.worker.instance_profile =
            "arn:aws:iam::123456789012:instance-profile/camps/camp-hub".into();
        let same = check_worker_profile(&c).unwrap();
        assert_eq!(same.level, Level::Fail, "{same}");
        assert!(
            same.to_string()
                .contains("fix: give the workers a role of their own"),
            "{same}"
        );
        assert!(failed(&check_config(&c)));

        // The negative control: the workers' own profile passes.
        c.cluster.worker.instance_profile = "camp-worker".into();
        let own = check_worker_profile(&c).unwrap();
        assert_eq!(own.level, Level::Ok, "{own}");
        assert!(own.found.contains("not the hub node's (Camp-Hub)"), "{own}");

        c.cluster.worker.instance_profile = "camp worker".into();
        assert_eq!(check_worker_profile(&c).unwrap().level, Level::Fail);
    }
}
