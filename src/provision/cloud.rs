//! The EC2 calls of `hubdesk aws`, behind [`Cloud`]: one implementation over aws-sdk-ec2.
//!
//! `look` is the one describe pass a plan is computed from; it asks only for resources that carry
//! this camp's `hubdesk:camp` tag (and the cluster desk's workers of this camp), so nothing else
//! in the account can ever reach a plan, let alone a delete.
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use aws_sdk_ec2::{
    config::{interceptors::BeforeSerializationInterceptorContextRef, ConfigBag, Intercept},
    error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::{
        AttributeBooleanValue, BlockDeviceMapping, EbsBlockDevice,
        EbsInstanceBlockDeviceSpecification, Filter, HttpTokensState,
        IamInstanceProfileSpecification, InstanceBlockDeviceMappingSpecification,
        InstanceMetadataOptionsRequest, InstanceType, IpPermission, IpRange, ResourceType, Tag,
        TagSpecification, UserIdGroupPair, VolumeType,
    },
    Client,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use base64::Engine;
use futures_util::future::BoxFuture;

use super::model::*;
use super::ProvisionError;

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
    pub instance_profile: Option<String>,
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

/// The names of the EC2 operations a client sent, in order (retries of one operation once).
#[derive(Debug, Clone, Default)]
pub struct OpLog(Arc<Mutex<Vec<String>>>);

impl OpLog {
    pub fn ops(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every operation that is not a `Describe…` (a read).
    pub fn mutating(&self) -> Vec<String> {
        self.ops()
            .into_iter()
            .filter(|op| !op.starts_with("Describe"))
            .collect()
    }
}

impl Intercept for OpLog {
    fn name(&self) -> &'static str {
        "hubdesk-provision-op-log"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The operation's name from its metadata; where a client's bag does not hold it, from
        // the input's type (`DescribeVpcsInput { … }` in its derived Debug).
        let name = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_else(|| {
                let debug = format!("{:?}", context.input());
                let ty = debug.split_once("]:").map_or(debug.as_str(), |(_, t)| t);
                let ty = ty.split([' ', '{']).next().unwrap_or_default();
                ty.strip_suffix("Input").unwrap_or("unknown").to_string()
            });
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name);
        Ok(())
    }
}

/// [`Cloud`] over the EC2 API.
pub struct Ec2Cloud {
    client: Client,
    log: OpLog,
}

impl Ec2Cloud {
    /// Region, endpoint and credentials from the usual AWS chain (`AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, keys or profile); `region`/`endpoint` override when not empty.
    /// Makes no call.
    pub async fn connect(region: &str, endpoint: &str) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if !region.is_empty() {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        if !endpoint.is_empty() {
            loader = loader.endpoint_url(endpoint);
        }
        Self::from_sdk(&loader.load().await)
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        let log = OpLog::default();
        let conf = aws_sdk_ec2::config::Builder::from(sdk)
            .interceptor(log.clone())
            .build();
        Self {
            client: Client::from_conf(conf),
            log,
        }
    }

    /// The region the client speaks to (empty when none is configured).
    pub fn region(&self) -> String {
        self.client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }

    pub fn log(&self) -> OpLog {
        self.log.clone()
    }
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

fn camp_filter(camp: &CampName) -> Filter {
    filter(&format!("tag:{TAG_CAMP}"), &[camp.as_str()])
}

fn tags_of(tags: Option<&[Tag]>) -> BTreeMap<String, String> {
    tags.unwrap_or_default()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn spec(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

/// An SDK error as one of ours, by the service's error code (never by message text).
fn classify<E, R>(e: SdkError<E, R>) -> ProvisionError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(se) = &e {
        let code = se.err().code().unwrap_or("Unknown").to_string();
        let message = se.err().message().unwrap_or_default().to_string();
        return match code.as_str() {
            c if crate::cluster::fleet::ACCESS_DENIED_CODES.contains(&c) => {
                ProvisionError::AccessDenied { code, message }
            }
            _ => ProvisionError::Ec2 { code, message },
        };
    }
    let text = DisplayErrorContext(&e).to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(400)
        .collect();
    if matches!(
        e,
        SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_)
    ) && text.to_ascii_lowercase().contains("credentials")
    {
        return ProvisionError::NoCredentials(first);
    }
    ProvisionError::Unreachable(first)
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
    let tags = tags_of(i.tags.as_deref());
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
        let pages: Vec<_> = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(classify)?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.reservations.unwrap_or_default())
            .flat_map(|r| r.instances.unwrap_or_default())
            .map(node_of)
            .collect())
    }
}

