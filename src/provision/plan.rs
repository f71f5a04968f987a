//! The typed plans: what `up` would create or change, and what `down` would remove, computed
//! from one look at the account (`World`). Pure functions, so `plan` prints exactly what `up`
//! then does, and `up` on a complete camp finds nothing to do.
use std::fmt;

use super::model::*;
use super::ProvisionError;

/// One thing `up` does, in order. Ids of things made earlier in the same run are resolved when
/// the step runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateVpc,
    CreateSubnet {
        az: String,
    },
    /// Instances in the subnet get public addresses (the nodes and the cluster desk's workers,
    /// which need the internet for their packages; there is no NAT gateway).
    EnablePublicIps,
    CreateGateway,
    AttachGateway,
    CreateRouteTable,
    DefaultRoute,
    AssociateSubnet,
    CreateGroup(GroupRole),
    Authorize(GroupRole, Rule),
    Revoke(GroupRole, Rule),
    CreateHomesVolume {
        az: String,
    },
    Launch(NodeRole),
    AttachHomes,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateVpc => write!(f, "create VPC {VPC_CIDR}"),
            Action::CreateSubnet { az } => write!(f, "create subnet {SUBNET_CIDR} in {az}"),
            Action::EnablePublicIps => write!(f, "give instances in the subnet public addresses"),
            Action::CreateGateway => write!(f, "create internet gateway"),
            Action::AttachGateway => write!(f, "attach the internet gateway to the VPC"),
            Action::CreateRouteTable => write!(f, "create route table"),
            Action::DefaultRoute => write!(f, "route 0.0.0.0/0 through the internet gateway"),
            Action::AssociateSubnet => write!(f, "associate the route table with the subnet"),
            Action::CreateGroup(g) => write!(f, "create security group {}", g.tag()),
            Action::Authorize(g, r) => write!(f, "allow {r} in group {}", g.tag()),
            Action::Revoke(g, r) => write!(f, "revoke {r} in group {}", g.tag()),
            Action::CreateHomesVolume { az } => write!(f, "create the homes volume in {az}"),
            Action::Launch(n) => write!(f, "launch the {} node ({})", n.tag(), n.private_ip()),
            Action::AttachHomes => write!(f, "attach the homes volume to the NFS node"),
        }
    }
}

/// A line of the plan: kept as it is, or done.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Keep { what: String, id: String },
    Do(Action),
}

/// The existing resources the plan builds on (the first of each, when a crash left two).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Found {
    pub vpc: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub route_table: Option<String>,
    pub groups: std::collections::BTreeMap<GroupRole, String>,
    pub volume: Option<String>,
    pub nfs: Option<Node>,
    pub hub: Option<Node>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UpPlan {
    pub found: Found,
    pub lines: Vec<Line>,
    /// Things worth knowing that change nothing (a stopped node, a rule hubdesk did not make).
    pub notes: Vec<String>,
    /// The zone everything lives in.
    pub az: String,
}

impl UpPlan {
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.lines.iter().filter_map(|l| match l {
            Line::Do(a) => Some(a),
            Line::Keep { .. } => None,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.actions().next().is_none()
    }
}

impl fmt::Display for UpPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            match line {
                Line::Keep { what, id } => writeln!(f, "  keep    {what} {id}")?,
                Line::Do(a) => writeln!(f, "  do      {a}")?,
            }
        }
        for n in &self.notes {
            writeln!(f, "  note    {n}")?;
        }
        let n = self.actions().count();
        if n == 0 {
            writeln!(f, "nothing to create: the camp is complete")
        } else {
            writeln!(f, "{n} step(s) to do")
        }
    }
}

fn first<'a, T>(
    items: impl IntoIterator<Item = &'a T>,
    what: &str,
    id: impl Fn(&T) -> &str,
    notes: &mut Vec<String>,
) -> Option<&'a T>
where
    T: 'a,
{
    let mut items = items.into_iter();
    let found = items.next();
    let extra: Vec<&str> = items.map(&id).collect();
    if !extra.is_empty() {
        notes.push(format!(
            "more than one {what} carries this camp's tags ({}): using {}, `down` removes all",
            extra.join(", "),
            found.map(&id).unwrap_or_default()
        ));
    }
    found
}

