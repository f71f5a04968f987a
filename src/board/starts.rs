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
    Ok(attempts.into_iter().map(view).collect())
}

/// One start as the page shows it. A start still under way says what holds it now (its latest
/// step's plain reason), so a fault reads on the student's page as soon as the sweep sees it.
fn view(a: db::board::Attempt) -> StartView {
    let holding = a
        .steps
        .0
        .iter()
        .rev()
        .map(|s| s.reason.clone())
        .find(|r| !r.is_empty())
        .unwrap_or_default();
    StartView {
        took: a
            .ended_at
            .map(|e| super::pages::span((e - a.started_at).whole_seconds()))
            .unwrap_or_default(),
        started_at: a.started_at,
        reason: if a.reason.is_empty() && a.outcome == "starting" {
            holding
        } else {
            a.reason
        },
        outcome: a.outcome,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use db::board::{Attempt, Step};
    use sqlx::types::Json;

    fn step(phase: &str, reason: &str) -> Step {
        Step {
            at: OffsetDateTime::UNIX_EPOCH,
            phase: phase.into(),
            node: "w1".into(),
            message: String::new(),
            error: "raw engine words".into(),
            reason: reason.into(),
        }
    }

    fn attempt(outcome: &str, reason: &str, steps: Vec<Step>) -> Attempt {
        Attempt {
            id: 1,
            username: Username::parse("ada").unwrap(),
            started_at: OffsetDateTime::UNIX_EPOCH,
            ended_at: (outcome != "starting").then_some(OffsetDateTime::UNIX_EPOCH),
            outcome: outcome.into(),
            reason: reason.into(),
            steps: Json(steps),
        }
    }

    #[test]
    fn a_start_under_way_says_what_holds_it_now() {
        let held = attempt(
            "starting",
            "",
            vec![
                step("pending", "no worker has 2 GiB free"),
                step("rejected", "the home could not be mounted on w1"),
                step("preparing", ""),
            ],
        );
        assert_eq!(view(held).reason, "the home could not be mounted on w1");
        assert_eq!(
            view(attempt("starting", "", vec![step("preparing", "")])).reason,
            ""
        );
        // An ended start keeps its own reason (or none, when it became ready).
        let failed = attempt(
            "failed",
            "the hub gave up after 180 s",
            vec![step("pending", "x")],
        );
        assert_eq!(view(failed).reason, "the hub gave up after 180 s");
        assert_eq!(
            view(attempt("ready", "", vec![step("pending", "x")])).reason,
            ""
        );
    }
}
