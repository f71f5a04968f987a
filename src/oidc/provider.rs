//! The OpenID Connect provider as a handle: what its endpoints need and nothing else.
use std::sync::Arc;

use sqlx::PgPool;

use super::{ClientRegistry, KeyRing};
use crate::{auth::TokenCache, config::Config};

pub struct Oidc {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub clients: ClientRegistry,
    pub keys: KeyRing,
    /// Shared with every place that ends a person's access (`auth::access`).
    pub tokens: Arc<TokenCache>,
}

impl Oidc {
    /// Loads the signing keys, creating the first one on first start.
    pub async fn new(
        pool: PgPool,
        config: Arc<Config>,
        tokens: Arc<TokenCache>,
    ) -> anyhow::Result<Self> {
        let keys = KeyRing::load_or_create(&pool).await?;
        Ok(Self {
            clients: ClientRegistry::from_config(&config.oidc.clients),
            pool,
            config,
            keys,
            tokens,
        })
    }
}
