//! What `/metrics` reports (Prometheus / OpenMetrics text, `prometheus-client`: the official
//! Rust client, so the format is right by construction). A handle registered with the app; the
//! HTTP side records outcomes (logins, tokens), and gauges that live elsewhere (jobs in the
//! database, the pool) are read at scrape time.
use std::time::Duration;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabels {
    pub grant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// `hub`, `docker`, `ec2`.
    pub system: String,
    pub call: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: String,
}

pub struct Metrics {
    registry: Registry,
    pub logins: Family<OutcomeLabels, Counter>,
    pub tokens_issued: Family<GrantLabels, Counter>,
    pub jobs: Family<JobLabels, Gauge>,
    pub external_calls: Family<CallLabels, Histogram>,
    pub pool: Family<PoolLabels, Gauge>,
}

fn call_histogram() -> Histogram {
    // 5 ms … ~40 s
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hubdesk");
        let logins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts by outcome (success, wrong, locked, disabled, busy)",
            logins.clone(),
        );
        let tokens_issued = Family::<GrantLabels, Counter>::default();
        registry.register(
            "oauth_tokens_issued",
            "Access tokens issued to relying parties, by grant type",
            tokens_issued.clone(),
        );
        let jobs = Family::<JobLabels, Gauge>::default();
        registry.register("jobs", "Jobs by kind and state", jobs.clone());
        let external_calls =
            Family::<CallLabels, Histogram>::new_with_constructor(call_histogram as fn() -> _);
        registry.register(
            "external_call_seconds",
            "Latency of calls to the hub, Docker and EC2",
            external_calls.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state (idle, in_use, max)",
            pool.clone(),
        );
        Self {
            registry,
            logins,
            tokens_issued,
            jobs,
            external_calls,
            pool,
        }
    }
}

impl Metrics {
    pub fn login(&self, outcome: &str) {
        self.logins
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn token_issued(&self, grant: &str) {
        self.tokens_issued
            .get_or_create(&GrantLabels {
                grant: grant.into(),
            })
            .inc();
    }

    /// Records how long a call to an external system took.
    pub fn external_call(&self, system: &str, call: &str, took: Duration) {
        self.external_calls
            .get_or_create(&CallLabels {
                system: system.into(),
                call: call.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// Times one call from now until the returned guard is dropped: when the call ends, or
    /// when it is cancelled (a `try_join!` whose sibling failed drops it half-way; that time
    /// was still spent waiting on the peer).
    pub fn start_call(&self, system: &'static str, call: &'static str) -> CallTimer<'_> {
        CallTimer {
            metrics: self,
            system,
            call,
            started: std::time::Instant::now(),
        }
    }

    /// The job counts of the database, replacing the previous scrape's.
    pub fn set_jobs(&self, counts: impl IntoIterator<Item = (String, String, i64)>) {
        self.jobs.clear();
        for (kind, state, n) in counts {
            self.jobs.get_or_create(&JobLabels { kind, state }).set(n);
        }
    }

    pub fn set_pool(&self, idle: usize, size: u32, max: u32) {
        let set = |state: &str, v: i64| {
            self.pool
                .get_or_create(&PoolLabels {
                    state: state.into(),
                })
                .set(v)
        };
        set("idle", idle as i64);
        set("in_use", i64::from(size) - idle as i64);
        set("max", i64::from(max));
    }

    /// The OpenMetrics text of everything.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// See [`Metrics::start_call`].
pub struct CallTimer<'a> {
    metrics: &'a Metrics,
    system: &'static str,
    call: &'static str,
    started: std::time::Instant,
}

impl Drop for CallTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .external_call(self.system, self.call, self.started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_gauges_and_histograms_as_openmetrics() {
        let m = Metrics::default();
        m.login("success");
        m.login("success");
        m.login("wrong");
        m.token_issued("authorization_code");
        m.set_jobs([("homes.reset".into(), "running".into(), 2)]);
        m.set_pool(3, 5, 16);
        m.external_call("hub", "users", Duration::from_millis(12));
        let text = m.encode().unwrap();
        assert!(
            text.contains("hubdesk_logins_total{outcome=\"success\"} 2"),
            "{text}"
        );
        assert!(text.contains("hubdesk_logins_total{outcome=\"wrong\"} 1"));
        assert!(text.contains("hubdesk_oauth_tokens_issued_total{grant=\"authorization_code\"} 1"));
        assert!(text.contains("hubdesk_jobs{kind=\"homes.reset\",state=\"running\"} 2"));
        assert!(text.contains("hubdesk_db_pool_connections{state=\"in_use\"} 2"));
        assert!(
            text.contains("hubdesk_external_call_seconds_count{system=\"hub\",call=\"users\"} 1")
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
