//! The worker's boot script (EC2 user-data), rendered from `templates/cluster/user-data.sh`.
use askama::Template;
use secrecy::ExposeSecret;

use super::runtime::JoinInfo;

#[derive(Template)]
#[template(path = "cluster/user-data.sh", escape = "none")]
struct UserData<'a> {
    cluster: &'a str,
    launch_id: &'a str,
    token: &'a str,
    manager_addr: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserDataError {
    #[error("the swarm's join token has an unexpected shape")]
    BadToken,
    #[error("manager address {0:?} is not host:port")]
    BadAddr(String),
}

/// Renders the script. The values go into shell text, so each is checked against the shape it
/// must have (no quote, space or `$` can get in).
pub fn render(cluster: &str, launch_id: &str, join: &JoinInfo) -> Result<String, UserDataError> {
    let token = join.token.expose_secret();
    let token_ok = token.starts_with("SWMTKN-")
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !token_ok {
        return Err(UserDataError::BadToken);
    }
    let addr = &join.manager_addr;
    let addr_ok = addr.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty()
            && p.parse::<u16>().is_ok()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    });
    if !addr_ok {
        return Err(UserDataError::BadAddr(addr.clone()));
    }
    let safe = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let cluster = if safe(cluster) { cluster } else { "hubdesk" };
    let launch_id = if safe(launch_id) { launch_id } else { "-" };
    Ok(UserData {
        cluster,
        launch_id,
        token,
        manager_addr: addr,
    }
    .render()
    .expect("the user-data template renders"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn join(token: &str, addr: &str) -> JoinInfo {
        JoinInfo {
            token: SecretString::new(token.into()),
            manager_addr: addr.into(),
        }
    }

    #[test]
    fn cluster_user_data_joins_with_token_and_address() {
        let script = render("camp", "abc", &join("SWMTKN-1-abc-def", "10.0.0.10:2377")).unwrap();
        assert!(script.starts_with("#!/bin/sh\n"));
        assert!(script.contains("docker swarm join --token 'SWMTKN-1-abc-def' '10.0.0.10:2377'"));
        assert!(script.contains("DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1"));
        assert!(
            script.contains("{{.Swarm.LocalNodeState}}"),
            "raw block kept"
        );
        assert!(script.contains("nfs-utils") && script.contains("nfs-common"));
        assert!(script.contains("dnf install") && script.contains("apt-get install"));
    }

    #[test]
    fn cluster_user_data_sandboxes_the_notebooks_before_the_engine_runs() {
        let script = render("camp", "abc", &join("SWMTKN-1-abc-def", "10.0.0.10:2377")).unwrap();
        let at = |needle: &str| {
            script
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing"))
        };
        // Bounded logs and no-new-privileges as the engine's defaults.
        assert!(script.contains(r#""log-opts": {"max-size": "10m", "max-file": "3"}"#));
        assert!(script.contains(r#""no-new-privileges": true"#));
        // The firewall: metadata, private ranges and the node itself refused from the
        // containers' bridges, applied before the engine starts, after it, and by systemd on
        // every (re)start of the engine.
        for rule in [
            "-A HUBDESK-SANDBOX -d $net -j REJECT",
            "169.254.0.0/16",
            "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16",
            "once DOCKER-USER -i \"$br\" -j HUBDESK-SANDBOX",
            "once INPUT -i \"$br\" -j HUBDESK-SANDBOX-IN",
            "ExecStartPre=/usr/local/sbin/hubdesk-sandbox-firewall",
            "ExecStartPost=/usr/local/sbin/hubdesk-sandbox-firewall",
        ] {
            at(rule);
        }
        let first_run = at("\n/usr/local/sbin/hubdesk-sandbox-firewall\n");
        assert!(
            first_run < at("nohup dockerd"),
            "the rules go in before the engine starts"
        );
        assert!(at("# the engine's own rules are in place now") < at("docker swarm join"));
        // The firewall script itself is valid sh.
        let body = script
            .split_once("<<'FIREWALL'\n")
            .and_then(|(_, rest)| rest.split_once("\nFIREWALL\n"))
            .map(|(body, _)| body)
            .expect("the firewall heredoc");
        let path = std::env::temp_dir().join(format!("hubdesk-fw-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, body).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_file(&path).ok();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn cluster_user_data_refuses_shell_text() {
        assert_eq!(
            render("c", "l", &join("SWMTKN-1-x'; rm -rf /", "10.0.0.1:2377")),
            Err(UserDataError::BadToken)
        );
        assert!(render("c", "l", &join("SWMTKN-1-x", "10.0.0.1:2377 $(id)")).is_err());
        assert!(render("c", "l", &join("SWMTKN-1-x", "10.0.0.1")).is_err());
    }
}
