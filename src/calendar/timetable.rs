//! A cohort's timetable: class blocks written as people write them ("Mon–Fri 09:00–12:00" in the
//! cohort's zone, or "Wed 2027-07-07 19:00–21:00" once), turned into instants. Wall-clock times
//! are kept as written and made instants per day in the zone, so a block stays at 09:00 local
//! across a daylight-saving change (its UTC time moves by the hour). A time that does not exist
//! that day (spring forward) or exists twice (fall back) is resolved as RFC 9557 "compatible"
//! does: the later wall time in a gap, the earlier instant in a fold.
use jiff::{
    civil::{Date, Time, Weekday},
    tz::TimeZone,
    Timestamp,
};

/// Days of the week as a set (bit 0 = Monday … bit 6 = Sunday), as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Days(u8);

impl Days {
    pub const WEEKDAYS: Days = Days(0b001_1111);

    pub fn from_bits(bits: u8) -> Option<Days> {
        (bits != 0 && bits < 0x80).then_some(Days(bits))
    }

    pub fn of(days: &[Weekday]) -> Days {
        Days(days.iter().fold(0, |acc, d| acc | Self::bit(*d)))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    fn bit(d: Weekday) -> u8 {
        1 << (d.to_monday_zero_offset() as u8)
    }

    pub fn contains(self, d: Weekday) -> bool {
        self.0 & Self::bit(d) != 0
    }

    /// The weekday a key names ("mon", "Tue" …), as the forms and the API write it.
    pub fn day_of_key(key: &str) -> Option<Weekday> {
        let key = key.trim().to_ascii_lowercase();
        DAY_KEYS
            .iter()
            .position(|(k, _)| *k == key)
            .and_then(|i| Weekday::from_monday_zero_offset(i as i8).ok())
    }

    /// The keys of the days it holds, Monday first: `["mon", "wed"]`.
    pub fn keys(self) -> Vec<&'static str> {
        (0..7)
            .filter(|i| self.0 & (1 << i) != 0)
            .map(|i| DAY_KEYS[i].0)
            .collect()
    }

    /// "Mon–Fri", "Mon, Wed, Fri", "every day".
    pub fn label(self) -> String {
        const NAMES: [&str; 7] = DAY_LABELS;
        if self.0 == 0x7f {
            return "every day".into();
        }
        let on: Vec<usize> = (0..7).filter(|i| self.0 & (1 << i) != 0).collect();
        let contiguous = on.windows(2).all(|w| w[1] == w[0] + 1);
        if on.len() >= 3 && contiguous {
            return format!("{}–{}", NAMES[on[0]], NAMES[on[on.len() - 1]]);
        }
        on.iter().map(|i| NAMES[*i]).collect::<Vec<_>>().join(", ")
    }
}

/// The days of the week as the forms and the API name them (key) and show them (label).
pub const DAY_KEYS: [(&str, &str); 7] = [
    ("mon", "Mon"),
    ("tue", "Tue"),
    ("wed", "Wed"),
    ("thu", "Thu"),
    ("fri", "Fri"),
    ("sat", "Sat"),
    ("sun", "Sun"),
];
const DAY_LABELS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// When a block meets: every listed weekday between the cohort's first and last day, or once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recurrence {
    Weekly(Days),
    Once(Date),
}

/// One class block, in the cohort's wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub when: Recurrence,
    pub starts: Time,
    pub ends: Time,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("the block must end after it starts (a class cannot run past midnight)")]
    EndsBeforeStart,
    #[error("choose at least one day of the week")]
    NoDays,
}

impl Block {
    pub fn new(when: Recurrence, starts: Time, ends: Time) -> Result<Block, BlockError> {
        if ends <= starts {
            return Err(BlockError::EndsBeforeStart);
        }
        if matches!(when, Recurrence::Weekly(d) if d.bits() == 0) {
            return Err(BlockError::NoDays);
        }
        Ok(Block { when, starts, ends })
    }

    /// "Mon–Fri 09:00–12:00", "Wed 7 Jul 2027 19:00–21:00".
    pub fn label(&self) -> String {
        let hm = |t: Time| format!("{:02}:{:02}", t.hour(), t.minute());
        let when = match self.when {
            Recurrence::Weekly(d) => d.label(),
            Recurrence::Once(date) => date.strftime("%a %-d %b %Y").to_string(),
        };
        format!("{when} {}–{}", hm(self.starts), hm(self.ends))
    }
}

