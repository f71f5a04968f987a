//! Where each student is, as one value: the pure part of the roll board. The board's look
//! (`look.rs`) gathers the facts; [`place`] decides.
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::{cluster::runtime::NotebookTask, hub::ServerState};

/// A server with no activity for this long shows as idle.
pub const IDLE_AFTER: Duration = Duration::minutes(10);

/// Where a student is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Place {
    /// The server is up and used.
    Ready {
        #[serde(with = "time::serde::rfc3339::option")]
        since: Option<OffsetDateTime>,
    },
    /// The server is up, unused for [`IDLE_AFTER`] or more; the culler stops it at `stops_at`.
    Idle {
        #[serde(with = "time::serde::rfc3339")]
        since: OffsetDateTime,
        #[serde(with = "time::serde::rfc3339::option")]
        stops_at: Option<OffsetDateTime>,
    },
    /// The hub is starting it; `waiting` is what holds it, in plain words, when something does.
    Starting {
        #[serde(with = "time::serde::rfc3339::option")]
        since: Option<OffsetDateTime>,
        waiting: Option<String>,
    },
    Stopping,
    /// The last start failed, for this reason (until the next start).
    Failed {
        reason: String,
    },
    Stopped,
    NeverLoggedIn,
    /// The hub did not answer: nothing is known about servers.
    Unknown,
}

impl Place {
    /// The key the page, the counts and the filter use.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Ready { .. } => "ready",
            Self::Idle { .. } => "idle",
            Self::Starting { .. } => "starting",
            Self::Stopping => "stopping",
            Self::Failed { .. } => "failed",
            Self::Stopped => "stopped",
            Self::NeverLoggedIn => "never",
            Self::Unknown => "unknown",
        }
    }

    /// Every key, in the order the board counts them.
    pub const KEYS: [&'static str; 8] = [
        "ready", "starting", "failed", "idle", "stopping", "stopped", "never", "unknown",
    ];

    /// The word a page shows for a key.
    pub fn word(key: &str) -> &'static str {
        match key {
            "ready" => "Ready",
            "idle" => "Idle",
            "starting" => "Starting",
            "stopping" => "Stopping",
            "failed" => "Failed",
            "stopped" => "Stopped",
            "never" => "Never logged in",
            _ => "Unknown",
        }
    }
}

/// The facts about one student at one look.
pub struct Facts<'a> {
    pub now: OffsetDateTime,
    pub logged_in: bool,
    /// The hub's default server, when the hub lists it as active.
    pub server: Option<&'a ServerState>,
    /// The reason of the newest task when it is stuck or broken (`reasons::of_task`).
    pub task_reason: Option<String>,
    /// The newest start the sweep recorded: (`outcome`, reason).
    pub last_attempt: Option<(&'a str, &'a str)>,
    /// The hub's idle culler's timeout, if it runs.
    pub cull_after: Option<Duration>,
}

/// Decides where the student is.
pub fn place(f: Facts<'_>) -> Place {
    if let Some(s) = f.server {
        return match s.pending.as_deref() {
            Some("stop") => Place::Stopping,
            Some(_) => Place::Starting {
                since: s.started,
                waiting: f.task_reason,
            },
            None if !s.ready => Place::Starting {
                since: s.started,
                waiting: f.task_reason,
            },
            None => match s.last_activity {
                Some(last) if f.now - last >= IDLE_AFTER => Place::Idle {
                    since: last,
                    stops_at: f.cull_after.map(|c| last + c),
                },
                _ => Place::Ready { since: s.started },
            },
        };
    }
    match f.last_attempt {
        Some(("failed", reason)) => Place::Failed {
            reason: reason.to_string(),
        },
        _ if !f.logged_in && f.last_attempt.is_none() => Place::NeverLoggedIn,
        _ => Place::Stopped,
    }
}

/// The newest task of each student (tasks come newest first).
pub fn newest_by_student(tasks: &[NotebookTask]) -> std::collections::HashMap<&str, &NotebookTask> {
    let mut out = std::collections::HashMap::new();
    for t in tasks {
        out.entry(t.student.as_str()).or_insert(t);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-07-06 09:30 UTC);

    fn server(pending: Option<&str>, ready: bool, idle_mins: i64) -> ServerState {
        ServerState {
            started: Some(NOW - Duration::minutes(40)),
            last_activity: Some(NOW - Duration::minutes(idle_mins)),
            pending: pending.map(str::to_string),
            ready,
            url: "/user/ana/".into(),
        }
    }

    fn facts<'a>(
        server: Option<&'a ServerState>,
        attempt: Option<(&'a str, &'a str)>,
    ) -> Facts<'a> {
        Facts {
            now: NOW,
            logged_in: true,
            server,
            task_reason: None,
            last_attempt: attempt,
            cull_after: Some(Duration::hours(1)),
        }
    }

    #[test]
    fn a_server_the_hub_lists_is_ready_idle_starting_or_stopping() {
        let s = server(None, true, 2);
        assert_eq!(place(facts(Some(&s), None)).key(), "ready");
        let s = server(None, true, 25);
        assert_eq!(
            place(facts(Some(&s), None)),
            Place::Idle {
                since: NOW - Duration::minutes(25),
                stops_at: Some(NOW + Duration::minutes(35)),
            }
        );
        let s = server(Some("spawn"), false, 0);
        let mut f = facts(Some(&s), Some(("failed", "old")));
        f.task_reason = Some("no worker has 2 GiB free".into());
        assert_eq!(
            place(f),
            Place::Starting {
                since: Some(NOW - Duration::minutes(40)),
                waiting: Some("no worker has 2 GiB free".into()),
            }
        );
        let s = server(Some("stop"), true, 0);
        assert_eq!(place(facts(Some(&s), None)), Place::Stopping);
    }

    #[test]
    fn without_a_server_the_last_start_decides() {
        assert_eq!(
            place(facts(None, Some(("failed", "the hub gave up after 180 s")))),
            Place::Failed {
                reason: "the hub gave up after 180 s".into()
            }
        );
        assert_eq!(place(facts(None, Some(("ready", "")))), Place::Stopped);
        assert_eq!(place(facts(None, None)), Place::Stopped);
        let mut never = facts(None, None);
        never.logged_in = false;
        assert_eq!(place(never), Place::NeverLoggedIn);
    }

    #[test]
    fn idle_without_a_culler_has_no_stop_time() {
        let s = server(None, true, 30);
        let mut f = facts(Some(&s), None);
        f.cull_after = None;
        assert!(matches!(place(f), Place::Idle { stops_at: None, .. }));
    }
}
