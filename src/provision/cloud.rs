//! The EC2 calls of `hubdesk aws`, behind [`Cloud`]: one implementation over aws-sdk-ec2.
//!
//! `look` is the one describe pass a plan is computed from; it asks only for resources that carry
//! this camp's `hubdesk:camp` tag (and the cluster desk's workers of this camp), so nothing else
//! in the account can ever reach a plan, let alone a delete.
use std::collections::BTreeSet;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, EbsInstanceBlockDeviceSpecification, Filter,
    InstanceBlockDeviceMappingSpecification, IpPermission, IpRange, ResourceType, UserIdGroupPair,
    VolumeType,
};
use futures_util::future::BoxFuture;

use super::model::*;
use super::ProvisionError;
use crate::config::AwsConfig;
use crate::ec2::{self, filter, tags, Calls, Ec2, Ec2Error, InstanceProfile, Launch, RunInstances};

/// A resource to make; tags are set in the same call (no untagged moment to leak).
#[derive(Debug, Clone, PartialEq)]
pub enum Creation {
    Vpc {
        cidr: String,
    },
    Subnet {
        vpc: String,
        cidr: String,
        az: String,
    },
    Gateway,
    RouteTable {
        vpc: String,
    },
    Group {
        vpc: String,
        name: String,
        description: String,
    },
    Volume {
        az: String,
        size_gb: i32,
    },
}

/// A change to what exists, ids resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    EnablePublicIps {
        subnet: String,
    },
    EnableDnsHostnames {
        vpc: String,
    },
    AttachGateway {
        gateway: String,
        vpc: String,
    },
    DefaultRoute {
        table: String,
        gateway: String,
    },
    Associate {
        table: String,
        subnet: String,
    },
    Authorize {
        group: String,
        rules: Vec<Rule>,
    },
    Revoke {
        group: String,
        rules: Vec<Rule>,
    },
    AttachVolume {
        volume: String,
        instance: String,
        device: String,
    },
    /// The attached volume outlives the instance (`DeleteOnTermination=false`, said explicitly).
    KeepOnTermination {
        instance: String,
        device: String,
    },
    Terminate {
        ids: Vec<String>,
    },
    DeleteVolume {
        id: String,
    },
    DeleteGroup {
        id: String,
    },
    Disassociate {
        association: String,
    },
    DeleteRouteTable {
        id: String,
    },
    DetachGateway {
        gateway: String,
        vpc: String,
    },
    DeleteGateway {
        id: String,
    },
    DeleteSubnet {
        id: String,
    },
    DeleteVpc {
        id: String,
    },
}

/// One node to launch.
#[derive(Debug, Clone)]
pub struct NodeLaunch {
    pub role: NodeRole,
    pub ami: Ami,
    pub instance_type: String,
    pub subnet: String,
    pub private_ip: String,
    pub groups: Vec<String>,
    pub key_name: Option<String>,
    /// Only the hub node has one (the cluster desk's credentials); never the NFS node.
    pub instance_profile: Option<InstanceProfile>,
    pub root_gb: i32,
    /// The rendered boot script (bytes: it may be gzip); base64 is this module's business.
    pub user_data: Vec<u8>,
}

/// The EC2 side of `hubdesk aws`.
pub trait Cloud: Send + Sync {
    /// Everything of this camp, in one describe pass.
    fn look<'a>(&'a self, camp: &'a CampName) -> BoxFuture<'a, Result<World, ProvisionError>>;
    /// The AMI with this id, or (None) the newest Amazon Linux 2023 x86_64 image.
    fn image<'a>(&'a self, id: Option<&'a str>) -> BoxFuture<'a, Result<Ami, ProvisionError>>;
    /// Makes one resource tagged with `tags`; its id.
    fn create<'a>(
        &'a self,
        what: &'a Creation,
        tags: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<String, ProvisionError>>;
    /// Launches one node tagged with `tags`.
    fn launch<'a>(
        &'a self,
        req: &'a NodeLaunch,
        tags: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Node, ProvisionError>>;
    fn change<'a>(&'a self, what: &'a Change) -> BoxFuture<'a, Result<(), ProvisionError>>;
    /// Instances by id (for waiting on their state).
    fn nodes<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<Node>, ProvisionError>>;
    /// Volumes by id (for waiting on their state).
    fn volumes<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Volume>, ProvisionError>>;
}

