//! The tags hubdesk puts on what it makes, and reads back. Tags are the gate: hubdesk lists,
//! changes and removes only what carries them.
use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

/// The camp of `hubdesk aws` (every resource `up` makes).
pub const TAG_CAMP: &str = "hubdesk:camp";
/// The cluster desk's workers (`[cluster] name`; `hubdesk aws up` makes it the camp's name).
pub const TAG_CLUSTER: &str = "hubdesk:cluster";
/// `worker`, `hub`, `nfs`, `homes`, `ssh`, … : what a resource is for.
pub const TAG_ROLE: &str = "hubdesk:role";
/// The launch job that made a worker (its id).
pub const TAG_LAUNCH: &str = "hubdesk:launch";
pub const TAG_NAME: &str = "Name";

pub fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// Tags set in the creating call itself (no untagged moment).
pub fn spec(kind: ResourceType, tags: &[(String, String)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| tag(k, v)).collect()))
        .build()
}

/// A resource's tags as a map (a tag without a key is dropped).
pub fn of(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}
