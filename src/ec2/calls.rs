//! The log of the operations a client sent: the cluster page's constant-calls proof counts it,
//! and `hubdesk aws plan` proves with it that it only reads.
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_ec2::config::{
    interceptors::BeforeSerializationInterceptorContextRef, ConfigBag, Intercept,
};
use aws_sdk_ec2::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// The names of the EC2 operations a client sent, in order (`RunInstances`,
/// `DescribeInstances`, …). Retries of one operation are one entry: the interceptor runs once
/// per operation, before its attempts.
#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    pub fn ops(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Operations sent so far.
    pub fn get(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Calls of one operation (`RunInstances`, `TerminateInstances`, …).
    pub fn of(&self, op: &str) -> usize {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|o| *o == op)
            .count()
    }

    /// Every operation that is not a `Describe…` (a read).
    pub fn mutating(&self) -> Vec<String> {
        self.ops()
            .into_iter()
            .filter(|op| !op.starts_with("Describe"))
            .collect()
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "hubdesk-ec2-calls"
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
            .unwrap_or_else(PoisonError::into_inner)
            .push(name);
        Ok(())
    }
}
