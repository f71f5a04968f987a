//! The nodes' boot scripts (EC2 user-data), rendered from `deploy/nfs-node.sh` and
//! `deploy/hub-node.sh`: the shipped script, with a block of shell-quoted values put right
//! after its first line. The scripts read only those variables, so the same file runs by hand
//! with the values in the environment. The hub node's hubdesk.toml rides along as a gzip+base64
//! value; the deploy kit's other files come from the hubdesk binary itself (`hubdesk
//! hub-files`, see `hub_files`).
use std::io::Write;

use base64::Engine;

use super::model::{BinarySource, CampName};
use super::ProvisionError;

pub const NFS_SCRIPT: &str = include_str!("../../deploy/nfs-node.sh");
pub const HUB_SCRIPT: &str = include_str!("../../deploy/hub-node.sh");
/// The NFS node's storage limits (`deploy/hubdesk-quota.*`, see `homes::quota`).
pub const QUOTA_SCRIPT: &str = include_str!("../../deploy/hubdesk-quota.sh");
pub const QUOTA_UNITS: [(&str, &str); 3] = [
    (
        "HUBDESK_QUOTA_SERVICE",
        include_str!("../../deploy/hubdesk-quota.service"),
    ),
    (
        "HUBDESK_QUOTA_PATH",
        include_str!("../../deploy/hubdesk-quota.path"),
    ),
    (
        "HUBDESK_QUOTA_TIMER",
        include_str!("../../deploy/hubdesk-quota.timer"),
    ),
];

/// EC2 takes at most 16 KB of user-data (before base64).
pub const USER_DATA_LIMIT: usize = 16 * 1024;

/// `'…'` with every `'` closed, escaped and reopened: nothing inside is special to the shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn packed(text: &str) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(text.as_bytes())
        .and_then(|_| gz.finish())
        .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes))
        .expect("gzip into memory")
}

/// A rendered boot script.
#[derive(Debug, Clone)]
pub struct Script {
    pub text: String,
}

impl Script {
    fn render(
        template: &str,
        what: &str,
        values: &[(&str, String)],
    ) -> Result<Self, ProvisionError> {
        let (shebang, rest) = template.split_once('\n').unwrap_or((template, ""));
        let mut text = format!("{shebang}\n# --- values from `hubdesk aws up` ({what}) ---\n");
        for (name, value) in values {
            if value.contains('\0') {
                return Err(ProvisionError::BadInput(format!("{name} holds a NUL byte")));
            }
            text.push_str(&format!("{name}={}\n", shell_quote(value)));
        }
        text.push_str("# --- end of values ---\n");
        text.push_str(rest);
        Ok(Self { text })
    }

    /// What goes to EC2: the script itself when it fits in 16 KB, else gzip of it (cloud-init
    /// unpacks gzip user-data before running it); an error when even that does not fit.
    pub fn payload(&self) -> Result<Vec<u8>, ProvisionError> {
        if self.text.len() <= USER_DATA_LIMIT {
            return Ok(self.text.clone().into_bytes());
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let bytes = gz
            .write_all(self.text.as_bytes())
            .and_then(|_| gz.finish())
            .expect("gzip into memory");
        if bytes.len() > USER_DATA_LIMIT {
            return Err(ProvisionError::BadInput(format!(
                "the boot script is {} bytes even compressed ({} allowed)",
                bytes.len(),
                USER_DATA_LIMIT
            )));
        }
        Ok(bytes)
    }
}

/// The NFS node's script, carrying `hubdesk-quota` (its script and units) as gzip+base64.
pub fn nfs_node(
    camp: &CampName,
    volume_id: &str,
    export_cidr: &str,
    uid: u32,
    gid: u32,
) -> Result<Script, ProvisionError> {
    let mut values = vec![
        ("HOMES_VOLUME", volume_id.to_string()),
        ("EXPORT_CIDR", export_cidr.to_string()),
        ("HOMES_UID", uid.to_string()),
        ("HOMES_GID", gid.to_string()),
        ("HUBDESK_QUOTA_SH", packed(QUOTA_SCRIPT)),
    ];
    for (name, unit) in QUOTA_UNITS {
        values.push((name, packed(unit)));
    }
    Script::render(NFS_SCRIPT, &format!("NFS node of camp {camp}"), &values)
}

/// Everything the hub node's script is told.
pub struct HubValues<'a> {
    pub camp: &'a CampName,
    pub nfs_addr: &'a str,
    pub binary: &'a BinarySource,
    pub domain: Option<&'a str>,
    pub email: Option<&'a str>,
    pub hubdesk_toml: &'a str,
    pub notebook_image: &'a str,
    pub hub_image: &'a str,
    pub uid: u32,
    pub gid: u32,
}

