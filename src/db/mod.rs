//! Persistence: one file per table family, functions over `&mut PgConnection` (a transaction
//! derefs to one), runtime-checked SQL with typed rows.
pub mod announcements;
pub mod api_tokens;
pub mod audit;
pub mod board;
pub mod calendar;
pub mod camp;
pub mod cards;
pub mod cluster;
pub mod cohorts;
pub mod embedded;
pub mod handouts;
pub mod homes;
pub mod import_drafts;
pub mod jobs;
pub mod ledger;
pub mod notices;
pub mod oauth;
pub mod once;
pub mod reset_codes;
pub mod sessions;
pub mod setup_tokens;
pub mod throttle;
pub mod users;

use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    ConnectOptions, Executor, PgPool,
};

use crate::config::{Config, POOL_SIZE};
pub use embedded::EmbeddedPostgres;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The pool plus, when hubdesk runs its own PostgreSQL, the handle that stops it on drop.
pub struct Database {
    pub pool: PgPool,
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let (url, embedded) = match config.database_url() {
            Some(url) => (url.expose_secret().clone(), None),
            None => {
                let data_dir = config.data_dir.clone();
                let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&data_dir))
                    .await??;
                create_database_if_missing(&pg.url("postgres"), "hubdesk").await?;
                (pg.url("hubdesk"), Some(pg))
            }
        };
        let pool = pool_for(&url).await?;
        Ok(Self { pool, embedded })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.pool).await.context("running migrations")
    }

    /// Closes the pool and stops the embedded server if this process started it.
    pub async fn close(mut self) {
        self.pool.close().await;
        if let Some(mut pg) = self.embedded.take() {
            let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
        }
    }
}

pub async fn pool_for(url: &str) -> anyhow::Result<PgPool> {
    // libpq accepts `postgres://user@/db?host=/socket/dir` (empty host); sqlx wants a host.
    let url = url.replacen("@/", "@localhost/", 1);
    let options: PgConnectOptions = url
        .parse::<PgConnectOptions>()
        .context("DATABASE_URL is not a valid PostgreSQL URL")?
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .min_connections(1)
        // Fail fast when the server is down: pages say "database unavailable" instead of hanging.
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL")?;
    Ok(pool)
}

async fn create_database_if_missing(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect(admin_url)
        .await
        .context("connecting to the embedded PostgreSQL")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&pool)
            .await?;
    if !exists {
        pool.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
    }
    pool.close().await;
    Ok(())
}

/// True for a unique-constraint violation (SQLSTATE 23505).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// True when the database could not be reached (as opposed to a query that failed).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => {
            // Connection-level refusals arrive as FATAL errors (shutdown, not accepting
            // connections, too many clients) or in the 08/57P classes.
            let fatal = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some_and(|pg| {
                    matches!(
                        pg.severity(),
                        sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
                    )
                });
            fatal
                || db.code().as_deref().is_some_and(|c| {
                    c.starts_with("57P") || c.starts_with("08") || c.starts_with("53")
                })
        }
        _ => false,
    }
}
