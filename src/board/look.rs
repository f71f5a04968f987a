//! One look at the class: the roster and each student's newest start from the database, the
//! active servers from the hub, the notebook tasks and nodes from the swarm — gathered side by
//! side, then [`roll::place`] decides each student's place.
use std::collections::HashMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::{reasons, roll, Board, BoardError};
use crate::{
    calendar::profile::Profile,
    cluster::runtime::{NotebookTask, SwarmNode},
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
    pub tasks: Vec<NotebookTask>,
    pub nodes: HashMap<String, String>,
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
        Ok(Some(Swarm {
            tasks,
            nodes: nodes
                .into_iter()
                .map(|n: SwarmNode| (n.id, n.hostname))
                .collect(),
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
                            let node = swarm.as_ref().and_then(|sw| sw.nodes.get(&t.node_id));
                            let memory_bytes = s
                                .cohort
                                .as_ref()
                                .and_then(|c| memory.get(c).copied())
                                .unwrap_or(default_memory);
                            reasons::of_task(
                                t,
                                reasons::Context {
                                    node: node.map(String::as_str),
                                    memory_bytes: Some(memory_bytes),
                                },
                            )
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
