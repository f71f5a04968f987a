//! Carrying out a plan, step by step, printing each step as it is done. Ids made earlier in the
//! run feed later steps; waits (an instance running, a volume free) poll the cloud.
use std::{collections::BTreeSet, io::Write, time::Duration};

use super::bootstrap::{self, HubValues, WorkerTemplate};
use super::cloud::{Change, Cloud, Creation, NodeLaunch};
use super::model::*;
use super::plan::{Action, DownPlan, Removal, UpPlan};
use super::ProvisionError;
use crate::ec2::InstanceProfile;

/// How long to wait, and how often to look, for EC2 to finish something.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub every: Duration,
    pub at_most: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(5),
            at_most: Duration::from_secs(600),
        }
    }
}

fn say(out: &mut dyn Write, line: impl std::fmt::Display) {
    // The terminal going away must not stop a half-made camp from being finished.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn tags(camp: &CampName, role: &str) -> Vec<(String, String)> {
    vec![
        (TAG_CAMP.to_string(), camp.to_string()),
        (TAG_ROLE.to_string(), role.to_string()),
        ("Name".to_string(), format!("{camp}-{role}")),
    ]
}

fn need<'a>(id: &'a Option<String>, what: &str) -> Result<&'a str, ProvisionError> {
    id.as_deref().ok_or_else(|| {
        ProvisionError::Conflict(format!("internal: {what} is not known at this step"))
    })
}

/// The camp after `up`.
#[derive(Debug, Clone)]
pub struct Camp {
    pub hub: Node,
    pub nfs: Node,
    pub volume: String,
    pub subnet: String,
    pub groups: std::collections::BTreeMap<GroupRole, String>,
}

async fn wait_node(
    cloud: &dyn Cloud,
    id: &str,
    patience: Patience,
    done: impl Fn(&Node) -> bool,
    what: &str,
) -> Result<Node, ProvisionError> {
    let started = std::time::Instant::now();
    loop {
        let ids = [id.to_string()];
        if let Some(n) = cloud.nodes(&ids).await?.into_iter().next() {
            if done(&n) {
                return Ok(n);
            }
        }
        if started.elapsed() > patience.at_most {
            return Err(ProvisionError::Timeout(format!("{id} {what}")));
        }
        tokio::time::sleep(patience.every).await;
    }
}

async fn wait_volume_free(
    cloud: &dyn Cloud,
    id: &str,
    patience: Patience,
) -> Result<(), ProvisionError> {
    let started = std::time::Instant::now();
    loop {
        let ids = [id.to_string()];
        let v = cloud.volumes(&ids).await?;
        if v.first().is_some_and(|v| v.state == "available") {
            return Ok(());
        }
        if started.elapsed() > patience.at_most {
            return Err(ProvisionError::Timeout(format!(
                "volume {id} to be available"
            )));
        }
        tokio::time::sleep(patience.every).await;
    }
}