/// [`Cloud`] over the EC2 API (through the `ec2` kit).
pub struct Ec2Cloud {
    ec2: Ec2,
}

impl Ec2Cloud {
    /// Region, endpoint and credentials from `[aws]` and the usual AWS chain (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, keys or profile). Makes no call.
    pub async fn connect(aws: &AwsConfig) -> Self {
        Self {
            ec2: ec2::connect(aws).await,
        }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            ec2: Ec2::from_sdk(sdk),
        }
    }

    /// The region the client speaks to (empty when none is configured).
    pub fn region(&self) -> String {
        self.ec2.region()
    }

    /// The operations sent so far (`plan` sends only `Describe…`).
    pub fn log(&self) -> Calls {
        self.ec2.calls()
    }

    /// A node's `RunInstances`: the kit's base (metadata options always set), at the node's
    /// fixed address in the camp's subnet, with its groups. The root volume carries the node's
    /// tags with the role `<role>-root`, so `down` never mistakes it for the homes volume.
    fn run_request(&self, req: &NodeLaunch, tags: &[(String, String)]) -> RunInstances {
        let mut root_tags = tags.to_vec();
        for (k, v) in &mut root_tags {
            if k == TAG_ROLE {
                *v = format!("{}-root", req.role.tag());
            }
        }
        let run = self
            .ec2
            .run_instances(&Launch {
                image_id: &req.ami.id,
                instance_type: &req.instance_type,
                count: 1,
                user_data: &req.user_data,
                root_device: &req.ami.root_device,
                root_gb: req.root_gb,
                instance_tags: tags,
                volume_tags: &root_tags,
                profile: req.instance_profile.as_ref(),
            })
            .subnet(&req.subnet)
            .private_ip(&req.private_ip)
            .security_groups(&req.groups);
        match &req.key_name {
            Some(k) => run.key_name(k),
            None => run,
        }
    }
}

fn camp_filter(camp: &CampName) -> Filter {
    filter(&format!("tag:{TAG_CAMP}"), &[camp.as_str()])
}

/// A single-port tcp/udp rule as ours; anything else (ranges, all traffic, IPv6) is not a rule
/// hubdesk makes, so it is neither compared nor revoked.
fn rules_of(perms: &[IpPermission]) -> BTreeSet<Rule> {
    let mut out = BTreeSet::new();
    for p in perms {
        let proto = match p.ip_protocol() {
            Some("tcp" | "6") => Proto::Tcp,
            Some("udp" | "17") => Proto::Udp,
            _ => continue,
        };
        let (Some(from), Some(to)) = (p.from_port(), p.to_port()) else {
            continue;
        };
        let Ok(port) = u16::try_from(from) else {
            continue;
        };
        if from != to {
            continue;
        }
        for r in p.ip_ranges() {
            if let Some(Ok(cidr)) = r.cidr_ip().map(str::parse::<Cidr>) {
                out.insert(Rule {
                    proto,
                    port,
                    source: Source::Cidr(cidr),
                });
            }
        }
        for g in p.user_id_group_pairs() {
            if let Some(id) = g.group_id() {
                out.insert(Rule {
                    proto,
                    port,
                    source: Source::Group(id.to_string()),
                });
            }
        }
    }
    out
}

fn permission(rule: &Rule, group: &str) -> IpPermission {
    let p = IpPermission::builder()
        .ip_protocol(rule.proto.as_str())
        .from_port(rule.port.into())
        .to_port(rule.port.into());
    match &rule.source {
        Source::Cidr(c) => p.ip_ranges(IpRange::builder().cidr_ip(c.to_string()).build()),
        Source::Group(g) => p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
        Source::Itself => p.user_id_group_pairs(UserIdGroupPair::builder().group_id(group).build()),
    }
    .build()
}

