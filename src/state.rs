//! What every handler shares. Built once in `startup`, passed as `web::Data`, no globals.
use std::sync::Arc;

use sqlx::PgPool;

use crate::{
    auth::Hasher,
    config::Config,
    oidc::{ClientRegistry, KeyRing, Oidc},
};

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub hasher: Hasher,
    pub oidc: Arc<Oidc>,
}

impl AppState {
    /// Builds the state; loads (or on first start creates) the OIDC signing key.
    pub async fn new(pool: PgPool, config: Config) -> anyhow::Result<Self> {
        let hasher = Hasher::new(&config.password, config.hash_permits())?;
        let keys = KeyRing::load_or_create(&pool).await?;
        let oidc = Oidc {
            clients: ClientRegistry::from_config(&config.oidc.clients),
            keys,
            cache: Default::default(),
        };
        Ok(Self {
            pool,
            config: Arc::new(config),
            hasher,
            oidc: Arc::new(oidc),
        })
    }

    pub fn session_cookie_name(&self) -> &'static str {
        if self.config.secure_cookies() {
            "__Host-hubdesk-session"
        } else {
            "hubdesk-session"
        }
    }
    pub fn csrf_cookie_name(&self) -> &'static str {
        if self.config.secure_cookies() {
            "__Host-hubdesk-csrf"
        } else {
            "hubdesk-csrf"
        }
    }
}
