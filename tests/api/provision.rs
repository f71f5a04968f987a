//! `hubdesk aws plan | up | down` against a real moto server (EC2 on loopback): every resource
//! and rule checked, idempotence, the homes volume kept, other camps and untagged resources never
//! touched, and the binary's own command line (flags, exit codes, output).
use std::{
    collections::BTreeMap,
    io::Read,
    process::{Command, Output},
};

use aws_sdk_ec2::types::{Filter, InstanceAttributeName, Tag};
use base64::Engine;
use hubdesk::provision::{
    apply::{self, Patience},
    cloud::{Cloud, Ec2Cloud},
    model::{BinarySource, CampName, CampSpec, World, HUB_IP, NFS_IP, SUBNET_CIDR, VPC_CIDR},
    plan::{self, Action},
};

use super::cluster_peers::{Moto, REGION};

pub(crate) const SSH: &str = "198.51.100.7/32";

async fn moto() -> Option<Moto> {
    Moto::start(&[("MOTO_ENABLE_AMI_VALIDATION", "true")]).await
}

fn fast() -> Patience {
    Patience {
        every: std::time::Duration::from_millis(100),
        at_most: std::time::Duration::from_secs(30),
    }
}

async fn spec(cloud: &Ec2Cloud, moto: &Moto, camp: &str, ssh: &str) -> CampSpec {
    let ami = moto.some_ami().await;
    CampSpec {
        camp: CampName::parse(camp).unwrap(),
        region: REGION.into(),
        ssh_from: ssh.parse().unwrap(),
        az: None,
        ami: cloud.image(Some(&ami)).await.unwrap(),
        hub_type: "t3.large".into(),
        nfs_type: "t3.small".into(),
        worker_type: "t3.xlarge".into(),
        key_name: None,
        instance_profile: None,
        worker_instance_profile: None,
        homes_gb: 50,
        root_gb: 20,
        binary: Some(BinarySource::Release {
            url: "https://releases.example.invalid/hubdesk".into(),
            sha256: "0".repeat(64),
        }),
        domain: None,
        email: None,
        notebook_image: "quay.io/jupyter/scipy-notebook:latest".into(),
        hub_image: "hubdesk/jupyterhub:6.1.1".into(),
    }
}

pub(crate) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn assert_tagged(tags: &[Tag], camp: &str, role: &str) {
    let t = tag_map(tags);
    assert_eq!(
        t.get("hubdesk:camp").map(String::as_str),
        Some(camp),
        "{t:?}"
    );
    assert_eq!(
        t.get("hubdesk:role").map(String::as_str),
        Some(role),
        "{t:?}"
    );
    assert_eq!(t.get("Name"), Some(&format!("{camp}-{role}")), "{t:?}");
}

pub(crate) fn by_tag(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

/// (protocol, port, source) of every inbound rule of a group: the source is a CIDR or `self`.
async fn rules(c: &aws_sdk_ec2::Client, group: &str) -> Vec<(String, i32, String)> {
    let out = c
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap();
    let g = &out.security_groups()[0];
    let mut rules = Vec::new();
    for p in g.ip_permissions() {
        assert_eq!(p.from_port(), p.to_port(), "single ports only: {p:?}");
        let proto = p.ip_protocol().unwrap().to_string();
        let port = p.from_port().unwrap();
        for r in p.ip_ranges() {
            rules.push((proto.clone(), port, r.cidr_ip().unwrap().to_string()));
        }
        for pair in p.user_id_group_pairs() {
            let src = if pair.group_id() == Some(group) {
                "self".to_string()
            } else {
                pair.group_id().unwrap().to_string()
            };
            rules.push((proto.clone(), port, src));
        }
        assert!(p.ipv6_ranges().is_empty(), "no IPv6 rules: {p:?}");
    }
    rules.sort();
    rules
}

pub(crate) fn user_data_text(encoded: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert!(
            bytes.len() <= 16 * 1024,
            "gzip user-data of {} bytes",
            bytes.len()
        );
        text
    } else {
        assert!(
            bytes.len() <= 16 * 1024,
            "user-data of {} bytes",
            bytes.len()
        );
        String::from_utf8(bytes).unwrap()
    }
}

