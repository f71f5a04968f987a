//! The typed values of a camp on AWS: its name, addresses, roles, firewall rules, what is there
//! (`World`, from one describe pass) and what should be there (`CampSpec`).
use std::{collections::BTreeSet, fmt, net::Ipv4Addr, str::FromStr};

use super::ProvisionError;
use crate::ec2::InstanceProfile;

/// The camp's tags; `TAG_CLUSTER` is the cluster desk's tag on the workers it launches, which
/// `down` removes too.
pub use crate::ec2::{TAG_CAMP, TAG_CLUSTER, TAG_ROLE};

/// The network every camp gets (its own VPC: see `super` for why not the default VPC).
pub const VPC_CIDR: &str = "10.42.0.0/16";
pub const SUBNET_CIDR: &str = "10.42.1.0/24";
/// Fixed private addresses, so a replaced NFS node keeps the address the hub node mounts and
/// the workers' manager address never changes.
pub const NFS_IP: &str = "10.42.1.10";
pub const HUB_IP: &str = "10.42.1.11";
/// Where the homes volume is attached (Xen name; on Nitro it shows up as an NVMe disk whose
/// serial is the volume id, which is what `deploy/nfs-node.sh` looks for first).
pub const HOMES_DEVICE: &str = "/dev/sdf";

/// A camp's name: the `hubdesk:camp` tag, the prefix of every `Name`, the cluster desk's
/// `cluster.name`. 1-32 of `[a-z0-9-]`, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CampName(String);