/// Runs `plan` (computed from a look at the account just before) for `spec`.
pub async fn up(
    cloud: &dyn Cloud,
    spec: &CampSpec,
    display_name: &str,
    plan: &UpPlan,
    out: &mut dyn Write,
    patience: Patience,
) -> Result<Camp, ProvisionError> {
    if plan.actions().any(|a| *a == Action::Launch(NodeRole::Hub)) && spec.binary.is_none() {
        return Err(ProvisionError::BadInput(
            "the hub node needs hubdesk: give --hubdesk-url URL --hubdesk-sha256 HEX (a release \
             build for linux x86_64), or --source-url GIT to build it on the node"
                .into(),
        ));
    }
    let camp = &spec.camp;
    let f = &plan.found;
    let mut vpc = f.vpc.clone();
    let mut subnet = f.subnet.clone();
    let mut gateway = f.gateway.clone();
    let mut table = f.route_table.clone();
    let mut groups = f.groups.clone();
    let mut volume = f.volume.clone();
    let mut nfs = f.nfs.clone();
    let mut hub = f.hub.clone();
    let group = |groups: &std::collections::BTreeMap<GroupRole, String>, role: GroupRole| {
        groups.get(&role).cloned().ok_or_else(|| {
            ProvisionError::Conflict(format!("internal: group {} not known", role.tag()))
        })
    };
    for action in plan.actions() {
        match action {
            Action::CreateVpc => {
                let id = cloud
                    .create(
                        &Creation::Vpc {
                            cidr: VPC_CIDR.into(),
                        },
                        &tags(camp, "vpc"),
                    )
                    .await?;
                cloud
                    .change(&Change::EnableDnsHostnames { vpc: id.clone() })
                    .await?;
                say(out, format_args!("created VPC {id}"));
                vpc = Some(id);
            }
            Action::CreateSubnet { az } => {
                let id = cloud
                    .create(
                        &Creation::Subnet {
                            vpc: need(&vpc, "the VPC")?.into(),
                            cidr: SUBNET_CIDR.into(),
                            az: az.clone(),
                        },
                        &tags(camp, "subnet"),
                    )
                    .await?;
                say(out, format_args!("created subnet {id} in {az}"));
                subnet = Some(id);
            }
            Action::EnablePublicIps => {
                cloud
                    .change(&Change::EnablePublicIps {
                        subnet: need(&subnet, "the subnet")?.into(),
                    })
                    .await?;
                say(out, "instances in the subnet get public addresses");
            }
            Action::CreateGateway => {
                let id = cloud
                    .create(&Creation::Gateway, &tags(camp, "gateway"))
                    .await?;
                say(out, format_args!("created internet gateway {id}"));
                gateway = Some(id);
            }
            Action::AttachGateway => {
                cloud
                    .change(&Change::AttachGateway {
                        gateway: need(&gateway, "the gateway")?.into(),
                        vpc: need(&vpc, "the VPC")?.into(),
                    })
                    .await?;
                say(out, "attached the internet gateway");
            }
            Action::CreateRouteTable => {
                let id = cloud
                    .create(
                        &Creation::RouteTable {
                            vpc: need(&vpc, "the VPC")?.into(),
                        },
                        &tags(camp, "routes"),
                    )
                    .await?;
                say(out, format_args!("created route table {id}"));
                table = Some(id);
            }
            Action::DefaultRoute => {
                cloud
                    .change(&Change::DefaultRoute {
                        table: need(&table, "the route table")?.into(),
                        gateway: need(&gateway, "the gateway")?.into(),
                    })
                    .await?;
                say(out, "routed 0.0.0.0/0 through the internet gateway");
            }
            Action::AssociateSubnet => {
                cloud
                    .change(&Change::Associate {
                        table: need(&table, "the route table")?.into(),
                        subnet: need(&subnet, "the subnet")?.into(),
                    })
                    .await?;
                say(out, "associated the route table with the subnet");
            }
            Action::CreateGroup(role) => {
                let id = cloud
                    .create(
                        &Creation::Group {
                            vpc: need(&vpc, "the VPC")?.into(),
                            name: format!("{camp}-{}", role.tag()),
                            description: role.description().into(),
                        },
                        &tags(camp, role.tag()),
                    )
                    .await?;
                say(
                    out,
                    format_args!("created security group {} {id}", role.tag()),
                );
                groups.insert(*role, id);
            }
            Action::Authorize(role, rule) => {
                let id = group(&groups, *role)?;
                cloud
                    .change(&Change::Authorize {
                        group: id.clone(),
                        rules: vec![rule.clone()],
                    })
                    .await?;
                say(out, format_args!("allowed {rule} in {}", role.tag()));
            }
            Action::Revoke(role, rule) => {
                let id = group(&groups, *role)?;
                cloud
                    .change(&Change::Revoke {
                        group: id.clone(),
                        rules: vec![rule.clone()],
                    })
                    .await?;
                say(out, format_args!("revoked {rule} in {}", role.tag()));
            }
            Action::CreateHomesVolume { az } => {
                let id = cloud
                    .create(
                        &Creation::Volume {
                            az: az.clone(),
                            size_gb: spec.homes_gb,
                        },
                        &tags(camp, "homes"),
                    )
                    .await?;
                say(
                    out,
                    format_args!("created the homes volume {id} ({} GB)", spec.homes_gb),
                );
                volume = Some(id);
            }
            Action::Launch(role) => {
                let user_data = match role {
                    NodeRole::Nfs => bootstrap::nfs_node(
                        camp,
                        need(&volume, "the homes volume")?,
                        VPC_CIDR,
                        HOMES_UID,
                        HOMES_GID,
                    )?,
                    NodeRole::Hub => {
                        let worker_groups = vec![
                            group(&groups, GroupRole::Ssh)?,
                            group(&groups, GroupRole::Internal)?,
                        ];
                        let toml = bootstrap::hubdesk_toml(&WorkerTemplate {
                            camp,
                            display_name,
                            region: &spec.region,
                            ami: &spec.ami.id,
                            instance_type: &spec.worker_type,
                            subnet_id: need(&subnet, "the subnet")?,
                            security_group_ids: &worker_groups,
                            key_name: spec.key_name.as_deref(),
                            // The workers' own profile, never the hub's: they run students'
                            // code.
                            instance_profile: spec
                                .worker_instance_profile
                                .as_ref()
                                .map(InstanceProfile::as_str),
                            hub_instance_profile: spec
                                .instance_profile
                                .as_ref()
                                .map(InstanceProfile::as_str),
                            manager_addr: &format!("{HUB_IP}:2377"),
                            uid: HOMES_UID,
                            gid: HOMES_GID,
                        });
                        let binary = spec.binary.as_ref().ok_or_else(|| {
                            ProvisionError::BadInput("no hubdesk binary source".into())
                        })?;
                        bootstrap::hub_node(&HubValues {
                            camp,
                            nfs_addr: NFS_IP,
                            binary,
                            domain: spec.domain.as_deref(),
                            email: spec.email.as_deref(),
                            hubdesk_toml: &toml,
                            notebook_image: &spec.notebook_image,
                            hub_image: &spec.hub_image,
                            uid: HOMES_UID,
                            gid: HOMES_GID,
                        })?
                    }
                };
                let req = NodeLaunch {
                    role: *role,
                    ami: spec.ami.clone(),
                    instance_type: match role {
                        NodeRole::Nfs => spec.nfs_type.clone(),
                        NodeRole::Hub => spec.hub_type.clone(),
                    },
                    subnet: need(&subnet, "the subnet")?.into(),
                    private_ip: role.private_ip().into(),
                    groups: role
                        .groups()
                        .iter()
                        .map(|g| group(&groups, *g))
                        .collect::<Result<_, _>>()?,
                    key_name: spec.key_name.clone(),
                    instance_profile: match role {
                        NodeRole::Hub => spec.instance_profile.clone(),
                        NodeRole::Nfs => None,
                    },
                    root_gb: spec.root_gb,
                    user_data: user_data.payload()?,
                };
                let node = cloud.launch(&req, &tags(camp, role.tag())).await?;
                say(
                    out,
                    format_args!(
                        "launched the {} node {} ({})",
                        role.tag(),
                        node.id,
                        node.private_ip
                    ),
                );
                match role {
                    NodeRole::Nfs => nfs = Some(node),
                    NodeRole::Hub => hub = Some(node),
                }
            }
            Action::AttachHomes => {
                let node = nfs.as_ref().ok_or_else(|| {
                    ProvisionError::Conflict("internal: no NFS node to attach to".into())
                })?;
                let vol = need(&volume, "the homes volume")?;
                // EC2 attaches only to a running instance and only a free volume.
                wait_node(
                    cloud,
                    &node.id,
                    patience,
                    |n| n.state == "running",
                    "to run",
                )
                .await?;
                wait_volume_free(cloud, vol, patience).await?;
                cloud
                    .change(&Change::AttachVolume {
                        volume: vol.into(),
                        instance: node.id.clone(),
                        device: HOMES_DEVICE.into(),
                    })
                    .await?;
                cloud
                    .change(&Change::KeepOnTermination {
                        instance: node.id.clone(),
                        device: HOMES_DEVICE.into(),
                    })
                    .await?;
                say(
                    out,
                    format_args!("attached the homes volume {vol} to {}", node.id),
                );
            }
        }
    }
    let hub = hub.ok_or_else(|| ProvisionError::Conflict("internal: no hub node".into()))?;
    // A fresh instance may get its public address a moment after it is running.
    let hub = if hub.public_ip.is_empty() {
        wait_node(
            cloud,
            &hub.id,
            patience,
            |n| !n.public_ip.is_empty() || !n.is_live(),
            "to get a public address",
        )
        .await?
    } else {
        hub
    };
    Ok(Camp {
        hub,
        nfs: nfs.ok_or_else(|| ProvisionError::Conflict("internal: no NFS node".into()))?,
        volume: volume.unwrap_or_default(),
        subnet: subnet.unwrap_or_default(),
        groups,
    })
}

