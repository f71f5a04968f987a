//! The EC2 workers behind [`WorkerFleet`]: one implementation over aws-sdk-ec2 and a fake
//! (`super::fake`) for unit tests.
//!
//! Every instance hubdesk launches is tagged at creation (`hubdesk:cluster=<cluster.name>`,
//! `hubdesk:role=worker`, `hubdesk:launch=<job id>`, `Name`); hubdesk lists only those and
//! refuses, before any AWS call, to terminate anything else ([`check_ours`]).
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use aws_sdk_ec2::{
    config::{interceptors::BeforeSerializationInterceptorContextRef, ConfigBag, Intercept},
    error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError},
    types::{
        BlockDeviceMapping, EbsBlockDevice, Filter, IamInstanceProfileSpecification, Instance,
        InstanceType, ResourceType, Tag, TagSpecification, VolumeType,
    },
    Client,
};
use base64::Engine;
use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::{AwsConfig, ClusterConfig, WorkerConfig};

pub const TAG_CLUSTER: &str = "hubdesk:cluster";
pub const TAG_ROLE: &str = "hubdesk:role";
pub const TAG_LAUNCH: &str = "hubdesk:launch";

/// An EC2 instance as hubdesk shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetInstance {
    pub id: String,
    pub instance_type: String,
    pub az: String,
    pub private_ip: String,
    pub private_dns: String,
    /// `pending` | `running` | `shutting-down` | `terminated` | `stopping` | `stopped`
    pub state: String,
    /// RFC 3339.
    pub launch_time: String,
    pub tags: BTreeMap<String, String>,
}

impl FleetInstance {
    pub fn launch_id(&self) -> Option<&str> {
        self.tags.get(TAG_LAUNCH).map(String::as_str)
    }

    /// Carries this cluster's tag and the worker role.
    pub fn is_ours(&self, cluster: &str) -> bool {
        self.tags.get(TAG_CLUSTER).map(String::as_str) == Some(cluster)
            && self.tags.get(TAG_ROLE).map(String::as_str) == Some("worker")
    }

    /// Pending or running: it exists, or soon will.
    pub fn is_live(&self) -> bool {
        matches!(self.state.as_str(), "pending" | "running")
    }

    /// The hostname the instance gives itself on EC2 (`ip-10-0-1-23`).
    pub fn hostname(&self) -> String {
        if let Some(short) = self.private_dns.split('.').next().filter(|s| !s.is_empty()) {
            return short.to_string();
        }
        format!("ip-{}", self.private_ip.replace('.', "-"))
    }
}

/// Refuses an instance without this cluster's tags: the only gate before `TerminateInstances`.
pub fn check_ours(instance: &FleetInstance, cluster: &str) -> Result<(), FleetError> {
    if instance.is_ours(cluster) {
        Ok(())
    } else {
        Err(FleetError::NotOurs(instance.id.clone()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InstanceTypeInfo {
    pub vcpus: i32,
    pub memory_bytes: i64,
}

/// One `RunInstances`: `count` more workers of launch `launch_id`.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    pub count: u32,
    pub launch_id: String,
    /// Same token, same request: real EC2 returns the earlier reservation instead of launching
    /// again (moto ignores it; the launch job's own look-up is the real guard).
    pub client_token: String,
    /// The rendered boot script (plain text; base64 is the fleet's business).
    pub user_data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an AWS profile, \
         or give the hub node an instance role ({0})"
    )]
    NoCredentials(String),
    #[error(
        "AWS refused ({code}): {message}. hubdesk's IAM policy needs ec2:RunInstances, \
         ec2:CreateTags, ec2:DescribeInstances, ec2:DescribeInstanceTypes, ec2:DescribeImages, \
         ec2:TerminateInstances and iam:PassRole for the worker profile"
    )]
    AccessDenied { code: String, message: String },
    #[error("the worker AMI cannot be used: {0} (check [cluster.worker] ami and the region)")]
    InvalidAmi(String),
    #[error(
        "EC2 has no capacity for {instance_type} right now ({message}); try again later, or \
         another instance type or subnet"
    )]
    InsufficientCapacity {
        instance_type: String,
        message: String,
    },
    #[error("{0} was not launched by hubdesk (it lacks the hubdesk:cluster tag): refused")]
    NotOurs(String),
    #[error("no instance {0}")]
    NoSuchInstance(String),
    #[error("cannot reach EC2: {0}")]
    Unreachable(String),
    #[error("the worker template is incomplete: {0}")]
    Template(String),
    #[error("EC2 error {code}: {message}")]
    Ec2 { code: String, message: String },
}

