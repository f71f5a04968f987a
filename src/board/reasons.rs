//! The engine's words for a start that does not go ahead, turned into one plain reason a
//! counselor can act on. Pure: the swarm's messages (moby/swarmkit's scheduler and the
//! node's executor, as written in their sources and seen in `tests/swarm`) in, a sentence out.
use crate::cluster::runtime::{Availability, NodeStatus, NotebookTask, SwarmNode, TaskPhase};

/// What a reason needs besides the task: the node's name and the memory the notebook asks
/// (the cohort's profile: used when the task does not say what it reserves).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// The node's hostname (`worker-2`, `ip-10-0-1-7`), when the task has a node.
    pub node: Option<&'a str>,
    /// What the student's notebook reserves, in bytes (the cohort's profile).
    pub memory_bytes: Option<u64>,
}

/// The plain reason a task is stuck or broken; `None` when it is on its way with no error
/// (or running).
pub fn of_task(task: &NotebookTask, cx: Context<'_>) -> Option<String> {
    let error = task.error.trim();
    let on = cx.node.map(|n| format!(" on {n}")).unwrap_or_default();
    let lower = error.to_ascii_lowercase();
    if task.phase == TaskPhase::Orphaned {
        return Some(format!("the worker it ran on went away{on}"));
    }
    if error.is_empty() {
        return match task.phase {
            TaskPhase::Failed | TaskPhase::Rejected => Some(format!(
                "the notebook could not start{on} (no reason given)"
            )),
            _ => None,
        };
    }
    Some(
        classify(&lower, &on, task.memory_bytes.or(cx.memory_bytes))
            .unwrap_or_else(|| format!("the engine said{on}: {}", first_line(error))),
    )
}

/// Why a start failed, from the hub's own words for it (`HubApi::spawn_failure`: "Spawn
/// failed: Service jupyter-ana not running: {… 'Err': 'failed to mount local volume …' …}"),
/// for a start whose failed task was gone before the timeline looked. `node` is where its last
/// step was.
pub fn of_spawn_failure(message: &str, node: Option<&str>) -> String {
    let text = message.strip_prefix("Spawn failed: ").unwrap_or(message);
    let on = node.map(|n| format!(" on {n}")).unwrap_or_default();
    classify(&text.to_ascii_lowercase(), &on, None)
        .unwrap_or_else(|| format!("the hub said: {}", first_line(text)))
}

/// The engine's words (lower case) as a reason; `None` when they are none of these.
fn classify(lower: &str, on: &str, memory_bytes: Option<u64>) -> Option<String> {
    if lower.contains("insufficient resources") {
        return Some(match memory_bytes {
            Some(b) => format!("no worker has {} free", memory(b)),
            None => "no worker has room for another notebook".into(),
        });
    }
    if lower.contains("no suitable node") {
        return Some(if lower.contains("constraint") {
            "no worker may take notebooks (each one is drained or excluded)".into()
        } else {
            "no worker is ready to take it".into()
        });
    }
    if lower.contains("no such image") || lower.contains("pull access denied") {
        return Some(format!("the notebook image is missing{on}"));
    }
    if lower.contains("mount") || lower.contains("volume") {
        return Some(format!("the home could not be mounted{on}"));
    }
    if let Some(code) = exit_code(lower) {
        return Some(format!(
            "the notebook stopped by itself{on} (exit code {code})"
        ));
    }
    None
}

/// Why a worker let its notebooks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaving {
    /// An admin drained it (hubdesk's "Remove worker" drains first).
    Drained,
    /// The swarm lost it (stopped, rebooted, unreachable).
    Down,
}

impl Leaving {
    /// Whether `node` lets its tasks go, and why.
    pub fn of(node: &SwarmNode) -> Option<Self> {
        if node.availability == Availability::Drain {
            Some(Leaving::Drained)
        } else if node.status == NodeStatus::Down {
            Some(Leaving::Down)
        } else {
            None
        }
    }
}

/// A start the swarm moved off a worker that left: "ip-10-0-1-7 was drained; starting again
/// on ip-10-0-1-9" ("started again" once it runs; "…; waiting for another worker" while no
/// node has it yet).
pub fn moved(from: &str, why: Leaving, to: Option<&str>, running: bool) -> String {
    let what = match why {
        Leaving::Drained => "was drained",
        Leaving::Down => "went down",
    };
    match (to, running) {
        (Some(to), true) => format!("{from} {what}; started again on {to}"),
        (Some(to), false) => format!("{from} {what}; starting again on {to}"),
        (None, _) => format!("{from} {what}; waiting for another worker"),
    }
}

/// The reason of a start the hub gave up on, when no task said more.
pub fn hub_gave_up(secs: i64) -> String {
    format!("the hub gave up after {secs} s")
}

/// A start that ended before it was ready, not by timeout and with no task error.
pub const STOPPED_EARLY: &str = "stopped before it was ready";

fn exit_code(lower: &str) -> Option<&str> {
    let rest = lower.split_once("non-zero exit (")?.1;
    rest.split_once(')').map(|(code, _)| code)
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    let mut out: String = line.chars().take(160).collect();
    if out.len() < line.len() {
        out.push('…');
    }
    out
}