/// The ids `down` may touch: those of the look the plan came from (all carry the camp's tags).
fn ids_of(world: &World) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    ids.extend(world.vpcs.iter().map(|v| v.id.clone()));
    ids.extend(world.subnets.iter().map(|v| v.id.clone()));
    ids.extend(world.gateways.iter().map(|v| v.id.clone()));
    for t in &world.route_tables {
        ids.insert(t.id.clone());
        ids.extend(t.associations.iter().map(|(a, _)| a.clone()));
    }
    ids.extend(world.groups.iter().map(|v| v.id.clone()));
    ids.extend(world.volumes.iter().map(|v| v.id.clone()));
    ids.extend(world.instances.iter().map(|v| v.id.clone()));
    ids
}

/// Runs a `down` plan made from `world`; refuses any id that was not in it.
pub async fn down(
    cloud: &dyn Cloud,
    world: &World,
    plan: &DownPlan,
    out: &mut dyn Write,
    patience: Patience,
) -> Result<(), ProvisionError> {
    let ours = ids_of(world);
    let check = |id: &str| {
        if ours.contains(id) {
            Ok(id.to_string())
        } else {
            Err(ProvisionError::Conflict(format!(
                "{id} does not carry this camp's tags: refused"
            )))
        }
    };
    for step in &plan.steps {
        let change = match step {
            Removal::Terminate(nodes) => {
                let ids = nodes
                    .iter()
                    .map(|n| check(&n.id))
                    .collect::<Result<Vec<_>, _>>()?;
                cloud
                    .change(&Change::Terminate { ids: ids.clone() })
                    .await?;
                say(out, format_args!("terminating {}", ids.join(", ")));
                for id in &ids {
                    wait_node(
                        cloud,
                        id,
                        patience,
                        |n| n.state == "terminated",
                        "to terminate",
                    )
                    .await?;
                }
                say(out, "terminated");
                continue;
            }
            Removal::DeleteVolume(id) => {
                let id = check(id)?;
                wait_volume_free(cloud, &id, patience).await?;
                Change::DeleteVolume { id }
            }
            Removal::DeleteGroup(id) => Change::DeleteGroup { id: check(id)? },
            Removal::Disassociate { association, .. } => Change::Disassociate {
                association: check(association)?,
            },
            Removal::DeleteRouteTable(id) => Change::DeleteRouteTable { id: check(id)? },
            Removal::DetachGateway { gateway, vpc } => Change::DetachGateway {
                gateway: check(gateway)?,
                vpc: vpc.clone(),
            },
            Removal::DeleteGateway(id) => Change::DeleteGateway { id: check(id)? },
            Removal::DeleteSubnet(id) => Change::DeleteSubnet { id: check(id)? },
            Removal::DeleteVpc(id) => Change::DeleteVpc { id: check(id)? },
        };
        cloud.change(&change).await?;
        say(out, format_args!("removed: {step}"));
    }
    Ok(())
}