impl FleetError {
    /// Worth another attempt later (a network problem, throttling, capacity).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::InsufficientCapacity { .. } => true,
            Self::Ec2 { code, .. } => {
                matches!(
                    code.as_str(),
                    "RequestLimitExceeded" | "InternalError" | "Unavailable"
                )
            }
            _ => false,
        }
    }
}

/// The EC2 side of the cluster.
pub trait WorkerFleet: Send + Sync + 'static {
    /// The `hubdesk:cluster` tag value this fleet manages.
    fn cluster(&self) -> &str;
    /// Launches up to `req.count` workers (EC2 may start fewer: a partial launch).
    fn launch<'a>(
        &'a self,
        req: &'a LaunchRequest,
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>>;
    /// The same request with `DryRun`: checks permissions, AMI and template, launches nothing.
    fn dry_run<'a>(&'a self, req: &'a LaunchRequest) -> BoxFuture<'a, Result<(), FleetError>>;
    /// Every instance with this cluster's tag that is not terminated (one call per 1000).
    fn instances(&self) -> BoxFuture<'_, Result<Vec<FleetInstance>, FleetError>>;
    /// Live (pending or running) instances of one launch.
    fn launched_by<'a>(
        &'a self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>>;
    /// Instances by id, whatever their tags.
    fn describe<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>>;
    /// Terminates one instance; refuses one without this cluster's tags before any call.
    fn terminate<'a>(
        &'a self,
        instance: &'a FleetInstance,
    ) -> BoxFuture<'a, Result<(), FleetError>>;
    /// vCPUs and memory per instance type (one call for all of them).
    fn instance_types<'a>(
        &'a self,
        types: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, InstanceTypeInfo>, FleetError>>;
}

/// Counts the operations a client sends (retries of one operation count once), in total and
/// for the operations that change or cost something.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    total: Arc<AtomicUsize>,
    by_op: Arc<std::sync::Mutex<BTreeMap<&'static str, usize>>>,
}

impl CallCounter {
    pub fn get(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Calls of one operation: `RunInstances`, `TerminateInstances`, `DescribeInstances`,
    /// `DescribeInstanceTypes`, `DescribeImages`.
    pub fn of(&self, op: &str) -> usize {
        let map = self
            .by_op
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(op).copied().unwrap_or(0)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "hubdesk-call-counter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.total.fetch_add(1, Ordering::SeqCst);
        use aws_sdk_ec2::operation::{
            describe_images::DescribeImagesInput,
            describe_instance_types::DescribeInstanceTypesInput,
            describe_instances::DescribeInstancesInput, run_instances::RunInstancesInput,
            terminate_instances::TerminateInstancesInput,
        };
        let input = context.input();
        let op = if input.downcast_ref::<RunInstancesInput>().is_some() {
            "RunInstances"
        } else if input.downcast_ref::<TerminateInstancesInput>().is_some() {
            "TerminateInstances"
        } else if input.downcast_ref::<DescribeInstancesInput>().is_some() {
            "DescribeInstances"
        } else if input.downcast_ref::<DescribeInstanceTypesInput>().is_some() {
            "DescribeInstanceTypes"
        } else if input.downcast_ref::<DescribeImagesInput>().is_some() {
            "DescribeImages"
        } else {
            "other"
        };
        let mut map = self
            .by_op
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(op).or_default() += 1;
        Ok(())
    }
}

/// [`WorkerFleet`] over the EC2 API.
pub struct Ec2Fleet {
    client: Client,
    cluster: String,
    worker: WorkerConfig,
    calls: CallCounter,
}

impl Ec2Fleet {
    /// An EC2 client from `[aws]` (region, endpoint) and the usual credential chain: environment,
    /// profile, then (unless `AWS_EC2_METADATA_DISABLED=true`) the instance role. Makes no call.
    pub async fn connect(aws: &AwsConfig, cluster: &ClusterConfig) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if !aws.region.is_empty() {
            loader = loader.region(aws_config::Region::new(aws.region.clone()));
        }
        if !aws.endpoint_url.is_empty() {
            loader = loader.endpoint_url(aws.endpoint_url.clone());
        }
        let sdk = loader.load().await;
        Self::from_sdk(&sdk, cluster)
    }

