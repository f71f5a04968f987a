//! The week's budget (issue 17): an optional ceiling, set by an admin, on what the workers
//! cost in the camp's week (Monday 00:00 to Monday 00:00 in `[ui] timezone`). The projection
//! is what the week has spent so far (the ledger) plus the fleet from now to the week's end:
//! the workers up now (and those being launched), then as the calendar's plan grows and
//! shrinks it. A launch that would push the projection over the budget needs an admin: by
//! hand, a tick box on that launch; the calendar's own launches are held until an admin allows
//! the week over budget. Both are audited.
use futures_util::future::BoxFuture;
use jiff::{civil::Date, tz::TimeZone, Timestamp};

use super::{
    planner::{Action, Planned},
    runner::Calendar,
};
use crate::{
    cluster::{Budget, OverBudget},
    db,
    domain::Actor,
};

/// The camp's week around an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Week {
    pub monday: Date,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Week {
    /// The week (Monday to Monday in `zone`) that holds `now`.
    pub fn of(now: Timestamp, zone: &TimeZone) -> Week {
        let day = now.to_zoned_datetime(zone.clone()).date();
        let back = i64::from(day.weekday().to_monday_zero_offset());
        let monday = day.checked_sub(jiff::Span::new().days(back)).unwrap_or(day);
        let next = monday
            .checked_add(jiff::Span::new().days(7))
            .unwrap_or(monday);
        let midnight = |d: Date| {
            d.to_datetime(jiff::civil::Time::MIN)
                .to_zoned_datetime(zone.clone())
                .map(|z| z.timestamp())
                .unwrap_or(now)
        };
        Week {
            monday,
            start: midnight(monday),
            end: midnight(next),
        }
    }
}

fn hours(a: Timestamp, b: Timestamp) -> f64 {
    (b.duration_since(a).as_secs_f64() / 3600.0).max(0.0)
}

/// What `fleet` workers cost from `now` to `end` at `hourly` each, as the plan's actions after
/// `now` grow ("at least n") and shrink ("at most n") the fleet.
pub fn rest_of_week(
    now: Timestamp,
    end: Timestamp,
    fleet: u32,
    hourly: f64,
    plan: &[Planned],
) -> f64 {
    let mut steps: Vec<&Planned> = plan.iter().filter(|p| p.at > now && p.at < end).collect();
    steps.sort_by_key(|p| p.at);
    let (mut n, mut t, mut cost) = (fleet, now, 0.0);
    for p in steps {
        let next = match p.action {
            Action::Grow { workers } => n.max(workers),
            Action::Shrink { workers } => n.min(workers),
            Action::Warm { .. } | Action::StopIdle { .. } => continue,
        };
        cost += f64::from(n) * hourly * hours(t, p.at);
        (n, t) = (next, p.at);
    }
    cost + f64::from(n) * hourly * hours(t, end)
}

/// The week's money, as the calendar page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WeekBudget {
    pub week: Week,
    /// Dollars; `None`: no budget.
    pub budget: Option<f64>,
    /// Spent from the week's start to now (the ledger).
    pub spent: f64,
    /// `spent` plus the fleet to the week's end, as things stand and as the plan goes.
    pub projected: f64,
    /// An admin allowed the calendar over the budget this week.
    pub allowed: bool,
}

impl WeekBudget {
    pub fn over(&self) -> bool {
        self.budget.is_some_and(|b| self.projected > b)
    }
}

