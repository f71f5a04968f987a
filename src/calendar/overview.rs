//! What the calendar page shows: the coming week's classes, and every action of the plan from
//! a day back to a week ahead with what became of it; the admins' pause switch; the
//! iCalendar feed (RFC 5545) counselors subscribe to.
use std::collections::BTreeMap;

use icalendar::{Component, EventLike};
use jiff::{SignedDuration, Timestamp};
use uuid::Uuid;

use super::{
    clock::{from_offset, to_offset},
    planner::{Action, Rules},
    runner::{Calendar, HORIZON},
};
use crate::{db, domain::Actor};

/// One class meeting.
#[derive(Debug, Clone)]
pub struct ClassLine {
    pub cohort: String,
    pub starts: Timestamp,
    pub ends: Timestamp,
    pub students: u32,
}

/// One action, planned or decided.
#[derive(Debug, Clone)]
pub struct ActionLine {
    pub key: String,
    pub at: Timestamp,
    /// "Launch workers up to 4", "Start the servers of Morning" …
    pub what: String,
    /// planned | due | done | missed | paused | skipped
    pub status: String,
    pub detail: String,
    pub jobs: Vec<Uuid>,
}

#[derive(Debug, Clone)]
pub struct CalendarOverview {
    pub now: Timestamp,
    pub enabled: bool,
    pub paused: bool,
    pub rules: Option<Rules>,
    /// Why there is no plan (the worker's memory unknown, EC2 unreachable …).
    pub problem: Option<String>,
    pub classes: Vec<ClassLine>,
    pub actions: Vec<ActionLine>,
}

fn what(a: &Action) -> String {
    match a {
        Action::Grow { workers } => format!("Launch workers up to {workers}"),
        Action::Shrink { workers } => format!("Remove workers down to {workers} (drained first)"),
        Action::Warm { cohort } => format!("Start the servers of {cohort}"),
        Action::StopIdle { cohort } => format!("Stop {cohort}'s idle servers"),
    }
}

fn what_recorded(kind: &str, cohort: Option<&str>, workers: Option<i32>) -> String {
    let c = cohort.unwrap_or("?");
    let n = workers.unwrap_or(0);
    match kind {
        "grow" => format!("Launch workers up to {n}"),
        "shrink" => format!("Remove workers down to {n} (drained first)"),
        "warm" => format!("Start the servers of {c}"),
        _ => format!("Stop {c}'s idle servers"),
    }
}

impl Calendar {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub async fn overview(&self) -> anyhow::Result<CalendarOverview> {
        let now = self.clock.now();
        let from = now
            .checked_sub(SignedDuration::from_hours(24))
            .unwrap_or(now);
        let to = now.checked_add(HORIZON).unwrap_or(now);
        let (enabled, paused) = {
            let mut conn = self.pool.acquire().await?;
            (self.config.enabled, db::calendar::paused(&mut conn).await?)
        };
        let demands = self.demands(from, to).await?;
        let classes = demands
            .iter()
            .filter(|d| d.ends > now)
            .map(|d| ClassLine {
                cohort: d.cohort.clone(),
                starts: d.starts,
                ends: d.ends,
                students: d.students,
            })
            .collect();
        let mut lines: BTreeMap<String, ActionLine> = BTreeMap::new();
        let (rules, problem) = match self.plan_around(now).await {
            Ok((rules, plan)) => {
                for p in plan.into_iter().filter(|p| p.at >= from && p.at < to) {
                    lines.insert(
                        p.key(),
                        ActionLine {
                            key: p.key(),
                            at: p.at,
                            what: what(&p.action),
                            status: match (p.at <= now, enabled) {
                                (false, _) => "planned",
                                (true, true) => "due",
                                (true, false) => "plan-only",
                            }
                            .into(),
                            detail: String::new(),
                            jobs: vec![],
                        },
                    );
                }
                let problem = (rules.worker_memory == 0).then(|| {
                    "The worker's memory is unknown: set [calendar] worker_memory_bytes, or \
                     turn on the cluster desk so EC2 can say."
                        .to_string()
                });
                (Some(rules), problem)
            }
            Err(e) => (None, Some(format!("No plan: {e:#}"))),
        };
        let mut conn = self.pool.acquire().await?;
        for row in db::calendar::between(&mut conn, to_offset(from), to_offset(to)).await? {
            let line = lines.entry(row.key.clone()).or_insert_with(|| ActionLine {
                key: row.key.clone(),
                at: from_offset(row.at),
                what: what_recorded(&row.kind, row.cohort.as_deref(), row.workers),
                status: String::new(),
                detail: String::new(),
                jobs: vec![],
            });
            line.status = row.outcome.clone();
            line.detail = row.detail.clone();
            line.jobs = row.job_ids.clone();
        }
        let mut actions: Vec<ActionLine> = lines.into_values().collect();
        actions.sort_by(|a, b| (a.at, &a.key).cmp(&(b.at, &b.key)));
        Ok(CalendarOverview {
            now,
            enabled,
            paused,
            rules,
            problem,
            classes,
            actions,
        })
    }

    /// The admins' switch; audited.
    pub async fn set_paused(&self, actor: &Actor, paused: bool) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        db::calendar::set_paused(&mut tx, paused, &actor.label()).await?;
        db::audit::record(
            &mut tx,
            actor,
            if paused {
                "calendar.pause"
            } else {
                "calendar.resume"
            },
            None,
            None,
        )
        .await?;
        tx.commit().await
    }

    /// The feed's secret (made by the migration), for the page's subscribe link.
    pub async fn feed_token(&self) -> sqlx::Result<String> {
        let mut conn = self.pool.acquire().await?;
        db::calendar::feed_token(&mut conn).await
    }

    /// The class times of every cohort from four weeks back to eight ahead as iCalendar
    /// (RFC 5545): one event per meeting, in UTC, with a stable UID. `None`: wrong token.
    pub async fn ics(&self, token: &str, camp: &str) -> anyhow::Result<Option<String>> {
        let known = self.feed_token().await?;
        let matches: bool =
            subtle::ConstantTimeEq::ct_eq(known.as_bytes(), token.as_bytes()).into();
        if !matches {
            return Ok(None);
        }
        let now = self.clock.now();
        let from = now
            .checked_sub(SignedDuration::from_hours(24 * 28))
            .unwrap_or(now);
        let to = now
            .checked_add(SignedDuration::from_hours(24 * 56))
            .unwrap_or(now);
        let mut cal = icalendar::Calendar::new();
        cal.name(&format!("{camp}: classes"));
        for d in self.demands(from, to).await? {
            let uid = format!(
                "{}-{}@hubdesk",
                crate::domain::cohort::slug(&d.cohort),
                d.starts.as_second()
            );
            let event = icalendar::Event::new()
                .uid(&uid)
                .summary(&format!("{} class", d.cohort))
                .description(&format!("{} students", d.students))
                .starts(utc(d.starts))
                .ends(utc(d.ends))
                .done();
            cal.push(event);
        }
        Ok(Some(cal.done().to_string()))
    }
}

fn utc(t: Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.as_second(), 0).unwrap_or_default()
}
