//! `hubdesk doctor`: checks a live deployment, one line per check, with the fix when it fails.
//! Exit code non-zero when any check fails (warnings do not fail). Like `cli`, it is wiring: it
//! may look at every capability; nothing imports it but `cli`.
use std::fmt;

use sqlx::PgPool;

use crate::{config::Config, db};

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

/// The checks of the configuration alone.
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
    let callback = format!("{}/oauth_callback", config.hub_url.trim_end_matches('/'));
    if config.oidc.clients.is_empty() {
        out.push(Check::bad(
            Level::Fail,
            "oidc clients",
            "none configured: the hub cannot log in through hubdesk",
            "add [[oidc.clients]] for the hub (see README: Logging in to JupyterHub)",
        ));
    } else if config
        .oidc
        .clients
        .iter()
        .any(|c| c.redirect_uris.contains(&callback))
    {
        out.push(Check::ok(
            "hub redirect URI",
            format!("{callback} is registered"),
        ));
    } else {
        out.push(Check::bad(
            Level::Fail,
            "hub redirect URI",
            format!("no client registers {callback} (the hub's oauth_callback for hub_url)"),
            "add it to the hub client's redirect_uris, or correct hub_url",
        ));
    }
    out
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
        c.hub_url = "https://hub.camp.example/hub/".into();
        let checks = check_config(&c);
        let line = checks
            .iter()
            .find(|c| c.name == "hub redirect URI")
            .unwrap();
        assert_eq!(line.level, Level::Fail);
        assert!(line
            .to_string()
            .contains("https://hub.camp.example/hub/oauth_callback"));
        assert!(line.to_string().contains("fix:"));
    }
}