/// The notebook user of the images (jovyan), owner of every home.
pub const HOMES_UID: u32 = 1000;
pub const HOMES_GID: u32 = 100;

#[cfg(test)]
mod tests {
    //! The executor against an in-memory fake of [`Cloud`] (the real one is proven against
    //! moto in tests/api/provision.rs): ids made by one step reach the next, and the gates hold
    //! before any call.
    use std::sync::Mutex;

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::provision::plan;

    #[derive(Default)]
    struct Fake {
        calls: Mutex<Vec<String>>,
        next: Mutex<u32>,
    }

    impl Fake {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn record(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }
        fn id(&self, prefix: &str) -> String {
            let mut n = self.next.lock().unwrap();
            *n += 1;
            format!("{prefix}-{n}")
        }
    }

    fn node(id: &str, role: &str, state: &str) -> Node {
        Node {
            id: id.into(),
            role: role.into(),
            state: state.into(),
            private_ip: String::new(),
            public_ip: "192.0.2.1".into(),
            subnet_id: String::new(),
            tags: Default::default(),
        }
    }

    impl Cloud for Fake {
        fn look<'a>(&'a self, _: &'a CampName) -> BoxFuture<'a, Result<World, ProvisionError>> {
            Box::pin(async { unreachable!("the executor works from the plan's look") })
        }
        fn image<'a>(&'a self, _: Option<&'a str>) -> BoxFuture<'a, Result<Ami, ProvisionError>> {
            Box::pin(async { unreachable!() })
        }
        fn create<'a>(
            &'a self,
            what: &'a Creation,
            tags: &'a [(String, String)],
        ) -> BoxFuture<'a, Result<String, ProvisionError>> {
            Box::pin(async move {
                let id = self.id(match what {
                    Creation::Vpc { .. } => "vpc",
                    Creation::Subnet { .. } => "subnet",
                    Creation::Gateway => "igw",
                    Creation::RouteTable { .. } => "rtb",
                    Creation::Group { .. } => "sg",
                    Creation::Volume { .. } => "vol",
                });
                self.record(format!("create {what:?} {} -> {id}", tags[1].1));
                Ok(id)
            })
        }
        fn launch<'a>(
            &'a self,
            req: &'a NodeLaunch,
            _: &'a [(String, String)],
        ) -> BoxFuture<'a, Result<Node, ProvisionError>> {
            Box::pin(async move {
                let id = self.id("i");
                self.record(format!(
                    "launch {} in {} with {:?}",
                    req.role.tag(),
                    req.subnet,
                    req.groups
                ));
                Ok(node(&id, req.role.tag(), "pending"))
            })
        }
        fn change<'a>(&'a self, what: &'a Change) -> BoxFuture<'a, Result<(), ProvisionError>> {
            Box::pin(async move {
                self.record(format!("change {what:?}"));
                Ok(())
            })
        }
        fn nodes<'a>(
            &'a self,
            ids: &'a [String],
        ) -> BoxFuture<'a, Result<Vec<Node>, ProvisionError>> {
            // Everything has finished what it was doing by the time anyone looks.
            let done = self
                .calls()
                .iter()
                .any(|c| c.starts_with("change Terminate"));
            let state = if done { "terminated" } else { "running" };
            Box::pin(async move { Ok(ids.iter().map(|id| node(id, "nfs", state)).collect()) })
        }
        fn volumes<'a>(
            &'a self,
            ids: &'a [String],
        ) -> BoxFuture<'a, Result<Vec<Volume>, ProvisionError>> {
            Box::pin(async move {
                Ok(ids
                    .iter()
                    .map(|id| Volume {
                        id: id.clone(),
                        az: "us-east-1a".into(),
                        size_gb: 1,
                        state: "available".into(),
                        attached_to: None,
                        delete_on_termination: false,
                    })
                    .collect())
            })
        }
    }

    fn spec(binary: bool) -> CampSpec {
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
            homes_gb: 10,
            root_gb: 20,
            binary: binary.then(|| BinarySource::Git {
                url: "https://example.org/hubdesk.git".into(),
                rev: "main".into(),
            }),
            domain: None,
            email: None,
            notebook_image: "quay.io/jupyter/scipy-notebook:latest".into(),
            hub_image: "hubdesk/jupyterhub:6.1.1".into(),
        }
    }

    fn quick() -> Patience {
        Patience {
            every: Duration::from_millis(1),
            at_most: Duration::from_secs(5),
        }
    }

    fn world() -> World {
        World {
            zones: vec!["us-east-1a".into()],
            ..World::default()
        }
    }

    #[tokio::test]
    async fn provision_up_threads_new_ids_into_later_steps() {
        let fake = Fake::default();
        let s = spec(true);
        let p = plan::up(&world(), &s).unwrap();
        let camp = up(&fake, &s, "Summer", &p, &mut Vec::new(), quick())
            .await
            .unwrap();
        let calls = fake.calls();
        assert!(
            calls[0].starts_with("create Vpc") && calls[0].ends_with("-> vpc-1"),
            "{calls:?}"
        );
        assert!(
            calls
                .iter()
                .any(|c| c.starts_with("create Subnet { vpc: \"vpc-1\"")),
            "{calls:?}"
        );
        assert!(
            calls
                .iter()
                .any(|c| c == "change AttachGateway { gateway: \"igw-3\", vpc: \"vpc-1\" }"),
            "{calls:?}"
        );
        // The NFS node gets ssh + internal, the hub all three, by the ids just made.
        assert!(
            calls
                .iter()
                .any(|c| c == "launch nfs in subnet-2 with [\"sg-5\", \"sg-7\"]"),
            "{calls:?}"
        );
        assert!(
            calls
                .iter()
                .any(|c| c == "launch hub in subnet-2 with [\"sg-5\", \"sg-6\", \"sg-7\"]"),
            "{calls:?}"
        );
        let attach = calls
            .iter()
            .position(|c| c.starts_with("change AttachVolume"))
            .unwrap();
        assert!(
            calls[attach + 1].starts_with("change KeepOnTermination"),
            "{calls:?}"
        );
        assert_eq!(camp.volume, "vol-8");
        assert_eq!(calls.iter().filter(|c| c.contains("Authorize")).count(), 9);
    }

    #[tokio::test]
    async fn provision_up_without_a_hubdesk_binary_fails_before_any_call() {
        let fake = Fake::default();
        let s = spec(false);
        let p = plan::up(&world(), &s).unwrap();
        let err = up(&fake, &s, "Summer", &p, &mut Vec::new(), quick())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("--hubdesk-url"), "{err}");
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn provision_down_refuses_an_id_outside_its_look_before_any_call() {
        let fake = Fake::default();
        let mut w = world();
        w.vpcs.push(Vpc {
            id: "vpc-ours".into(),
            cidr: VPC_CIDR.into(),
        });
        let forged = DownPlan {
            steps: vec![
                Removal::DeleteVpc("vpc-ours".into()),
                Removal::DeleteVpc("vpc-theirs".into()),
            ],
            kept_volumes: Vec::new(),
        };
        // The first, ours, is removed; the second is refused, and nothing is called for it.
        let err = down(&fake, &w, &forged, &mut Vec::new(), quick())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ProvisionError::Conflict(m) if m.contains("vpc-theirs")),
            "{err}"
        );
        assert_eq!(fake.calls(), ["change DeleteVpc { id: \"vpc-ours\" }"]);
    }

    #[tokio::test]
    async fn provision_down_waits_for_termination_then_removes_in_order() {
        let fake = Fake::default();
        let mut w = world();
        w.instances.push(node("i-1", "hub", "running"));
        w.groups.push(Group {
            id: "sg-1".into(),
            vpc_id: "vpc-1".into(),
            role: Some(GroupRole::Ssh),
            rules: Default::default(),
        });
        w.vpcs.push(Vpc {
            id: "vpc-1".into(),
            cidr: VPC_CIDR.into(),
        });
        let p = plan::down(&w, false);
        down(&fake, &w, &p, &mut Vec::new(), quick()).await.unwrap();
        assert_eq!(
            fake.calls(),
            [
                "change Terminate { ids: [\"i-1\"] }",
                "change DeleteGroup { id: \"sg-1\" }",
                "change DeleteVpc { id: \"vpc-1\" }",
            ]
        );
    }
}
