//! The EC2 kit: the one place hubdesk talks to EC2 from. The cluster desk (`cluster::fleet`,
//! workers) and `hubdesk aws` (`provision::cloud`, the camp's nodes) are its two users, each
//! behind its own port (`WorkerFleet`, `Cloud`); what both need is written once here:
//!
//! - [`connect`] / [`Ec2::from_sdk`]: the client (region and endpoint from `[aws]`, credentials
//!   from the usual chain) with [`Calls`], the log of the operations it sent;
//! - [`Ec2Error`]: an SDK error classified by its code or type, never by its message text;
//! - [`Ec2::instances`]: `DescribeInstances`, every page;
//! - [`Ec2::run_instances`]: the base of every `RunInstances`, which always sets the metadata
//!   options (IMDSv2 only, hop limit 1), so no launch can forget them;
//! - the tag names ([`tags`]) and the instance profile a launch names ([`InstanceProfile`]).
//!
//! Two wrappers that each built their own `RunInstances` drifted once: the nodes were IMDSv2-only
//! and the workers were not. That is why there is one builder.
//!
//! A kit: it imports no capability (only the `config` kit's `AwsConfig`).
mod calls;
mod error;
mod instances;
mod profile;
mod run;
pub mod tags;

pub use calls::Calls;
pub use error::{Ec2Error, ACCESS_DENIED_CODES};
pub use instances::filter;
pub use profile::{BadProfile, InstanceProfile};
pub use run::{metadata_options, Launch, RunInstances, METADATA_HOP_LIMIT};
pub use tags::{TAG_CAMP, TAG_CLUSTER, TAG_LAUNCH, TAG_NAME, TAG_ROLE};

use aws_sdk_ec2::Client;

use crate::config::AwsConfig;

/// An EC2 client and the log of the operations it sent. Cheap to clone (both are shared).
#[derive(Debug, Clone)]
pub struct Ec2 {
    client: Client,
    calls: Calls,
}

/// A client from `[aws]` (region, endpoint: empty means the chain's own) and the usual
/// credential chain: environment, profile, then (unless `AWS_EC2_METADATA_DISABLED=true`) the
/// instance role. Makes no call.
pub async fn connect(aws: &AwsConfig) -> Ec2 {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if !aws.region.is_empty() {
        loader = loader.region(aws_config::Region::new(aws.region.clone()));
    }
    if !aws.endpoint_url.is_empty() {
        loader = loader.endpoint_url(aws.endpoint_url.clone());
    }
    Ec2::from_sdk(&loader.load().await)
}

impl Ec2 {
    /// From a loaded SDK configuration (tests pass explicit credentials, or none).
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        let calls = Calls::default();
        let conf = aws_sdk_ec2::config::Builder::from(sdk)
            .interceptor(calls.clone())
            .build();
        Self {
            client: Client::from_conf(conf),
            calls,
        }
    }

    /// The SDK client, for the operations only one user makes.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The operations this client sent so far.
    pub fn calls(&self) -> Calls {
        self.calls.clone()
    }

    /// The region the client speaks to (empty when none is configured).
    pub fn region(&self) -> String {
        self.client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default()
    }
}
