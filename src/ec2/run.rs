//! `RunInstances`, the base every launch starts from: image, type, count, user-data, root
//! volume, tags at creation, the instance profile (only when one is named) and, always, the
//! metadata options. Callers add only where the instance goes (subnet, groups, key, address,
//! idempotency token); there is no way to change the metadata options through [`RunInstances`].
use aws_sdk_ec2::{
    operation::run_instances::builders::{RunInstancesFluentBuilder, RunInstancesInputBuilder},
    types::{
        BlockDeviceMapping, EbsBlockDevice, HttpTokensState, Instance,
        InstanceMetadataEndpointState, InstanceMetadataOptionsRequest, InstanceType, ResourceType,
        VolumeType,
    },
};
use base64::Engine;

use super::{tags, Ec2, Ec2Error, InstanceProfile};

/// The instance metadata service answers a token request only to a caller at most this many
/// network hops away. 1 is the instance itself: a container behind the host's bridge is one hop
/// further and its token request dies on the way back, so a student's notebook cannot read the
/// instance's credentials or user-data. (Amazon Linux 2023 AMIs default to 2, chosen so that
/// containers *can* reach it: hubdesk never leaves it to the AMI.)
pub const METADATA_HOP_LIMIT: i32 = 1;

/// IMDSv2 only (a session token is required, so a forged GET through a proxy reads nothing),
/// hop limit 1, the endpoint on (the node's own boot reads its metadata). Said explicitly in
/// every launch, so no AMI or account default decides.
pub fn metadata_options() -> InstanceMetadataOptionsRequest {
    InstanceMetadataOptionsRequest::builder()
        .http_tokens(HttpTokensState::Required)
        .http_put_response_hop_limit(METADATA_HOP_LIMIT)
        .http_endpoint(InstanceMetadataEndpointState::Enabled)
        .build()
}

/// What every instance hubdesk launches is made of.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub image_id: &'a str,
    pub instance_type: &'a str,
    /// At most this many; EC2 may start fewer (at least one).
    pub count: u32,
    /// The boot script as bytes (it may be gzip); base64 is this builder's business.
    pub user_data: &'a [u8],
    /// The AMI's root device (`/dev/xvda`, `/dev/sda1`), so the root volume gets `root_gb`.
    pub root_device: &'a str,
    pub root_gb: i32,
    pub instance_tags: &'a [(String, String)],
    pub volume_tags: &'a [(String, String)],
    /// `None`: the instance gets no role at all (no AWS credentials on it).
    pub profile: Option<&'a InstanceProfile>,
}

/// A `RunInstances` made by [`Ec2::run_instances`].
#[derive(Debug)]
pub struct RunInstances(RunInstancesFluentBuilder);

impl Ec2 {
    pub fn run_instances(&self, launch: &Launch<'_>) -> RunInstances {
        let run = self
            .client
            .run_instances()
            .image_id(launch.image_id)
            .instance_type(InstanceType::from(launch.instance_type))
            .min_count(1)
            .max_count(i32::try_from(launch.count).unwrap_or(i32::MAX))
            .user_data(base64::engine::general_purpose::STANDARD.encode(launch.user_data))
            .metadata_options(metadata_options())
            .tag_specifications(tags::spec(ResourceType::Instance, launch.instance_tags))
            .tag_specifications(tags::spec(ResourceType::Volume, launch.volume_tags))
            .block_device_mappings(
                BlockDeviceMapping::builder()
                    .device_name(launch.root_device)
                    .ebs(
                        EbsBlockDevice::builder()
                            .volume_size(launch.root_gb)
                            .volume_type(VolumeType::Gp3)
                            .delete_on_termination(true)
                            .build(),
                    )
                    .build(),
            )
            .set_iam_instance_profile(launch.profile.map(InstanceProfile::spec));
        RunInstances(run)
    }
}

impl RunInstances {
    pub fn subnet(self, id: &str) -> Self {
        Self(self.0.subnet_id(id))
    }

    pub fn security_groups(self, ids: &[String]) -> Self {
        Self(self.0.set_security_group_ids(Some(ids.to_vec())))
    }

    pub fn key_name(self, name: &str) -> Self {
        Self(self.0.key_name(name))
    }

    pub fn private_ip(self, ip: &str) -> Self {
        Self(self.0.private_ip_address(ip))
    }

    /// Same token, same request: real EC2 returns the earlier reservation instead of launching
    /// again.
    pub fn client_token(self, token: &str) -> Self {
        Self(self.0.client_token(token))
    }

    /// Checks permissions and parameters, launches nothing (EC2 answers `DryRunOperation`).
    pub fn dry_run(self) -> Self {
        Self(self.0.dry_run(true))
    }

    /// The request as it will be sent.
    pub fn input(&self) -> &RunInstancesInputBuilder {
        self.0.as_input()
    }

    /// The instances EC2 started.
    pub async fn send(self) -> Result<Vec<Instance>, Ec2Error> {
        Ok(self.0.send().await?.instances.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that is never sent anything.
    pub(crate) fn offline() -> Ec2 {
        Ec2::from_sdk(
            &aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build(),
        )
    }

    fn launch<'a>(profile: Option<&'a InstanceProfile>) -> Launch<'a> {
        Launch {
            image_id: "ami-1",
            instance_type: "t3.large",
            count: 3,
            user_data: b"#!/bin/sh\n",
            root_device: "/dev/xvda",
            root_gb: 30,
            instance_tags: &[],
            volume_tags: &[],
            profile,
        }
    }

    #[test]
    fn ec2_every_launch_is_imdsv2_only_with_hop_limit_1() {
        let ec2 = offline();
        let run = ec2
            .run_instances(&launch(None))
            .subnet("subnet-1")
            .client_token("t")
            .dry_run();
        let m = run.input().get_metadata_options().clone().unwrap();
        assert_eq!(m.http_tokens(), Some(&HttpTokensState::Required));
        assert_eq!(m.http_put_response_hop_limit(), Some(1));
        assert_eq!(
            m.http_endpoint(),
            Some(&InstanceMetadataEndpointState::Enabled)
        );
        assert_eq!(run.input().get_iam_instance_profile(), &None);
        assert_eq!(run.input().get_max_count(), &Some(3));
        assert_eq!(run.input().get_min_count(), &Some(1));
        assert_eq!(
            run.input().get_user_data().as_deref(),
            Some("IyEvYmluL3NoCg==")
        );
    }

    #[test]
    fn ec2_a_launch_names_the_profile_it_is_given() {
        let profile = InstanceProfile::parse("camp-worker").unwrap().unwrap();
        let run = offline().run_instances(&launch(Some(&profile)));
        let spec = run.input().get_iam_instance_profile().clone().unwrap();
        assert_eq!(spec.name(), Some("camp-worker"));
    }
}