/// "2 GiB", "1.5 GiB", "512 MiB".
pub fn memory(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    let mib = bytes.div_ceil(MIB);
    if mib >= 1024 && (mib * 10).is_multiple_of(1024) {
        let tenths = mib * 10 / 1024;
        if tenths.is_multiple_of(10) {
            format!("{} GiB", tenths / 10)
        } else {
            format!("{}.{} GiB", tenths / 10, tenths % 10)
        }
    } else {
        format!("{mib} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(phase: TaskPhase, error: &str) -> NotebookTask {
        NotebookTask {
            service: "jupyter-ana".into(),
            student: "ana".into(),
            task_id: "t1".into(),
            node_id: "n2".into(),
            phase,
            desired_running: true,
            message: String::new(),
            error: error.into(),
            at: None,
            memory_bytes: None,
        }
    }

    fn cx(node: Option<&'static str>) -> Context<'static> {
        Context {
            node,
            memory_bytes: Some(2 << 30),
        }
    }

    #[test]
    fn the_schedulers_words_become_what_a_counselor_can_act_on() {
        let cases = [
            (
                TaskPhase::Pending,
                "no suitable node (insufficient resources on 2 nodes)",
                None,
                "no worker has 2 GiB free",
            ),
            (
                TaskPhase::Pending,
                "no suitable node (scheduling constraints not satisfied on 3 nodes)",
                None,
                "no worker may take notebooks (each one is drained or excluded)",
            ),
            (TaskPhase::Pending, "no suitable node", None, "no worker is ready to take it"),
            (
                TaskPhase::Rejected,
                "No such image: hubdesk/notebook:4f2a",
                Some("worker-2"),
                "the notebook image is missing on worker-2",
            ),
            (
                TaskPhase::Rejected,
                "invalid mount config for type \"bind\": bind source path does not exist: /homes/ana",
                Some("worker-1"),
                "the home could not be mounted on worker-1",
            ),
            (
                TaskPhase::Rejected,
                "failed to populate volume: error while mounting volume '/var/lib/docker/volumes/jupyterhub-user-ana/_data': failed to mount local volume: mount :/homes/ana: permission denied",
                Some("worker-1"),
                "the home could not be mounted on worker-1",
            ),
            (
                TaskPhase::Failed,
                "task: non-zero exit (1)",
                Some("worker-1"),
                "the notebook stopped by itself on worker-1 (exit code 1)",
            ),
            (TaskPhase::Orphaned, "", Some("worker-3"), "the worker it ran on went away on worker-3"),
            (
                TaskPhase::Rejected,
                "something new\nwith a second line",
                Some("w"),
                "the engine said on w: something new",
            ),
        ];
        for (phase, error, node, want) in cases {
            assert_eq!(
                of_task(&task(phase, error), cx(node)).as_deref(),
                Some(want),
                "{error}"
            );
        }
    }

    #[test]
    fn a_task_on_its_way_without_an_error_has_no_reason() {
        for phase in [TaskPhase::Pending, TaskPhase::Preparing, TaskPhase::Running] {
            assert_eq!(of_task(&task(phase, ""), cx(Some("w"))), None);
        }
        assert_eq!(
            of_task(&task(TaskPhase::Failed, ""), cx(None)).as_deref(),
            Some("the notebook could not start (no reason given)")
        );
        let no_size = Context::default();
        assert_eq!(
            of_task(
                &task(TaskPhase::Pending, "insufficient resources on 1 node"),
                no_size
            )
            .as_deref(),
            Some("no worker has room for another notebook")
        );
    }

    #[test]
    fn the_memory_a_held_task_reserves_wins_over_the_cohorts_profile_now() {
        // The profile was put back to 384 MiB while the task still asks 64 GiB.
        let mut t = task(
            TaskPhase::Pending,
            "no suitable node (insufficient resources on 2 nodes)",
        );
        t.memory_bytes = Some(64 << 30);
        let now = Context {
            node: None,
            memory_bytes: Some(384 << 20),
        };
        assert_eq!(
            of_task(&t, now).as_deref(),
            Some("no worker has 64 GiB free")
        );
        t.memory_bytes = None;
        assert_eq!(
            of_task(&t, now).as_deref(),
            Some("no worker has 384 MiB free")
        );
    }

    #[test]
    fn a_failure_the_hub_reports_reads_like_the_tasks_own() {
        // JupyterHub 6.1.1's progress event for dockerspawner 14's failed start (pformat
        // splits the long error across quoted pieces), as seen in test_camp.
        let hub = "Spawn failed: Service jupyter-alant not running: {'ContainerStatus': \
            {'ContainerID': '1298', 'ExitCode': 128, 'PID': 0},\n 'Err': 'failed to populate \
            volume: error while mounting volume '\n \"'/var/lib/docker/volumes/home-alant/_data': \
            failed to \"\n 'mount local volume: mount /homes/alant: no such file or directory',\n \
            'State': 'failed'}";
        assert_eq!(
            of_spawn_failure(hub, Some("ip-10-0-1-7")),
            "the home could not be mounted on ip-10-0-1-7"
        );
        assert_eq!(
            of_spawn_failure("Spawn failed: something else\nmore", None),
            "the hub said: something else"
        );
    }

    #[test]
    fn a_start_moved_off_a_leaving_worker_says_where_it_goes() {
        assert_eq!(
            moved("ip-10-0-1-7", Leaving::Drained, Some("ip-10-0-1-9"), false),
            "ip-10-0-1-7 was drained; starting again on ip-10-0-1-9"
        );
        assert_eq!(
            moved("w2", Leaving::Drained, Some("w3"), true),
            "w2 was drained; started again on w3"
        );
        assert_eq!(
            moved("w1", Leaving::Down, None, false),
            "w1 went down; waiting for another worker"
        );
    }

    #[test]
    fn memory_reads_as_people_write_it() {
        assert_eq!(memory(2 << 30), "2 GiB");
        assert_eq!(memory(1536 << 20), "1.5 GiB");
        assert_eq!(memory(256 << 20), "256 MiB");
        assert_eq!(hub_gave_up(180), "the hub gave up after 180 s");
    }
}
