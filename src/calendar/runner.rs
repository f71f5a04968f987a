//! The runner: each tick (one instance of a fleet, `jobs::periodic`) it plans the window around
//! "now" from the cohorts' class times and carries out every action that is due and not yet
//! decided. Each action's jobs are queued in one transaction with the row that records the
//! decision (`calendar_actions`, keyed by the action), so a crash or a `kill -9` leaves an
//! action either done or not: after a restart nothing is done twice and nothing due is
//! skipped. The actions are level-triggered — "at least n workers", "at most n", "the cohort's
//! servers that are not running", "the idle ones" — and count launches and removals still in
//! flight, so a block edited while its launch runs gets what the new plan says, not twice.
use std::{collections::HashMap, sync::Arc};

use jiff::{SignedDuration, Timestamp};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    clock::{to_offset, Clock},
    cohorts::Cohorts,
    planner::{Action, Demand, Planned, Rules},
};
use crate::{
    cluster::Cluster,
    config::CalendarConfig,
    db::{self, calendar::Decision},
    domain::{Actor, Username},
    servers::{
        jobs::{StartJob, StopJob},
        Servers,
    },
};

/// How far ahead the calendar page shows the plan.
pub const HORIZON: SignedDuration = SignedDuration::from_hours(24 * 7);

#[derive(Clone)]
pub struct Calendar {
    pub pool: PgPool,
    pub cohorts: Cohorts,
    pub cluster: Option<Arc<Cluster>>,
    pub servers: Servers,
    pub clock: Arc<dyn Clock>,
    pub config: CalendarConfig,
    /// `[ui] timezone`: the camp's days and weeks (the ledger, the budget).
    pub zone: jiff::tz::TimeZone,
}

/// What one tick did (for the log and the tests).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Keys decided this tick, with their outcome.
    pub decided: Vec<(String, String)>,
    /// Students whose idle server was stopped (their cohort's idle timeout).
    pub idle_stopped: Vec<String>,
    /// Removal jobs of workers the calendar launched that no class needs any more.
    pub settled: Vec<Uuid>,
}

/// What an action led to, before it is recorded.
struct Outcome {
    outcome: &'static str,
    detail: String,
    jobs: Vec<Uuid>,
}

impl Calendar {
    /// The arithmetic's settings; the worker's memory from the configuration or from EC2.
    pub async fn rules(&self) -> anyhow::Result<Rules> {
        let worker_memory = match (self.config.worker_memory_bytes, &self.cluster) {
            (0, Some(cluster)) => cluster.worker_memory().await?.unwrap_or(0),
            (bytes, _) => bytes,
        };
        Ok(Rules {
            worker_memory,
            ..self.timing()
        })
    }

    /// The settings' times only (no call to EC2): when meetings need capacity.
    pub fn timing(&self) -> Rules {
        let c = &self.config;
        Rules {
            worker_memory: c.worker_memory_bytes,
            headroom: f64::from(c.headroom_percent) / 100.0,
            floor: c.floor,
            lead: SignedDuration::from_mins(i64::from(c.lead_mins)),
            warm: SignedDuration::from_mins(i64::from(c.warm_mins)),
            grace: SignedDuration::from_mins(i64::from(c.grace_mins)),
        }
    }

    /// Every cohort's meetings overlapping `[from, to)` with what they ask of the cluster.
    pub async fn demands(&self, from: Timestamp, to: Timestamp) -> anyhow::Result<Vec<Demand>> {
        let mut out = Vec::new();
        for c in self.cohorts.list().await? {
            let students = u32::try_from(c.students).unwrap_or(0);
            for m in c.timetable().meetings(from, to) {
                out.push(Demand {
                    cohort: c.name.clone(),
                    starts: m.starts,
                    ends: m.ends,
                    students,
                    memory_guarantee: c.profile.memory_guarantee_bytes(),
                });
            }
        }
        Ok(out)
    }

    /// The plan around `now`: from far enough back to see every action that may still be due.
    pub async fn plan_around(&self, now: Timestamp) -> anyhow::Result<(Rules, Vec<Planned>)> {
        let (rules, plan, _) = self.plan_with_demands(now).await?;
        Ok((rules, plan))
    }