/// The value of `NAME='…'` in a rendered script (our values never hold a quote).
pub(crate) fn value<'a>(script: &'a str, name: &str) -> &'a str {
    let line = script
        .lines()
        .find(|l| l.starts_with(&format!("{name}='")))
        .unwrap_or_else(|| panic!("{name} not in the script"));
    line[name.len() + 2..line.len() - 1].as_ref()
}

pub(crate) fn unpack(b64: &str) -> String {
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// What is in the account, resource by resource (ids and the attributes `up` sets), so a run
/// that changes nothing can be told from one that does.
async fn snapshot(c: &aws_sdk_ec2::Client) -> String {
    let mut lines = Vec::new();
    for v in c.describe_vpcs().send().await.unwrap().vpcs() {
        lines.push(format!(
            "vpc {:?} {:?} {:?}",
            v.vpc_id(),
            v.cidr_block(),
            tag_map(v.tags())
        ));
    }
    for s in c.describe_subnets().send().await.unwrap().subnets() {
        lines.push(format!(
            "subnet {:?} {:?} {:?} {:?}",
            s.subnet_id(),
            s.vpc_id(),
            s.map_public_ip_on_launch(),
            tag_map(s.tags())
        ));
    }
    for g in c
        .describe_internet_gateways()
        .send()
        .await
        .unwrap()
        .internet_gateways()
    {
        lines.push(format!(
            "igw {:?} {:?}",
            g.internet_gateway_id(),
            g.attachments()
        ));
    }
    for t in c
        .describe_route_tables()
        .send()
        .await
        .unwrap()
        .route_tables()
    {
        lines.push(format!(
            "rt {:?} {:?} {:?}",
            t.route_table_id(),
            t.routes().len(),
            t.associations().len()
        ));
    }
    for g in c
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()
    {
        lines.push(format!(
            "sg {:?} {:?}",
            g.group_id(),
            rules(c, g.group_id().unwrap()).await
        ));
    }
    for v in c.describe_volumes().send().await.unwrap().volumes() {
        lines.push(format!(
            "vol {:?} {:?} {:?}",
            v.volume_id(),
            v.state(),
            v.attachments().len()
        ));
    }
    let live = Filter::builder()
        .name("instance-state-name")
        .values("pending")
        .values("running")
        .values("stopping")
        .values("stopped")
        .build();
    for r in c
        .describe_instances()
        .filters(live)
        .send()
        .await
        .unwrap()
        .reservations()
    {
        for i in r.instances() {
            lines.push(format!(
                "i {:?} {:?}",
                i.instance_id(),
                i.state().and_then(|s| s.name())
            ));
        }
    }
    lines.sort();
    lines.join("\n")
}

/// Resources a neighbour owns: an untagged VPC with a group and an instance, and a VPC of
/// another camp. `down` must leave all of it.
async fn neighbours(c: &aws_sdk_ec2::Client, ami: &str) -> Vec<String> {
    let vpc = c
        .create_vpc()
        .cidr_block("10.99.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = c
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("10.99.1.0/24")
        .send()
        .await
        .unwrap();
    let subnet = subnet.subnet().unwrap().subnet_id().unwrap().to_string();
    let sg = c
        .create_security_group()
        .vpc_id(&vpc)
        .group_name("theirs")
        .description("not hubdesk's")
        .send()
        .await
        .unwrap();
    let sg = sg.group_id().unwrap().to_string();
    let inst = c
        .run_instances()
        .image_id(ami)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .send()
        .await
        .unwrap();
    let inst = inst.instances()[0].instance_id().unwrap().to_string();
    let other = c
        .create_vpc()
        .cidr_block("10.98.0.0/16")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Vpc)
                .tags(
                    Tag::builder()
                        .key("hubdesk:camp")
                        .value("othercamp")
                        .build(),
                )
                .tags(Tag::builder().key("hubdesk:role").value("vpc").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let other = other.vpc().unwrap().vpc_id().unwrap().to_string();
    let vol = c
        .create_volume()
        .availability_zone(format!("{REGION}a"))
        .size(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                .tags(
                    Tag::builder()
                        .key("hubdesk:camp")
                        .value("othercamp")
                        .build(),
                )
                .tags(Tag::builder().key("hubdesk:role").value("homes").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    vec![
        vpc,
        subnet,
        sg,
        inst,
        other,
        vol.volume_id().unwrap().to_string(),
    ]
}

async fn still_there(c: &aws_sdk_ec2::Client, ids: &[String]) {
    let [vpc, subnet, sg, inst, other, vol] = ids else {
        panic!()
    };
    assert_eq!(
        c.describe_vpcs()
            .vpc_ids(vpc)
            .vpc_ids(other)
            .send()
            .await
            .unwrap()
            .vpcs()
            .len(),
        2
    );
    assert_eq!(
        c.describe_subnets()
            .subnet_ids(subnet)
            .send()
            .await
            .unwrap()
            .subnets()
            .len(),
        1
    );
    assert_eq!(
        c.describe_security_groups()
            .group_ids(sg)
            .send()
            .await
            .unwrap()
            .security_groups()
            .len(),
        1
    );
    let i = c
        .describe_instances()
        .instance_ids(inst)
        .send()
        .await
        .unwrap();
    assert_eq!(
        i.reservations()[0].instances()[0]
            .state()
            .unwrap()
            .name()
            .unwrap()
            .as_str(),
        "running"
    );
    assert_eq!(
        c.describe_volumes()
            .volume_ids(vol)
            .send()
            .await
            .unwrap()
            .volumes()
            .len(),
        1
    );
}

#[tokio::test]
async fn provision_up_makes_the_whole_camp_once_and_down_keeps_the_homes() {
    let Some(moto) = moto().await else { return };
    let c = moto.client();
    let ami = moto.some_ami().await;
    let theirs = neighbours(&c, &ami).await;

    // plan: only reads, and it lists everything.
    let cloud = Ec2Cloud::from_sdk(&moto.sdk("testing", "testing"));
    let spec = spec(&cloud, &moto, "summer", SSH).await;
    let world = cloud.look(&spec.camp).await.unwrap();
    assert_eq!(
        world,
        World {
            zones: world.zones.clone(),
            ..World::default()
        },
        "nothing of ours yet"
    );
    let plan = plan::up(&world, &spec).unwrap();
    assert!(
        cloud.log().mutating().is_empty(),
        "plan called {:?}",
        cloud.log().mutating()
    );
    assert!(
        cloud.log().ops().iter().any(|o| o == "DescribeVpcs"),
        "{:?}",
        cloud.log().ops()
    );
    let actions: Vec<&Action> = plan.actions().collect();
    assert_eq!(actions.len(), 1 + 2 + 2 + 3 + 3 + 9 + 1 + 3, "{plan}");

    // up
    let mut out = Vec::new();
    let camp = apply::up(&cloud, &spec, "Summer Camp", &plan, &mut out, fast())
        .await
        .unwrap();
    let printed = String::from_utf8(out).unwrap();
    assert!(printed.contains("created VPC vpc-"), "{printed}");

    // VPC, subnet, gateway, routes.
    let vpcs = c
        .describe_vpcs()
        .filters(by_tag("hubdesk:camp", "summer"))
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    let vpc = &vpcs.vpcs()[0];
    assert_eq!(vpc.cidr_block(), Some(VPC_CIDR));
    assert_tagged(vpc.tags(), "summer", "vpc");
    let vpc_id = vpc.vpc_id().unwrap();
    let subnets = c
        .describe_subnets()
        .filters(by_tag("hubdesk:camp", "summer"))
        .send()
        .await
        .unwrap();
    let subnet = &subnets.subnets()[0];
    assert_eq!(subnets.subnets().len(), 1);
    assert_eq!(subnet.cidr_block(), Some(SUBNET_CIDR));
    assert_eq!(subnet.vpc_id(), Some(vpc_id));
    assert_eq!(subnet.map_public_ip_on_launch(), Some(true));
    assert_eq!(
        subnet.availability_zone(),
        Some(format!("{REGION}a").as_str())
    );
    assert_tagged(subnet.tags(), "summer", "subnet");
    let igws = c
        .describe_internet_gateways()
        .filters(by_tag("hubdesk:camp", "summer"))
        .send()
        .await
        .unwrap();
    let igw = &igws.internet_gateways()[0];
    assert_eq!(igws.internet_gateways().len(), 1);
    assert_tagged(igw.tags(), "summer", "gateway");
    assert_eq!(igw.attachments()[0].vpc_id(), Some(vpc_id));
    let tables = c
        .describe_route_tables()
        .filters(by_tag("hubdesk:camp", "summer"))
        .send()
        .await
        .unwrap();
    let table = &tables.route_tables()[0];
    assert_eq!(tables.route_tables().len(), 1);
    assert_tagged(table.tags(), "summer", "routes");
    let default = table
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .expect("a default route");
    assert_eq!(default.gateway_id(), igw.internet_gateway_id());
    assert!(table
        .associations()
        .iter()
        .any(|a| a.subnet_id() == subnet.subnet_id()));

    // Security groups, rule by rule.
    let groups = c
        .describe_security_groups()
        .filters(by_tag("hubdesk:camp", "summer"))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.security_groups().len(), 3);
    let mut ids = BTreeMap::new();
    for g in groups.security_groups() {
        assert_eq!(g.vpc_id(), Some(vpc_id));
        let role = tag_map(g.tags())["hubdesk:role"].clone();
        assert_tagged(g.tags(), "summer", &role);
        ids.insert(role, g.group_id().unwrap().to_string());
    }
    let s = |v: &[(&str, i32, &str)]| -> Vec<(String, i32, String)> {
        let mut v: Vec<_> = v
            .iter()
            .map(|(p, n, c)| (p.to_string(), *n, c.to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(rules(&c, &ids["ssh"]).await, s(&[("tcp", 22, SSH)]));
    assert_eq!(
        rules(&c, &ids["web"]).await,
        s(&[
            ("tcp", 80, "0.0.0.0/0"),
            ("tcp", 443, "0.0.0.0/0"),
            ("tcp", 8443, "0.0.0.0/0")
        ])
    );
    assert_eq!(
        rules(&c, &ids["internal"]).await,
        s(&[
            ("tcp", 2049, "self"),
            ("tcp", 2377, "self"),
            ("tcp", 7946, "self"),
            ("udp", 4789, "self"),
            ("udp", 7946, "self"),
        ])
    );

    // The nodes.
    let nodes = c
        .describe_instances()
        .filters(by_tag("hubdesk:camp", "summer"))
        .send()
        .await
        .unwrap();
    let nodes: Vec<_> = nodes
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .collect();
    assert_eq!(nodes.len(), 2);
    let node = |role: &str| {
        *nodes
            .iter()
            .find(|i| tag_map(i.tags())["hubdesk:role"] == role)
            .unwrap_or_else(|| panic!("no {role} node"))
    };
    let (nfs, hub) = (node("nfs"), node("hub"));
    assert_tagged(nfs.tags(), "summer", "nfs");
    assert_tagged(hub.tags(), "summer", "hub");
    assert_eq!(nfs.private_ip_address(), Some(NFS_IP));
    assert_eq!(hub.private_ip_address(), Some(HUB_IP));
    assert_eq!(nfs.subnet_id(), subnet.subnet_id());
    assert_eq!(nfs.instance_type().unwrap().as_str(), "t3.small");
    assert_eq!(hub.instance_type().unwrap().as_str(), "t3.large");
    let group_ids = |i: &aws_sdk_ec2::types::Instance| {
        let mut g: Vec<String> = i
            .security_groups()
            .iter()
            .map(|g| g.group_id().unwrap().to_string())
            .collect();
        g.sort();
        g
    };
    let mut want = vec![ids["ssh"].clone(), ids["internal"].clone()];
    want.sort();
    assert_eq!(group_ids(nfs), want, "the NFS node is not on the web");
    want.push(ids["web"].clone());
    want.sort();
    assert_eq!(group_ids(hub), want);
    assert_eq!(camp.hub.id, hub.instance_id().unwrap());
    assert!(
        !camp.hub.public_ip.is_empty(),
        "the hub has a public address"
    );

    // The homes volume: separate, tagged, attached to the NFS node, kept at termination.
    let vols = c
        .describe_volumes()
        .filters(by_tag("hubdesk:camp", "summer"))
        .filters(by_tag("hubdesk:role", "homes"))
        .send()
        .await
        .unwrap();
    assert_eq!(vols.volumes().len(), 1);
    let homes = &vols.volumes()[0];
    assert_tagged(homes.tags(), "summer", "homes");
    assert_eq!(homes.size(), Some(50));
    assert_eq!(homes.availability_zone(), subnet.availability_zone());
    let att = &homes.attachments()[0];
    assert_eq!(att.instance_id(), nfs.instance_id());
    // moto leaves the attachment's flag out (real EC2 says false); the instance's own mapping
    // must say it, after `up` set it explicitly. That the volume outlives its instance is
    // checked below, by `down`.
    assert_ne!(att.delete_on_termination(), Some(true));
    let described = c
        .describe_instances()
        .instance_ids(nfs.instance_id().unwrap())
        .send()
        .await
        .unwrap();
    let mapping = described.reservations()[0].instances()[0]
        .block_device_mappings()
        .iter()
        .find(|m| m.ebs().and_then(|e| e.volume_id()) == homes.volume_id())
        .expect("the homes volume in the NFS node's block device mappings")
        .clone();
    assert_eq!(
        mapping.ebs().unwrap().delete_on_termination(),
        Some(false),
        "{mapping:?}"
    );
    let homes_id = homes.volume_id().unwrap().to_string();

    // What each node boots with.
    let ud = |id: &str| {
        let c = c.clone();
        let id = id.to_string();
        async move {
            let a = c
                .describe_instance_attribute()
                .instance_id(id)
                .attribute(InstanceAttributeName::UserData)
                .send()
                .await
                .unwrap();
            user_data_text(a.user_data().unwrap().value().unwrap())
        }
    };
    let nfs_script = ud(nfs.instance_id().unwrap()).await;
    assert_eq!(value(&nfs_script, "HOMES_VOLUME"), homes_id);
    assert_eq!(value(&nfs_script, "EXPORT_CIDR"), VPC_CIDR);
    assert!(nfs_script.contains("exportfs -ra"));
    let hub_script = ud(hub.instance_id().unwrap()).await;
    assert_eq!(value(&hub_script, "NFS_ADDR"), NFS_IP);
    assert_eq!(
        value(&hub_script, "HUBDESK_URL"),
        "https://releases.example.invalid/hubdesk"
    );
    let toml = unpack(value(&hub_script, "HUBDESK_TOML"));
    assert!(
        toml.contains(&format!("subnet_id = \"{}\"", subnet.subnet_id().unwrap())),
        "{toml}"
    );
    assert!(
        toml.contains(&format!(
            "security_group_ids = [\"{}\", \"{}\"]",
            ids["ssh"], ids["internal"]
        )),
        "{toml}"
    );
    assert!(toml.contains(&format!("ami = \"{ami}\"")), "{toml}");
    assert!(toml.contains("instance_type = \"t3.xlarge\""), "{toml}");
    assert!(
        toml.contains("name = \"summer\"") && toml.contains("manager_addr = \"10.42.1.11:2377\"")
    );
    // The hub config and its spawner come from the binary the node installs, not user-data.
    assert!(hub_script.contains("/usr/local/bin/hubdesk hub-files"));
    assert!(!hub_script.contains("JUPYTERHUB_CONFIG="));

    // up again: nothing to do, and nothing done.
    let before = snapshot(&c).await;
    let again = Ec2Cloud::from_sdk(&moto.sdk("testing", "testing"));
    let world = again.look(&spec.camp).await.unwrap();
    let plan2 = plan::up(&world, &spec).unwrap();
    assert!(plan2.is_empty(), "{plan2}");
    let camp2 = apply::up(
        &again,
        &spec,
        "Summer Camp",
        &plan2,
        &mut Vec::new(),
        fast(),
    )
    .await
    .unwrap();
    assert_eq!(camp2.hub.id, camp.hub.id);
    assert_eq!(again.log().mutating(), Vec::<String>::new());
    assert_eq!(snapshot(&c).await, before);

    // A new organizer address: one rule revoked, one allowed, nothing else.
    let moved = CampSpec {
        ssh_from: "203.0.113.0/24".parse().unwrap(),
        ..spec.clone()
    };
    let plan3 = plan::up(&world, &moved).unwrap();
    let steps: Vec<String> = plan3.actions().map(|a| a.to_string()).collect();
    assert_eq!(
        steps,
        [
            "allow 22/tcp from 203.0.113.0/24 in group ssh",
            "revoke 22/tcp from 198.51.100.7/32 in group ssh"
        ]
    );
    apply::up(
        &again,
        &moved,
        "Summer Camp",
        &plan3,
        &mut Vec::new(),
        fast(),
    )
    .await
    .unwrap();
    assert_eq!(
        rules(&c, &ids["ssh"]).await,
        s(&[("tcp", 22, "203.0.113.0/24")])
    );

    // A worker the cluster desk launched into the camp: down removes it too.
    let worker = c
        .run_instances()
        .image_id(&ami)
        .min_count(1)
        .max_count(1)
        .subnet_id(subnet.subnet_id().unwrap())
        .security_group_ids(&ids["internal"])
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .tags(
                    Tag::builder()
                        .key("hubdesk:cluster")
                        .value("summer")
                        .build(),
                )
                .tags(Tag::builder().key("hubdesk:role").value("worker").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let worker = worker.instances()[0].instance_id().unwrap().to_string();

    // down, keeping the homes.
    let world = cloud.look(&spec.camp).await.unwrap();
    let down = plan::down(&world, false);
    assert_eq!(down.kept_volumes, std::slice::from_ref(&homes_id));
    apply::down(&cloud, &world, &down, &mut Vec::new(), fast())
        .await
        .unwrap();
    let left = cloud.look(&spec.camp).await.unwrap();
    assert!(left.vpcs.is_empty() && left.subnets.is_empty() && left.gateways.is_empty());
    assert!(left.route_tables.is_empty() && left.groups.is_empty() && left.instances.is_empty());
    assert_eq!(left.volumes.len(), 1, "the homes volume stays");
    assert_eq!(left.volumes[0].state, "available");
    let w = c
        .describe_instances()
        .instance_ids(&worker)
        .send()
        .await
        .unwrap();
    assert_eq!(
        w.reservations()[0].instances()[0]
            .state()
            .unwrap()
            .name()
            .unwrap()
            .as_str(),
        "terminated"
    );
    still_there(&c, &theirs).await;

    // up again: a new camp around the same homes, in the volume's zone.
    let world = cloud.look(&spec.camp).await.unwrap();
    let plan4 = plan::up(
        &world,
        &CampSpec {
            az: Some(format!("{REGION}b")),
            ..spec.clone()
        },
    )
    .unwrap();
    assert!(
        !plan4
            .actions()
            .any(|a| matches!(a, Action::CreateHomesVolume { .. })),
        "{plan4}"
    );
    assert_eq!(
        plan4.az,
        format!("{REGION}a"),
        "the kept volume decides the zone"
    );
    assert!(
        plan4
            .notes
            .iter()
            .any(|n| n.contains("--az us-east-1b ignored")),
        "{plan4}"
    );
    let camp4 = apply::up(
        &cloud,
        &spec,
        "Summer Camp",
        &plan4,
        &mut Vec::new(),
        fast(),
    )
    .await
    .unwrap();
    assert_eq!(camp4.volume, homes_id);
    let v = c
        .describe_volumes()
        .volume_ids(&homes_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        v.volumes()[0].attachments()[0].instance_id(),
        Some(camp4.nfs.id.as_str())
    );

    // down --delete-homes: nothing of ours is left.
    let world = cloud.look(&spec.camp).await.unwrap();
    let down = plan::down(&world, true);
    assert!(down.kept_volumes.is_empty());
    apply::down(&cloud, &world, &down, &mut Vec::new(), fast())
        .await
        .unwrap();
    let left = cloud.look(&spec.camp).await.unwrap();
    assert_eq!(
        left,
        World {
            zones: left.zones.clone(),
            ..World::default()
        }
    );
    assert!(c
        .describe_volumes()
        .filters(by_tag("hubdesk:camp", "summer"))
        .send()
        .await
        .unwrap()
        .volumes()
        .is_empty());
    still_there(&c, &theirs).await;
}

pub(crate) fn hubdesk(moto: &Moto, args: &[&str]) -> Output {
    let dir = std::env::temp_dir();
    Command::new(env!("CARGO_BIN_EXE_hubdesk"))
        .args(args)
        .current_dir(&dir)
        .env_remove("HUBDESK_CONFIG")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/hubdesk-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/hubdesk-test")
        .env("HUBDESK_CAMP_NAME", "Winter School")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run hubdesk")
}

pub(crate) fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn provision_cli_plan_up_plan_down_through_the_binary() {
    let Some(moto) = moto().await else { return };
    let c = moto.client();
    let ami = moto.some_ami().await;
    let common = [
        "--ssh-cidr",
        SSH,
        "--ami",
        &ami,
        "--hubdesk-url",
        "https://releases.example.invalid/hubdesk",
        "--hubdesk-sha256",
        &"a".repeat(64),
    ];
    let with = |cmd: &[&str]| -> Vec<String> {
        cmd.iter()
            .chain(common.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        hubdesk(&moto, &refs)
    };

    // plan: the whole camp listed, nothing changed (the account looks the same afterwards).
    let before = snapshot(&c).await;
    let o = run(with(&["aws", "plan"]));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.starts_with("camp winter-school in us-east-1 (us-east-1a):"),
        "{out}"
    );
    for line in [
        "do      create VPC 10.42.0.0/16",
        "do      allow 22/tcp from 198.51.100.7/32 in group ssh",
        "do      allow 2377/tcp from this group in group internal",
        "do      launch the hub node (10.42.1.11)",
        "do      attach the homes volume to the NFS node",
        "24 step(s) to do",
    ] {
        assert!(out.contains(line), "{line:?} missing in:\n{out}");
    }
    assert_eq!(snapshot(&c).await, before, "plan changed the account");

    // up without --yes on a non-terminal: refused, nothing made.
    let o = run(with(&["aws", "up"]));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("add --yes"), "{err}");
    assert_eq!(snapshot(&c).await, before);

    // up --yes: made, with the URLs at the end.
    let o = run(with(&["aws", "up", "--yes"]));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let hub = c
        .describe_instances()
        .filters(by_tag("hubdesk:camp", "winter-school"))
        .filters(by_tag("hubdesk:role", "hub"))
        .send()
        .await
        .unwrap();
    let ip = hub.reservations()[0].instances()[0]
        .public_ip_address()
        .unwrap()
        .to_string();
    assert!(out.contains(&format!("hub:      https://{ip}/")), "{out}");
    assert!(
        out.contains(&format!("hubdesk:  https://{ip}:8443/")),
        "{out}"
    );
    assert!(out.contains("get-console-output"), "{out}");
    assert!(!err.contains("panicked"), "{err}");

    // plan after up: nothing to create; up again: nothing made.
    let after_up = snapshot(&c).await;
    let o = run(with(&["aws", "plan"]));
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains("nothing to create: the camp is complete"),
        "{out}"
    );
    assert!(!out.contains("  do  "), "{out}");
    let o = run(with(&["aws", "up", "--yes"]));
    assert!(o.status.success(), "{:?}", text(&o));
    assert_eq!(
        snapshot(&c).await,
        after_up,
        "a second up changed the account"
    );

    // Bad input: clear errors, exit code 1, no AWS change.
    let o = hubdesk(&moto, &["aws", "plan", "--ssh-cidr", "10.0.0.1"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("\"10.0.0.1\" is not an IPv4 CIDR like 203.0.113.7/32: no /prefix"),
        "{err}"
    );
    let o = hubdesk(&moto, &["aws", "plan", "--ami", &ami]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("--ssh-cidr is required when AWS_ENDPOINT_URL is set"),
        "{err}"
    );
    let o = hubdesk(
        &moto,
        &["aws", "plan", "--ssh-cidr", SSH, "--camp", "Bad Name"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("camp name \"Bad Name\""),
        "{:?}",
        text(&o)
    );
    let o = hubdesk(
        &moto,
        &["aws", "plan", "--ssh-cidr", SSH, "--ami", "ami-00000000"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).1.contains("--ami ami-00000000"), "{:?}", text(&o));
    assert_eq!(snapshot(&c).await, after_up);

    // down: everything but the homes volume, and it says how to delete that.
    let o = hubdesk(&moto, &["aws", "down", "--yes"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("keep    homes volume vol-"), "{out}");
    assert!(out.contains("kept the homes volume vol-"), "{out}");
    assert!(out.contains("--delete-homes"), "{out}");
    assert!(out.contains("camp winter-school is down"), "{out}");
    let o = hubdesk(&moto, &["aws", "down", "--yes", "--delete-homes"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("remove  delete the homes volume vol-"),
        "{out}"
    );
    assert_eq!(
        snapshot(&c).await,
        before,
        "down left the account as it found it"
    );
    let o = hubdesk(&moto, &["aws", "down", "--yes"]);
    assert!(
        text(&o).0.contains("nothing of this camp to remove"),
        "{:?}",
        text(&o)
    );
}

#[tokio::test]
async fn provision_missing_credentials_is_a_plain_error() {
    let Some(moto) = moto().await else { return };
    let o = Command::new(env!("CARGO_BIN_EXE_hubdesk"))
        .args(["aws", "plan", "--ssh-cidr", SSH, "--ami", "ami-12345678"])
        .current_dir(std::env::temp_dir())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("HUBDESK_CONFIG")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/hubdesk-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/hubdesk-test")
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("\nhubdesk: no AWS credentials: set AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // And no region is just as plain.
    let o = Command::new(env!("CARGO_BIN_EXE_hubdesk"))
        .args(["aws", "down", "--yes"])
        .current_dir(std::env::temp_dir())
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .env_remove("HUBDESK_CONFIG")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/hubdesk-test")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/hubdesk-test")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).1.contains("no AWS region: set AWS_REGION"),
        "{:?}",
        text(&o)
    );
}