    /// From a loaded SDK configuration (tests pass explicit credentials, or none).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, cluster: &ClusterConfig) -> Self {
        let calls = CallCounter::default();
        let conf = aws_sdk_ec2::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        Self {
            client: Client::from_conf(conf),
            cluster: cluster.name.clone(),
            worker: cluster.worker.clone(),
            calls,
        }
    }

    /// Operations sent so far by this fleet.
    pub fn calls(&self) -> usize {
        self.calls.get()
    }

    pub fn counter(&self) -> CallCounter {
        self.calls.clone()
    }

    fn filter(name: &str, values: &[&str]) -> Filter {
        let mut f = Filter::builder().name(name);
        for v in values {
            f = f.values(*v);
        }
        f.build()
    }

    async fn describe_filtered(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<FleetInstance>, FleetError> {
        let pages: Vec<_> = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(1000)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(classify)?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.reservations.unwrap_or_default())
            .flat_map(|r| r.instances.unwrap_or_default())
            .map(view)
            .collect())
    }

    fn run_request(
        &self,
        req: &LaunchRequest,
        root_device: String,
    ) -> Result<
        aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder,
        FleetError,
    > {
        let w = &self.worker;
        if w.ami.is_empty() {
            return Err(FleetError::Template(
                "[cluster.worker] ami is not set".into(),
            ));
        }
        let mut tags = vec![
            tag(TAG_CLUSTER, &self.cluster),
            tag(TAG_ROLE, "worker"),
            tag(TAG_LAUNCH, &req.launch_id),
            tag("Name", &format!("{}-worker", self.cluster)),
        ];
        tags.extend(w.tags.iter().map(|(k, v)| tag(k, v)));
        let spec = |kind| {
            TagSpecification::builder()
                .resource_type(kind)
                .set_tags(Some(tags.clone()))
                .build()
        };
        let mut run = self
            .client
            .run_instances()
            .image_id(&w.ami)
            .instance_type(InstanceType::from(w.instance_type.as_str()))
            .min_count(1)
            .max_count(req.count as i32)
            .client_token(&req.client_token)
            .user_data(base64::engine::general_purpose::STANDARD.encode(&req.user_data))
            .tag_specifications(spec(ResourceType::Instance))
            .tag_specifications(spec(ResourceType::Volume))
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(root_device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(w.root_volume_gb as i32)
                            .volume_type(VolumeType::Gp3)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            );
        if !w.subnet_id.is_empty() {
            run = run.subnet_id(&w.subnet_id);
        }
        if !w.security_group_ids.is_empty() {
            run = run.set_security_group_ids(Some(w.security_group_ids.clone()));
        }
        if !w.key_name.is_empty() {
            run = run.key_name(&w.key_name);
        }
        if !w.instance_profile.is_empty() {
            let p = IamInstanceProfileSpecification::builder();
            let p = if w.instance_profile.starts_with("arn:") {
                p.arn(&w.instance_profile)
            } else {
                p.name(&w.instance_profile)
            };
            run = run.iam_instance_profile(p.build());
        }
        Ok(run)
    }

    /// The AMI's root device (`/dev/xvda` on Amazon Linux, `/dev/sda1` on Ubuntu), so the root
    /// volume gets `root_volume_gb`; an AMI that does not exist fails here, plainly.
    async fn root_device(&self) -> Result<String, FleetError> {
        let out = self
            .client
            .describe_images()
            .image_ids(&self.worker.ami)
            .send()
            .await
            .map_err(classify)?;
        let image = out
            .images
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| FleetError::InvalidAmi(format!("{} not found", self.worker.ami)))?;
        Ok(image.root_device_name.unwrap_or_else(|| "/dev/xvda".into()))
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn view(i: Instance) -> FleetInstance {
    FleetInstance {
        id: i.instance_id.unwrap_or_default(),
        instance_type: i
            .instance_type
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        az: i
            .placement
            .and_then(|p| p.availability_zone)
            .unwrap_or_default(),
        private_ip: i.private_ip_address.unwrap_or_default(),
        private_dns: i.private_dns_name.unwrap_or_default(),
        state: i
            .state
            .and_then(|s| s.name)
            .map(|n| n.as_str().to_string())
            .unwrap_or_default(),
        launch_time: i
            .launch_time
            .and_then(|t| {
                t.fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime)
                    .ok()
            })
            .unwrap_or_default(),
        tags: i
            .tags
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| Some((t.key?, t.value.unwrap_or_default())))
            .collect(),
    }
}

