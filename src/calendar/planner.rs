//! The planner: from the cohorts' meetings, what the calendar does and when. Pure arithmetic on
//! instants, so a week of camp is planned (and tested) in microseconds.
//!
//! Workers needed at an instant = ⌈Σ over the cohorts meeting then (students × memory
//! guarantee) × (1 + headroom) ÷ a worker's memory⌉, never below the floor (a cohort counts
//! once however many of its meetings overlap). A meeting needs its
//! capacity from `lead` before it starts until `grace` after it ends, so overlapping cohorts
//! share workers and two blocks closer than lead + grace keep them. The fleet's target is a
//! step function of time; each rise is a launch, each fall a shrink (drain first, done by the
//! runner). A cohort's servers are started `warm` before each meeting, and those idle for
//! longer than the grace are stopped `grace` after it.
use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

/// The calendar's settings (`[calendar]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Memory of one worker (the launch form's instance type), bytes.
    pub worker_memory: u64,
    /// Extra capacity over the guarantees, as a fraction (0.1 = 10 %).
    pub headroom: f64,
    /// Never fewer workers than this (0 = the fleet may go away between classes).
    pub floor: u32,
    /// Workers are launched this long before a meeting starts.
    pub lead: SignedDuration,
    /// Servers are started this long before a meeting starts.
    pub warm: SignedDuration,
    /// How long after a meeting its capacity stays, and how idle a server must be to stop.
    pub grace: SignedDuration,
}

/// One cohort's meeting, with what it asks of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    pub cohort: String,
    pub starts: Timestamp,
    pub ends: Timestamp,
    /// Students enrolled in the cohort (who may log in).
    pub students: u32,
    /// The cohort profile's memory guarantee per notebook, bytes.
    pub memory_guarantee: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Grow the fleet to this many workers (launch the missing ones).
    Grow { workers: u32 },
    /// Start the cohort's servers, in waves.
    Warm { cohort: String },
    /// Stop the cohort's servers idle for longer than the grace.
    StopIdle { cohort: String },
    /// Shrink the fleet to this many workers (drain, then terminate the extra ones).
    Shrink { workers: u32 },
}

/// An action at its time. `key` names it for good ("grow@2027-03-08T14:30:00Z"): the runner
/// records each key it has done, so a restart never does one twice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Planned {
    pub at: Timestamp,
    pub action: Action,
}

impl Planned {
    pub fn key(&self) -> String {
        let at = self.at;
        match &self.action {
            Action::Grow { workers } => format!("grow:{workers}@{at}"),
            Action::Shrink { workers } => format!("shrink:{workers}@{at}"),
            Action::Warm { cohort } => format!("warm:{cohort}@{at}"),
            Action::StopIdle { cohort } => format!("stop-idle:{cohort}@{at}"),
        }
    }
}

impl Rules {
    /// Workers for this much guaranteed memory (bytes), never below the floor.
    pub fn workers_for(&self, memory: u64) -> u32 {
        if memory == 0 || self.worker_memory == 0 {
            return self.floor;
        }
        let wanted = memory as f64 * (1.0 + self.headroom.max(0.0));
        let n = (wanted / self.worker_memory as f64).ceil();
        (n.min(u32::MAX as f64) as u32).max(self.floor)
    }

    /// When a meeting needs its capacity: `[start − lead, end + grace)`.
    pub fn needs(&self, d: &Demand) -> (Timestamp, Timestamp) {
        (self.needs_from(d), self.needs_until(d))
    }

    fn needs_from(&self, d: &Demand) -> Timestamp {
        d.starts.checked_sub(self.lead).unwrap_or(d.starts)
    }

    fn needs_until(&self, d: &Demand) -> Timestamp {
        d.ends.checked_add(self.grace).unwrap_or(d.ends)
    }

    /// The fleet's target at `t`.
    pub fn target_at(&self, demands: &[Demand], t: Timestamp) -> u32 {
        // Per cohort the largest of its meetings needing capacity now (a cohort's two blocks
        // that touch are the same students), summed over the cohorts.
        let mut per_cohort: std::collections::BTreeMap<&str, u64> = Default::default();
        for d in demands
            .iter()
            .filter(|d| self.needs_from(d) <= t && t < self.needs_until(d))
        {
            let m = u64::from(d.students).saturating_mul(d.memory_guarantee);
            let e = per_cohort.entry(d.cohort.as_str()).or_default();
            *e = (*e).max(m);
        }
        self.workers_for(per_cohort.values().copied().fold(0, u64::saturating_add))
    }