fn node_of(i: aws_sdk_ec2::types::Instance) -> Node {
    let tags = tags::of(i.tags.as_deref().unwrap_or_default());
    Node {
        id: i.instance_id.unwrap_or_default(),
        role: tags.get(TAG_ROLE).cloned().unwrap_or_default(),
        state: i
            .state
            .and_then(|s| s.name)
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        private_ip: i.private_ip_address.unwrap_or_default(),
        public_ip: i.public_ip_address.unwrap_or_default(),
        subnet_id: i.subnet_id.unwrap_or_default(),
        tags,
    }
}

fn volume_of(v: aws_sdk_ec2::types::Volume) -> Volume {
    let attachment = v.attachments().first();
    Volume {
        id: v.volume_id().unwrap_or_default().to_string(),
        az: v.availability_zone().unwrap_or_default().to_string(),
        size_gb: v.size().unwrap_or_default(),
        state: v
            .state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        attached_to: attachment
            .filter(|a| {
                !matches!(
                    a.state().map(|s| s.as_str()),
                    Some("detached") | Some("detaching")
                )
            })
            .and_then(|a| a.instance_id().map(str::to_string)),
        delete_on_termination: attachment
            .and_then(|a| a.delete_on_termination())
            .unwrap_or(false),
    }
}

impl Ec2Cloud {
    async fn instances(&self, filters: Vec<Filter>) -> Result<Vec<Node>, ProvisionError> {
        Ok(self
            .ec2
            .instances(filters)
            .await?
            .into_iter()
            .map(node_of)
            .collect())
    }
}

const LIVE: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down"];

impl Cloud for Ec2Cloud {
    fn look<'a>(&'a self, camp: &'a CampName) -> BoxFuture<'a, Result<World, ProvisionError>> {
        Box::pin(async move {
            let c = self.ec2.client();
            let mut world = World::default();
            let vpcs = c
                .describe_vpcs()
                .filters(camp_filter(camp))
                .send()
                .await
                .map_err(Ec2Error::from)?;
            world.vpcs = vpcs
                .vpcs()
                .iter()
                .map(|v| Vpc {
                    id: v.vpc_id().unwrap_or_default().into(),
                    cidr: v.cidr_block().unwrap_or_default().into(),
                })
                .collect();
            let subnets = c
                .describe_subnets()
                .filters(camp_filter(camp))
                .send()
                .await
                .map_err(Ec2Error::from)?;
            world.subnets = subnets
                .subnets()
                .iter()
                .map(|s| Subnet {
                    id: s.subnet_id().unwrap_or_default().into(),
                    vpc_id: s.vpc_id().unwrap_or_default().into(),
                    az: s.availability_zone().unwrap_or_default().into(),
                    cidr: s.cidr_block().unwrap_or_default().into(),
                    public_ips: s.map_public_ip_on_launch().unwrap_or(false),
                })
                .collect();
            let gateways = c
                .describe_internet_gateways()
                .filters(camp_filter(camp))
                .send()
                .await
                .map_err(Ec2Error::from)?;
            world.gateways = gateways
                .internet_gateways()
                .iter()
                .map(|g| Gateway {
                    id: g.internet_gateway_id().unwrap_or_default().into(),
                    attached_to: g
                        .attachments()
                        .iter()
                        .filter_map(|a| a.vpc_id().map(str::to_string))
                        .collect(),
                })
                .collect();
            let tables = c
                .describe_route_tables()
                .filters(camp_filter(camp))
                .send()
                .await
                .map_err(Ec2Error::from)?;
            world.route_tables = tables
                .route_tables()
                .iter()
                .map(|t| RouteTable {
                    id: t.route_table_id().unwrap_or_default().into(),
                    vpc_id: t.vpc_id().unwrap_or_default().into(),
                    associations: t
                        .associations()
                        .iter()
                        .filter(|a| !a.main().unwrap_or(false))
                        .filter_map(|a| {
                            Some((
                                a.route_table_association_id()?.to_string(),
                                a.subnet_id()?.to_string(),
                            ))
                        })
                        .collect(),
                    default_via: t
                        .routes()
                        .iter()
                        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
                        .and_then(|r| r.gateway_id().map(str::to_string)),
                })
                .collect();
            let groups = c
                .describe_security_groups()
                .filters(camp_filter(camp))
                .send()
                .await
                .map_err(Ec2Error::from)?;
            world.groups = groups
                .security_groups()
                .iter()
                .map(|g| {
                    let tags = tags::of(g.tags());
                    Group {
                        id: g.group_id().unwrap_or_default().into(),
                        vpc_id: g.vpc_id().unwrap_or_default().into(),
                        role: tags.get(TAG_ROLE).and_then(|r| GroupRole::from_tag(r)),
                        rules: rules_of(g.ip_permissions()),
                    }
                })
                .collect();
            let volumes = c
                .describe_volumes()
                .filters(camp_filter(camp))
                .filters(filter(&format!("tag:{TAG_ROLE}"), &["homes"]))
                .send()
                .await
                .map_err(Ec2Error::from)?;
            world.volumes = volumes
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(volume_of)
                .collect();
            let mut nodes = self
                .instances(vec![camp_filter(camp), filter("instance-state-name", LIVE)])
                .await?;
            let workers = self
                .instances(vec![
                    filter(&format!("tag:{TAG_CLUSTER}"), &[camp.as_str()]),
                    filter(&format!("tag:{TAG_ROLE}"), &["worker"]),
                    filter("instance-state-name", LIVE),
                ])
                .await?;
            for w in workers {
                if !nodes.iter().any(|n| n.id == w.id) {
                    nodes.push(w);
                }
            }
            world.instances = nodes;
            let zones = c
                .describe_availability_zones()
                .filters(filter("state", &["available"]))
                .send()
                .await
                .map_err(Ec2Error::from)?;
            world.zones = zones
                .availability_zones()
                .iter()
                .filter_map(|z| z.zone_name().map(str::to_string))
                .collect();
            world.zones.sort();
            Ok(world)
        })
    }

