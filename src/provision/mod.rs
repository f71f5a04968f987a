//! `hubdesk aws plan | up | down`: a camp on AWS from the organizer's laptop.
//!
//! One look at the account (`Cloud::look`, only what carries the camp's `hubdesk:camp` tag) gives
//! a typed plan (`plan::up`, `plan::down`): every resource kept or created, in order. `plan`
//! prints it and changes nothing; `up` prints it, then carries it out (`apply`), so a second
//! `up` finds nothing to do; `down` removes what carries the tags, dependents first, and keeps
//! the homes volume unless `--delete-homes`.
//!
//! The camp gets a VPC of its own (10.42.0.0/16) rather than the default VPC: the default VPC
//! is missing in many accounts (deleted, or never there in organisations), its 172.31/16 is
//! shared with whatever else runs there, and with a VPC of its own `down` leaves the account as
//! it was. The nodes have fixed private addresses (NFS .10, hub .11) so a replaced node keeps
//! the address the others know. Security groups: `ssh` (22 from `--ssh-cidr` only), `web` (80,
//! 443, 8443 from anywhere; hub node only) and `internal` (swarm 2377/tcp, 7946/tcp+udp,
//! 4789/udp and NFS 2049/tcp, from members of the group only), on every node including the
//! cluster desk's workers.
pub mod apply;
pub mod bootstrap;
pub mod cloud;
mod error;
pub mod hub_files;
pub mod model;
pub mod plan;

pub use error::ProvisionError;

use model::{CampSpec, Cidr};

/// The caller's public address as a /32, from `checkip.amazonaws.com` (AWS's own echo service).
/// Only for a real laptop: the CLI never calls it when `--ssh-cidr` is given or when
/// `AWS_ENDPOINT_URL` points somewhere other than AWS (a test's moto server).
pub async fn detect_public_cidr() -> Result<Cidr, ProvisionError> {
    let failed = |e: String| {
        ProvisionError::BadInput(format!(
            "could not find your public address ({e}): pass --ssh-cidr YOUR.IP/32"
        ))
    };
    let text = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| failed(e.to_string()))?
        .get("https://checkip.amazonaws.com/")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| failed(e.to_string()))?
        .text()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let addr: std::net::Ipv4Addr = text
        .trim()
        .parse()
        .map_err(|_| failed(format!("checkip answered {:?}", text.trim())))?;
    Ok(Cidr::host(addr))
}

/// What the organizer reads at the end of `up`.
pub fn summary(camp: &apply::Camp, spec: &CampSpec) -> String {
    let host = spec
        .domain
        .clone()
        .unwrap_or_else(|| camp.hub.public_ip.clone());
    let user = spec.ami.login_user();
    let key = spec
        .key_name
        .as_deref()
        .map(|k| format!("-i ~/.ssh/{k}.pem "))
        .unwrap_or_default();
    let tls = if spec.domain.is_some() {
        "a Let's Encrypt certificate"
    } else {
        "a self-signed certificate: your browser asks you to accept it once"
    };
    format!(
        "\ncamp {camp} is up in {region} (subnet {subnet})\n\
         \n  hub:      https://{host}/\
         \n  hubdesk:  https://{host}:8443/\
         \n  nodes:    hub {hub} ({hub_ip}), NFS {nfs} ({nfs_ip}), homes volume {vol}\n\
         \nThe nodes install themselves now (10-20 minutes); both sites use {tls}.\
         \nThe one-time setup link (create the first admin) then appears in the hub node's console:\
         \n  aws ec2 get-console-output --region {region} --instance-id {hub} --latest --output text | grep 'setup link'\
         \nor over SSH (from {ssh} only):\
         \n  ssh {key}{user}@{ip} sudo journalctl -u hubdesk | grep 'First run'\n",
        camp = spec.camp,
        region = spec.region,
        subnet = camp.subnet,
        hub = camp.hub.id,
        hub_ip = camp.hub.private_ip,
        nfs = camp.nfs.id,
        nfs_ip = camp.nfs.private_ip,
        vol = camp.volume,
        ssh = spec.ssh_from,
        ip = camp.hub.public_ip,
    )
}
