//! One look at the class: the roster and each student's newest start from the database, the
//! active servers from the hub, the notebook tasks and nodes from the swarm — gathered side by
//! side, then [`roll::place`] decides each student's place.
use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::{reasons, roll, Board, BoardError};
use crate::{
    calendar::profile::Profile,
    cluster::runtime::{NotebookTask, SwarmNode, TaskPhase},
    db,
    domain::Username,
};

/// A student's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub username: Username,
    pub display_name: String,
    pub cohort: Option<String>,
    #[serde(flatten)]
    pub place: roll::Place,
    /// When the student last pressed "My notebook is stuck" (within the hour).
    #[serde(with = "time::serde::rfc3339::option")]
    pub unstuck_at: Option<OffsetDateTime>,
}

/// The board at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Look {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub rows: Vec<Row>,
    /// (key, count) for every place, in [`roll::Place::KEYS`] order.
    pub counts: Vec<(&'static str, usize)>,
    /// Why server states are unknown (no hub, or it did not answer).
    pub hub_problem: Option<String>,
    /// Why the swarm's reasons are missing (engine unreachable); `None` also without a cluster.
    pub swarm_problem: Option<String>,
}

/// The swarm's side of a look: every notebook task and the node names.
pub(super) struct Swarm {
    /// Newest first.
    pub tasks: Vec<NotebookTask>,
    /// Node id → hostname.
    pub nodes: HashMap<String, String>,
    /// The nodes that let their tasks go (drained, or down), by id.
    pub leaving: HashMap<String, reasons::Leaving>,
}

impl Swarm {
    /// The plain reason of a student's `task`: its own error, else that the worker of the
    /// task before it was drained or went down (the swarm starts the notebook again elsewhere,
    /// which reads as a start going back to "pending"; a move can take less than a sweep, so
    /// a running task still says it, and the start keeps it as its last step).
    pub fn reason(&self, task: &NotebookTask, memory_bytes: u64) -> Option<String> {
        let node = self.nodes.get(&task.node_id).map(String::as_str);
        let cx = reasons::Context {
            node,
            memory_bytes: Some(memory_bytes),
        };
        reasons::of_task(task, cx).or_else(|| {
            let before = self.previous(task)?;
            if before.node_id.is_empty() || before.node_id == task.node_id {
                return None;
            }
            let why = *self.leaving.get(&before.node_id)?;
            let running = task.phase == TaskPhase::Running;
            Some(reasons::moved(
                self.nodes.get(&before.node_id)?,
                why,
                node,
                running,
            ))
        })
    }

    /// The task of the same student made just before `task`.
    fn previous(&self, task: &NotebookTask) -> Option<&NotebookTask> {
        self.tasks
            .iter()
            .skip_while(|t| t.task_id != task.task_id)
            .skip(1)
            .find(|t| t.student == task.student)
    }
}

impl Board {
    /// The swarm's tasks and node names (three engine calls); `Ok(None)` without a cluster.
    pub(super) async fn swarm(&self) -> Result<Option<Swarm>, String> {
        let Some(cluster) = &self.cluster else {
            return Ok(None);
        };
        let rt = cluster.runtime();
        let (tasks, nodes) =
            futures_util::try_join!(rt.notebook_tasks(), rt.nodes()).map_err(|e| e.to_string())?;
        let leaving = nodes
            .iter()
            .filter_map(|n: &SwarmNode| Some((n.id.clone(), reasons::Leaving::of(n)?)))
            .collect();
        Ok(Some(Swarm {
            tasks,
            nodes: nodes.into_iter().map(|n| (n.id, n.hostname)).collect(),
            leaving,
        }))
    }