    fn image<'a>(&'a self, id: Option<&'a str>) -> BoxFuture<'a, Result<Ami, ProvisionError>> {
        Box::pin(async move {
            let req = self.ec2.client().describe_images();
            let req = match id {
                Some(id) => req.image_ids(id),
                None => req
                    .owners("amazon")
                    .filters(filter("name", &["al2023-ami-2023.*-x86_64"]))
                    .filters(filter("architecture", &["x86_64"]))
                    .filters(filter("state", &["available"])),
            };
            let out =
                req.send()
                    .await
                    .map_err(|e| match ProvisionError::from(Ec2Error::from(e)) {
                        ProvisionError::Ec2 { code, message }
                            if code.starts_with("InvalidAMIID") =>
                        {
                            ProvisionError::BadInput(format!(
                                "--ami {}: {message}",
                                id.unwrap_or("")
                            ))
                        }
                        other => other,
                    })?;
            let mut images = out.images.unwrap_or_default();
            images.sort_by(|a, b| b.creation_date().cmp(&a.creation_date()));
            let image = images.into_iter().next().ok_or_else(|| match id {
                Some(id) => {
                    ProvisionError::BadInput(format!("--ami {id}: no such image in this region"))
                }
                None => ProvisionError::BadInput(
                    "no Amazon Linux 2023 image found in this region: pass --ami ami-…".into(),
                ),
            })?;
            Ok(Ami {
                id: image.image_id().unwrap_or_default().into(),
                name: image.name().unwrap_or_default().into(),
                root_device: image.root_device_name().unwrap_or("/dev/xvda").into(),
            })
        })
    }

