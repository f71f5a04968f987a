//! PostgreSQL for a bench (shared by the benches with `#[path]`): `DATABASE_URL`'s server, or a
//! private one under the bench's directory, kept only for the run; a fresh database on it,
//! migrated; `close` drops it and stops the private server.
use std::path::Path;

use hubdesk::db::{self, EmbeddedPostgres};
use sqlx::{Executor, PgPool};

#[allow(dead_code)] // `url` is for the benches that build a `Config`
pub struct BenchDb {
    pub pool: PgPool,
    /// The database's URL (for a `Config`).
    pub url: String,
    admin: PgPool,
    name: String,
    embedded: Option<EmbeddedPostgres>,
}

impl BenchDb {
    /// A database `<prefix>_<pid>`, migrated.
    pub async fn open(base: &Path, prefix: &str) -> anyhow::Result<Self> {
        let mut embedded = None;
        let server = match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755))?;
                let pg = EmbeddedPostgres::start(&base.join("pg"))?;
                let url = pg.url("postgres");
                embedded = Some(pg);
                url
            }
        };
        let name = format!("{prefix}_{}", std::process::id());
        let admin = db::pool_for(&server).await?;
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await?;
        let mut url = url::Url::parse(&server)?;
        url.set_path(&format!("/{name}"));
        let pool = db::pool_for(url.as_str()).await?;
        db::MIGRATOR.run(&pool).await?;
        Ok(Self {
            pool,
            url: url.to_string(),
            admin,
            name,
            embedded,
        })
    }

    /// Drops the database and stops a private server.
    pub async fn close(self) -> anyhow::Result<()> {
        self.pool.close().await;
        self.admin
            .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await?;
        self.admin.close().await;
        if let Some(mut pg) = self.embedded {
            pg.stop();
        }
        Ok(())
    }
}
