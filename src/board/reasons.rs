//! The engine's words for a start that does not go ahead, turned into one plain reason a
//! counselor can act on. Pure: the swarm's messages (moby/swarmkit's scheduler and the
//! node's executor, as written in their sources and seen in `tests/swarm`) in, a sentence out.
use crate::cluster::runtime::{NotebookTask, TaskPhase};

/// What a reason needs besides the task: the node's name and the memory the notebook asks.
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
    if lower.contains("insufficient resources") {
        return Some(match cx.memory_bytes {
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
    if let Some(code) = exit_code(&lower) {
        return Some(format!(
            "the notebook stopped by itself{on} (exit code {code})"
        ));
    }
    Some(format!("the engine said{on}: {}", first_line(error)))
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
    fn memory_reads_as_people_write_it() {
        assert_eq!(memory(2 << 30), "2 GiB");
        assert_eq!(memory(1536 << 20), "1.5 GiB");
        assert_eq!(memory(256 << 20), "256 MiB");
        assert_eq!(hub_gave_up(180), "the hub gave up after 180 s");
    }
}