/// A cohort's timetable: its zone, first and last day (inclusive, in the zone; a weekly block
/// repeats without end on a side that has none) and blocks.
#[derive(Debug, Clone)]
pub struct Timetable {
    pub zone: TimeZone,
    pub first_day: Option<Date>,
    pub last_day: Option<Date>,
    pub blocks: Vec<Block>,
}

/// One meeting of a block: instants, start inclusive, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Meeting {
    pub starts: Timestamp,
    pub ends: Timestamp,
    /// Which block of the timetable (its index), to name it.
    pub block: usize,
}

impl Timetable {
    /// The meetings that overlap `[from, to)`, in time order. Blocks of one-off sessions outside
    /// the first and last day still count: a counselor who adds one means it.
    pub fn meetings(&self, from: Timestamp, to: Timestamp) -> Vec<Meeting> {
        let mut out = Vec::new();
        if from >= to {
            return out;
        }
        // Wall-clock days that can hold a meeting overlapping the window: a day either side,
        // since a zone's offset moves a day's blocks up to a day in UTC.
        let day_of = |t: Timestamp| t.to_zoned_datetime(self.zone.clone()).date();
        let (Ok(lo), Ok(hi)) = (day_of(from).yesterday(), day_of(to).tomorrow()) else {
            return out;
        };
        for (i, block) in self.blocks.iter().enumerate() {
            let days: Vec<Date> = match block.when {
                Recurrence::Once(d) => vec![d],
                Recurrence::Weekly(set) => {
                    let start = self.first_day.map_or(lo, |f| lo.max(f));
                    let end = self.last_day.map_or(hi, |l| hi.min(l));
                    let mut days = Vec::new();
                    let mut d = start;
                    while d <= end {
                        if set.contains(d.weekday()) {
                            days.push(d);
                        }
                        match d.tomorrow() {
                            Ok(n) => d = n,
                            Err(_) => break,
                        }
                    }
                    days
                }
            };
            for day in days {
                let Some(m) = self.meeting_on(i, block, day) else {
                    continue;
                };
                if m.starts < to && m.ends > from {
                    out.push(m);
                }
            }
        }
        out.sort();
        out
    }