impl Calendar {
    /// The week of `now` with `extra` more workers launched now, and at least `at_least`.
    async fn week_with(
        &self,
        now: Timestamp,
        extra: u32,
        at_least: u32,
    ) -> anyhow::Result<WeekBudget> {
        let week = Week::of(now, &self.zone);
        let (budget, allowed_week) = {
            let mut conn = self.pool.acquire().await?;
            db::calendar::budget(&mut conn).await?
        };
        let spent: f64 = self
            .ledger(&self.zone, week.start, now)
            .await?
            .iter()
            .fold(0.0, |sum, d| sum + d.cost);
        let (fleet, hourly) = match &self.cluster {
            Some(cluster) => {
                let up = cluster
                    .instances()
                    .await?
                    .iter()
                    .filter(|i| i.state.is_live())
                    .count();
                let coming = {
                    let mut conn = self.pool.acquire().await?;
                    db::calendar::workers_being_launched(&mut conn).await?
                };
                let n = u32::try_from(up as i64 + coming.max(0)).unwrap_or(u32::MAX);
                (n, cluster.config().worker.hourly_cost)
            }
            None => (0, 0.0),
        };
        // The plan counts only when the calendar carries it out.
        let plan = if self.config.enabled {
            self.plan_around(now).await?.1
        } else {
            vec![]
        };
        let fleet = fleet.saturating_add(extra).max(at_least);
        let projected = spent + rest_of_week(now, week.end, fleet, hourly, &plan);
        Ok(WeekBudget {
            week,
            budget,
            spent,
            projected,
            allowed: allowed_week == Some(super::cohorts::to_time_date(week.monday)),
        })
    }

    /// The week as it stands (the calendar page, the API), a launch the calendar holds counted
    /// as going ahead (which is what allowing the week does).
    pub async fn week_budget(&self) -> anyhow::Result<WeekBudget> {
        let now = self.clock.now();
        let since = now
            .checked_sub(jiff::SignedDuration::from_mins(i64::from(
                self.config.catch_up_mins,
            )))
            .unwrap_or(now);
        let held = {
            let mut conn = self.pool.acquire().await?;
            db::calendar::held_workers(&mut conn, super::clock::to_offset(since)).await?
        };
        self.week_with(now, 0, held).await
    }

    /// Whether `count` more workers launched at `now` pass the budget, and whether an admin
    /// allowed this week over it (`None`: no budget, or within it). The budget is read first:
    /// without one, no projection is made (no EC2 call).
    async fn over_at(
        &self,
        now: Timestamp,
        count: u32,
    ) -> anyhow::Result<Option<(OverBudget, bool)>> {
        let budget = {
            let mut conn = self.pool.acquire().await?;
            db::calendar::budget(&mut conn).await?.0
        };
        if budget.is_none() {
            return Ok(None);
        }
        let w = self.week_with(now, count, 0).await?;
        Ok(w.budget.filter(|b| w.projected > *b).map(|budget| {
            (
                OverBudget {
                    projected: w.projected,
                    budget,
                },
                w.allowed,
            )
        }))
    }

    /// Whether `count` more workers launched now pass the budget (a launch by hand asks).
    pub async fn over_budget_with(&self, count: u32) -> anyhow::Result<Option<OverBudget>> {
        Ok(self.over_at(self.clock.now(), count).await?.map(|(o, _)| o))
    }

    /// Whether the calendar's launch of `count` now is held for the budget (over it, and the
    /// week not allowed).
    pub(super) async fn held_for_budget(
        &self,
        now: Timestamp,
        count: u32,
    ) -> anyhow::Result<Option<OverBudget>> {
        Ok(self
            .over_at(now, count)
            .await?
            .and_then(|(o, allowed)| (!allowed).then_some(o)))
    }