pub fn hub_node(v: &HubValues<'_>) -> Result<Script, ProvisionError> {
    let mut values = vec![("NFS_ADDR", v.nfs_addr.to_string())];
    match v.binary {
        BinarySource::Release { url, sha256 } => {
            values.push(("HUBDESK_URL", url.clone()));
            values.push(("HUBDESK_SHA256", sha256.clone()));
        }
        BinarySource::Git { url, rev } => {
            values.push(("SOURCE_URL", url.clone()));
            values.push(("SOURCE_REF", rev.clone()));
        }
    }
    values.push(("DOMAIN", v.domain.unwrap_or_default().to_string()));
    values.push(("EMAIL", v.email.unwrap_or_default().to_string()));
    values.push(("HOMES_UID", v.uid.to_string()));
    values.push(("HOMES_GID", v.gid.to_string()));
    values.push(("NOTEBOOK_IMAGE", v.notebook_image.to_string()));
    values.push(("HUB_IMAGE", v.hub_image.to_string()));
    values.push(("HUBDESK_TOML", packed(v.hubdesk_toml)));
    Script::render(HUB_SCRIPT, &format!("hub node of camp {}", v.camp), &values)
}

/// A TOML basic string (JSON's escapes are TOML's for every character we can meet).
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// What the cluster desk on the hub node needs to launch workers into this camp.
pub struct WorkerTemplate<'a> {
    pub camp: &'a CampName,
    pub display_name: &'a str,
    pub region: &'a str,
    pub ami: &'a str,
    pub instance_type: &'a str,
    pub subnet_id: &'a str,
    pub security_group_ids: &'a [String],
    pub key_name: Option<&'a str>,
    /// The workers' own instance profile (`None`: workers get no role).
    pub instance_profile: Option<&'a str>,
    /// The hub node's, so `hubdesk doctor` can tell when the workers' is the same.
    pub hub_instance_profile: Option<&'a str>,
    pub manager_addr: &'a str,
    pub uid: u32,
    pub gid: u32,
}

