//! The EC2 workers behind [`WorkerFleet`]: one implementation over aws-sdk-ec2 and a fake
//! (`super::fake`) for unit tests.
//!
//! Every instance hubdesk launches is tagged at creation (`hubdesk:cluster=<cluster.name>`,
//! `hubdesk:role=worker`, `hubdesk:launch=<job id>`, `Name`); hubdesk lists only those and
//! refuses, before any AWS call, to terminate anything else ([`check_ours`]).
use std::collections::{BTreeMap, HashMap};

use aws_sdk_ec2::types::{Instance, InstanceType};
use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::config::{AwsConfig, ClusterConfig, WorkerConfig};
use crate::ec2::{self, filter, Calls, Ec2, Ec2Error, InstanceProfile, Launch, RunInstances};

pub use crate::ec2::{TAG_CLUSTER, TAG_LAUNCH, TAG_ROLE};

/// An EC2 instance's state (`State.Name`), parsed once where EC2 answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
    /// A state this version does not know (EC2 adds words rarely, but it may).
    Unknown,
}

impl InstanceState {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            _ => Self::Unknown,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Unknown => "unknown",
        }
    }

    /// Pending or running: it exists (and bills), or soon will.
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }

    /// Shutting down or terminated: on its way out for good.
    pub fn is_ending(self) -> bool {
        matches!(self, Self::ShuttingDown | Self::Terminated)
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An EC2 instance as hubdesk shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetInstance {
    pub id: String,
    pub instance_type: String,
    pub az: String,
    pub private_ip: String,
    pub private_dns: String,
    pub state: InstanceState,
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
        self.state.is_live()
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
        "AWS refused ({code}): {message}. Give hubdesk's credentials (the hub node's instance \
         role) the policy in deploy/iam-policy.json: ec2:RunInstances and ec2:CreateTags only \
         with the hubdesk:cluster tag, ec2:TerminateInstances only on instances that carry it, \
         ec2:DescribeInstances, ec2:DescribeInstanceTypes, ec2:DescribeImages, and \
         iam:PassRole for the workers' own role when [cluster.worker] instance_profile is set"
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

impl From<Ec2Error> for FleetError {
    fn from(e: Ec2Error) -> Self {
        match e {
            Ec2Error::NoCredentials(m) => Self::NoCredentials(m),
            Ec2Error::AccessDenied { code, message } => Self::AccessDenied { code, message },
            Ec2Error::Unreachable(m) => Self::Unreachable(m),
            Ec2Error::Service { code, message } => match code.as_str() {
                c if c.starts_with("InvalidAMIID") => Self::InvalidAmi(message),
                // The instance type is the fleet's to fill in (`Ec2Fleet::launch`).
                "InsufficientInstanceCapacity" => Self::InsufficientCapacity {
                    instance_type: String::new(),
                    message,
                },
                c if c.starts_with("InvalidInstanceID") => Self::NoSuchInstance(message),
                _ => Self::Ec2 { code, message },
            },
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

/// [`WorkerFleet`] over the EC2 API (through the `ec2` kit).
pub struct Ec2Fleet {
    ec2: Ec2,
    cluster: String,
    worker: WorkerConfig,
}

impl Ec2Fleet {
    /// An EC2 client from `[aws]` and the usual credential chain ([`ec2::connect`]). Makes no
    /// call.
    pub async fn connect(aws: &AwsConfig, cluster: &ClusterConfig) -> Self {
        Self::on(ec2::connect(aws).await, cluster)
    }

    /// From a loaded SDK configuration (tests pass explicit credentials, or none).
    pub fn from_sdk(sdk: &aws_config::SdkConfig, cluster: &ClusterConfig) -> Self {
        Self::on(Ec2::from_sdk(sdk), cluster)
    }

    fn on(ec2: Ec2, cluster: &ClusterConfig) -> Self {
        Self {
            ec2,
            cluster: cluster.name.clone(),
            worker: cluster.worker.clone(),
        }
    }

    /// Operations sent so far by this fleet.
    pub fn calls(&self) -> usize {
        self.ec2.calls().get()
    }

    pub fn counter(&self) -> Calls {
        self.ec2.calls()
    }

    async fn describe_filtered(
        &self,
        filters: Vec<aws_sdk_ec2::types::Filter>,
    ) -> Result<Vec<FleetInstance>, FleetError> {
        Ok(self
            .ec2
            .instances(filters)
            .await?
            .into_iter()
            .map(view)
            .collect())
    }

    /// The workers' `RunInstances`: the kit's base (metadata options always set) placed by the
    /// worker template. The instance profile is the workers' own (`[cluster.worker]
    /// instance_profile`), and none when that is empty: a worker runs students' code, and
    /// whatever role it has is one a notebook that reached the metadata service would hold.
    fn run_request(
        &self,
        req: &LaunchRequest,
        root_device: &str,
    ) -> Result<RunInstances, FleetError> {
        let w = &self.worker;
        if w.ami.is_empty() {
            return Err(FleetError::Template(
                "[cluster.worker] ami is not set".into(),
            ));
        }
        let profile = InstanceProfile::parse(&w.instance_profile)
            .map_err(|e| FleetError::Template(format!("[cluster.worker] instance_profile: {e}")))?;
        let mut tags = vec![
            (TAG_CLUSTER.to_string(), self.cluster.clone()),
            (TAG_ROLE.to_string(), "worker".to_string()),
            (TAG_LAUNCH.to_string(), req.launch_id.clone()),
            (
                ec2::TAG_NAME.to_string(),
                format!("{}-worker", self.cluster),
            ),
        ];
        tags.extend(w.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut run = self
            .ec2
            .run_instances(&Launch {
                image_id: &w.ami,
                instance_type: &w.instance_type,
                count: req.count,
                user_data: req.user_data.as_bytes(),
                root_device,
                root_gb: i32::try_from(w.root_volume_gb).unwrap_or(i32::MAX),
                instance_tags: &tags,
                volume_tags: &tags,
                profile: profile.as_ref(),
            })
            .client_token(&req.client_token);
        if !w.subnet_id.is_empty() {
            run = run.subnet(&w.subnet_id);
        }
        if !w.security_group_ids.is_empty() {
            run = run.security_groups(&w.security_group_ids);
        }
        if !w.key_name.is_empty() {
            run = run.key_name(&w.key_name);
        }
        Ok(run)
    }

    /// The AMI's root device (`/dev/xvda` on Amazon Linux, `/dev/sda1` on Ubuntu), so the root
    /// volume gets `root_volume_gb`; an AMI that does not exist fails here, plainly.
    async fn root_device(&self) -> Result<String, FleetError> {
        let out = self
            .ec2
            .client()
            .describe_images()
            .image_ids(&self.worker.ami)
            .send()
            .await
            .map_err(Ec2Error::from)?;
        let image = out
            .images
            .unwrap_or_default()
            .into_iter()
            .next()
            .ok_or_else(|| FleetError::InvalidAmi(format!("{} not found", self.worker.ami)))?;
        Ok(image.root_device_name.unwrap_or_else(|| "/dev/xvda".into()))
    }
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
        state: InstanceState::parse(
            i.state
                .and_then(|s| s.name)
                .as_ref()
                .map(|n| n.as_str())
                .unwrap_or_default(),
        ),
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
            let started = self.run_request(req, &root)?.send().await.map_err(|e| {
                match FleetError::from(e) {
                    FleetError::InsufficientCapacity { message, .. } => {
                        FleetError::InsufficientCapacity {
                            instance_type: self.worker.instance_type.clone(),
                            message,
                        }
                    }
                    other => other,
                }
            })?;
            Ok(started.into_iter().map(view).collect())
        })
    }

    fn dry_run<'a>(&'a self, req: &'a LaunchRequest) -> BoxFuture<'a, Result<(), FleetError>> {
        Box::pin(async move {
            let root = self.root_device().await?;
            match self.run_request(req, &root)?.dry_run().send().await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("DryRunOperation") => Ok(()),
                Err(e) => Err(e.into()),
            }
        })
    }

    fn instances(&self) -> BoxFuture<'_, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(async move {
            self.describe_filtered(vec![
                filter(&format!("tag:{TAG_CLUSTER}"), &[&self.cluster]),
                filter(
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
                filter(&format!("tag:{TAG_CLUSTER}"), &[&self.cluster]),
                filter(&format!("tag:{TAG_LAUNCH}"), &[launch_id]),
                filter("instance-state-name", &["pending", "running"]),
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
                .ec2
                .client()
                .describe_instances()
                .set_instance_ids(Some(ids.to_vec()))
                .send()
                .await
                .map_err(Ec2Error::from)?;
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
            self.ec2
                .client()
                .terminate_instances()
                .instance_ids(&instance.id)
                .send()
                .await
                .map_err(Ec2Error::from)?;
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
                .ec2
                .client()
                .describe_instance_types()
                .set_instance_types(Some(
                    types
                        .iter()
                        .map(|t| InstanceType::from(t.as_str()))
                        .collect(),
                ))
                .send()
                .await
                .map_err(Ec2Error::from)?;
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

    fn offline(profile: &str) -> Ec2Fleet {
        let mut cluster = ClusterConfig {
            name: "camp".into(),
            ..ClusterConfig::default()
        };
        cluster.worker.ami = "ami-1".into();
        cluster.worker.instance_profile = profile.into();
        Ec2Fleet::from_sdk(
            &aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build(),
            &cluster,
        )
    }

    fn request() -> LaunchRequest {
        LaunchRequest {
            count: 2,
            launch_id: "launch-1".into(),
            client_token: "hubdesk-launch-1-0".into(),
            user_data: "#!/bin/sh\n".into(),
        }
    }

    /// The request is the proof for the hop limit: moto defaults it to 1 when it is left out
    /// (tests/api/ec2.rs checks what moto recorded for the rest).
    #[test]
    fn cluster_workers_launch_imdsv2_only_with_hop_limit_1_and_no_profile() {
        let fleet = offline("");
        let run = fleet.run_request(&request(), "/dev/xvda").unwrap();
        // The kit's options (src/ec2/run.rs tests their values), unchanged.
        assert_eq!(
            run.input().get_metadata_options(),
            &Some(crate::ec2::metadata_options())
        );
        assert_eq!(
            run.input().get_iam_instance_profile(),
            &None,
            "no profile configured for workers: none sent"
        );
        assert_eq!(
            run.input().get_client_token().as_deref(),
            Some("hubdesk-launch-1-0")
        );
        // The dry run (doctor's) is the same request.
        let dry = fleet
            .run_request(&request(), "/dev/xvda")
            .unwrap()
            .dry_run();
        assert_eq!(
            dry.input().get_metadata_options(),
            run.input().get_metadata_options()
        );
    }

    #[test]
    fn cluster_workers_get_their_own_profile_when_one_is_set() {
        let run = offline("camp-worker")
            .run_request(&request(), "/dev/xvda")
            .unwrap();
        let p = run.input().get_iam_instance_profile().clone().unwrap();
        assert_eq!(p.name(), Some("camp-worker"));
        let bad = offline("camp worker").run_request(&request(), "/dev/xvda");
        assert!(
            matches!(&bad, Err(FleetError::Template(m)) if m.contains("instance_profile")),
            "{bad:?}"
        );
    }

    fn instance(tags: &[(&str, &str)]) -> FleetInstance {
        FleetInstance {
            id: "i-1".into(),
            instance_type: "t3.large".into(),
            az: "us-east-1a".into(),
            private_ip: "10.0.1.23".into(),
            private_dns: String::new(),
            state: InstanceState::Running,
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

    /// deploy/iam-policy.json, the hub node's policy: what the cluster desk may do, and only
    /// with hubdesk's tags. The problems of a policy, none when it holds.
    fn policy_problems(policy: &serde_json::Value) -> Vec<String> {
        use serde_json::Value;
        let list = |v: &Value| -> Vec<String> {
            match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                _ => vec![],
            }
        };
        let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
        let allowing = |action: &str| -> Vec<Value> {
            statements
                .iter()
                .filter(|s| {
                    s["Effect"] == "Allow" && list(&s["Action"]).iter().any(|a| a == action)
                })
                .cloned()
                .collect()
        };
        let cond = |s: &Value, op: &str, key: &str| s["Condition"][op][key].clone();
        let mut problems = Vec::new();
        if policy["Version"] != "2012-10-17" {
            problems.push("Version is not 2012-10-17".to_string());
        }
        for s in &statements {
            if s["Effect"] != "Allow" {
                continue;
            }
            for a in list(&s["Action"]) {
                if a.contains('*') {
                    problems.push(format!("wildcard action {a}"));
                }
            }
        }
        for op in [
            "DescribeInstances",
            "DescribeInstanceTypes",
            "DescribeImages",
        ] {
            if allowing(&format!("ec2:{op}")).is_empty() {
                problems.push(format!("ec2:{op} is not allowed"));
            }
        }
        // RunInstances: instances and volumes only with the cluster tag in the request; the
        // image, snapshot, subnet, groups, interface and key pair in a statement of their own
        // (they carry no request tags, so a tag condition there would refuse every launch).
        let run = allowing("ec2:RunInstances");
        for kind in ["instance", "volume"] {
            let covering: Vec<&Value> = run
                .iter()
                .filter(|s| {
                    list(&s["Resource"])
                        .iter()
                        .any(|r| r.contains(&format!(":{kind}/")) || r == "*")
                })
                .collect();
            if covering.is_empty() {
                problems.push(format!("RunInstances does not cover {kind}"));
            }
            for s in covering {
                if cond(s, "StringLike", "aws:RequestTag/hubdesk:cluster") != "?*" {
                    problems.push(format!(
                        "RunInstances on {kind} without the hubdesk:cluster request tag"
                    ));
                }
            }
        }
        for kind in ["image", "subnet", "security-group", "network-interface"] {
            let plain = run.iter().any(|s| {
                s.get("Condition").is_none()
                    && list(&s["Resource"])
                        .iter()
                        .any(|r| r.contains(&format!(":{kind}/")))
            });
            if !plain {
                problems.push(format!(
                    "RunInstances on {kind} needs a statement without conditions"
                ));
            }
        }
        let tags = allowing("ec2:CreateTags");
        if tags.is_empty() {
            problems.push("ec2:CreateTags is not allowed (tags at launch need it)".to_string());
        }
        for s in &tags {
            if cond(s, "StringEquals", "ec2:CreateAction") != "RunInstances" {
                problems.push("ec2:CreateTags outside RunInstances".to_string());
            }
        }
        let terminate = allowing("ec2:TerminateInstances");
        if terminate.is_empty() {
            problems.push("ec2:TerminateInstances is not allowed".to_string());
        }
        for s in &terminate {
            if cond(s, "StringLike", "aws:ResourceTag/hubdesk:cluster") != "?*" {
                problems.push(
                    "ec2:TerminateInstances on instances without the hubdesk:cluster tag"
                        .to_string(),
                );
            }
        }
        for s in allowing("iam:PassRole") {
            for r in list(&s["Resource"]) {
                let role = r.split_once(":role/").map(|(_, name)| name);
                if !r.starts_with("arn:aws:iam::")
                    || role.is_none_or(|n| n.is_empty() || n.contains('*'))
                {
                    problems.push(format!("iam:PassRole on {r}, not one role"));
                }
            }
            if cond(&s, "StringEquals", "iam:PassedToService") != "ec2.amazonaws.com" {
                problems.push("iam:PassRole not limited to ec2.amazonaws.com".to_string());
            }
        }
        let known = [
            "ec2:DescribeInstances",
            "ec2:DescribeInstanceTypes",
            "ec2:DescribeImages",
            "ec2:RunInstances",
            "ec2:CreateTags",
            "ec2:TerminateInstances",
            "iam:PassRole",
        ];
        for s in &statements {
            for a in list(&s["Action"]) {
                if !known.contains(&a.as_str()) {
                    problems.push(format!("{a}: hubdesk does not call it"));
                }
            }
        }
        problems
    }

    #[test]
    fn cluster_iam_policy_allows_only_tagged_launches_and_terminations() {
        let policy: serde_json::Value =
            serde_json::from_str(include_str!("../../deploy/iam-policy.json")).unwrap();
        assert_eq!(policy_problems(&policy), Vec::<String>::new());

        // Negative controls: each weakening is caught.
        let weakened = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut p = policy.clone();
            edit(&mut p);
            policy_problems(&p)
        };
        let sid = |p: &mut serde_json::Value, sid: &str| -> usize {
            p["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .position(|s| s["Sid"] == sid)
                .unwrap()
        };
        let without_condition = |name: &'static str| {
            move |p: &mut serde_json::Value| {
                let i = sid(p, name);
                p["Statement"][i]
                    .as_object_mut()
                    .unwrap()
                    .remove("Condition");
            }
        };
        for name in [
            "LaunchOnlyTaggedWorkers",
            "TagOnlyWhileLaunching",
            "TerminateOnlyTaggedWorkers",
            "PassOnlyTheWorkersRole",
        ] {
            assert!(
                !weakened(&without_condition(name)).is_empty(),
                "{name} unconditional"
            );
        }
        assert!(!weakened(&|p| {
            let i = sid(p, "PassOnlyTheWorkersRole");
            p["Statement"][i]["Resource"] = "*".into();
        })
        .is_empty());
        assert!(
            !weakened(&|p| {
                let i = sid(p, "LaunchFromTheCampsImageAndNetwork");
                p["Statement"][i]["Resource"]
                    .as_array_mut()
                    .unwrap()
                    .push("arn:aws:ec2:*:*:instance/*".into());
            })
            .is_empty(),
            "untagged instances through the network statement"
        );
        assert!(!weakened(&|p| {
            p["Statement"][0]["Action"] = "ec2:*".into();
        })
        .is_empty());
    }
}
