//! The camp's clock: the calendar acts by it and announcements begin and end by it. The real
//! one reads the system time; the test clock reads an instant from a file the test writes
//! (`[calendar] test_clock_file`), so a camp day runs in minutes and a restarted hubdesk sees
//! the same "now" as the one it replaced. Sessions, tokens and throttles keep the system time.
use std::path::PathBuf;

use jiff::Timestamp;

/// The calendar reckons in jiff's instants; the database and the page kit in the `time` crate's.
pub fn to_offset(t: Timestamp) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(t.as_second())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

pub fn from_offset(t: time::OffsetDateTime) -> Timestamp {
    Timestamp::from_second(t.unix_timestamp()).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// "Now" is the RFC 3339 instant in the file. No file: the system time (a test that has not
/// set its clock, or has put it back). A file that does not parse: the system time, with a
/// warning in the log.
pub struct FileClock {
    pub path: PathBuf,
}

impl Clock for FileClock {
    fn now(&self) -> Timestamp {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Timestamp::now(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "test clock unreadable: the system time");
                return Timestamp::now();
            }
        };
        text.trim().parse::<Timestamp>().unwrap_or_else(|e| {
            tracing::warn!(path = %self.path.display(), error = %e, "test clock unreadable: the system time");
            Timestamp::now()
        })
    }
}

/// A clock set by hand (unit tests).
#[derive(Default)]
pub struct FixedClock(pub std::sync::Mutex<Option<Timestamp>>);

impl FixedClock {
    pub fn at(t: Timestamp) -> Self {
        FixedClock(std::sync::Mutex::new(Some(t)))
    }

    pub fn set(&self, t: Timestamp) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(t);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .unwrap_or_else(Timestamp::now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_clock_reads_the_test_s_instant_and_falls_back_to_the_system() {
        let path = std::env::temp_dir().join(format!("hubdesk-clock-{}", uuid::Uuid::new_v4()));
        let clock = FileClock { path: path.clone() };
        let before = Timestamp::now();
        assert!(clock.now() >= before, "missing file: the system time");
        std::fs::write(&path, "2027-03-08T14:40:00Z\n").unwrap();
        assert_eq!(clock.now(), "2027-03-08T14:40:00Z".parse().unwrap());
        let _ = std::fs::remove_file(&path);
    }
}