/// The AWS error codes that mean "these credentials may not do that" (or are not valid at all).
/// The cluster desk and `hubdesk aws` both turn them into their AccessDenied error.
pub const ACCESS_DENIED_CODES: &[&str] = &[
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

/// An SDK error as one of ours, by the service's error code (never by message text).
fn classify<E, R>(e: SdkError<E, R>) -> FleetError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::ServiceError(se) = &e {
        let code = se.err().code().unwrap_or("Unknown").to_string();
        let message = se.err().message().unwrap_or_default().to_string();
        return match code.as_str() {
            c if ACCESS_DENIED_CODES.contains(&c) => FleetError::AccessDenied { code, message },
            c if c.starts_with("InvalidAMIID") => FleetError::InvalidAmi(message),
            "InsufficientInstanceCapacity" => FleetError::InsufficientCapacity {
                instance_type: String::new(),
                message,
            },
            c if c.starts_with("InvalidInstanceID") => FleetError::NoSuchInstance(message),
            _ => FleetError::Ec2 { code, message },
        };
    }
    let text = DisplayErrorContext(&e).to_string();
    if matches!(
        e,
        SdkError::ConstructionFailure(_) | SdkError::DispatchFailure(_)
    ) && (text.contains("credentials") || text.contains("Credentials"))
    {
        return FleetError::NoCredentials(first_line(&text));
    }
    FleetError::Unreachable(first_line(&text))
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(400)
        .collect()
}

impl WorkerFleet for Ec2Fleet {
    fn cluster(&self) -> &str {
        &self.cluster
    }