    /// The board of one cohort (or of everyone in `reach`).
    pub async fn look(
        &self,
        reach: &crate::domain::Reach,
        cohort: Option<&str>,
    ) -> Result<Look, BoardError> {
        if let Some(c) = cohort {
            reach.check_cohort(Some(c))?;
        }
        let db = async {
            let mut conn = self.pool.acquire().await?;
            let rows = db::board::roll(&mut conn, cohort).await?;
            let cohorts = db::cohorts::all(&mut conn).await?;
            Ok::<_, sqlx::Error>((rows, cohorts))
        };
        let (db, hub, swarm) = tokio::join!(db, self.servers.running(), self.swarm());
        let (mut students, cohorts) = db?;
        students.retain(|s| reach.admits(s.cohort.as_deref()));
        let memory: HashMap<String, u64> = cohorts
            .into_iter()
            .map(|c| (c.name, c.memory_guarantee_mib as u64 * 1024 * 1024))
            .collect();
        let default_memory = Profile::default().memory_guarantee_bytes();
        let (swarm, swarm_problem) = match swarm {
            Ok(s) => (s, None),
            Err(e) => (None, Some(e)),
        };
        let newest = swarm
            .as_ref()
            .map(|s| roll::newest_by_student(&s.tasks))
            .unwrap_or_default();
        let (servers, hub_problem) = match hub {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(crate::servers::problem(&self.servers, &e))),
        };
        let now = OffsetDateTime::now_utc();
        let rows: Vec<Row> = students
            .into_iter()
            .map(|s| {
                let place = match &servers {
                    None => roll::Place::Unknown,
                    Some(servers) => {
                        let task_reason = newest.get(s.username.as_str()).and_then(|t| {
                            let memory_bytes = s
                                .cohort
                                .as_ref()
                                .and_then(|c| memory.get(c).copied())
                                .unwrap_or(default_memory);
                            swarm.as_ref()?.reason(t, memory_bytes)
                        });
                        roll::place(roll::Facts {
                            now,
                            logged_in: s.last_login_at.is_some(),
                            server: servers.get(s.username.as_str()),
                            task_reason,
                            last_attempt: s
                                .outcome
                                .as_deref()
                                .map(|o| (o, s.reason.as_deref().unwrap_or_default())),
                            cull_after: self
                                .cull_after
                                .map(|d| time::Duration::seconds(d.as_secs() as i64)),
                        })
                    }
                };
                Row {
                    unstuck_at: s.unstuck_at,
                    username: s.username,
                    display_name: s.display_name,
                    cohort: s.cohort,
                    place,
                }
            })
            .collect();
        let counts = roll::Place::KEYS
            .iter()
            .map(|k| (*k, rows.iter().filter(|r| r.place.key() == *k).count()))
            .collect();
        Ok(Look {
            at: now,
            rows,
            counts,
            hub_problem,
            swarm_problem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, student: &str, node: &str, phase: TaskPhase, error: &str) -> NotebookTask {
        NotebookTask {
            service: format!("jupyter-{student}"),
            student: student.into(),
            task_id: id.into(),
            node_id: node.into(),
            phase,
            desired_running: true,
            message: String::new(),
            error: error.into(),
            at: None,
            memory_bytes: None,
        }
    }

    fn swarm(tasks: Vec<NotebookTask>, leaving: &[(&str, reasons::Leaving)]) -> Swarm {
        Swarm {
            tasks,
            nodes: HashMap::from([("n1".into(), "w1".into()), ("n2".into(), "w2".into())]),
            leaving: leaving.iter().map(|(n, l)| (n.to_string(), *l)).collect(),
        }
    }

    #[test]
    fn a_start_moved_off_a_drained_worker_says_so() {
        let gb = 1 << 30;
        let tasks = vec![
            task("t3", "ana", "n2", TaskPhase::Preparing, ""),
            task("b1", "bo", "n1", TaskPhase::Running, ""),
            task(
                "t2",
                "ana",
                "n1",
                TaskPhase::Rejected,
                "No such image: nb:1",
            ),
            task(
                "t1",
                "ana",
                "n1",
                TaskPhase::Rejected,
                "No such image: nb:1",
            ),
        ];
        let drained = swarm(tasks.clone(), &[("n1", reasons::Leaving::Drained)]);
        assert_eq!(
            drained.reason(&tasks[0], gb).as_deref(),
            Some("w1 was drained; starting again on w2")
        );
        // The same tasks with w1 still taking notebooks: a move for another cause says nothing.
        assert_eq!(swarm(tasks.clone(), &[]).reason(&tasks[0], gb), None);
        // Its own error wins; once it runs there is nothing to say.
        let mut failed = tasks.clone();
        failed[0] = task(
            "t3",
            "ana",
            "n2",
            TaskPhase::Rejected,
            "No such image: nb:1",
        );
        assert_eq!(
            swarm(failed.clone(), &[("n1", reasons::Leaving::Drained)])
                .reason(&failed[0], gb)
                .as_deref(),
            Some("the notebook image is missing on w2")
        );
        let mut running = tasks;
        running[0] = task("t3", "ana", "n2", TaskPhase::Running, "");
        assert_eq!(
            swarm(running.clone(), &[("n1", reasons::Leaving::Down)])
                .reason(&running[0], gb)
                .as_deref(),
            Some("w1 went down; started again on w2")
        );
        // The one before on the same node (a retry on w1): no move.
        let retry = vec![
            task("t2", "ana", "n1", TaskPhase::Pending, ""),
            task("t1", "ana", "n1", TaskPhase::Rejected, "x"),
        ];
        assert_eq!(
            swarm(retry.clone(), &[("n1", reasons::Leaving::Drained)]).reason(&retry[0], gb),
            None
        );
    }
}
