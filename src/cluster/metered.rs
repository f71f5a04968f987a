//! The cluster's two peers with each call's latency in `/metrics`
//! (`hubdesk_external_call_seconds{system="docker"|"ec2",call=<method>}`), whatever the call
//! answered: [`MeteredRuntime`] and [`MeteredFleet`] wrap any implementation of the traits, and
//! [`super::Cluster::connect`] puts them around the real ones.
use std::{collections::HashMap, future::Future, sync::Arc};

use futures_util::future::BoxFuture;

use super::{
    fleet::{FleetError, FleetInstance, InstanceTypeInfo, LaunchRequest, WorkerFleet},
    runtime::{
        ContainerRuntime, JoinInfo, Notebook, NotebookTask, RuntimeError, SwarmNode, SwarmView,
    },
};
use crate::metrics::Metrics;

async fn timed<T>(
    metrics: &Metrics,
    system: &'static str,
    call: &'static str,
    f: impl Future<Output = T>,
) -> T {
    let _timer = metrics.start_call(system, call);
    f.await
}

pub struct MeteredRuntime {
    inner: Arc<dyn ContainerRuntime>,
    metrics: Arc<Metrics>,
}

impl MeteredRuntime {
    pub fn new(inner: Arc<dyn ContainerRuntime>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl ContainerRuntime for MeteredRuntime {
    fn swarm(&self) -> BoxFuture<'_, Result<SwarmView, RuntimeError>> {
        Box::pin(timed(&self.metrics, "docker", "swarm", self.inner.swarm()))
    }

    fn nodes(&self) -> BoxFuture<'_, Result<Vec<SwarmNode>, RuntimeError>> {
        Box::pin(timed(&self.metrics, "docker", "nodes", self.inner.nodes()))
    }

    fn notebooks(&self) -> BoxFuture<'_, Result<Vec<Notebook>, RuntimeError>> {
        Box::pin(timed(
            &self.metrics,
            "docker",
            "notebooks",
            self.inner.notebooks(),
        ))
    }

    fn notebook_tasks(&self) -> BoxFuture<'_, Result<Vec<NotebookTask>, RuntimeError>> {
        Box::pin(timed(
            &self.metrics,
            "docker",
            "notebook_tasks",
            self.inner.notebook_tasks(),
        ))
    }

    fn drain<'a>(&'a self, node_id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(timed(
            &self.metrics,
            "docker",
            "drain",
            self.inner.drain(node_id),
        ))
    }

    fn remove_node<'a>(
        &'a self,
        node_id: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(timed(
            &self.metrics,
            "docker",
            "remove_node",
            self.inner.remove_node(node_id, force),
        ))
    }

    fn join_info(&self) -> BoxFuture<'_, Result<JoinInfo, RuntimeError>> {
        Box::pin(timed(
            &self.metrics,
            "docker",
            "join_info",
            self.inner.join_info(),
        ))
    }

    fn rotate_worker_token(&self) -> BoxFuture<'_, Result<(), RuntimeError>> {
        Box::pin(timed(
            &self.metrics,
            "docker",
            "rotate_worker_token",
            self.inner.rotate_worker_token(),
        ))
    }
}

pub struct MeteredFleet {
    inner: Arc<dyn WorkerFleet>,
    metrics: Arc<Metrics>,
}

impl MeteredFleet {
    pub fn new(inner: Arc<dyn WorkerFleet>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl WorkerFleet for MeteredFleet {
    fn cluster(&self) -> &str {
        self.inner.cluster()
    }

    fn launch<'a>(
        &'a self,
        req: &'a LaunchRequest,
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(timed(
            &self.metrics,
            "ec2",
            "launch",
            self.inner.launch(req),
        ))
    }

    fn dry_run<'a>(&'a self, req: &'a LaunchRequest) -> BoxFuture<'a, Result<(), FleetError>> {
        Box::pin(timed(
            &self.metrics,
            "ec2",
            "dry_run",
            self.inner.dry_run(req),
        ))
    }

    fn instances(&self) -> BoxFuture<'_, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(timed(
            &self.metrics,
            "ec2",
            "instances",
            self.inner.instances(),
        ))
    }

    fn launched_by<'a>(
        &'a self,
        launch_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(timed(
            &self.metrics,
            "ec2",
            "launched_by",
            self.inner.launched_by(launch_id),
        ))
    }

    fn describe<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<FleetInstance>, FleetError>> {
        Box::pin(timed(
            &self.metrics,
            "ec2",
            "describe",
            self.inner.describe(ids),
        ))
    }

    fn terminate<'a>(
        &'a self,
        instance: &'a FleetInstance,
    ) -> BoxFuture<'a, Result<(), FleetError>> {
        Box::pin(timed(
            &self.metrics,
            "ec2",
            "terminate",
            self.inner.terminate(instance),
        ))
    }

    fn instance_types<'a>(
        &'a self,
        types: &'a [String],
    ) -> BoxFuture<'a, Result<HashMap<String, InstanceTypeInfo>, FleetError>> {
        Box::pin(timed(
            &self.metrics,
            "ec2",
            "instance_types",
            self.inner.instance_types(types),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::fake::FakeWorld;

    #[tokio::test]
    async fn cluster_calls_are_measured_by_system_and_method() {
        let world = FakeWorld::new();
        let metrics = Arc::new(Metrics::default());
        let rt = MeteredRuntime::new(Arc::new(world.runtime()), metrics.clone());
        let fleet = MeteredFleet::new(Arc::new(world.fleet("camp")), metrics.clone());
        let _ = rt.nodes().await;
        // Polled once and then dropped (as `try_join!` drops a sibling of a failed call).
        let _ = futures_util::FutureExt::now_or_never(rt.swarm());
        let _ = fleet.instances().await;
        assert_eq!(fleet.cluster(), "camp");
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(
                "hubdesk_external_call_seconds_count{system=\"docker\",call=\"nodes\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "hubdesk_external_call_seconds_count{system=\"docker\",call=\"swarm\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "hubdesk_external_call_seconds_count{system=\"ec2\",call=\"instances\"} 1"
            ),
            "{text}"
        );
    }
}
