//! The handles the app is built from. `app.rs` registers each one with actix separately, so a
//! handler (and a service) asks for exactly what it uses: `web::Data<PgPool>`,
//! `web::Data<Roster>`, `web::Data<Oidc>` …; nothing takes the whole state.
use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::{Hasher, TokenCache},
    cluster::Cluster,
    config::Config,
    homes::Homes,
    hub::{HubApi, MeteredHub, RestHub},
    jobs::{JobHandler, Waker},
    metrics::Metrics,
    oidc::Oidc,
    roster::Roster,
    servers::Servers,
};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub hasher: Hasher,
    /// userinfo answers per token; every end of access clears it (`auth::access`).
    pub tokens: Arc<TokenCache>,
    pub oidc: Arc<Oidc>,
    pub roster: Roster,
    pub homes: Homes,
    pub servers: Servers,
    /// The roll board and the spawn timeline.
    pub board: crate::board::Board,
    /// Counselors' announcements.
    pub announcements: crate::announcements::Announcements,
    /// Cohorts' class times and profiles (the calendar).
    pub cohorts: crate::calendar::cohorts::Cohorts,
    /// The calendar's plan and its runner.
    pub calendar: crate::calendar::runner::Calendar,
    /// The jobs this process runs, one handler per kind (homes and the cluster add theirs).
    pub job_handlers: Vec<Arc<dyn JobHandler>>,
    /// Starts the runner's next poll at once: call it after committing an enqueued job.
    pub jobs: Waker,
    pub metrics: Arc<Metrics>,
    // --- cluster desk ---
    /// The swarm and its EC2 workers; `None` unless `[cluster] enabled`.
    pub cluster: Option<Arc<Cluster>>,
}

/// External systems to use instead of the ones the configuration names (tests pass fakes).
#[derive(Default)]
pub struct Adapters {
    pub hub: Option<Arc<dyn HubApi>>,
}

impl AppState {
    /// The state with the real external systems of the configuration.
    pub async fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        Self::with_adapters(pool, config, Adapters::default()).await
    }

    /// Builds every handle; loads (or on first start creates) the OIDC signing keys; opens the
    /// homes root (refused when the archive is on another filesystem) and settles any home
    /// operation a crash interrupted.
    pub async fn with_adapters(
        pool: PgPool,
        config: Config,
        adapters: Adapters,
    ) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let hasher = Hasher::new(&config.password, config.hash_permits())?;
        let tokens = Arc::new(TokenCache::default());
        let oidc = Arc::new(Oidc::new(pool.clone(), config.clone(), tokens.clone()).await?);
        let jobs = Waker::default();
        let metrics = Arc::new(Metrics::default());
        let hub = match adapters.hub {
            Some(hub) => Some(hub),
            None => RestHub::from_config(&config.hub)?.map(|h| Arc::new(h) as Arc<dyn HubApi>),
        };
        // One seam measures every call to the hub, whoever makes it.
        let hub = hub.map(|h| Arc::new(MeteredHub::new(h, metrics.clone())) as Arc<dyn HubApi>);
        if hub.is_none() {
            tracing::info!("no hub API token ([hub] api_token): server status and stops are off");
        }
        let servers = Servers {
            hub,
            stop_wait: config.hub.stop_wait(),
            start_concurrency: config.hub.start_concurrency,
        };
        let roster = Roster::new(pool.clone(), hasher.clone(), tokens.clone(), jobs.clone())
            .with_servers(servers.clone());
        let homes = Homes::open(&config.homes, pool.clone()).await?;
        let recovered = homes.recover().await?;
        tracing::info!(?recovered, root = %homes.root().display(), "homes root open");
        // A reset or restore first stops the student's server and waits until it is gone.
        let stop_first = servers.configured().then(|| {
            Arc::new(crate::homes::jobs::StopServerFirst(servers.clone()))
                as Arc<dyn crate::homes::BeforeHomeChange>
        });
        let mut job_handlers = crate::homes::jobs::handlers(homes.clone(), stop_first);
        job_handlers.extend(crate::servers::jobs::handlers(servers.clone()));
        job_handlers.push(crate::roster::reset_many::handler(roster.clone()));
        // --- cluster desk ---
        let cluster = if config.cluster.enabled {
            let cluster = Arc::new(Cluster::connect(pool.clone(), &config, metrics.clone()).await?);
            job_handlers.extend(crate::cluster::jobs::handlers(&cluster));
            Some(cluster)
        } else {
            None
        };
        // --- end cluster desk ---
        let cohorts =
            crate::calendar::cohorts::Cohorts::new(pool.clone(), config.ui.timezone.clone());
        let clock = config.calendar.clock();
        let calendar = crate::calendar::runner::Calendar {
            pool: pool.clone(),
            cohorts: cohorts.clone(),
            cluster: cluster.clone(),
            servers: servers.clone(),
            clock: clock.clone(),
            config: config.calendar.clone(),
            zone: config.ui.timezone.zone().clone(),
        };
        let board = crate::board::Board {
            pool: pool.clone(),
            servers: servers.clone(),
            cluster: cluster.clone(),
            cull_after: config.hub.cull_after(),
            start_timeout: config.hub.start_timeout(),
        };
        Ok(Self {
            board,
            announcements: crate::announcements::Announcements::new(
                pool.clone(),
                config.ui.timezone.zone().clone(),
                clock,
            ),
            cohorts,
            calendar,
            pool,
            config,
            hasher,
            tokens,
            oidc,
            roster,
            homes,
            servers,
            job_handlers,
            jobs,
            metrics,
            cluster,
        })
    }
}