    fn create<'a>(
        &'a self,
        what: &'a Creation,
        tags: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<String, ProvisionError>> {
        Box::pin(async move {
            let c = self.ec2.client();
            let id = match what {
                Creation::Vpc { cidr } => c
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(tags::spec(ResourceType::Vpc, tags))
                    .send()
                    .await
                    .map_err(Ec2Error::from)?
                    .vpc
                    .and_then(|v| v.vpc_id),
                Creation::Subnet { vpc, cidr, az } => c
                    .create_subnet()
                    .vpc_id(vpc)
                    .cidr_block(cidr)
                    .availability_zone(az)
                    .tag_specifications(tags::spec(ResourceType::Subnet, tags))
                    .send()
                    .await
                    .map_err(Ec2Error::from)?
                    .subnet
                    .and_then(|s| s.subnet_id),
                Creation::Gateway => c
                    .create_internet_gateway()
                    .tag_specifications(tags::spec(ResourceType::InternetGateway, tags))
                    .send()
                    .await
                    .map_err(Ec2Error::from)?
                    .internet_gateway
                    .and_then(|g| g.internet_gateway_id),
                Creation::RouteTable { vpc } => c
                    .create_route_table()
                    .vpc_id(vpc)
                    .tag_specifications(tags::spec(ResourceType::RouteTable, tags))
                    .send()
                    .await
                    .map_err(Ec2Error::from)?
                    .route_table
                    .and_then(|t| t.route_table_id),
                Creation::Group {
                    vpc,
                    name,
                    description,
                } => {
                    c.create_security_group()
                        .vpc_id(vpc)
                        .group_name(name)
                        .description(description)
                        .tag_specifications(tags::spec(ResourceType::SecurityGroup, tags))
                        .send()
                        .await
                        .map_err(Ec2Error::from)?
                        .group_id
                }
                Creation::Volume { az, size_gb } => {
                    c.create_volume()
                        .availability_zone(az)
                        .size(*size_gb)
                        .volume_type(VolumeType::Gp3)
                        .encrypted(true)
                        .tag_specifications(tags::spec(ResourceType::Volume, tags))
                        .send()
                        .await
                        .map_err(Ec2Error::from)?
                        .volume_id
                }
            };
            id.ok_or_else(|| ProvisionError::Ec2 {
                code: "NoId".into(),
                message: format!("EC2 returned no id for {what:?}"),
            })
        })
    }

    fn launch<'a>(
        &'a self,
        req: &'a NodeLaunch,
        tags: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<Node, ProvisionError>> {
        Box::pin(async move {
            self.run_request(req, tags)
                .send()
                .await?
                .into_iter()
                .next()
                .map(node_of)
                .ok_or_else(|| ProvisionError::Ec2 {
                    code: "NoInstance".into(),
                    message: "RunInstances returned no instance".into(),
                })
        })
    }