    /// Everything the calendar will do for these meetings, in time order (ties: grow before
    /// warm before stop before shrink, so capacity comes first and goes last).
    pub fn plan(&self, demands: &[Demand]) -> Vec<Planned> {
        let mut out = Vec::new();
        let edges: BTreeSet<Timestamp> = demands
            .iter()
            .flat_map(|d| [self.needs_from(d), self.needs_until(d)])
            .collect();
        let mut before = self.floor;
        for t in edges {
            let now = self.target_at(demands, t);
            if now > before {
                out.push(Planned {
                    at: t,
                    action: Action::Grow { workers: now },
                });
            } else if now < before {
                out.push(Planned {
                    at: t,
                    action: Action::Shrink { workers: now },
                });
            }
            before = now;
        }
        for d in demands {
            let warm_at = d.starts.checked_sub(self.warm).unwrap_or(d.starts);
            out.push(Planned {
                at: warm_at,
                action: Action::Warm {
                    cohort: d.cohort.clone(),
                },
            });
            out.push(Planned {
                at: self.needs_until(d),
                action: Action::StopIdle {
                    cohort: d.cohort.clone(),
                },
            });
        }
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn rules() -> Rules {
        Rules {
            worker_memory: 16 * GIB,
            headroom: 0.1,
            floor: 1,
            lead: SignedDuration::from_mins(20),
            warm: SignedDuration::from_mins(10),
            grace: SignedDuration::from_mins(15),
        }
    }

    fn meets(cohort: &str, starts: &str, ends: &str, students: u32, gib: u64) -> Demand {
        Demand {
            cohort: cohort.into(),
            starts: t(starts),
            ends: t(ends),
            students,
            memory_guarantee: gib * GIB,
        }
    }

    #[test]
    fn workers_are_the_guarantees_with_headroom_over_a_worker_never_below_the_floor() {
        let r = rules();
        // 25 × 2 GiB × 1.1 = 55 GiB over 16 GiB workers: 4.
        assert_eq!(r.workers_for(25 * 2 * GIB), 4);
        // 16 GiB exactly fills one, but the headroom asks for a second.
        assert_eq!(r.workers_for(16 * GIB), 2);
        assert_eq!(r.workers_for(0), 1, "the floor");
        let none = Rules { floor: 0, ..r };
        assert_eq!(none.workers_for(0), 0);
        assert_eq!(none.workers_for(1), 1);
    }

    #[test]
    fn one_block_grows_at_lead_warms_and_shrinks_after_grace() {
        let r = rules();
        let d = [meets(
            "a",
            "2027-03-08T15:00:00Z",
            "2027-03-08T18:00:00Z",
            25,
            2,
        )];
        let plan = r.plan(&d);
        assert_eq!(
            plan,
            vec![
                Planned {
                    at: t("2027-03-08T14:40:00Z"),
                    action: Action::Grow { workers: 4 }
                },
                Planned {
                    at: t("2027-03-08T14:50:00Z"),
                    action: Action::Warm { cohort: "a".into() }
                },
                Planned {
                    at: t("2027-03-08T18:15:00Z"),
                    action: Action::StopIdle { cohort: "a".into() }
                },
                Planned {
                    at: t("2027-03-08T18:15:00Z"),
                    action: Action::Shrink { workers: 1 }
                },
            ]
        );
        assert_eq!(plan[0].key(), "grow:4@2027-03-08T14:40:00Z");
    }

    #[test]
    fn overlapping_cohorts_share_the_fleet() {
        let r = rules();
        // a: 09:00–12:00 (25 × 2 GiB); b: 11:00–13:00 (20 × 4 GiB), in UTC for the arithmetic.
        let d = [
            meets("a", "2027-03-08T09:00:00Z", "2027-03-08T12:00:00Z", 25, 2),
            meets("b", "2027-03-08T11:00:00Z", "2027-03-08T13:00:00Z", 20, 4),
        ];
        let fleet: Vec<(Timestamp, Action)> = r
            .plan(&d)
            .into_iter()
            .filter(|p| matches!(p.action, Action::Grow { .. } | Action::Shrink { .. }))
            .map(|p| (p.at, p.action))
            .collect();
        assert_eq!(
            fleet,
            vec![
                (t("2027-03-08T08:40:00Z"), Action::Grow { workers: 4 }),
                // (50 + 80) × 1.1 = 143 GiB: 9 workers while both meet.
                (t("2027-03-08T10:40:00Z"), Action::Grow { workers: 9 }),
                // a's grace ends: b alone, 88 GiB: 6.
                (t("2027-03-08T12:15:00Z"), Action::Shrink { workers: 6 }),
                (t("2027-03-08T13:15:00Z"), Action::Shrink { workers: 1 }),
            ]
        );
        assert_eq!(r.target_at(&d, t("2027-03-08T11:30:00Z")), 9);
        assert_eq!(r.target_at(&d, t("2027-03-08T07:00:00Z")), 1);
    }

    #[test]
    fn blocks_closer_than_lead_and_grace_keep_the_workers() {
        let r = rules();
        // Lunch of 30 minutes < grace 15 + lead 20: no shrink and regrow in between.
        let d = [
            meets("a", "2027-03-08T09:00:00Z", "2027-03-08T12:00:00Z", 25, 2),
            meets("a", "2027-03-08T12:30:00Z", "2027-03-08T15:00:00Z", 25, 2),
        ];
        let fleet: Vec<Action> = r
            .plan(&d)
            .into_iter()
            .filter(|p| matches!(p.action, Action::Grow { .. } | Action::Shrink { .. }))
            .map(|p| p.action)
            .collect();
        assert_eq!(
            fleet,
            vec![Action::Grow { workers: 4 }, Action::Shrink { workers: 1 }]
        );
    }

    #[test]
    fn no_meetings_no_actions() {
        assert!(rules().plan(&[]).is_empty());
    }
}
