//! A student's last starts, as their page shows them (newest first, with the steps).
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{db, domain::Username};

/// One start on the student's page.
pub struct StartView {
    pub started_at: OffsetDateTime,
    /// `starting` | `ready` | `failed`
    pub outcome: String,
    /// How long it took to be ready, or to fail ("42 s").
    pub took: String,
    pub reason: String,
    /// "09:01:04 pending on — · no worker has 2 GiB free"
    pub steps: Vec<StepView>,
}

pub struct StepView {
    pub at: OffsetDateTime,
    pub phase: String,
    pub node: String,
    pub words: String,
}

/// The student's last 20 starts.
pub async fn starts_of(pool: &PgPool, username: &Username) -> sqlx::Result<Vec<StartView>> {
    let mut conn = pool.acquire().await?;
    let attempts = db::board::attempts_of(&mut conn, username).await?;
    Ok(attempts
        .into_iter()
        .map(|a| StartView {
            took: a
                .ended_at
                .map(|e| super::pages::span((e - a.started_at).whole_seconds()))
                .unwrap_or_default(),
            started_at: a.started_at,
            outcome: a.outcome,
            reason: a.reason,
            steps: a
                .steps
                .0
                .into_iter()
                .map(|s| StepView {
                    at: s.at,
                    words: if !s.reason.is_empty() {
                        s.reason
                    } else if !s.message.is_empty() {
                        s.message
                    } else {
                        s.error
                    },
                    phase: s.phase,
                    node: s.node,
                })
                .collect(),
        })
        .collect())
}
