//! Stopping one student's server: one use case for the page and the API, audited the same way
//! from both. The hub answers at once (stopped) or 202 (still stopping): then a `servers.stop`
//! job waits for it.
use sqlx::PgPool;
use uuid::Uuid;

use super::{jobs::StopJob, Servers};
use crate::{
    db,
    domain::{Actor, Username},
    hub::{HubError, StopOutcome},
};

/// What a stop came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    Now,
    /// Still stopping: this job waits for it.
    Queued(Uuid),
}

#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("the hub could not stop the server: {0}")]
    Hub(#[from] HubError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl Servers {
    /// Stops `name`'s server, audited as `actor`.
    pub async fn stop_for(
        &self,
        pool: &PgPool,
        actor: &Actor,
        name: &Username,
    ) -> Result<Stopped, StopError> {
        let outcome = self.stop(name).await?;
        let mut tx = pool.begin().await?;
        db::audit::record(&mut tx, actor, "server.stop", Some(name.as_str()), None).await?;
        let stopped = match outcome {
            StopOutcome::Stopped => Stopped::Now,
            StopOutcome::Pending => Stopped::Queued(
                StopJob {
                    username: name.to_string(),
                }
                .enqueue(&mut tx, actor)
                .await?,
            ),
        };
        tx.commit().await?;
        Ok(stopped)
    }
}
