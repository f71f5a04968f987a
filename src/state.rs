//! The handles the app is built from. `app.rs` registers each one with actix separately, so a
//! handler (and a service) asks for exactly what it uses: `web::Data<PgPool>`,
//! `web::Data<Roster>`, `web::Data<Oidc>` …; nothing takes the whole state.
use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::{Hasher, TokenCache},
    cluster::Cluster,
    config::Config,
    jobs::{JobHandler, Waker},
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
    /// The jobs this process runs, one handler per kind (homes and the cluster add theirs).
    pub job_handlers: Vec<Arc<dyn JobHandler>>,
    /// Starts the runner's next poll at once: call it after committing an enqueued job.
    pub jobs: Waker,
    // --- cluster desk ---
    /// The swarm and its EC2 workers; `None` unless `[cluster] enabled`.
    pub cluster: Option<Arc<Cluster>>,
}

impl AppState {
    /// Builds every handle; loads (or on first start creates) the OIDC signing key.
    pub async fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let hasher = Hasher::new(&config.password, config.hash_permits())?;
        let tokens = Arc::new(TokenCache::default());
        let oidc = Arc::new(Oidc::new(pool.clone(), config.clone(), tokens.clone()).await?);
        let roster = Roster::new(pool.clone(), hasher.clone(), tokens.clone());
        let mut job_handlers: Vec<Arc<dyn JobHandler>> = Vec::new();
        // --- cluster desk ---
        let cluster = if config.cluster.enabled {
            let cluster = Arc::new(Cluster::connect(pool.clone(), &config).await?);
            job_handlers.extend(crate::cluster::jobs::handlers(&cluster));
            Some(cluster)
        } else {
            None
        };
        // --- end cluster desk ---
        Ok(Self {
            pool,
            config,
            hasher,
            tokens,
            oidc,
            roster,
            job_handlers,
            jobs: Waker::default(),
            cluster,
        })
    }
}