    /// Sets (or, with `None`, removes) the week's budget; audited.
    pub async fn set_budget(&self, actor: &Actor, budget: Option<f64>) -> anyhow::Result<()> {
        if let Some(b) = budget {
            anyhow::ensure!(
                b.is_finite() && b >= 0.0,
                "a budget is a sum of dollars, 0 or more"
            );
        }
        let mut tx = self.pool.begin().await?;
        db::calendar::set_budget(&mut tx, budget).await?;
        let detail = match budget {
            Some(b) => format!("${b:.2} a week"),
            None => "none".to_string(),
        };
        db::audit::record(&mut tx, actor, "calendar.budget", None, Some(&detail)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lets the calendar's launches pass the budget for the rest of this week; audited.
    pub async fn allow_over_budget(&self, actor: &Actor) -> anyhow::Result<WeekBudget> {
        let w = self.week_budget().await?;
        let mut tx = self.pool.begin().await?;
        db::calendar::allow_week(&mut tx, super::cohorts::to_time_date(w.week.monday)).await?;
        let detail = format!(
            "the week of {}: projected ${:.2}, budget {}",
            w.week.monday,
            w.projected,
            w.budget
                .map(|b| format!("${b:.2}"))
                .unwrap_or_else(|| "none".into())
        );
        db::audit::record(&mut tx, actor, "calendar.over_budget", None, Some(&detail)).await?;
        tx.commit().await?;
        Ok(w)
    }
}

/// The cluster desk asks the calendar before a launch by hand.
impl Budget for Calendar {
    fn over_with(&self, count: u32) -> BoxFuture<'_, anyhow::Result<Option<OverBudget>>> {
        Box::pin(self.over_budget_with(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_week_runs_monday_to_monday_in_the_camps_zone_across_a_clock_change() {
        let chicago = TimeZone::get("America/Chicago").unwrap();
        // Wednesday 10 March 2027; the clocks go forward on Sunday the 14th.
        let w = Week::of(t("2027-03-10T15:00:00Z"), &chicago);
        assert_eq!(w.monday, jiff::civil::date(2027, 3, 8));
        assert_eq!(w.start, t("2027-03-08T06:00:00Z"), "midnight CST");
        assert_eq!(w.end, t("2027-03-15T05:00:00Z"), "midnight CDT");
        // Sunday 23:30 local is still that week; Monday 00:30 is the next.
        assert_eq!(
            Week::of(t("2027-03-15T04:30:00Z"), &chicago).monday,
            w.monday
        );
        assert_eq!(
            Week::of(t("2027-03-15T05:30:00Z"), &chicago).monday,
            jiff::civil::date(2027, 3, 15)
        );
    }

    #[test]
    fn the_rest_of_the_week_follows_the_plans_grows_and_shrinks() {
        let plan = [
            Planned {
                at: t("2027-03-08T14:40:00Z"),
                action: Action::Grow { workers: 3 },
            },
            Planned {
                at: t("2027-03-08T14:50:00Z"),
                action: Action::Warm {
                    cohort: "Morning".into(),
                },
            },
            Planned {
                at: t("2027-03-08T18:40:00Z"),
                action: Action::Shrink { workers: 1 },
            },
            // After the week's end: not counted.
            Planned {
                at: t("2027-03-15T14:40:00Z"),
                action: Action::Grow { workers: 9 },
            },
        ];
        let now = t("2027-03-08T12:40:00Z");
        let end = t("2027-03-09T00:00:00Z");
        // 1 worker 12:40–14:40 (2 h), 3 to 18:40 (12 h), 1 to midnight (5 h 20 min).
        let cost = rest_of_week(now, end, 1, 0.5, &plan);
        assert!(
            (cost - 0.5 * (2.0 + 12.0 + 16.0 / 3.0)).abs() < 1e-9,
            "{cost}"
        );
        // Two launched by hand now: 3 until the grow (which then has nothing to add), then
        // the shrink takes the fleet down to 1.
        let cost = rest_of_week(now, end, 3, 0.5, &plan);
        assert!(
            (cost - 0.5 * (6.0 + 12.0 + 16.0 / 3.0)).abs() < 1e-9,
            "{cost}"
        );
        // No plan: the fleet stays to the week's end.
        assert!((rest_of_week(now, end, 2, 1.0, &[]) - 2.0 * (11.0 + 1.0 / 3.0)).abs() < 1e-9);
    }

    #[test]
    fn over_means_strictly_past_the_budget() {
        let w = WeekBudget {
            week: Week::of(t("2027-03-10T15:00:00Z"), &TimeZone::UTC),
            budget: Some(10.0),
            spent: 4.0,
            projected: 10.0,
            allowed: false,
        };
        assert!(!w.over());
        assert!(WeekBudget {
            projected: 10.01,
            ..w.clone()
        }
        .over());
        assert!(!WeekBudget {
            budget: None,
            projected: 99.0,
            ..w
        }
        .over());
    }
}
