//! [`MeteredHub`]: any [`HubApi`] with each call's latency in `/metrics`
//! (`hubdesk_external_call_seconds{system="hub",call=…}`), whatever it answered. The app wraps
//! the hub it uses in it once, so every caller (pages, jobs, homes) is measured.
use std::sync::Arc;

use super::{BoxFuture, HubApi, HubInfo, HubResult, HubUser, StartOutcome, StopOutcome};
use crate::{domain::Username, metrics::Metrics};

#[derive(Clone)]
pub struct MeteredHub {
    inner: Arc<dyn HubApi>,
    metrics: Arc<Metrics>,
}

impl MeteredHub {
    pub fn new(inner: Arc<dyn HubApi>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    async fn timed<T>(&self, call: &'static str, f: BoxFuture<'_, HubResult<T>>) -> HubResult<T> {
        let _timer = self.metrics.start_call("hub", call);
        f.await
    }
}

// `wait_stopped` and `stop_and_wait` keep their default bodies: they call `user` and
// `stop_server` through this wrapper, so each of those calls is measured.
impl HubApi for MeteredHub {
    fn check(&self) -> BoxFuture<'_, HubResult<HubInfo>> {
        Box::pin(self.timed("check", self.inner.check()))
    }

    fn users(&self) -> BoxFuture<'_, HubResult<Vec<HubUser>>> {
        Box::pin(self.timed("users", self.inner.users()))
    }

    fn active_servers(&self) -> BoxFuture<'_, HubResult<Vec<HubUser>>> {
        Box::pin(self.timed("active_servers", self.inner.active_servers()))
    }

    fn user<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<Option<HubUser>>> {
        Box::pin(self.timed("user", self.inner.user(name)))
    }

    fn start_server<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<StartOutcome>> {
        Box::pin(self.timed("start_server", self.inner.start_server(name)))
    }

    fn stop_server<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<StopOutcome>> {
        Box::pin(self.timed("stop_server", self.inner.stop_server(name)))
    }

    fn spawn_failure<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<Option<String>>> {
        Box::pin(self.timed("spawn_failure", self.inner.spawn_failure(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::FakeHub;

    #[tokio::test]
    async fn each_call_is_measured_also_inside_stop_and_wait() {
        let metrics = Arc::new(Metrics::default());
        let hub = MeteredHub::new(Arc::new(FakeHub::default()), metrics.clone());
        let ada = Username::parse("ada").unwrap();
        let _ = hub.users().await;
        let _ = hub
            .stop_and_wait(&ada, std::time::Duration::from_secs(1))
            .await;
        let text = metrics.encode().unwrap();
        for call in ["users", "stop_server"] {
            assert!(
                text.contains(&format!(
                    "hubdesk_external_call_seconds_count{{system=\"hub\",call=\"{call}\"}} 1"
                )),
                "{call}: {text}"
            );
        }
    }
}
