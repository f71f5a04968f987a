//! The cost ledger: worker-hours from the fleet's timeline (`worker_hours`, EC2's launch time
//! to the terminate call) × each worker's hourly cost, per day of the camp's zone and per
//! cohort. An hour a worker is up is split among the cohorts whose classes need capacity then
//! (from `lead` before to `grace` after), by their students; hours outside every class are
//! "between classes". Real time throughout: money is spent by the wall clock, whatever the
//! calendar's clock says.
use std::collections::{BTreeMap, BTreeSet};

use jiff::{civil::Date, tz::TimeZone, Timestamp};

/// The cohort name of hours no class needed.
pub const BETWEEN: &str = "between classes";

/// One worker's life within the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: Timestamp,
    pub end: Timestamp,
    pub hourly_cost: f64,
}

/// A cohort needing capacity over `[from, to)` for this many students.
#[derive(Debug, Clone, PartialEq)]
pub struct Presence {
    pub cohort: String,
    pub from: Timestamp,
    pub to: Timestamp,
    pub students: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Share {
    pub hours: f64,
    pub cost: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DayLine {
    pub day: Date,
    pub hours: f64,
    pub cost: f64,
    /// Cohort (or [`BETWEEN`]) → its share of the day.
    pub cohorts: BTreeMap<String, Share>,
}

fn hours(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64() / 3600.0
}

/// The ledger of `[from, to)`, one line per day of `zone` that had a worker up.
pub fn ledger(
    spans: &[Span],
    presence: &[Presence],
    zone: &TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Vec<DayLine> {
    let mut cuts: BTreeSet<Timestamp> = BTreeSet::from([from, to]);
    let inside = |t: Timestamp| t > from && t < to;
    for s in spans {
        cuts.extend([s.start, s.end].into_iter().filter(|t| inside(*t)));
    }
    for p in presence {
        cuts.extend([p.from, p.to].into_iter().filter(|t| inside(*t)));
    }
    // Midnights of the zone, so no piece straddles two days.
    let day_of = |t: Timestamp| t.to_zoned_datetime(zone.clone()).date();
    let mut d = day_of(from);
    while let Ok(next) = d.tomorrow() {
        let Ok(midnight) = next
            .to_datetime(jiff::civil::Time::MIN)
            .to_zoned_datetime(zone.clone())
        else {
            break;
        };
        let m = midnight.timestamp();
        if m >= to {
            break;
        }
        cuts.insert(m);
        d = next;
    }
    let cuts: Vec<Timestamp> = cuts.into_iter().collect();
    let mut days: BTreeMap<Date, DayLine> = BTreeMap::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let h = hours(a, b);
        let alive: Vec<&Span> = spans
            .iter()
            .filter(|s| s.start <= a && s.end >= b)
            .collect();
        if alive.is_empty() || h <= 0.0 {
            continue;
        }
        let piece_hours = h * alive.len() as f64;
        let piece_cost: f64 = alive.iter().map(|s| s.hourly_cost * h).sum();
        let present: Vec<&Presence> = presence
            .iter()
            .filter(|p| p.from <= a && b <= p.to && p.students > 0)
            .collect();
        let students: u32 = present.iter().map(|p| p.students).sum();
        let line = days.entry(day_of(a)).or_insert_with(|| DayLine {
            day: day_of(a),
            hours: 0.0,
            cost: 0.0,
            cohorts: BTreeMap::new(),
        });
        line.hours += piece_hours;
        line.cost += piece_cost;
        if students == 0 {
            let s = line.cohorts.entry(BETWEEN.to_string()).or_default();
            s.hours += piece_hours;
            s.cost += piece_cost;
        } else {
            for p in present {
                let f = f64::from(p.students) / f64::from(students);
                let s = line.cohorts.entry(p.cohort.clone()).or_default();
                s.hours += piece_hours * f;
                s.cost += piece_cost * f;
            }
        }
    }
    days.into_values().collect()
}

/// The ledger as CSV: `day,cohort,worker_hours,cost` (hours to 0.0001, cost to the cent).
pub fn csv(lines: &[DayLine]) -> String {
    let mut out = String::from("day,cohort,worker_hours,cost\n");
    for l in lines {
        for (cohort, s) in &l.cohorts {
            let quoted = if cohort.contains([',', '"', '\n']) {
                format!("\"{}\"", cohort.replace('"', "\"\""))
            } else {
                cohort.clone()
            };
            out.push_str(&format!(
                "{},{quoted},{:.4},{:.2}\n",
                l.day, s.hours, s.cost
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn span(a: &str, b: &str, cost: f64) -> Span {
        Span {
            start: t(a),
            end: t(b),
            hourly_cost: cost,
        }
    }

    #[test]
    fn hours_and_cost_split_by_day_and_by_the_students_present() {
        let spans = [
            span("2027-03-08T14:00:00Z", "2027-03-08T18:00:00Z", 0.1),
            span("2027-03-08T15:00:00Z", "2027-03-08T17:00:00Z", 0.1),
        ];
        let presence = [
            Presence {
                cohort: "Morning".into(),
                from: t("2027-03-08T15:00:00Z"),
                to: t("2027-03-08T17:00:00Z"),
                students: 30,
            },
            Presence {
                cohort: "Evening".into(),
                from: t("2027-03-08T16:00:00Z"),
                to: t("2027-03-08T17:00:00Z"),
                students: 10,
            },
        ];
        let lines = ledger(
            &spans,
            &presence,
            &TimeZone::UTC,
            t("2027-03-08T00:00:00Z"),
            t("2027-03-09T00:00:00Z"),
        );
        assert_eq!(lines.len(), 1);
        let l = &lines[0];
        assert!((l.hours - 6.0).abs() < 1e-9, "4 h + 2 h: {}", l.hours);
        assert!((l.cost - 0.6).abs() < 1e-9);
        // 15–16: Morning alone (2 workers); 16–17: 3:1 between Morning and Evening.
        let m = &l.cohorts["Morning"];
        let e = &l.cohorts["Evening"];
        let b = &l.cohorts[BETWEEN];
        assert!((m.hours - (2.0 + 1.5)).abs() < 1e-9, "{m:?}");
        assert!((e.hours - 0.5).abs() < 1e-9, "{e:?}");
        assert!((b.hours - 2.0).abs() < 1e-9, "14–15 and 17–18: {b:?}");
        assert!((m.hours + e.hours + b.hours - l.hours).abs() < 1e-9);
    }

    #[test]
    fn a_worker_over_midnight_counts_on_both_days_of_the_camps_zone() {
        let chicago = TimeZone::get("America/Chicago").unwrap();
        // 05:00–07:00 UTC is 23:00–01:00 CST.
        let spans = [span("2027-03-09T05:00:00Z", "2027-03-09T07:00:00Z", 1.0)];
        let lines = ledger(
            &spans,
            &[],
            &chicago,
            t("2027-03-08T00:00:00Z"),
            t("2027-03-10T00:00:00Z"),
        );
        let days: Vec<(String, f64)> = lines
            .iter()
            .map(|l| (l.day.to_string(), (l.hours * 1000.0).round() / 1000.0))
            .collect();
        assert_eq!(
            days,
            vec![("2027-03-08".into(), 1.0), ("2027-03-09".into(), 1.0)]
        );
        let csv = csv(&lines);
        assert!(
            csv.starts_with(
                "day,cohort,worker_hours,cost\n2027-03-08,between classes,1.0000,1.00\n"
            ),
            "{csv}"
        );
    }

    #[test]
    fn only_the_window_counts() {
        let spans = [span("2027-03-07T22:00:00Z", "2027-03-08T02:00:00Z", 1.0)];
        let lines = ledger(
            &spans,
            &[],
            &TimeZone::UTC,
            t("2027-03-08T00:00:00Z"),
            t("2027-03-09T00:00:00Z"),
        );
        assert_eq!(lines.len(), 1);
        assert!((lines[0].hours - 2.0).abs() < 1e-9);
    }
}
