//! Times as people read them: in the camp's time zone (`[ui] timezone`), short ("Mon 09:14"),
//! with the full local time and the UTC time on hover. Templates show a [`Moment`] with the
//! `time` macro of `templates/web/time.html`:
//! `<time datetime="2025-03-10T14:14:00Z" title="…">Mon 09:14</time>`.
use jiff::{tz::TimeZone, Timestamp, ZonedDateTime};
use time::OffsetDateTime;

use crate::config::Config;

/// A time, or a reference to one however deep (templates hand over `&&OffsetDateTime`).
pub trait AsTime {
    fn as_time(&self) -> OffsetDateTime;
}

impl AsTime for OffsetDateTime {
    fn as_time(&self) -> OffsetDateTime {
        *self
    }
}

impl<T: AsTime + ?Sized> AsTime for &T {
    fn as_time(&self) -> OffsetDateTime {
        (**self).as_time()
    }
}

/// The camp's clock, read once per page (so "today" is the same for every row).
#[derive(Clone, Debug)]
pub struct Clock {
    zone: TimeZone,
    now: ZonedDateTime,
}

/// One time, ready for a `<time>` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moment {
    /// RFC 3339 in UTC, for `datetime=`.
    pub iso: String,
    /// What the page shows: "09:14" style within the week, else the date.
    pub short: String,
    /// On hover: "Monday 10 March 2025, 09:14 CDT · 2025-03-10 14:14 UTC".
    pub title: String,
}

fn timestamp(t: OffsetDateTime) -> Timestamp {
    Timestamp::new(t.unix_timestamp(), t.nanosecond() as i32).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Clock {
    pub fn new(config: &Config) -> Self {
        Self::at(config.ui.timezone.zone().clone(), OffsetDateTime::now_utc())
    }

    /// A clock whose "now" is given (tests; a page that shows a time relative to another).
    pub fn at(zone: TimeZone, now: OffsetDateTime) -> Self {
        let now = timestamp(now).to_zoned_datetime(zone.clone());
        Self { zone, now }
    }

    /// `t` as the page shows it. Within the last six days (or later today): the weekday and
    /// the time ("Mon 09:14"); earlier this year: "3 Mar 09:14"; before that: "3 Mar 2024".
    pub fn moment(&self, t: impl AsTime) -> Moment {
        let utc = timestamp(t.as_time());
        let local = utc.to_zoned_datetime(self.zone.clone());
        let days_ago = self
            .now
            .date()
            .duration_since(local.date())
            .as_hours()
            .div_euclid(24);
        let short = if (0..=6).contains(&days_ago) {
            local.strftime("%a %H:%M").to_string()
        } else if local.date().year() == self.now.date().year() {
            local.strftime("%-d %b %H:%M").to_string()
        } else {
            local.strftime("%-d %b %Y").to_string()
        };
        let utc_text = utc
            .to_zoned_datetime(TimeZone::UTC)
            .strftime("%Y-%m-%d %H:%M UTC")
            .to_string();
        Moment {
            iso: utc.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            short,
            title: format!("{} · {utc_text}", local.strftime("%A %-d %B %Y, %H:%M %Z")),
        }
    }

    /// Only the time of day ("09:14"), for a step of a job on the job's own page.
    pub fn time_of_day(&self, t: OffsetDateTime) -> Moment {
        let m = self.moment(t);
        let local = timestamp(t).to_zoned_datetime(self.zone.clone());
        Moment {
            short: local.strftime("%H:%M:%S").to_string(),
            ..m
        }
    }

    /// The zone's name, for a page that says which clock it shows.
    pub fn zone_name(&self) -> &str {
        self.zone.iana_name().unwrap_or("UTC")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn chicago(now: OffsetDateTime) -> Clock {
        Clock::at(TimeZone::get("America/Chicago").unwrap(), now)
    }

    #[test]
    fn a_dst_change_moves_the_local_clock_not_the_utc_one() {
        // 2025-03-09: Chicago springs forward at 02:00 CST (08:00 UTC) to 03:00 CDT.
        let clock = chicago(datetime!(2025-03-10 12:00 UTC));
        let before = clock.moment(datetime!(2025-03-09 07:59 UTC));
        let after = clock.moment(datetime!(2025-03-09 08:00 UTC));
        assert_eq!(before.short, "Sun 01:59");
        assert_eq!(after.short, "Sun 03:00");
        assert!(before.title.contains("CST") && after.title.contains("CDT"));
        assert!(
            before.title.ends_with("2025-03-09 07:59 UTC"),
            "{}",
            before.title
        );
        assert_eq!(after.iso, "2025-03-09T08:00:00Z");
        // A summer time is five hours behind UTC, a winter one six.
        let summer = clock.moment(datetime!(2025-07-01 14:14 UTC));
        assert_eq!(summer.short, "1 Jul 09:14");
        let winter =
            chicago(datetime!(2025-01-07 00:00 UTC)).moment(datetime!(2025-01-06 15:14 UTC));
        assert_eq!(winter.short, "Mon 09:14");
    }

    #[test]
    fn older_times_show_their_date() {
        let clock = chicago(datetime!(2025-03-20 12:00 UTC));
        assert_eq!(
            clock.moment(datetime!(2025-03-14 15:00 UTC)).short,
            "Fri 10:00"
        );
        assert_eq!(
            clock.moment(datetime!(2025-03-13 15:00 UTC)).short,
            "13 Mar 10:00"
        );
        assert_eq!(
            clock.moment(datetime!(2024-12-31 15:00 UTC)).short,
            "31 Dec 2024"
        );
        // The local date decides "today": 03:00 UTC on the 20th is still the 19th in Chicago.
        assert_eq!(
            clock.moment(datetime!(2025-03-20 03:00 UTC)).short,
            "Wed 22:00"
        );
    }

    #[test]
    fn utc_is_the_default_zone() {
        let clock = Clock::new(&Config::default());
        assert_eq!(clock.zone_name(), "UTC");
        let m = Clock::at(TimeZone::UTC, datetime!(2025-03-10 12:00 UTC))
            .moment(datetime!(2025-03-10 09:14:59 UTC));
        assert_eq!(m.short, "Mon 09:14");
        assert!(
            m.title.contains("09:14 UTC · 2025-03-10 09:14 UTC"),
            "{}",
            m.title
        );
    }
}