const LIVE: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down"];

impl Cloud for Ec2Cloud {
    fn look<'a>(&'a self, camp: &'a CampName) -> BoxFuture<'a, Result<World, ProvisionError>> {
        Box::pin(async move {
            let c = &self.client;
            let mut world = World::default();
            let vpcs = c
                .describe_vpcs()
                .filters(camp_filter(camp))
                .send()
                .await
                .map_err(classify)?;
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
                .map_err(classify)?;
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
                .map_err(classify)?;
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
                .map_err(classify)?;
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
                .map_err(classify)?;
            world.groups = groups
                .security_groups()
                .iter()
                .map(|g| {
                    let tags = tags_of(Some(g.tags()));
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
                .map_err(classify)?;
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
                .map_err(classify)?;
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
            let req = self.client.describe_images();
            let req = match id {
                Some(id) => req.image_ids(id),
                None => req
                    .owners("amazon")
                    .filters(filter("name", &["al2023-ami-2023.*-x86_64"]))
                    .filters(filter("architecture", &["x86_64"]))
                    .filters(filter("state", &["available"])),
            };
            let out = req.send().await.map_err(|e| match classify(e) {
                ProvisionError::Ec2 { code, message } if code.starts_with("InvalidAMIID") => {
                    ProvisionError::BadInput(format!("--ami {}: {message}", id.unwrap_or("")))
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
            let c = &self.client;
            let id = match what {
                Creation::Vpc { cidr } => c
                    .create_vpc()
                    .cidr_block(cidr)
                    .tag_specifications(spec(ResourceType::Vpc, tags))
                    .send()
                    .await
                    .map_err(classify)?
                    .vpc
                    .and_then(|v| v.vpc_id),
                Creation::Subnet { vpc, cidr, az } => c
                    .create_subnet()
                    .vpc_id(vpc)
                    .cidr_block(cidr)
                    .availability_zone(az)
                    .tag_specifications(spec(ResourceType::Subnet, tags))
                    .send()
                    .await
                    .map_err(classify)?
                    .subnet
                    .and_then(|s| s.subnet_id),
                Creation::Gateway => c
                    .create_internet_gateway()
                    .tag_specifications(spec(ResourceType::InternetGateway, tags))
                    .send()
                    .await
                    .map_err(classify)?
                    .internet_gateway
                    .and_then(|g| g.internet_gateway_id),
                Creation::RouteTable { vpc } => c
                    .create_route_table()
                    .vpc_id(vpc)
                    .tag_specifications(spec(ResourceType::RouteTable, tags))
                    .send()
                    .await
                    .map_err(classify)?
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
                        .tag_specifications(spec(ResourceType::SecurityGroup, tags))
                        .send()
                        .await
                        .map_err(classify)?
                        .group_id
                }
                Creation::Volume { az, size_gb } => {
                    c.create_volume()
                        .availability_zone(az)
                        .size(*size_gb)
                        .volume_type(VolumeType::Gp3)
                        .encrypted(true)
                        .tag_specifications(spec(ResourceType::Volume, tags))
                        .send()
                        .await
                        .map_err(classify)?
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
            let mut root_tags = tags.to_vec();
            for (k, v) in &mut root_tags {
                if k == TAG_ROLE {
                    *v = format!("{}-root", req.role.tag());
                }
            }
            let mut run = self
                .client
                .run_instances()
                .image_id(&req.ami.id)
                .instance_type(InstanceType::from(req.instance_type.as_str()))
                .min_count(1)
                .max_count(1)
                .subnet_id(&req.subnet)
                .private_ip_address(&req.private_ip)
                .set_security_group_ids(Some(req.groups.clone()))
                .user_data(base64::engine::general_purpose::STANDARD.encode(&req.user_data))
                // IMDSv2 only: a token is needed to read the instance's metadata and role.
                .metadata_options(
                    InstanceMetadataOptionsRequest::builder()
                        .http_tokens(HttpTokensState::Required)
                        .build(),
                )
                .tag_specifications(spec(ResourceType::Instance, tags))
                .tag_specifications(spec(ResourceType::Volume, &root_tags))
                .block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name(&req.ami.root_device)
                        .ebs(
                            EbsBlockDevice::builder()
                                .volume_size(req.root_gb)
                                .volume_type(VolumeType::Gp3)
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                );
            if let Some(k) = &req.key_name {
                run = run.key_name(k);
            }
            if let Some(p) = &req.instance_profile {
                let spec = IamInstanceProfileSpecification::builder();
                let spec = if p.starts_with("arn:") {
                    spec.arn(p)
                } else {
                    spec.name(p)
                };
                run = run.iam_instance_profile(spec.build());
            }
            let out = run.send().await.map_err(classify)?;
            out.instances
                .unwrap_or_default()
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
            let c = &self.client;
            let yes = || AttributeBooleanValue::builder().value(true).build();
            match what {
                Change::EnablePublicIps { subnet } => {
                    c.modify_subnet_attribute()
                        .subnet_id(subnet)
                        .map_public_ip_on_launch(yes())
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::EnableDnsHostnames { vpc } => {
                    c.modify_vpc_attribute()
                        .vpc_id(vpc)
                        .enable_dns_hostnames(yes())
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::AttachGateway { gateway, vpc } => {
                    c.attach_internet_gateway()
                        .internet_gateway_id(gateway)
                        .vpc_id(vpc)
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::DefaultRoute { table, gateway } => {
                    let created = c
                        .create_route()
                        .route_table_id(table)
                        .destination_cidr_block("0.0.0.0/0")
                        .gateway_id(gateway)
                        .send()
                        .await;
                    match created.map_err(classify) {
                        Ok(_) => {}
                        // A default route to somewhere else: point it at our gateway.
                        Err(ProvisionError::Ec2 { code, .. }) if code == "RouteAlreadyExists" => {
                            c.replace_route()
                                .route_table_id(table)
                                .destination_cidr_block("0.0.0.0/0")
                                .gateway_id(gateway)
                                .send()
                                .await
                                .map_err(classify)?;
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
                        .map_err(classify)?;
                }
                Change::Authorize { group, rules } => {
                    c.authorize_security_group_ingress()
                        .group_id(group)
                        .set_ip_permissions(Some(
                            rules.iter().map(|r| permission(r, group)).collect(),
                        ))
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::Revoke { group, rules } => {
                    c.revoke_security_group_ingress()
                        .group_id(group)
                        .set_ip_permissions(Some(
                            rules.iter().map(|r| permission(r, group)).collect(),
                        ))
                        .send()
                        .await
                        .map_err(classify)?;
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
                        .map_err(classify)?;
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
                        .map_err(classify)?;
                }
                Change::Terminate { ids } => {
                    c.terminate_instances()
                        .set_instance_ids(Some(ids.clone()))
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::DeleteVolume { id } => {
                    c.delete_volume()
                        .volume_id(id)
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::DeleteGroup { id } => {
                    c.delete_security_group()
                        .group_id(id)
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::Disassociate { association } => {
                    c.disassociate_route_table()
                        .association_id(association)
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::DeleteRouteTable { id } => {
                    c.delete_route_table()
                        .route_table_id(id)
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::DetachGateway { gateway, vpc } => {
                    c.detach_internet_gateway()
                        .internet_gateway_id(gateway)
                        .vpc_id(vpc)
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::DeleteGateway { id } => {
                    c.delete_internet_gateway()
                        .internet_gateway_id(id)
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::DeleteSubnet { id } => {
                    c.delete_subnet()
                        .subnet_id(id)
                        .send()
                        .await
                        .map_err(classify)?;
                }
                Change::DeleteVpc { id } => {
                    c.delete_vpc().vpc_id(id).send().await.map_err(classify)?;
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
                .client
                .describe_volumes()
                .set_volume_ids(Some(ids.to_vec()))
                .send()
                .await
                .map_err(classify)?;
            Ok(out
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(volume_of)
                .collect())
        })
    }
}