impl CampName {
    pub fn parse(s: &str) -> Result<Self, ProvisionError> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && !s.ends_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(ProvisionError::BadInput(format!(
                "camp name {s:?}: use 1-32 lowercase letters, digits and '-', starting with a letter"
            )))
        }
    }

    /// `"Data Science Camp 2026"` → `data-science-camp-2026`: the default from `camp_name`.
    pub fn slug(display: &str) -> Result<Self, ProvisionError> {
        let mut out = String::new();
        for c in deunicode::deunicode(display).chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        let trimmed: String = out.trim_matches('-').chars().take(32).collect();
        let trimmed = trimmed.trim_end_matches('-');
        let named = if trimmed.starts_with(|c: char| c.is_ascii_lowercase()) {
            trimmed.to_string()
        } else {
            format!("camp-{trimmed}").trim_end_matches('-').to_string()
        };
        Self::parse(&named.chars().take(32).collect::<String>())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CampName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IPv4 network in CIDR notation, host bits zero (`203.0.113.7/32`, `0.0.0.0/0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    pub const WORLD: Cidr = Cidr {
        addr: Ipv4Addr::UNSPECIFIED,
        prefix: 0,
    };

    pub fn host(addr: Ipv4Addr) -> Self {
        Self { addr, prefix: 32 }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Cidr {
    type Err = ProvisionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| {
            ProvisionError::BadInput(format!(
                "{s:?} is not an IPv4 CIDR like 203.0.113.7/32: {why}"
            ))
        };
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(|| bad("no /prefix"))?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad("the prefix must be 0-32"))?;
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        if u32::from(addr) & !mask != 0 {
            return Err(bad(&format!(
                "host bits are set (did you mean {}/{prefix}?)",
                Ipv4Addr::from(u32::from(addr) & mask)
            )));
        }
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(&self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// Where traffic may come from: an address range, or the members of a security group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Cidr(Cidr),
    /// A group id (`sg-…`).
    Group(String),
    /// The group the rule belongs to, before it has an id (a group about to be created).
    Itself,
}

/// One inbound rule: a protocol, a port (hubdesk only ever opens single ports) and a source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    pub proto: Proto,
    pub port: u16,
    pub source: Source,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let from = match &self.source {
            Source::Cidr(c) => c.to_string(),
            Source::Group(g) => format!("group {g}"),
            Source::Itself => "this group".to_string(),
        };
        write!(f, "{}/{} from {from}", self.port, self.proto.as_str())
    }
}

/// The camp's security groups. Every node has `ssh` and `internal`; only the hub node has `web`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupRole {
    /// 22/tcp from the organizer's address only.
    Ssh,
    /// 80, 443 and 8443/tcp from anywhere (the redirect and certificates, the hub, hubdesk).
    Web,
    /// The swarm (2377/tcp, 7946/tcp+udp, 4789/udp) and NFS (2049/tcp), from members only.
    Internal,
}

impl GroupRole {
    pub const ALL: [GroupRole; 3] = [GroupRole::Ssh, GroupRole::Web, GroupRole::Internal];

    pub fn tag(&self) -> &'static str {
        match self {
            GroupRole::Ssh => "ssh",
            GroupRole::Web => "web",
            GroupRole::Internal => "internal",
        }
    }

    pub fn from_tag(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.tag() == s)
    }

    pub fn description(&self) -> &'static str {
        match self {
            GroupRole::Ssh => "hubdesk camp: SSH from the organizer only",
            GroupRole::Web => {
                "hubdesk camp: hub 443, hubdesk 8443, 80 for redirects and certificates"
            }
            GroupRole::Internal => "hubdesk camp: swarm and NFS between camp nodes only",
        }
    }

    /// The rules the group must have, exactly. `own_id` is the group's id (self-references);
    /// `None` while the group does not exist yet.
    pub fn rules(&self, ssh_from: Cidr, own_id: Option<&str>) -> BTreeSet<Rule> {
        let open = |proto, port, source: Source| Rule {
            proto,
            port,
            source,
        };
        match self {
            GroupRole::Ssh => [open(Proto::Tcp, 22, Source::Cidr(ssh_from))].into(),
            GroupRole::Web => [80, 443, 8443]
                .into_iter()
                .map(|p| open(Proto::Tcp, p, Source::Cidr(Cidr::WORLD)))
                .collect(),
            GroupRole::Internal => {
                let me = own_id.map_or(Source::Itself, |id| Source::Group(id.to_string()));
                [
                    (Proto::Tcp, 2377),
                    (Proto::Tcp, 7946),
                    (Proto::Udp, 7946),
                    (Proto::Udp, 4789),
                    (Proto::Tcp, 2049),
                ]
                .into_iter()
                .map(|(proto, port)| open(proto, port, me.clone()))
                .collect()
            }
        }
    }
}

/// The two nodes `up` launches (workers are the cluster desk's, launched later from the hub).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRole {
    Nfs,
    Hub,
}

impl NodeRole {
    pub fn tag(&self) -> &'static str {
        match self {
            NodeRole::Nfs => "nfs",
            NodeRole::Hub => "hub",
        }
    }

    pub fn groups(&self) -> &'static [GroupRole] {
        match self {
            NodeRole::Nfs => &[GroupRole::Ssh, GroupRole::Internal],
            NodeRole::Hub => &[GroupRole::Ssh, GroupRole::Web, GroupRole::Internal],
        }
    }

    pub fn private_ip(&self) -> &'static str {
        match self {
            NodeRole::Nfs => NFS_IP,
            NodeRole::Hub => HUB_IP,
        }
    }
}

// --- what is there: one describe pass, only resources carrying this camp's tag ---------------

#[derive(Debug, Clone, Default, PartialEq)]
pub struct World {
    pub vpcs: Vec<Vpc>,
    pub subnets: Vec<Subnet>,
    pub gateways: Vec<Gateway>,
    pub route_tables: Vec<RouteTable>,
    pub groups: Vec<Group>,
    pub volumes: Vec<Volume>,
    /// Not terminated: the camp's nodes and the cluster desk's workers of this camp.
    pub instances: Vec<Node>,
    /// Availability zones of the region that are `available`, sorted.
    pub zones: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vpc {
    pub id: String,
    pub cidr: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub az: String,
    pub cidr: String,
    pub public_ips: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    pub id: String,
    pub attached_to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteTable {
    pub id: String,
    pub vpc_id: String,
    /// (association id, subnet id)
    pub associations: Vec<(String, String)>,
    /// The gateway of the `0.0.0.0/0` route, if any.
    pub default_via: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: String,
    pub vpc_id: String,
    pub role: Option<GroupRole>,
    pub rules: BTreeSet<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    pub id: String,
    pub az: String,
    pub size_gb: i32,
    /// `creating` | `available` | `in-use` | …
    pub state: String,
    pub attached_to: Option<String>,
    pub delete_on_termination: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    /// `nfs`, `hub`, or `worker` (the cluster desk's).
    pub role: String,
    pub state: String,
    pub private_ip: String,
    pub public_ip: String,
    pub subnet_id: String,
    pub tags: std::collections::BTreeMap<String, String>,
}

impl Node {
    pub fn is_live(&self) -> bool {
        !matches!(self.state.as_str(), "terminated" | "shutting-down")
    }
}

/// The AMI the nodes boot, as `DescribeImages` tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ami {
    pub id: String,
    pub name: String,
    pub root_device: String,
}

impl Ami {
    /// The login user of the usual images (for the printed ssh command).
    pub fn login_user(&self) -> &'static str {
        if self.name.to_ascii_lowercase().contains("ubuntu") {
            "ubuntu"
        } else {
            "ec2-user"
        }
    }
}

// --- what should be there --------------------------------------------------------------------

/// Where the hub node gets the hubdesk binary.
#[derive(Debug, Clone, PartialEq)]
pub enum BinarySource {
    /// A release binary (linux x86_64), checked against its SHA-256 before it is installed.
    Release { url: String, sha256: String },
    /// Built on the node with cargo from a git repository (10-20 minutes on a t3.large).
    Git { url: String, rev: String },
}

/// Everything `up` needs to know, parsed.
#[derive(Debug, Clone)]
pub struct CampSpec {
    pub camp: CampName,
    pub region: String,
    pub ssh_from: Cidr,
    /// `None`: the first available zone (or the zone of a kept homes volume).
    pub az: Option<String>,
    pub ami: Ami,
    pub hub_type: String,
    pub nfs_type: String,
    pub worker_type: String,
    pub key_name: Option<String>,
    /// The hub node's instance profile: the cluster desk's AWS credentials.
    pub instance_profile: Option<InstanceProfile>,
    /// The workers' own (written to the hub node's `[cluster.worker]`); `None`: workers get no
    /// role at all. Never the hub's ([`instance_profiles`]).
    pub worker_instance_profile: Option<InstanceProfile>,
    pub homes_gb: i32,
    pub root_gb: i32,
    pub binary: Option<BinarySource>,
    /// A DNS name pointing at the hub node: Let's Encrypt instead of a self-signed certificate.
    pub domain: Option<String>,
    pub email: Option<String>,
    /// The notebook image the hub's SwarmSpawner starts on the workers.
    pub notebook_image: String,
    /// The hub node's JupyterHub image (`HUB_IMAGE` of deploy/hub-node.sh): used when the node
    /// has it, pulled when it names a registry, else built on the node.
    pub hub_image: String,
}

/// `--instance-profile` (the hub node's) and `--worker-instance-profile`, parsed; refused when
/// the workers would get the hub's profile: a worker runs students' code, and a notebook that
/// reached the metadata service would hold the credentials that launch and terminate
/// instances.
pub fn instance_profiles(
    hub: Option<&str>,
    worker: Option<&str>,
) -> Result<(Option<InstanceProfile>, Option<InstanceProfile>), ProvisionError> {
    let parse = |flag: &str, value: Option<&str>| {
        InstanceProfile::parse(value.unwrap_or_default())
            .map_err(|e| ProvisionError::BadInput(format!("{flag}: {e}")))
    };
    let hub = parse("--instance-profile", hub)?;
    let worker = parse("--worker-instance-profile", worker)?;
    if let (Some(h), Some(w)) = (&hub, &worker) {
        if h.same_as(w) {
            return Err(ProvisionError::BadInput(format!(
                "--worker-instance-profile {w} is the hub node's profile: notebooks on the \
                 workers could use its credentials. Give workers a profile of their own with \
                 only what they need, or none"
            )));
        }
    }
    Ok((hub, worker))
}

/// Checks an instance type's shape (`t3.large`), so typos fail before any call.
pub fn instance_type(s: &str) -> Result<String, ProvisionError> {
    let ok = s.split_once('.').is_some_and(|(family, size)| {
        !family.is_empty()
            && !size.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    });
    if ok {
        Ok(s.to_string())
    } else {
        Err(ProvisionError::BadInput(format!(
            "{s:?} is not an instance type like t3.large"
        )))
    }
}

/// A Docker image reference (`registry/name:tag` or `name@sha256:…`): one word of the
/// characters image references use, so a typo fails before any call.
pub fn image_ref(flag: &str, s: &str) -> Result<String, ProvisionError> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"./:-_@".contains(&b))
        && !s.starts_with(['.', '-', ':', '@', '/']);
    if ok {
        Ok(s.to_string())
    } else {
        Err(ProvisionError::BadInput(format!(
            "{flag} {s:?} is not an image reference like registry.example/notebook:2026"
        )))
    }
}

/// A DNS name for Let's Encrypt (`hub.example.org`).
pub fn domain(s: &str) -> Result<String, ProvisionError> {
    let ok = s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(ProvisionError::BadInput(format!("{s:?} is not a DNS name")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provision_cidr_parses_and_refuses_clearly() {
        assert_eq!(
            "203.0.113.7/32".parse::<Cidr>().unwrap().to_string(),
            "203.0.113.7/32"
        );
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap(), Cidr::WORLD);
        for bad in [
            "203.0.113.7",
            "203.0.113.7/33",
            "300.1.1.1/32",
            "10.0.0.1/8",
            "x/1",
            "",
        ] {
            let err = bad.parse::<Cidr>().unwrap_err().to_string();
            assert!(err.contains("not an IPv4 CIDR"), "{bad}: {err}");
        }
        assert!("10.0.0.1/8"
            .parse::<Cidr>()
            .unwrap_err()
            .to_string()
            .contains("did you mean 10.0.0.0/8"));
    }

    #[test]
    fn provision_camp_names() {
        assert_eq!(
            CampName::slug("Data Science Camp").unwrap().as_str(),
            "data-science-camp"
        );
        assert_eq!(
            CampName::slug("2026 Été!").unwrap().as_str(),
            "camp-2026-ete"
        );
        assert!(CampName::parse("Camp").is_err());
        assert!(CampName::parse("camp;rm").is_err());
        assert!(CampName::parse("-camp").is_err());
        assert!(CampName::parse(&"a".repeat(33)).is_err());
        assert!(CampName::parse("summer-2026").is_ok());
    }

    #[test]
    fn provision_rules_are_the_camp_table() {
        let ssh: Cidr = "198.51.100.4/32".parse().unwrap();
        let web = GroupRole::Web.rules(ssh, Some("sg-w"));
        assert_eq!(web.len(), 3);
        assert!(web
            .iter()
            .all(|r| r.source == Source::Cidr(Cidr::WORLD) && r.proto == Proto::Tcp));
        let internal = GroupRole::Internal.rules(ssh, Some("sg-i"));
        assert_eq!(internal.len(), 5);
        assert!(internal
            .iter()
            .all(|r| r.source == Source::Group("sg-i".into())));
        assert_eq!(
            GroupRole::Ssh
                .rules(ssh, None)
                .into_iter()
                .next()
                .unwrap()
                .to_string(),
            "22/tcp from 198.51.100.4/32"
        );
    }

    #[test]
    fn provision_instance_types_and_domains() {
        assert!(instance_type("t3.large").is_ok());
        assert!(instance_type("t3large").is_err());
        assert!(instance_type("t3.large; reboot").is_err());
        assert_eq!(domain("Hub.Example.org").unwrap(), "hub.example.org");
        let f = "--notebook-image";
        assert!(image_ref(f, "quay.io/jupyter/scipy-notebook:2026-01-01").is_ok());
        assert!(image_ref(f, "Ubuntu").is_err());
        assert!(image_ref(f, "a b").is_err());
        assert!(image_ref(f, "-x").is_err());
        let err = image_ref("--hub-image", "hub\nrm -rf /")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--hub-image"), "{err}");
        assert!(domain("localhost").is_err());
        assert!(domain("a..b").is_err());
    }
}