    fn meeting_on(&self, i: usize, block: &Block, day: Date) -> Option<Meeting> {
        let at = |t: Time| {
            day.to_datetime(t)
                .to_zoned_datetime(self.zone.clone())
                .ok()
                .map(|z| z.timestamp())
        };
        let (starts, ends) = (at(block.starts)?, at(block.ends)?);
        // A block that a daylight-saving change squeezes to nothing (01:30–02:00 on the night
        // the clocks skip to 03:00) does not meet.
        (ends > starts).then_some(Meeting {
            starts,
            ends,
            block: i,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn chicago() -> TimeZone {
        TimeZone::get("America/Chicago").unwrap()
    }

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn camp(blocks: Vec<Block>) -> Timetable {
        Timetable {
            zone: chicago(),
            first_day: Some(date(2027, 3, 8)),
            last_day: Some(date(2027, 3, 19)),
            blocks,
        }
    }

    fn weekdays(h1: i8, m1: i8, h2: i8, m2: i8) -> Block {
        Block::new(
            Recurrence::Weekly(Days::WEEKDAYS),
            time(h1, m1, 0, 0),
            time(h2, m2, 0, 0),
        )
        .unwrap()
    }

    #[test]
    fn a_weekly_block_meets_on_its_days_between_the_first_and_last_day() {
        let t = camp(vec![weekdays(9, 0, 12, 0)]);
        let all = t.meetings(utc("2027-03-01T00:00:00Z"), utc("2027-04-01T00:00:00Z"));
        assert_eq!(all.len(), 10, "two weeks of Mon–Fri");
        assert_eq!(all[0].starts, utc("2027-03-08T15:00:00Z"), "09:00 CST");
    }

    #[test]
    fn the_wall_clock_time_holds_across_daylight_saving() {
        // The US springs forward on Sunday 14 March 2027: 09:00 is 15:00 UTC before, 14:00 after.
        let t = camp(vec![weekdays(9, 0, 12, 0)]);
        let all = t.meetings(utc("2027-03-12T00:00:00Z"), utc("2027-03-16T00:00:00Z"));
        let starts: Vec<Timestamp> = all.iter().map(|m| m.starts).collect();
        assert_eq!(
            starts,
            vec![utc("2027-03-12T15:00:00Z"), utc("2027-03-15T14:00:00Z")]
        );
        assert_eq!(all[1].ends, utc("2027-03-15T17:00:00Z"));
    }

    #[test]
    fn a_block_in_the_skipped_hour_moves_later_and_an_empty_one_is_dropped() {
        let mut t = camp(vec![
            Block::new(
                Recurrence::Once(date(2027, 3, 14)),
                time(2, 30, 0, 0),
                time(4, 0, 0, 0),
            )
            .unwrap(),
            // 02:15 becomes 03:15 CDT, after the end at 03:00 CDT: nothing is left of it.
            Block::new(
                Recurrence::Once(date(2027, 3, 14)),
                time(2, 15, 0, 0),
                time(3, 0, 0, 0),
            )
            .unwrap(),
        ]);
        t.zone = chicago();
        let all = t.meetings(utc("2027-03-14T00:00:00Z"), utc("2027-03-15T00:00:00Z"));
        assert_eq!(all.len(), 1, "{all:?}");
        // 02:30 does not exist: compatible → 03:30 CDT = 08:30 UTC.
        assert_eq!(all[0].starts, utc("2027-03-14T08:30:00Z"));
        assert_eq!(all[0].block, 0);
    }

    #[test]
    fn meetings_overlapping_the_window_edges_count() {
        let t = camp(vec![weekdays(9, 0, 12, 0)]);
        // 10:00–10:01 CST on Monday 8 March is inside the first meeting.
        let m = t.meetings(utc("2027-03-08T16:00:00Z"), utc("2027-03-08T16:01:00Z"));
        assert_eq!(m.len(), 1);
        // The window ending exactly at the start does not.
        let m = t.meetings(utc("2027-03-08T14:00:00Z"), utc("2027-03-08T15:00:00Z"));
        assert!(m.is_empty());
    }

    #[test]
    fn one_off_sessions_and_sorting() {
        let t = camp(vec![
            weekdays(13, 30, 16, 0),
            Block::new(
                Recurrence::Once(date(2027, 3, 8)),
                time(9, 0, 0, 0),
                time(10, 0, 0, 0),
            )
            .unwrap(),
        ]);
        let m = t.meetings(utc("2027-03-08T00:00:00Z"), utc("2027-03-09T00:00:00Z"));
        assert_eq!(m.iter().map(|m| m.block).collect::<Vec<_>>(), vec![1, 0]);
    }

    #[test]
    fn blocks_are_checked_and_named() {
        assert_eq!(
            Block::new(
                Recurrence::Weekly(Days::WEEKDAYS),
                time(12, 0, 0, 0),
                time(9, 0, 0, 0)
            ),
            Err(BlockError::EndsBeforeStart)
        );
        assert_eq!(
            Block::new(
                Recurrence::Weekly(Days::default()),
                time(9, 0, 0, 0),
                time(12, 0, 0, 0)
            ),
            Err(BlockError::NoDays)
        );
        assert_eq!(weekdays(9, 0, 12, 0).label(), "Mon–Fri 09:00–12:00");
        let mwf = Days::of(&[Weekday::Monday, Weekday::Wednesday, Weekday::Friday]);
        assert_eq!(mwf.label(), "Mon, Wed, Fri");
        assert_eq!(mwf.keys(), vec!["mon", "wed", "fri"]);
        assert_eq!(Days::day_of_key(" Wed "), Some(Weekday::Wednesday));
        assert_eq!(Days::day_of_key("wednesday"), None);
        assert_eq!(Days::from_bits(mwf.bits()), Some(mwf));
        assert_eq!(Days::from_bits(0), None);
        let once = Block::new(
            Recurrence::Once(date(2027, 7, 7)),
            time(19, 0, 0, 0),
            time(21, 0, 0, 0),
        )
        .unwrap();
        assert_eq!(once.label(), "Wed 7 Jul 2027 19:00–21:00");
    }
}
