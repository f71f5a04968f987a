//! `DescribeInstances` by filters, every page.
use aws_sdk_ec2::types::{Filter, Instance};

use super::{Ec2, Ec2Error};

/// `name` = any of `values` (`tag:hubdesk:cluster`, `instance-state-name`, …).
pub fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

impl Ec2 {
    /// Every instance that matches all `filters` (one call per 1000).
    pub async fn instances(&self, filters: Vec<Filter>) -> Result<Vec<Instance>, Ec2Error> {
        let pages: Vec<_> = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(1000)
            .into_paginator()
            .send()
            .try_collect()
            .await?;
        Ok(pages
            .into_iter()
            .flat_map(|p| p.reservations.unwrap_or_default())
            .flat_map(|r| r.instances.unwrap_or_default())
            .collect())
    }
}