    fn launch<'a>(
        &'a self,
        req: &'a LaunchRequest,
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(async move {
            if req.count == 0 {
                return Ok(Vec::new());
            }
            let root = self.root_device().await?;
            let out = self
                .run_request(req, root)?
                .send()
                .await
                .map_err(|e| match classify(e) {
                    FleetError::InsufficientCapacity { message, .. } => {
                        FleetError::InsufficientCapacity {
                            instance_type: self.worker.instance_type.clone(),
                            message,
                        }
                    }
                    other => other,
                })?;
            Ok(out
                .instances
                .unwrap_or_default()
                .into_iter()
                .map(view)
                .collect())
        })
    }

    fn dry_run<'a>(&'a self, req: &'a LaunchRequest) -> BoxFuture<'a, Result<(), FleetError>> {
        Box::pin(async move {
            let root = self.root_device().await?;
            match self.run_request(req, root)?.dry_run(true).send().await {
                Ok(_) => Ok(()),
                Err(e) => match classify(e) {
                    FleetError::Ec2 { code, .. } if code == "DryRunOperation" => Ok(()),
                    other => Err(other),
                },
            }
        })
    }

    fn instances(&self) -> BoxFuture<'_, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(async move {
            self.describe_filtered(vec![
                Self::filter(&format!("tag:{TAG_CLUSTER}"), &[&self.cluster]),
                Self::filter(
                    "instance-state-name",
                    &["pending", "running", "shutting-down", "stopping", "stopped"],
                ),
            ])
            .await
        })
    }

    fn launched_by<'a>(
        &'a self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(async move {
            self.describe_filtered(vec![
                Self::filter(&format!("tag:{TAG_CLUSTER}"), &[&self.cluster]),
                Self::filter(&format!("tag:{TAG_LAUNCH}"), &[launch_id]),
                Self::filter("instance-state-name", &["pending", "running"]),
            ])
            .await
        })
    }

    fn describe<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .send()
                .await
                .map_err(classify)?;
            Ok(out
                .reservations
                .unwrap_or_default()
                .into_iter()
                .flat_map(|r| r.instances.unwrap_or_default())
                .map(view)
                .collect())
        })
    }

    fn terminate<'a>(
        &'a self,
        instance: &'a FleetInstance,
    ) -> BoxFuture<'a, Result<(), FleetError>> {
        Box::pin(async move {
            check_ours(instance, &self.cluster)?;
            self.client
                .terminate_instances()
                .instance_ids(&instance.id)
                .send()
                .await
                .map_err(classify)?;
            Ok(())
        })
    }

    fn instance_types<'a>(
        &'a self,
        types: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, InstanceTypeInfo>, FleetError>> {
        Box::pin(async move {
            if types.is_empty() {
                return Ok(HashMap::new());
            }
            let out = self
                .client
                .describe_instance_types()
                .set_instance_types(Some(
                    types
                        .iter()
                        .map(|t| InstanceType::from(t.as_str()))
                        .collect(),
                ))
                .send()
                .await
                .map_err(classify)?;
            Ok(out
                .instance_types
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| {
                    let name = t.instance_type?.as_str().to_string();
                    let info = InstanceTypeInfo {
                        vcpus: t
                            .v_cpu_info
                            .and_then(|v| v.default_v_cpus)
                            .unwrap_or_default(),
                        memory_bytes: t
                            .memory_info
                            .and_then(|m| m.size_in_mib)
                            .unwrap_or_default()
                            * 1024
                            * 1024,
                    };
                    Some((name, info))
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(tags: &[(&str, &str)]) -> FleetInstance {
        FleetInstance {
            id: "i-1".into(),
            instance_type: "t3.large".into(),
            az: "us-east-1a".into(),
            private_ip: "10.0.1.23".into(),
            private_dns: String::new(),
            state: "running".into(),
            launch_time: String::new(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn cluster_terminate_gate_needs_both_tags_of_this_cluster() {
        let ours = instance(&[(TAG_CLUSTER, "camp"), (TAG_ROLE, "worker")]);
        assert!(check_ours(&ours, "camp").is_ok());
        assert_eq!(
            check_ours(&ours, "other"),
            Err(FleetError::NotOurs("i-1".into()))
        );
        assert!(check_ours(&instance(&[(TAG_CLUSTER, "camp")]), "camp").is_err());
        assert!(check_ours(&instance(&[]), "camp").is_err());
    }

    #[test]
    fn cluster_instance_hostname_is_the_ec2_short_name() {
        let mut i = instance(&[]);
        assert_eq!(i.hostname(), "ip-10-0-1-23");
        i.private_dns = "ip-10-0-1-99.ec2.internal".into();
        assert_eq!(i.hostname(), "ip-10-0-1-99");
    }
}
