//! The spawn timeline: every few seconds one look at the hub's active servers and the swarm's
//! notebook tasks, compared with each student's newest recorded start. A start opens when the
//! hub first shows the server starting, gains a step each time its task changes (phase, node
//! or error), and closes `ready` when the hub says so or `failed` when the server goes away
//! before that, with one plain reason: the task's last error, else the hub's timeout. The
//! decisions are [`changes`], a pure function; [`Board::sweep`] gathers and writes.
use std::collections::HashMap;

use time::OffsetDateTime;

use super::{look::Swarm, reasons, roll, Board};
use crate::{
    calendar::profile::Profile,
    cluster::runtime::{NotebookTask, TaskPhase},
    db::{
        self,
        board::{Attempt, Step},
    },
    domain::Username,
    hub::ServerState,
};

/// What the sweep writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Open {
        username: Username,
        started_at: OffsetDateTime,
        step: Step,
    },
    /// A start that was ready before the sweep saw it starting.
    Ready {
        username: Username,
        started_at: OffsetDateTime,
    },
    AddStep {
        id: i64,
        step: Step,
    },
    Close {
        id: i64,
        outcome: &'static str,
        reason: String,
    },
}

/// A start counts as new when it began this long after the newest recorded one.
const SAME_START: time::Duration = time::Duration::seconds(2);

/// What one look at the hub and the swarm means for the recorded starts. `steps` holds each
/// student's newest task as a step; `swarm_seen` says whether the swarm answered (then a
/// server the hub calls ready counts as ready only once its task runs: right after a pending
/// start is interrupted, JupyterHub 6.1.1 shows the old server ready for a moment, neither
/// pending nor gone, while its task is still held or already removed — seen in test_camp).
pub fn changes(
    latest: &[Attempt],
    servers: &HashMap<String, ServerState>,
    steps: &HashMap<&str, Step>,
    swarm_seen: bool,
    now: OffsetDateTime,
    start_timeout: time::Duration,
) -> Vec<Change> {
    let by_user: HashMap<&str, &Attempt> =
        latest.iter().map(|a| (a.username.as_str(), a)).collect();
    let mut out = Vec::new();
    let mut names: Vec<&String> = servers.keys().collect();
    names.sort();
    for name in names {
        let server = &servers[name];
        let Ok(username) = Username::parse(name) else {
            continue;
        };
        let latest = by_user.get(name.as_str()).copied();
        let mut open = latest.filter(|a| a.outcome == "starting");
        let started = server.started.unwrap_or(now);
        let is_new = latest.is_none_or(|a| a.started_at + SAME_START < started);
        if server.pending.as_deref() == Some("stop") {
            continue;
        }
        // Stopped and started again between two looks ("My notebook is stuck", a counselor's
        // stop and start): the open start ended without being ready.
        if let Some(a) = open.filter(|_| is_new) {
            out.push(Change::Close {
                id: a.id,
                outcome: "failed",
                reason: failure_reason(a, now, start_timeout),
            });
            open = None;
        }
        let task_runs = steps
            .get(name.as_str())
            .is_some_and(|s| s.phase == TaskPhase::Running.as_str());
        if server.running() && swarm_seen && !task_runs {
            continue; // not ready until its task runs; the next look decides
        }
        if server.running() {
            if let Some(a) = open {
                // A start that ends ready keeps what its last look said (a move off a drained
                // worker can take less than a sweep: the task already runs on the other).
                if let Some(step) = steps.get(name.as_str()).filter(|s| !s.reason.is_empty()) {
                    if a.steps.0.last().is_none_or(|l| l.reason != step.reason) {
                        out.push(Change::AddStep {
                            id: a.id,
                            step: step.clone(),
                        });
                    }
                }
                out.push(Change::Close {
                    id: a.id,
                    outcome: "ready",
                    reason: String::new(),
                });
            } else if is_new {
                out.push(Change::Ready {
                    username,
                    started_at: started,
                });
            }
            continue;
        }
        let step = steps.get(name.as_str()).cloned().unwrap_or_else(|| Step {
            at: now,
            phase: "hub".into(),
            node: String::new(),
            message: "the hub's spawner is preparing the notebook".into(),
            error: String::new(),
            reason: String::new(),
        });
        match open {
            Some(a) => {
                // The reason can change with the same task (its worker drained meanwhile).
                let same = a.steps.0.last().is_some_and(|last| {
                    (&last.phase, &last.node, &last.error, &last.reason)
                        == (&step.phase, &step.node, &step.error, &step.reason)
                });
                if !same {
                    out.push(Change::AddStep { id: a.id, step });
                }
            }
            None if is_new => out.push(Change::Open {
                username,
                started_at: started,
                step,
            }),
            None => {}
        }
    }
    for a in latest.iter().filter(|a| a.outcome == "starting") {
        let closed = out
            .iter()
            .any(|c| matches!(c, Change::Close { id, .. } if *id == a.id));
        let gone = servers
            .get(a.username.as_str())
            .is_none_or(|s| !s.running() && s.pending.is_none());
        if closed {
            continue;
        }
        if !gone {
            continue;
        }
        out.push(Change::Close {
            id: a.id,
            outcome: "failed",
            reason: failure_reason(a, now, start_timeout),
        });
    }
    out
}

