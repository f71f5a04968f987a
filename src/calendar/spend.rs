//! The calendar's side of the cost ledger: keeping the fleet's timeline (`worker_hours`) and
//! reading the ledger of a window (`ledger::ledger` does the arithmetic).
use jiff::{SignedDuration, Timestamp};
use time::format_description::well_known::Rfc3339;

use super::{
    clock::{from_offset, to_offset},
    ledger::{self, DayLine, Presence, Span},
    runner::Calendar,
};
use crate::db;

impl Calendar {
    /// One look at the fleet: every tagged worker EC2 shows is in the timeline (from its launch
    /// time); one that is shutting down, terminated or gone has its end (now, unless the
    /// removal job already wrote the terminate call's time). Runs on one instance, every
    /// `tick_secs`, with the cluster desk on.
    pub async fn record_fleet(&self) -> anyhow::Result<()> {
        let Some(cluster) = &self.cluster else {
            return Ok(());
        };
        let instances = cluster.instances().await?;
        let cost = cluster.config().worker.hourly_cost;
        let now = time::OffsetDateTime::now_utc();
        let mut tx = self.pool.begin().await?;
        for i in &instances {
            let Ok(launched) = time::OffsetDateTime::parse(&i.launch_time, &Rfc3339) else {
                continue;
            };
            db::ledger::seen(&mut tx, &i.id, &i.instance_type, cost, launched).await?;
            if i.state.is_ending() {
                db::ledger::ended(&mut tx, &i.id, now).await?;
            }
        }
        for id in db::ledger::open(&mut tx).await? {
            if !instances.iter().any(|i| i.id == id) {
                db::ledger::ended(&mut tx, &id, now).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The ledger of `[from, to)` (real time), by day of the camp's zone and by cohort.
    pub async fn ledger(
        &self,
        zone: &jiff::tz::TimeZone,
        from: Timestamp,
        to: Timestamp,
    ) -> anyhow::Result<Vec<DayLine>> {
        let now = Timestamp::now();
        let rows = {
            let mut conn = self.pool.acquire().await?;
            db::ledger::overlapping(&mut conn, to_offset(from), to_offset(to)).await?
        };
        let spans: Vec<Span> = rows
            .iter()
            .map(|r| Span {
                start: from_offset(r.launched_at).max(from),
                end: r.ended_at.map(from_offset).unwrap_or(now).min(to),
                hourly_cost: r.hourly_cost,
            })
            .filter(|s| s.end > s.start)
            .collect();
        let rules = self.timing();
        let presence: Vec<Presence> = self
            .demands(
                from.checked_sub(SignedDuration::from_hours(24))
                    .unwrap_or(from),
                to.checked_add(SignedDuration::from_hours(24)).unwrap_or(to),
            )
            .await?
            .iter()
            .map(|d| {
                let (a, b) = rules.needs(d);
                Presence {
                    cohort: d.cohort.clone(),
                    from: a,
                    to: b,
                    students: d.students,
                }
            })
            .collect();
        Ok(ledger::ledger(&spans, &presence, zone, from, to))
    }
}