    async fn plan_with_demands(
        &self,
        now: Timestamp,
    ) -> anyhow::Result<(Rules, Vec<Planned>, Vec<Demand>)> {
        let rules = self.rules().await?;
        let back = rules.lead + rules.grace + self.catch_up() + SignedDuration::from_hours(24);
        let from = now.checked_sub(back).unwrap_or(now);
        let to = now.checked_add(HORIZON).unwrap_or(now);
        let demands = self.demands(from, to).await?;
        let plan = rules.plan(&demands);
        Ok((rules, plan, demands))
    }

    fn catch_up(&self) -> SignedDuration {
        SignedDuration::from_mins(i64::from(self.config.catch_up_mins))
    }

    /// One look at the plan: decide every due action not decided yet, in time order.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        let now = self.clock.now();
        let (rules, plan, demands) = self.plan_with_demands(now).await?;
        let due: Vec<&Planned> = plan.iter().filter(|p| p.at <= now).collect();
        let keys: Vec<String> = due.iter().map(|p| p.key()).collect();
        let decided = {
            let mut conn = self.pool.acquire().await?;
            db::calendar::decided(&mut conn, &keys).await?
        };
        let mut report = TickReport::default();
        for p in due {
            let key = p.key();
            if decided.contains(&key) {
                continue;
            }
            let paused = {
                let mut conn = self.pool.acquire().await?;
                db::calendar::paused(&mut conn).await?
            };
            let late = now.duration_since(p.at) > self.catch_up();
            let mut tx = self.pool.begin().await?;
            let outcome = if late {
                Outcome {
                    outcome: "missed",
                    detail: "hubdesk was not running at the time".into(),
                    jobs: vec![],
                }
            } else if paused {
                Outcome {
                    outcome: "paused",
                    detail: "the calendar was paused".into(),
                    jobs: vec![],
                }
            } else {
                match self.act(&mut tx, p, &rules).await {
                    Ok(o) => o,
                    Err(e) => {
                        // Not recorded: the next tick tries again while it is not late.
                        tracing::warn!(key = %key, error = format!("{e:#}"), "calendar action failed");
                        continue;
                    }
                }
            };
            let (kind, cohort, workers) = describe(&p.action);
            let recorded = db::calendar::record(
                &mut tx,
                &Decision {
                    key: &key,
                    at: to_offset(p.at),
                    kind,
                    cohort,
                    workers,
                    outcome: outcome.outcome,
                    detail: &outcome.detail,
                    job_ids: &outcome.jobs,
                },
            )
            .await?;
            if recorded {
                tx.commit().await?;
                if outcome.outcome == "held" {
                    tracing::debug!(key = %key, detail = %outcome.detail, "calendar: held");
                } else {
                    tracing::info!(key = %key, outcome = outcome.outcome, detail = %outcome.detail, "calendar");
                }
                report.decided.push((key, outcome.outcome.to_string()));
            }
            // else: dropped, rolled back (another instance decided it first).
        }
        let paused = {
            let mut conn = self.pool.acquire().await?;
            db::calendar::paused(&mut conn).await?
        };
        if !paused {
            report.settled = self.settle(&rules, rules.target_at(&demands, now)).await?;
            report.idle_stopped = self.stop_idle_servers().await?;
        }
        Ok(report)
    }

    /// Stops every server idle for longer than its student's cohort allows (the profile's idle
    /// timeout; students without a cohort: the default profile's), unless a stop of it is
    /// already queued. The hub's own culler (`HUB_CULL_IDLE_SECS`) still stops any server idle
    /// that long, so it is the ceiling of these timeouts. Returns the students stopped.
    pub async fn stop_idle_servers(&self) -> anyhow::Result<Vec<String>> {
        if !self.servers.configured() {
            return Ok(vec![]);
        }
        let running = self.servers.running().await?;
        if running.is_empty() {
            return Ok(vec![]);
        }
        let timeouts: HashMap<String, u32> = self
            .cohorts
            .list()
            .await?
            .into_iter()
            .map(|c| (c.name, c.profile.idle_timeout_mins))
            .collect();
        let default = super::profile::Profile::default().idle_timeout_mins;
        let now = OffsetDateTime::now_utc();
        let mut tx = self.pool.begin().await?;
        let students = db::users::cohorts_of(&mut tx).await?;
        let stopping = db::calendar::stops_in_flight(&mut tx).await?;
        let mut stopped = Vec::new();
        for (user, cohort) in students {
            let Some(server) = running.get(user.as_str()) else {
                continue;
            };
            if stopping.contains(&user.to_string()) || server.pending.is_some() {
                continue;
            }
            let limit = cohort
                .as_ref()
                .and_then(|c| timeouts.get(c).copied())
                .unwrap_or(default);
            let Some(last) = server.last_activity.or(server.started) else {
                continue;
            };
            let idle = (now - last).whole_minutes();
            if idle < i64::from(limit) {
                continue;
            }
            db::audit::record(
                &mut tx,
                &Actor::Calendar,
                "server.stop",
                Some(user.as_str()),
                Some(&format!(
                    "idle for {idle} min (the cohort's limit is {limit} min)"
                )),
            )
            .await?;
            StopJob {
                username: user.to_string(),
            }
            .enqueue(&mut tx, &Actor::Calendar)
            .await?;
            stopped.push(user.to_string());
        }
        tx.commit().await?;
        Ok(stopped)
    }

    /// Workers the calendar launched that no class needs any more — a block deleted or moved
    /// after its grow leaves the plan without the shrink that would have removed them — are
    /// removed (drained first, emptiest first), keeping `target` and room for every server
    /// still running. Never while a launch is in flight; never a worker launched by hand.
    async fn settle(&self, rules: &Rules, target: u32) -> anyhow::Result<Vec<Uuid>> {
        let Some(cluster) = &self.cluster else {
            return Ok(vec![]);
        };
        if rules.worker_memory == 0 {
            return Ok(vec![]);
        }
        let mut tx = self.pool.begin().await?;
        if db::calendar::workers_being_launched(&mut tx).await? > 0 {
            return Ok(vec![]);
        }
        let (present, students) = self.fleet(cluster).await?;
        let leaving = db::calendar::workers_being_removed(&mut tx).await?;
        let staying: Vec<&String> = present.iter().filter(|i| !leaving.contains(i)).collect();
        let busy = self.running_memory(&mut tx).await?;
        let keep = target.max(rules.workers_for(busy));
        let extra = staying.len().saturating_sub(keep as usize);
        if extra == 0 {
            return Ok(vec![]);
        }
        let launches = self.launches_of(cluster).await?;
        let ids: Vec<uuid::Uuid> = staying
            .iter()
            .filter_map(|i| launches.get(*i).and_then(|l| l.parse().ok()))
            .collect();
        let by_calendar = db::calendar::launched_by_calendar(&mut tx, &ids).await?;
        let mut candidates: Vec<&String> = staying
            .into_iter()
            .filter(|i| {
                launches
                    .get(*i)
                    .and_then(|l| l.parse::<uuid::Uuid>().ok())
                    .is_some_and(|l| by_calendar.contains(&l))
            })
            .collect();
        candidates.sort_by_key(|i| (students.get(*i).copied().unwrap_or(0), (*i).clone()));
        let mut jobs = Vec::new();
        for id in candidates.into_iter().take(extra) {
            jobs.push(cluster.remove_in(&mut tx, &Actor::Calendar, id).await?);
        }
        tx.commit().await?;
        if !jobs.is_empty() {
            tracing::info!(
                removals = jobs.len(),
                keep,
                "calendar: workers no class needs"
            );
        }
        Ok(jobs)
    }

    /// instance id → the launch (job id) that made it, from its `hubdesk:launch` tag.
    async fn launches_of(&self, cluster: &Cluster) -> anyhow::Result<HashMap<String, String>> {
        Ok(cluster
            .instances()
            .await?
            .into_iter()
            .filter_map(|i| i.launch_id().map(|l| (i.id.clone(), l.to_string())))
            .collect())
    }

    /// Carries one action out inside `tx` (its jobs are queued there).
    async fn act(
        &self,
        tx: &mut sqlx::PgConnection,
        p: &Planned,
        rules: &Rules,
    ) -> anyhow::Result<Outcome> {
        let done = |detail: String, jobs: Vec<Uuid>| Outcome {
            outcome: "done",
            detail,
            jobs,
        };
        let skipped = |detail: &str| Outcome {
            outcome: "skipped",
            detail: detail.to_string(),
            jobs: vec![],
        };
        match &p.action {
            Action::Grow { workers } => {
                let Some(cluster) = &self.cluster else {
                    return Ok(skipped("the cluster desk is off ([cluster] enabled)"));
                };
                if rules.worker_memory == 0 {
                    return Ok(skipped(
                        "the worker's memory is unknown ([calendar] worker_memory_bytes)",
                    ));
                }
                let (present, _) = self.fleet(cluster).await?;
                let coming = db::calendar::workers_being_launched(&mut *tx).await?;
                let have = present.len() as i64 + coming;
                let missing = i64::from(*workers) - have;
                if missing <= 0 {
                    return Ok(done(
                        format!("{have} workers already, {workers} wanted"),
                        vec![],
                    ));
                }
                let count = u32::try_from(missing)
                    .unwrap_or(u32::MAX)
                    .min(crate::cluster::service::MAX_LAUNCH);
                if let Some(over) = self.held_for_budget(self.clock.now(), count).await? {
                    return Ok(Outcome {
                        outcome: "held",
                        detail: format!(
                            "{over}: held until an admin allows the calendar over budget this week"
                        ),
                        jobs: vec![],
                    });
                }
                let job = cluster.launch_in(&mut *tx, &Actor::Calendar, count).await?;
                Ok(done(
                    format!("launch {count} ({have} → {workers})"),
                    vec![job],
                ))
            }
            Action::Shrink { workers } => {
                let Some(cluster) = &self.cluster else {
                    return Ok(skipped("the cluster desk is off ([cluster] enabled)"));
                };
                let (present, students) = self.fleet(cluster).await?;
                let leaving = db::calendar::workers_being_removed(&mut *tx).await?;
                let mut staying: Vec<&String> =
                    present.iter().filter(|i| !leaving.contains(i)).collect();
                // A running notebook moves, it never dies: keep room for every server still
                // running (someone working past the class), whatever the plan says.
                let busy = self.running_memory(&mut *tx).await?;
                let keep = (*workers).max(rules.workers_for(busy));
                let extra = staying.len().saturating_sub(keep as usize);
                if extra == 0 {
                    return Ok(done(
                        format!(
                            "{} workers, {workers} wanted, {keep} kept for the servers still running",
                            staying.len()
                        ),
                        vec![],
                    ));
                }
                // The emptiest go first; each removal drains its node (notebooks move).
                staying.sort_by_key(|i| (students.get(*i).copied().unwrap_or(0), (*i).clone()));
                let mut jobs = Vec::new();
                for id in staying.into_iter().take(extra) {
                    jobs.push(cluster.remove_in(&mut *tx, &Actor::Calendar, id).await?);
                }
                Ok(done(format!("remove {extra} (down to {keep})"), jobs))
            }
            Action::Warm { cohort } => {
                if !self.servers.configured() {
                    return Ok(skipped("no hub is configured ([hub] api_token)"));
                }
                if db::camp::pause(&mut *tx).await?.is_some() {
                    return Ok(skipped("the camp was paused"));
                }
                let students = db::users::cohort_usernames(&mut *tx, cohort).await?;
                let running = self.servers.running().await?;
                let cold: Vec<Username> = students
                    .into_iter()
                    .filter(|u| !running.contains_key(u.as_str()))
                    .collect();
                if cold.is_empty() {
                    return Ok(done("every server already runs".into(), vec![]));
                }
                let n = cold.len();
                db::audit::record(
                    &mut *tx,
                    &Actor::Calendar,
                    "servers.start",
                    Some(&format!("cohort:{cohort}")),
                    Some(&format!("{n} servers")),
                )
                .await?;
                let job = StartJob {
                    label: format!("cohort {cohort}, before class"),
                    usernames: cold.iter().map(|u| u.to_string()).collect(),
                }
                .enqueue(&mut *tx, &Actor::Calendar)
                .await?;
                Ok(done(format!("start {n} servers"), vec![job]))
            }
            Action::StopIdle { cohort } => {
                if !self.servers.configured() {
                    return Ok(skipped("no hub is configured ([hub] api_token)"));
                }
                let students = db::users::cohort_usernames(&mut *tx, cohort).await?;
                let running = self.servers.running().await?;
                // Idleness is a real duration: the hub's last activity against the real time.
                let idle_for = time::Duration::seconds(rules.grace.as_secs());
                let now = OffsetDateTime::now_utc();
                let idle: Vec<&Username> = students
                    .iter()
                    .filter(|u| {
                        running.get(u.as_str()).is_some_and(|s| {
                            s.last_activity
                                .or(s.started)
                                .is_some_and(|t| now - t > idle_for)
                        })
                    })
                    .collect();
                let mut jobs = Vec::new();
                for u in &idle {
                    db::audit::record(
                        &mut *tx,
                        &Actor::Calendar,
                        "server.stop",
                        Some(u.as_str()),
                        Some("idle after class"),
                    )
                    .await?;
                    jobs.push(
                        StopJob {
                            username: u.to_string(),
                        }
                        .enqueue(&mut *tx, &Actor::Calendar)
                        .await?,
                    );
                }
                Ok(done(format!("stop {} idle servers", idle.len()), jobs))
            }
        }
    }

    /// The memory guaranteed to the servers running now and not being stopped (each student's
    /// cohort profile), bytes.
    async fn running_memory(&self, conn: &mut sqlx::PgConnection) -> anyhow::Result<u64> {
        if !self.servers.configured() {
            return Ok(0);
        }
        let running = self.servers.running().await?;
        if running.is_empty() {
            return Ok(0);
        }
        let guarantees: HashMap<String, u64> = self
            .cohorts
            .list()
            .await?
            .into_iter()
            .map(|c| (c.name, c.profile.memory_guarantee_bytes()))
            .collect();
        let default = super::profile::Profile::default().memory_guarantee_bytes();
        let stopping = db::calendar::stops_in_flight(&mut *conn).await?;
        Ok(db::users::cohorts_of(conn)
            .await?
            .into_iter()
            .filter(|(u, _)| running.contains_key(u.as_str()) && !stopping.contains(&u.to_string()))
            .map(|(_, c)| {
                c.and_then(|c| guarantees.get(&c).copied())
                    .unwrap_or(default)
            })
            .sum())
    }

    /// The cluster's workers that are or will be up (ids), and the students on each.
    async fn fleet(
        &self,
        cluster: &Cluster,
    ) -> anyhow::Result<(Vec<String>, HashMap<String, usize>)> {
        let overview = cluster.overview().await;
        if let Some(e) = &overview.ec2_error {
            anyhow::bail!("EC2: {e}");
        }
        let present: Vec<String> = overview
            .instances
            .iter()
            .filter(|i| i.state.is_live())
            .map(|i| i.id.clone())
            .collect();
        let students = overview
            .nodes
            .iter()
            .filter_map(|n| n.instance_id.clone().map(|i| (i, n.students.len())))
            .collect();
        Ok((present, students))
    }
}

fn describe(a: &Action) -> (&'static str, Option<&str>, Option<i32>) {
    match a {
        Action::Grow { workers } => ("grow", None, Some(*workers as i32)),
        Action::Shrink { workers } => ("shrink", None, Some(*workers as i32)),
        Action::Warm { cohort } => ("warm", Some(cohort.as_str()), None),
        Action::StopIdle { cohort } => ("stop-idle", Some(cohort.as_str()), None),
    }
}