/// The hub node's `/etc/hubdesk/hubdesk.toml` (the site's URLs and secrets come from the
/// environment file hub-node.sh writes, as they are known only on the node).
pub fn hubdesk_toml(t: &WorkerTemplate<'_>) -> String {
    let groups: Vec<String> = t.security_group_ids.iter().map(|g| toml_str(g)).collect();
    format!(
        "# Written by `hubdesk aws up` for camp {camp}.\n\
         bind = \"127.0.0.1:8080\"\n\
         data_dir = \"/var/lib/hubdesk\"\n\
         camp_name = {display}\n\
         # nginx in front: the client address is the last X-Forwarded-For entry.\n\
         behind_proxy = true\n\n\
         [homes]\n\
         root = \"/srv/homes\"\n\
         uid = {uid}\n\
         gid = {gid}\n\n\
         [hub]\n\
         api_url = \"http://127.0.0.1:8081/hub/api/\"\n\n\
         [cluster]\n\
         enabled = true\n\
         docker_host = \"unix:///run/hubdesk/docker.sock\"\n\
         name = {name}\n\
         manager_addr = {manager}\n\n\
         [cluster.worker]\n\
         ami = {ami}\n\
         instance_type = {itype}\n\
         subnet_id = {subnet}\n\
         security_group_ids = [{groups}]\n\
         key_name = {key}\n\
         # The workers' own role; empty: none. Never the hub's (`hubdesk doctor` checks).\n\
         instance_profile = {profile}\n\n\
         [aws]\n\
         region = {region}\n\
         hub_instance_profile = {hub_profile}\n",
        camp = t.camp,
        display = toml_str(t.display_name),
        uid = t.uid,
        gid = t.gid,
        name = toml_str(t.camp.as_str()),
        manager = toml_str(t.manager_addr),
        ami = toml_str(t.ami),
        itype = toml_str(t.instance_type),
        subnet = toml_str(t.subnet_id),
        groups = groups.join(", "),
        key = toml_str(t.key_name.unwrap_or_default()),
        profile = toml_str(t.instance_profile.unwrap_or_default()),
        hub_profile = toml_str(t.hub_instance_profile.unwrap_or_default()),
        region = toml_str(t.region),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn camp() -> CampName {
        CampName::parse("summer").unwrap()
    }

    /// `sh -n` (and `bash -n` where there is bash) of a rendered script.
    fn syntax_ok(text: &str) {
        for shell in ["sh", "bash"] {
            let dir = std::env::temp_dir().join(format!("hubdesk-ud-{}", uuid::Uuid::new_v4()));
            std::fs::write(&dir, text).unwrap();
            let out = Command::new(shell).arg("-n").arg(&dir).output();
            std::fs::remove_file(&dir).ok();
            let out = out.unwrap_or_else(|e| panic!("run {shell}: {e}"));
            assert!(
                out.status.success(),
                "{shell} -n: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn template() -> String {
        hubdesk_toml(&WorkerTemplate {
            camp: &camp(),
            display_name: "Summer \"Data\" Camp",
            region: "us-east-1",
            ami: "ami-12345678",
            instance_type: "t3.large",
            subnet_id: "subnet-1",
            security_group_ids: &["sg-1".into(), "sg-2".into()],
            key_name: Some("laptop"),
            instance_profile: Some("camp-worker"),
            hub_instance_profile: Some("camp-hub"),
            manager_addr: "10.42.1.11:2377",
            uid: 1000,
            gid: 100,
        })
    }

    #[test]
    fn provision_hubdesk_toml_is_a_valid_hubdesk_config() {
        let text = template();
        let path = std::env::temp_dir().join(format!("hubdesk-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, &text).unwrap();
        let cfg = crate::config::Config::load(Some(&path));
        std::fs::remove_file(&path).ok();
        let cfg = cfg.unwrap_or_else(|e| panic!("{e:#}\n{text}"));
        assert!(cfg.cluster.enabled);
        assert_eq!(cfg.cluster.name, "summer");
        assert_eq!(cfg.cluster.manager_addr, "10.42.1.11:2377");
        assert_eq!(cfg.cluster.docker_host, "unix:///run/hubdesk/docker.sock");
        assert_eq!(cfg.cluster.worker.ami, "ami-12345678");
        assert_eq!(cfg.cluster.worker.subnet_id, "subnet-1");
        assert_eq!(cfg.cluster.worker.security_group_ids, ["sg-1", "sg-2"]);
        assert_eq!(cfg.cluster.worker.key_name, "laptop");
        assert_eq!(cfg.cluster.worker.instance_profile, "camp-worker");
        assert_eq!(cfg.aws.hub_instance_profile, "camp-hub");
        assert_eq!(cfg.aws.region, "us-east-1");
        assert_eq!(cfg.camp_name, "Summer \"Data\" Camp");
        assert_eq!(
            cfg.homes.root.as_deref(),
            Some(std::path::Path::new("/srv/homes"))
        );
        assert!(cfg.behind_proxy);
    }

    #[test]
    fn provision_nfs_user_data_quotes_values_parses_and_carries_the_quota_files() {
        let s = nfs_node(&camp(), "vol-0abc", "10.42.0.0/16", 1000, 100).unwrap();
        assert!(s.text.starts_with("#!/bin/sh\n# --- values"));
        assert!(s.text.contains("HOMES_VOLUME='vol-0abc'\n"));
        assert!(s.text.contains("EXPORT_CIDR='10.42.0.0/16'\n"));
        assert!(s.text.contains("root_squash"));
        assert!(
            s.text.contains(",prjquota"),
            "XFS mounted with project quotas"
        );
        syntax_ok(&s.text);
        syntax_ok(QUOTA_SCRIPT);
        let payload = s.payload().unwrap();
        assert!(payload.len() <= USER_DATA_LIMIT, "{} bytes", payload.len());
        // What the node unpacks is what the repository ships: the script's own `unpack`.
        let mut files = vec![("HUBDESK_QUOTA_SH", QUOTA_SCRIPT)];
        files.extend(QUOTA_UNITS);
        for (name, content) in files {
            let line = s
                .text
                .lines()
                .find(|l| l.starts_with(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} in the user-data"));
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "{line}\nprintf '%s' \"${name}\" | base64 -d | gunzip"
                ))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), content, "{name}");
        }
        if payload.starts_with(&[0x1f, 0x8b]) {
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&payload[..]),
                &mut text,
            )
            .unwrap();
            assert_eq!(text, s.text);
        }
        // The units name the script where nfs-node.sh installs it, and the list's path.
        assert!(QUOTA_UNITS[0]
            .1
            .contains("ExecStart=/usr/local/sbin/hubdesk-quota\n"));
        assert!(QUOTA_UNITS[1].1.contains(&format!(
            "PathChanged=/srv/nfs/homes/{}\n",
            crate::homes::quota::QUOTA_LIST
        )));
    }

    #[test]
    fn provision_quota_script_knows_hubdesks_environment_names() {
        // An environment archive (only these names inside) stays in the student's project, so
        // it can be restored into the home (XFS refuses a rename into another project's tree).
        let line = QUOTA_SCRIPT
            .lines()
            .find(|l| l.starts_with("ENV_NAMES="))
            .unwrap();
        for item in crate::homes::ENVIRONMENT {
            let first = item.split('/').next().unwrap();
            assert!(
                line.contains(&format!(" {first} ")),
                "{first} missing: {line}"
            );
        }
    }

    #[test]
    fn provision_hub_user_data_fits_parses_and_carries_its_values() {
        let toml = template();
        let binary = BinarySource::Release {
            url: "https://example.org/hubdesk?x='$(reboot)'".into(),
            sha256: "ab".repeat(32),
        };
        let s = hub_node(&HubValues {
            camp: &camp(),
            nfs_addr: "10.42.1.10",
            binary: &binary,
            domain: None,
            email: None,
            hubdesk_toml: &toml,
            notebook_image: "quay.io/jupyter/scipy-notebook:latest",
            hub_image: "registry.example/hub:6.1.1",
            uid: 1000,
            gid: 100,
        })
        .unwrap();
        syntax_ok(&s.text);
        assert!(s.text.contains("HUB_IMAGE='registry.example/hub:6.1.1'\n"));
        // The deploy kit's files come from the binary, not from user-data.
        assert!(!s.text.contains("JUPYTERHUB_CONFIG=") && !s.text.contains("HUBDESK_SERVICE="));
        assert!(s.text.contains("hubdesk hub-files"));
        // The hostile URL stays one quoted word.
        assert!(s
            .text
            .contains(r#"HUBDESK_URL='https://example.org/hubdesk?x='\''$(reboot)'\'''"#));
        let payload = s.payload().unwrap();
        assert!(payload.len() <= USER_DATA_LIMIT, "{} bytes", payload.len());
        // What the node unpacks is what we embedded: run the script's own `unpack`.
        let line = s
            .text
            .lines()
            .find(|l| l.starts_with("HUBDESK_TOML="))
            .unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{line}\nprintf '%s' \"$HUBDESK_TOML\" | base64 -d | gunzip"
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), toml);
        // Whichever shape goes out, cloud-init gets the same script back.
        if payload.starts_with(&[0x1f, 0x8b]) {
            let mut text = String::new();
            std::io::Read::read_to_string(
                &mut flate2::read::GzDecoder::new(&payload[..]),
                &mut text,
            )
            .unwrap();
            assert_eq!(text, s.text);
        }
    }

    #[test]
    fn provision_shell_quote_round_trips_through_sh() {
        for value in ["plain", "it's", "$(id) `id` \\ \" ;", "a\nb"] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("v={}; printf '%s' \"$v\"", shell_quote(value)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), value);
        }
    }

    #[test]
    fn provision_oversized_user_data_is_an_error_not_a_truncation() {
        // Random bytes do not compress: more than 16 KB of them cannot fit.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: String = (0..40_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'0' + (x % 75) as u8)
            })
            .collect();
        let s = Script::render("#!/bin/sh\n", "test", &[("X", noise)]).unwrap();
        assert!(s.payload().is_err());
    }
}