    fn change<'a>(&'a self, what: &'a Change) -> BoxFuture<'a, Result<(), ProvisionError>> {
        Box::pin(async move {
            let c = self.ec2.client();
            let yes = || AttributeBooleanValue::builder().value(true).build();
            match what {
                Change::EnablePublicIps { subnet } => {
                    c.modify_subnet_attribute()
                        .subnet_id(subnet)
                        .map_public_ip_on_launch(yes())
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::EnableDnsHostnames { vpc } => {
                    c.modify_vpc_attribute()
                        .vpc_id(vpc)
                        .enable_dns_hostnames(yes())
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::AttachGateway { gateway, vpc } => {
                    c.attach_internet_gateway()
                        .internet_gateway_id(gateway)
                        .vpc_id(vpc)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::DefaultRoute { table, gateway } => {
                    let created = c
                        .create_route()
                        .route_table_id(table)
                        .destination_cidr_block("0.0.0.0/0")
                        .gateway_id(gateway)
                        .send()
                        .await;
                    match created.map_err(|e| ProvisionError::from(Ec2Error::from(e))) {
                        Ok(_) => {}
                        // A default route to somewhere else: point it at our gateway.
                        Err(ProvisionError::Ec2 { code, .. }) if code == "RouteAlreadyExists" => {
                            c.replace_route()
                                .route_table_id(table)
                                .destination_cidr_block("0.0.0.0/0")
                                .gateway_id(gateway)
                                .send()
                                .await
                                .map_err(Ec2Error::from)?;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Change::Associate { table, subnet } => {
                    c.associate_route_table()
                        .route_table_id(table)
                        .subnet_id(subnet)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::Authorize { group, rules } => {
                    c.authorize_security_group_ingress()
                        .group_id(group)
                        .set_ip_permissions(Some(
                            rules.iter().map(|r| permission(r, group)).collect(),
                        ))
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::Revoke { group, rules } => {
                    c.revoke_security_group_ingress()
                        .group_id(group)
                        .set_ip_permissions(Some(
                            rules.iter().map(|r| permission(r, group)).collect(),
                        ))
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::AttachVolume {
                    volume,
                    instance,
                    device,
                } => {
                    c.attach_volume()
                        .volume_id(volume)
                        .instance_id(instance)
                        .device(device)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::KeepOnTermination { instance, device } => {
                    c.modify_instance_attribute()
                        .instance_id(instance)
                        .block_device_mappings(
                            InstanceBlockDeviceMappingSpecification::builder()
                                .device_name(device)
                                .ebs(
                                    EbsInstanceBlockDeviceSpecification::builder()
                                        .delete_on_termination(false)
                                        .build(),
                                )
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::Terminate { ids } => {
                    c.terminate_instances()
                        .set_instance_ids(Some(ids.clone()))
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::DeleteVolume { id } => {
                    c.delete_volume()
                        .volume_id(id)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::DeleteGroup { id } => {
                    c.delete_security_group()
                        .group_id(id)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::Disassociate { association } => {
                    c.disassociate_route_table()
                        .association_id(association)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::DeleteRouteTable { id } => {
                    c.delete_route_table()
                        .route_table_id(id)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::DetachGateway { gateway, vpc } => {
                    c.detach_internet_gateway()
                        .internet_gateway_id(gateway)
                        .vpc_id(vpc)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::DeleteGateway { id } => {
                    c.delete_internet_gateway()
                        .internet_gateway_id(id)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::DeleteSubnet { id } => {
                    c.delete_subnet()
                        .subnet_id(id)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
                Change::DeleteVpc { id } => {
                    c.delete_vpc()
                        .vpc_id(id)
                        .send()
                        .await
                        .map_err(Ec2Error::from)?;
                }
            }
            Ok(())
        })
    }

    fn nodes<'a>(&'a self, ids: &'a [String]) -> BoxFuture<'a, Result<Vec<Node>, ProvisionError>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            self.instances(vec![filter(
                "instance-id",
                &ids.iter().map(String::as_str).collect::<Vec<_>>(),
            )])
            .await
        })
    }

    fn volumes<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Volume>, ProvisionError>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let out = self
                .ec2
                .client()
                .describe_volumes()
                .set_volume_ids(Some(ids.to_vec()))
                .send()
                .await
                .map_err(Ec2Error::from)?;
            Ok(out
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(volume_of)
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline() -> Ec2Cloud {
        Ec2Cloud::from_sdk(
            &aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build(),
        )
    }

    fn node(role: NodeRole, profile: Option<&str>) -> NodeLaunch {
        NodeLaunch {
            role,
            ami: Ami {
                id: "ami-1".into(),
                name: "al2023".into(),
                root_device: "/dev/xvda".into(),
            },
            instance_type: "t3.large".into(),
            subnet: "subnet-1".into(),
            private_ip: role.private_ip().into(),
            groups: vec!["sg-1".into()],
            key_name: None,
            instance_profile: profile.map(|p| InstanceProfile::parse(p).unwrap().unwrap()),
            root_gb: 30,
            user_data: b"#!/bin/sh\n".to_vec(),
        }
    }

    /// The request itself is the proof for the hop limit: moto records what it is sent but
    /// defaults the hop limit to 1 when it is left out (tests/api/ec2.rs checks the rest there).
    #[test]
    fn provision_nodes_launch_imdsv2_only_with_hop_limit_1() {
        let cloud = offline();
        let tags = [(TAG_ROLE.to_string(), "hub".to_string())];
        for (role, profile) in [(NodeRole::Hub, Some("camp-hub")), (NodeRole::Nfs, None)] {
            let run = cloud.run_request(&node(role, profile), &tags);
            // The kit's options (src/ec2/run.rs tests their values), unchanged.
            assert_eq!(
                run.input().get_metadata_options(),
                &Some(crate::ec2::metadata_options())
            );
            assert_eq!(
                run.input()
                    .get_iam_instance_profile()
                    .as_ref()
                    .and_then(|p| p.name()),
                profile
            );
            assert_eq!(
                run.input().get_private_ip_address().as_deref(),
                Some(role.private_ip())
            );
        }
    }
}