/// What `up` must do to make the camp of `spec` out of `world`.
pub fn up(world: &World, spec: &CampSpec) -> Result<UpPlan, ProvisionError> {
    let mut plan = UpPlan::default();
    let mut found = Found::default();
    let notes = &mut plan.notes;
    let mut lines = Vec::new();
    let keep = |lines: &mut Vec<Line>, what: &str, id: &str| {
        lines.push(Line::Keep {
            what: what.to_string(),
            id: id.to_string(),
        })
    };

    let vpc = first(&world.vpcs, "VPC", |v| &v.id, notes);
    match vpc {
        Some(v) => keep(&mut lines, "VPC", &v.id),
        None => lines.push(Line::Do(Action::CreateVpc)),
    }
    let vpc_id = vpc.map(|v| v.id.as_str());
    found.vpc = vpc_id.map(str::to_string);
    let in_vpc = |id: &str| vpc_id == Some(id);

    let subnet = first(
        world.subnets.iter().filter(|s| in_vpc(&s.vpc_id)),
        "subnet",
        |s| &s.id,
        notes,
    );
    let volume = first(
        world
            .volumes
            .iter()
            .filter(|v| !matches!(v.state.as_str(), "deleting" | "deleted" | "error")),
        "homes volume",
        |v| &v.id,
        notes,
    );
    // One zone for the subnet and the homes volume (a volume attaches only in its own zone); a
    // homes volume kept by `down` decides it, so the next `up` finds the students' files again.
    let az = match (subnet, volume) {
        (Some(s), Some(v)) if s.az != v.az => {
            return Err(ProvisionError::Conflict(format!(
                "the homes volume {} is in {} but the camp's subnet {} is in {}: a volume \
                 attaches only in its own zone. Move the volume (snapshot, new volume in {}) \
                 or run `hubdesk aws down` (which keeps the volume) and `up` again",
                v.id, v.az, s.id, s.az, s.az
            )))
        }
        (Some(s), _) => s.az.clone(),
        (None, Some(v)) => v.az.clone(),
        (None, None) => match &spec.az {
            Some(az) => az.clone(),
            None => world.zones.first().cloned().ok_or_else(|| {
                ProvisionError::Conflict(format!("region {} lists no available zone", spec.region))
            })?,
        },
    };
    if let Some(wanted) = &spec.az {
        if *wanted != az {
            notes.push(format!(
                "--az {wanted} ignored: the camp is in {az} already (its subnet or homes volume)"
            ));
        }
    }
    found.subnet = subnet.map(|s| s.id.clone());
    found.volume = volume.map(|v| v.id.clone());
    match subnet {
        Some(s) => {
            keep(&mut lines, "subnet", &s.id);
            if !s.public_ips {
                lines.push(Line::Do(Action::EnablePublicIps));
            }
        }
        None => {
            lines.push(Line::Do(Action::CreateSubnet { az: az.clone() }));
            lines.push(Line::Do(Action::EnablePublicIps));
        }
    }

    let gateway = first(&world.gateways, "internet gateway", |g| &g.id, notes);
    found.gateway = gateway.map(|g| g.id.clone());
    match gateway {
        Some(g) => {
            keep(&mut lines, "internet gateway", &g.id);
            if !vpc_id.is_some_and(|v| g.attached_to.iter().any(|a| a == v)) {
                lines.push(Line::Do(Action::AttachGateway));
            }
        }
        None => {
            lines.push(Line::Do(Action::CreateGateway));
            lines.push(Line::Do(Action::AttachGateway));
        }
    }

    let table = first(
        world.route_tables.iter().filter(|t| in_vpc(&t.vpc_id)),
        "route table",
        |t| &t.id,
        notes,
    );
    found.route_table = table.map(|t| t.id.clone());
    match table {
        Some(t) => {
            keep(&mut lines, "route table", &t.id);
            let via_ours =
                gateway.is_some() && t.default_via.as_deref() == gateway.map(|g| g.id.as_str());
            if !via_ours {
                lines.push(Line::Do(Action::DefaultRoute));
            }
            if !subnet.is_some_and(|s| t.associations.iter().any(|(_, sub)| *sub == s.id)) {
                lines.push(Line::Do(Action::AssociateSubnet));
            }
        }
        None => {
            lines.push(Line::Do(Action::CreateRouteTable));
            lines.push(Line::Do(Action::DefaultRoute));
            lines.push(Line::Do(Action::AssociateSubnet));
        }
    }

    for role in GroupRole::ALL {
        let group = first(
            world
                .groups
                .iter()
                .filter(|g| g.role == Some(role) && in_vpc(&g.vpc_id)),
            &format!("security group {}", role.tag()),
            |g| &g.id,
            notes,
        );
        let want = role.rules(spec.ssh_from, group.map(|g| g.id.as_str()));
        if let Some(g) = group {
            found.groups.insert(role, g.id.clone());
        }
        match group {
            Some(g) => {
                keep(&mut lines, &format!("security group {}", role.tag()), &g.id);
                for r in want.difference(&g.rules) {
                    lines.push(Line::Do(Action::Authorize(role, r.clone())));
                }
                for r in g.rules.difference(&want) {
                    lines.push(Line::Do(Action::Revoke(role, r.clone())));
                }
            }
            None => {
                lines.push(Line::Do(Action::CreateGroup(role)));
                for r in want {
                    lines.push(Line::Do(Action::Authorize(role, r)));
                }
            }
        }
    }

    match volume {
        Some(v) => keep(
            &mut lines,
            &format!("homes volume ({} GB)", v.size_gb),
            &v.id,
        ),
        None => lines.push(Line::Do(Action::CreateHomesVolume { az: az.clone() })),
    }

    let mut nfs_id = None;
    for role in [NodeRole::Nfs, NodeRole::Hub] {
        let node = first(
            world
                .instances
                .iter()
                .filter(|n| n.role == role.tag() && n.is_live()),
            &format!("{} node", role.tag()),
            |n| &n.id,
            notes,
        );
        match node {
            Some(n) => {
                keep(&mut lines, &format!("{} node", role.tag()), &n.id);
                if n.state != "running" && n.state != "pending" {
                    notes.push(format!(
                        "the {} node {} is {}: start it in the EC2 console (hubdesk does not)",
                        role.tag(),
                        n.id,
                        n.state
                    ));
                }
                match role {
                    NodeRole::Nfs => {
                        nfs_id = Some(n.id.clone());
                        found.nfs = Some(n.clone());
                    }
                    NodeRole::Hub => found.hub = Some(n.clone()),
                }
            }
            None => lines.push(Line::Do(Action::Launch(role))),
        }
        if role == NodeRole::Nfs {
            let attached = volume.and_then(|v| v.attached_to.clone());
            match (attached, &nfs_id) {
                (Some(to), Some(nfs)) if to == *nfs => {}
                (Some(to), _) => {
                    return Err(ProvisionError::Conflict(format!(
                        "the homes volume {} is attached to {to}, not to the camp's NFS node: \
                         detach it first (hubdesk never moves a volume with students' files \
                         on its own)",
                        volume.map(|v| v.id.as_str()).unwrap_or_default()
                    )))
                }
                (None, _) => lines.push(Line::Do(Action::AttachHomes)),
            }
        }
    }
    plan.lines = lines;
    plan.az = az;
    plan.found = found;
    Ok(plan)
}

