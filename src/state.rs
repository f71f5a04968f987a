//! The handles the app is built from. `app.rs` registers each one with actix separately, so a
//! handler (and a service) asks for exactly what it uses: `web::Data<PgPool>`,
//! `web::Data<Roster>`, `web::Data<Oidc>` …; nothing takes the whole state.
use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::{Hasher, TokenCache},
    config::Config,
    homes::Homes,
    jobs::{JobHandler, Waker},
    metrics::Metrics,
    oidc::Oidc,
    roster::Roster,
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
    /// The jobs this process runs, one handler per kind (homes and the cluster add theirs).
    pub job_handlers: Vec<Arc<dyn JobHandler>>,
    /// Starts the runner's next poll at once: call it after committing an enqueued job.
    pub jobs: Waker,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Builds every handle; loads (or on first start creates) the OIDC signing keys; opens the
    /// homes root (refused when the archive is on another filesystem) and settles any home
    /// operation a crash interrupted.
    pub async fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let hasher = Hasher::new(&config.password, config.hash_permits())?;
        let tokens = Arc::new(TokenCache::default());
        let oidc = Arc::new(Oidc::new(pool.clone(), config.clone(), tokens.clone()).await?);
        let jobs = Waker::default();
        let roster = Roster::new(pool.clone(), hasher.clone(), tokens.clone(), jobs.clone());
        let homes = Homes::open(&config.homes, pool.clone()).await?;
        let recovered = homes.recover().await?;
        tracing::info!(?recovered, root = %homes.root().display(), "homes root open");
        let job_handlers = crate::homes::jobs::handlers(homes.clone(), None);
        Ok(Self {
            pool,
            config,
            hasher,
            tokens,
            oidc,
            roster,
            homes,
            job_handlers,
            jobs,
            metrics: Arc::new(Metrics::default()),
        })
    }
}