/// Why a start ended before it was ready: its task's last plain reason, else the hub's
/// timeout when it ran that long, else that it was stopped early.
fn failure_reason(a: &Attempt, now: OffsetDateTime, start_timeout: time::Duration) -> String {
    match a.steps.0.iter().rev().find(|s| !s.reason.is_empty()) {
        Some(s) => s.reason.clone(),
        None if now - a.started_at >= start_timeout => {
            reasons::hub_gave_up(start_timeout.whole_seconds())
        }
        None => reasons::STOPPED_EARLY.to_string(),
    }
}

/// The step a task stands at, with its plain reason.
fn step_of(task: &NotebookTask, node: Option<&str>, reason: Option<String>) -> Step {
    Step {
        at: task.at.unwrap_or_else(OffsetDateTime::now_utc),
        phase: task.phase.as_str().to_string(),
        node: node.unwrap_or_default().to_string(),
        message: task.message.clone(),
        error: task.error.clone(),
        reason: reason.unwrap_or_default(),
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub opened: usize,
    pub steps: usize,
    pub ready: usize,
    pub failed: usize,
}

impl Board {
    /// One look and its writes. The hub unreachable: nothing is decided (a start is not
    /// failed because the hub did not answer).
    pub async fn sweep(&self) -> anyhow::Result<Report> {
        if !self.servers.configured() {
            return Ok(Report::default());
        }
        let servers = match self.servers.running().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "spawn timeline: the hub did not answer");
                return Ok(Report::default());
            }
        };
        let swarm = self.swarm().await.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "spawn timeline: the swarm did not answer");
            None
        });
        let mut conn = self.pool.acquire().await?;
        let latest = db::board::latest(&mut conn).await?;
        let memory = memory_by_student(&mut conn).await?;
        let now = OffsetDateTime::now_utc();
        let steps = steps_by_student(swarm.as_ref(), &memory);
        let start_timeout = time::Duration::seconds(self.start_timeout.as_secs() as i64);
        let mut report = Report::default();
        let swarm_seen = swarm.is_some();
        for change in changes(&latest, &servers, &steps, swarm_seen, now, start_timeout) {
            match change {
                Change::Open {
                    username,
                    started_at,
                    step,
                } => {
                    db::board::insert(&mut conn, &username, started_at, "starting", "", &[step])
                        .await?;
                    report.opened += 1;
                }
                Change::Ready {
                    username,
                    started_at,
                } => {
                    db::board::insert(&mut conn, &username, started_at, "ready", "", &[]).await?;
                    report.ready += 1;
                }
                Change::AddStep { id, step } => {
                    db::board::add_step(&mut conn, id, &step).await?;
                    report.steps += 1;
                }
                Change::Close {
                    id,
                    outcome,
                    mut reason,
                } => {
                    if outcome == "failed" && reason == reasons::STOPPED_EARLY {
                        reason = self.hub_reason(&latest, id).await.unwrap_or(reason);
                    }
                    db::board::close(&mut conn, id, outcome, &reason).await?;
                    if outcome == "ready" {
                        report.ready += 1;
                    } else {
                        tracing::info!(attempt = id, %reason, "a notebook start failed");
                        report.failed += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}

impl Board {
    /// The hub's reason for a start that ended with none of its own: its failed task came and
    /// went between two looks (a home that cannot be mounted fails in a second, and the
    /// spawner removes the service at once). One hub call per such start.
    async fn hub_reason(&self, latest: &[Attempt], id: i64) -> Option<String> {
        let a = latest.iter().find(|a| a.id == id)?;
        let message = match self.servers.spawn_failure(&a.username).await {
            Ok(m) => m?,
            Err(e) => {
                tracing::debug!(error = %e, "spawn timeline: the hub did not say why a start failed");
                return None;
            }
        };
        let node = a.steps.0.iter().rev().find(|s| !s.node.is_empty());
        Some(reasons::of_spawn_failure(
            &message,
            node.map(|s| s.node.as_str()),
        ))
    }
}

/// Each student's newest task as a step.
fn steps_by_student<'a>(
    swarm: Option<&'a Swarm>,
    memory: &HashMap<String, u64>,
) -> HashMap<&'a str, Step> {
    let Some(swarm) = swarm else {
        return HashMap::new();
    };
    let default_memory = Profile::default().memory_guarantee_bytes();
    roll::newest_by_student(&swarm.tasks)
        .into_iter()
        .map(|(student, task)| {
            let node = swarm.nodes.get(&task.node_id).map(String::as_str);
            let memory_bytes = memory.get(student).copied().unwrap_or(default_memory);
            let reason = swarm.reason(task, memory_bytes);
            (student, step_of(task, node, reason))
        })
        .collect()
}

/// What each student's notebook reserves (their cohort's profile), by username.
async fn memory_by_student(conn: &mut sqlx::PgConnection) -> sqlx::Result<HashMap<String, u64>> {
    let cohorts: HashMap<String, u64> = db::cohorts::all(conn)
        .await?
        .into_iter()
        .map(|c| (c.name, c.memory_guarantee_mib as u64 * 1024 * 1024))
        .collect();
    Ok(db::users::cohorts_of(conn)
        .await?
        .into_iter()
        .filter_map(|(u, c)| Some((u.to_string(), *cohorts.get(c.as_ref()?)?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::types::Json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-07-06 09:00 UTC);
    const TIMEOUT: time::Duration = time::Duration::seconds(180);

    fn server(pending: Option<&str>, ready: bool, started_secs_ago: i64) -> ServerState {
        ServerState {
            started: Some(NOW - time::Duration::seconds(started_secs_ago)),
            last_activity: None,
            pending: pending.map(str::to_string),
            ready,
            url: String::new(),
        }
    }

    fn attempt(
        id: i64,
        name: &str,
        outcome: &str,
        started_secs_ago: i64,
        steps: Vec<Step>,
    ) -> Attempt {
        Attempt {
            id,
            username: Username::parse(name).unwrap(),
            started_at: NOW - time::Duration::seconds(started_secs_ago),
            ended_at: None,
            outcome: outcome.into(),
            reason: String::new(),
            steps: Json(steps),
        }
    }

    fn step(phase: &str, error: &str, reason: &str) -> Step {
        Step {
            at: NOW,
            phase: phase.into(),
            node: String::new(),
            message: String::new(),
            error: error.into(),
            reason: reason.into(),
        }
    }

    #[test]
    fn a_start_that_ends_ready_keeps_a_move_made_within_one_sweep() {
        let held = step(
            "rejected",
            "No such image: nb:1",
            "the notebook image is missing on w1",
        );
        let open = attempt(7, "ana", "starting", 20, vec![held]);
        let ready = HashMap::from([("ana".to_string(), server(None, true, 20))]);
        let mut moved = step("running", "", "w1 was drained; started again on w2");
        moved.node = "w2".into();
        let steps = HashMap::from([("ana", moved.clone())]);
        assert_eq!(
            changes(
                std::slice::from_ref(&open),
                &ready,
                &steps,
                true,
                NOW,
                TIMEOUT
            ),
            vec![
                Change::AddStep { id: 7, step: moved },
                Change::Close {
                    id: 7,
                    outcome: "ready",
                    reason: String::new()
                }
            ]
        );
        // Without a reason the close is all (a plain start does not gain a step).
        let plain = HashMap::from([("ana", step("running", "", ""))]);
        assert_eq!(
            changes(&[open], &ready, &plain, true, NOW, TIMEOUT).len(),
            1
        );
    }

    #[test]
    fn a_start_opens_gains_steps_and_closes_ready() {
        let servers = HashMap::from([("ana".to_string(), server(Some("spawn"), false, 5))]);
        let none = HashMap::new();
        let c = changes(&[], &servers, &none, false, NOW, TIMEOUT);
        assert!(
            matches!(&c[..], [Change::Open { step, .. }] if step.phase == "hub"),
            "{c:?}"
        );

        let open = attempt(7, "ana", "starting", 5, vec![step("hub", "", "")]);
        let pending = step(
            "pending",
            "no suitable node (insufficient resources on 2 nodes)",
            "no worker has 2 GiB free",
        );
        let steps = HashMap::from([("ana", pending.clone())]);
        let c = changes(
            std::slice::from_ref(&open),
            &servers,
            &steps,
            false,
            NOW,
            TIMEOUT,
        );
        assert_eq!(
            c,
            vec![Change::AddStep {
                id: 7,
                step: pending.clone()
            }]
        );

        // The same step again is not a change.
        let open = attempt(7, "ana", "starting", 5, vec![pending]);
        assert_eq!(
            changes(
                std::slice::from_ref(&open),
                &servers,
                &steps,
                false,
                NOW,
                TIMEOUT
            ),
            vec![]
        );

        let ready = HashMap::from([("ana".to_string(), server(None, true, 5))]);
        assert_eq!(
            changes(&[open], &ready, &none, false, NOW, TIMEOUT),
            vec![Change::Close {
                id: 7,
                outcome: "ready",
                reason: String::new()
            }]
        );
    }

    #[test]
    fn a_start_that_vanishes_fails_with_the_tasks_reason_or_the_hubs_timeout() {
        let none = HashMap::new();
        let told = attempt(
            1,
            "ana",
            "starting",
            60,
            vec![step(
                "rejected",
                "No such image: x",
                "the notebook image is missing on worker-2",
            )],
        );
        let silent = attempt(2, "bob", "starting", 200, vec![step("hub", "", "")]);
        let early = attempt(3, "cy", "starting", 20, vec![step("hub", "", "")]);
        let c = changes(
            &[told, silent, early],
            &HashMap::new(),
            &none,
            false,
            NOW,
            TIMEOUT,
        );
        assert_eq!(
            c,
            vec![
                Change::Close {
                    id: 1,
                    outcome: "failed",
                    reason: "the notebook image is missing on worker-2".into()
                },
                Change::Close {
                    id: 2,
                    outcome: "failed",
                    reason: "the hub gave up after 180 s".into()
                },
                Change::Close {
                    id: 3,
                    outcome: "failed",
                    reason: reasons::STOPPED_EARLY.into()
                },
            ]
        );
    }

    #[test]
    fn a_start_stopped_and_started_again_between_two_looks_is_two_starts() {
        let held = step(
            "pending",
            "no suitable node (insufficient resources on 2 nodes)",
            "no worker has 64 GiB free",
        );
        let open = attempt(9, "ana", "starting", 60, vec![held]);
        // The restart is still starting: the held start fails with its reason, a new one opens.
        let again = HashMap::from([("ana".to_string(), server(Some("spawn"), false, 5))]);
        let none = HashMap::new();
        let c = changes(
            std::slice::from_ref(&open),
            &again,
            &none,
            false,
            NOW,
            TIMEOUT,
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(
            c[0],
            Change::Close {
                id: 9,
                outcome: "failed",
                reason: "no worker has 64 GiB free".into()
            }
        );
        assert!(
            matches!(&c[1], Change::Open { started_at, .. } if *started_at == NOW - time::Duration::seconds(5))
        );
        // Already ready again: the held start fails, the new one is recorded ready.
        let ready = HashMap::from([("ana".to_string(), server(None, true, 5))]);
        let c = changes(&[open], &ready, &none, false, NOW, TIMEOUT);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(matches!(
            &c[0],
            Change::Close {
                id: 9,
                outcome: "failed",
                ..
            }
        ));
        assert!(matches!(&c[1], Change::Ready { .. }));
    }

    #[test]
    fn with_the_swarm_seen_a_ready_server_counts_only_once_its_task_runs() {
        let open = attempt(
            5,
            "ana",
            "starting",
            20,
            vec![step(
                "pending",
                "no suitable node",
                "no worker is ready to take it",
            )],
        );
        let ready = HashMap::from([("ana".to_string(), server(None, true, 20))]);
        // The hub's moment of "ready" after an interrupted start: the task is still held.
        let held = HashMap::from([(
            "ana",
            step(
                "pending",
                "no suitable node",
                "no worker is ready to take it",
            ),
        )]);
        assert_eq!(
            changes(
                std::slice::from_ref(&open),
                &ready,
                &held,
                true,
                NOW,
                TIMEOUT
            ),
            vec![]
        );
        // ... or already removed: no task at all.
        assert_eq!(
            changes(
                std::slice::from_ref(&open),
                &ready,
                &HashMap::new(),
                true,
                NOW,
                TIMEOUT
            ),
            vec![]
        );
        // Its task runs: ready.
        let runs = HashMap::from([("ana", step("running", "", ""))]);
        assert_eq!(
            changes(
                std::slice::from_ref(&open),
                &ready,
                &runs,
                true,
                NOW,
                TIMEOUT
            ),
            vec![Change::Close {
                id: 5,
                outcome: "ready",
                reason: String::new()
            }]
        );
        // Without a swarm to ask, the hub's word is taken.
        assert_eq!(
            changes(&[open], &ready, &HashMap::new(), false, NOW, TIMEOUT).len(),
            1
        );
    }

    #[test]
    fn a_fast_start_is_recorded_ready_once_and_staff_or_stops_are_left_alone() {
        let none = HashMap::new();
        let servers = HashMap::from([
            ("ana".to_string(), server(None, true, 1)),
            ("bob".to_string(), server(Some("stop"), true, 100)),
            ("Not A Name".to_string(), server(Some("spawn"), false, 1)),
        ]);
        let c = changes(&[], &servers, &none, false, NOW, TIMEOUT);
        assert_eq!(
            c,
            vec![Change::Ready {
                username: Username::parse("ana").unwrap(),
                started_at: NOW - time::Duration::seconds(1)
            }]
        );
        // Recorded: the next look finds nothing new.
        let seen = attempt(4, "ana", "ready", 1, vec![]);
        assert_eq!(
            changes(&[seen], &servers, &none, false, NOW, TIMEOUT),
            vec![]
        );
    }
}