/// One thing `down` does, in dependency order.
#[derive(Debug, Clone, PartialEq)]
pub enum Removal {
    /// The camp's nodes and the cluster desk's workers of this camp.
    Terminate(Vec<Node>),
    DeleteVolume(String),
    DeleteGroup(String),
    Disassociate {
        table: String,
        association: String,
    },
    DeleteRouteTable(String),
    DetachGateway {
        gateway: String,
        vpc: String,
    },
    DeleteGateway(String),
    DeleteSubnet(String),
    DeleteVpc(String),
}

impl fmt::Display for Removal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Removal::Terminate(nodes) => {
                let names: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("{} ({})", n.id, n.role))
                    .collect();
                write!(f, "terminate {}", names.join(", "))
            }
            Removal::DeleteVolume(id) => write!(f, "delete the homes volume {id} (--delete-homes)"),
            Removal::DeleteGroup(id) => write!(f, "delete security group {id}"),
            Removal::Disassociate { table, .. } => write!(f, "disassociate route table {table}"),
            Removal::DeleteRouteTable(id) => write!(f, "delete route table {id}"),
            Removal::DetachGateway { gateway, vpc } => {
                write!(f, "detach internet gateway {gateway} from {vpc}")
            }
            Removal::DeleteGateway(id) => write!(f, "delete internet gateway {id}"),
            Removal::DeleteSubnet(id) => write!(f, "delete subnet {id}"),
            Removal::DeleteVpc(id) => write!(f, "delete VPC {id}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DownPlan {
    pub steps: Vec<Removal>,
    /// Homes volumes left in place (no `--delete-homes`).
    pub kept_volumes: Vec<String>,
}

impl fmt::Display for DownPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "  remove  {s}")?;
        }
        for v in &self.kept_volumes {
            writeln!(
                f,
                "  keep    homes volume {v} (the students' files; --delete-homes removes it)"
            )?;
        }
        if self.steps.is_empty() {
            writeln!(f, "nothing of this camp to remove")?;
        }
        Ok(())
    }
}

/// Everything of this camp (and only that: `world` holds nothing else), dependents first.
pub fn down(world: &World, delete_homes: bool) -> DownPlan {
    let mut plan = DownPlan::default();
    let live: Vec<Node> = world
        .instances
        .iter()
        .filter(|n| n.is_live())
        .cloned()
        .collect();
    if !live.is_empty() {
        plan.steps.push(Removal::Terminate(live));
    }
    for v in &world.volumes {
        if delete_homes {
            plan.steps.push(Removal::DeleteVolume(v.id.clone()));
        } else {
            plan.kept_volumes.push(v.id.clone());
        }
    }
    for g in &world.groups {
        plan.steps.push(Removal::DeleteGroup(g.id.clone()));
    }
    for t in &world.route_tables {
        for (association, _) in &t.associations {
            plan.steps.push(Removal::Disassociate {
                table: t.id.clone(),
                association: association.clone(),
            });
        }
        plan.steps.push(Removal::DeleteRouteTable(t.id.clone()));
    }
    for g in &world.gateways {
        for vpc in &g.attached_to {
            plan.steps.push(Removal::DetachGateway {
                gateway: g.id.clone(),
                vpc: vpc.clone(),
            });
        }
        plan.steps.push(Removal::DeleteGateway(g.id.clone()));
    }
    for s in &world.subnets {
        plan.steps.push(Removal::DeleteSubnet(s.id.clone()));
    }
    for v in &world.vpcs {
        plan.steps.push(Removal::DeleteVpc(v.id.clone()));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CampSpec {
        CampSpec {
            camp: CampName::parse("summer").unwrap(),
            region: "us-east-1".into(),
            ssh_from: "198.51.100.7/32".parse().unwrap(),
            az: None,
            ami: Ami {
                id: "ami-1".into(),
                name: "al2023".into(),
                root_device: "/dev/xvda".into(),
            },
            hub_type: "t3.large".into(),
            nfs_type: "t3.small".into(),
            worker_type: "t3.xlarge".into(),
            key_name: None,
            instance_profile: None,
            worker_instance_profile: None,
            homes_gb: 100,
            root_gb: 30,
            binary: None,
            domain: None,
            email: None,
            notebook_image: "quay.io/jupyter/scipy-notebook:latest".into(),
            hub_image: "hubdesk/jupyterhub:6.1.1".into(),
        }
    }

    fn empty() -> World {
        World {
            zones: vec!["us-east-1a".into(), "us-east-1b".into()],
            ..World::default()
        }
    }

    fn node(id: &str, role: &str, state: &str) -> Node {
        Node {
            id: id.into(),
            role: role.into(),
            state: state.into(),
            private_ip: String::new(),
            public_ip: String::new(),
            subnet_id: "subnet-1".into(),
            tags: Default::default(),
        }
    }

    /// The world a complete camp leaves behind.
    fn complete(s: &CampSpec) -> World {
        let mut w = empty();
        w.vpcs.push(Vpc {
            id: "vpc-1".into(),
            cidr: VPC_CIDR.into(),
        });
        w.subnets.push(Subnet {
            id: "subnet-1".into(),
            vpc_id: "vpc-1".into(),
            az: "us-east-1a".into(),
            cidr: SUBNET_CIDR.into(),
            public_ips: true,
        });
        w.gateways.push(Gateway {
            id: "igw-1".into(),
            attached_to: vec!["vpc-1".into()],
        });
        w.route_tables.push(RouteTable {
            id: "rtb-1".into(),
            vpc_id: "vpc-1".into(),
            associations: vec![("rtbassoc-1".into(), "subnet-1".into())],
            default_via: Some("igw-1".into()),
        });
        for (i, role) in GroupRole::ALL.into_iter().enumerate() {
            let id = format!("sg-{i}");
            w.groups.push(Group {
                rules: role.rules(s.ssh_from, Some(&id)),
                id,
                vpc_id: "vpc-1".into(),
                role: Some(role),
            });
        }
        w.instances.push(node("i-nfs", "nfs", "running"));
        w.instances.push(node("i-hub", "hub", "running"));
        w.volumes.push(Volume {
            id: "vol-1".into(),
            az: "us-east-1a".into(),
            size_gb: 100,
            state: "in-use".into(),
            attached_to: Some("i-nfs".into()),
            delete_on_termination: false,
        });
        w
    }

    #[test]
    fn provision_plan_of_an_empty_account_makes_everything_in_order() {
        let p = up(&empty(), &spec()).unwrap();
        assert_eq!(p.az, "us-east-1a");
        let a: Vec<&Action> = p.actions().collect();
        assert_eq!(a[0], &Action::CreateVpc);
        let pos = |x: &Action| a.iter().position(|y| *y == x).unwrap();
        assert!(
            pos(&Action::CreateHomesVolume {
                az: "us-east-1a".into()
            }) < pos(&Action::Launch(NodeRole::Nfs))
        );
        assert!(pos(&Action::Launch(NodeRole::Nfs)) < pos(&Action::AttachHomes));
        assert!(pos(&Action::AttachHomes) < pos(&Action::Launch(NodeRole::Hub)));
        assert_eq!(
            a.iter()
                .filter(|x| matches!(x, Action::Authorize(..)))
                .count(),
            9
        );
        assert!(p.lines.iter().all(|l| matches!(l, Line::Do(_))));
    }

    #[test]
    fn provision_plan_of_a_complete_camp_is_empty() {
        let s = spec();
        let p = up(&complete(&s), &s).unwrap();
        assert!(p.is_empty(), "{p}");
        assert!(p.to_string().contains("nothing to create"));
        assert_eq!(p.found.nfs.as_ref().map(|n| n.id.as_str()), Some("i-nfs"));
        assert_eq!(p.found.groups.len(), 3);
    }

    #[test]
    fn provision_plan_repairs_only_what_is_missing() {
        let s = spec();
        let mut w = complete(&s);
        // The NFS node is gone (its volume detached), a stray rule was added, the route lost.
        w.instances.retain(|n| n.role != "nfs");
        w.volumes[0].attached_to = None;
        w.volumes[0].state = "available".into();
        w.route_tables[0].default_via = None;
        let stray = Rule {
            proto: Proto::Tcp,
            port: 22,
            source: Source::Cidr(Cidr::WORLD),
        };
        w.groups[0].rules.insert(stray.clone());
        let p = up(&w, &s).unwrap();
        let a: Vec<Action> = p.actions().cloned().collect();
        assert_eq!(
            a,
            [
                Action::DefaultRoute,
                Action::Revoke(GroupRole::Ssh, stray),
                Action::Launch(NodeRole::Nfs),
                Action::AttachHomes,
            ]
        );
    }

    #[test]
    fn provision_plan_refuses_a_homes_volume_it_cannot_attach() {
        let s = spec();
        let mut w = complete(&s);
        w.volumes[0].az = "us-east-1b".into();
        assert!(matches!(up(&w, &s), Err(ProvisionError::Conflict(m)) if m.contains("own zone")));
        let mut w = complete(&s);
        w.volumes[0].attached_to = Some("i-someone-else".into());
        assert!(
            matches!(up(&w, &s), Err(ProvisionError::Conflict(m)) if m.contains("i-someone-else"))
        );
    }

    #[test]
    fn provision_kept_homes_volume_decides_the_zone() {
        let mut w = empty();
        w.volumes.push(Volume {
            id: "vol-1".into(),
            az: "us-east-1b".into(),
            size_gb: 100,
            state: "available".into(),
            attached_to: None,
            delete_on_termination: false,
        });
        let p = up(&w, &spec()).unwrap();
        assert_eq!(p.az, "us-east-1b");
        assert!(!p
            .actions()
            .any(|a| matches!(a, Action::CreateHomesVolume { .. })));
    }

    #[test]
    fn provision_down_removes_dependents_first_and_keeps_homes() {
        let s = spec();
        let mut w = complete(&s);
        w.instances.push(node("i-worker", "worker", "running"));
        w.instances.push(node("i-old", "hub", "terminated"));
        let d = down(&w, false);
        assert_eq!(d.kept_volumes, ["vol-1"]);
        let Removal::Terminate(nodes) = &d.steps[0] else {
            panic!("{d}")
        };
        let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["i-nfs", "i-hub", "i-worker"]);
        assert!(!d
            .steps
            .iter()
            .any(|s| matches!(s, Removal::DeleteVolume(_))));
        assert_eq!(d.steps.last(), Some(&Removal::DeleteVpc("vpc-1".into())));
        let pos = |r: &Removal| d.steps.iter().position(|x| x == r).unwrap();
        assert!(
            pos(&Removal::DeleteGroup("sg-0".into()))
                < pos(&Removal::DeleteSubnet("subnet-1".into()))
        );
        assert!(
            pos(&Removal::DeleteRouteTable("rtb-1".into()))
                < pos(&Removal::DeleteVpc("vpc-1".into()))
        );
        let d = down(&w, true);
        assert!(d.kept_volumes.is_empty());
        assert!(d.steps.contains(&Removal::DeleteVolume("vol-1".into())));
        assert!(down(&empty(), true).steps.is_empty());
    }
}
