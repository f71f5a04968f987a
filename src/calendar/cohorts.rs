//! The cohort use cases: see a cohort's timetable and profile, change them. The pages and the
//! API both call these (and only these), and each change is audited in its transaction.
use jiff::civil;
use sqlx::PgPool;

use super::{
    profile::{self, Profile, ProfileError},
    timetable::{Block, BlockError, Days, Recurrence, Timetable},
};
use crate::{
    config::TimeZoneName,
    db::{self, cohorts::CohortRow},
    domain::{cohort::slug, Actor},
};

/// A cohort as the calendar sees it: saved settings, or the defaults until someone saves.
#[derive(Debug, Clone)]
pub struct Cohort {
    pub name: String,
    pub slug: String,
    pub zone: TimeZoneName,
    pub first_day: Option<civil::Date>,
    pub last_day: Option<civil::Date>,
    pub profile: Profile,
    /// `false`: nobody has saved its settings yet (they are the defaults shown).
    pub saved: bool,
    /// Students who can log in.
    pub students: i64,
    /// Its class blocks with their ids.
    pub blocks: Vec<(i64, Block)>,
}

impl Cohort {
    pub fn timetable(&self) -> Timetable {
        Timetable {
            zone: self.zone.zone().clone(),
            first_day: self.first_day,
            last_day: self.last_day,
            blocks: self.blocks.iter().map(|(_, b)| *b).collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("there is no cohort {0:?}")]
    NotFound(String),
    /// Messages by form field ("timezone", "memory_limit", "starts" …).
    #[error("{}", .0.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(&'static str, String)>),
    #[error("that class block is not there any more")]
    NoSuchBlock,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The settings form, as typed.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct SettingsInput {
    #[serde(default)]
    pub timezone: String,
    #[serde(default)]
    pub first_day: String,
    #[serde(default)]
    pub last_day: String,
    #[serde(default)]
    pub memory_guarantee: String,
    #[serde(default)]
    pub memory_limit: String,
    #[serde(default)]
    pub cpu_limit: String,
    #[serde(default)]
    pub idle_timeout: String,
}

/// A new class block, as typed: `days` (mon … sun) for a weekly one, or `date` for once.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct BlockInput {
    #[serde(default)]
    pub days: Vec<String>,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub starts: String,
    #[serde(default)]
    pub ends: String,
}

/// The calendar's cohort desk.
#[derive(Clone)]
pub struct Cohorts {
    pool: PgPool,
    /// `[ui] timezone`: a new cohort's zone.
    default_zone: TimeZoneName,
}

pub fn to_time_date(d: civil::Date) -> time::Date {
    time::Date::from_calendar_date(
        i32::from(d.year()),
        time::Month::try_from(d.month() as u8).unwrap_or(time::Month::January),
        d.day() as u8,
    )
    .unwrap_or(time::Date::MIN)
}

pub fn to_civil(d: time::Date) -> civil::Date {
    civil::date(d.year() as i16, d.month() as i8, d.day() as i8)
}

fn from_civil(d: civil::Date) -> Option<time::Date> {
    let month = time::Month::try_from(d.month() as u8).ok()?;
    time::Date::from_calendar_date(i32::from(d.year()), month, d.day() as u8).ok()
}

fn civil_time(t: time::Time) -> civil::Time {
    civil::time(t.hour() as i8, t.minute() as i8, t.second() as i8, 0)
}

fn block_of(row: &db::cohorts::BlockRow) -> Option<Block> {
    let when = match (row.days, row.on_date) {
        (Some(bits), None) => Recurrence::Weekly(Days::from_bits(u8::try_from(bits).ok()?)?),
        (None, Some(d)) => Recurrence::Once(to_civil(d)),
        _ => return None,
    };
    Block::new(when, civil_time(row.starts), civil_time(row.ends)).ok()
}

/// "2027-07-05" (a date input) → a date; empty → none.
fn parse_day(raw: &str) -> Result<Option<civil::Date>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse::<civil::Date>()
        .map(Some)
        .map_err(|_| "Write the date as YYYY-MM-DD.".to_string())
}

/// "09:00" or "9:00" (a time input) → a wall-clock time.
fn parse_clock(raw: &str) -> Option<civil::Time> {
    let raw = raw.trim();
    let (h, m) = raw.split_once(':')?;
    let m = m.split(':').next()?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    civil::Time::new(h, m, 0, 0).ok()
}

impl SettingsInput {
    /// The form filled with a cohort's current settings.
    pub fn of(c: &Cohort) -> Self {
        SettingsInput {
            timezone: c.zone.name().to_string(),
            first_day: c.first_day.map(|d| d.to_string()).unwrap_or_default(),
            last_day: c.last_day.map(|d| d.to_string()).unwrap_or_default(),
            memory_guarantee: profile::show_mib(c.profile.memory_guarantee_mib),
            memory_limit: profile::show_mib(c.profile.memory_limit_mib),
            cpu_limit: profile::show_cpus(c.profile.cpu_limit_millis),
            idle_timeout: c.profile.idle_timeout_mins.to_string(),
        }
    }
}

impl BlockInput {
    pub fn parse(&self) -> Result<Block, Vec<(&'static str, String)>> {
        let mut errors = Vec::new();
        let date = match parse_day(&self.date) {
            Ok(d) => d,
            Err(e) => {
                errors.push(("date", e));
                None
            }
        };
        let days: Vec<jiff::civil::Weekday> = self
            .days
            .iter()
            .filter_map(|d| Days::day_of_key(d))
            .collect();
        let starts = parse_clock(&self.starts);
        let ends = parse_clock(&self.ends);
        if starts.is_none() {
            errors.push(("starts", "Write the start time as HH:MM.".into()));
        }
        if ends.is_none() {
            errors.push(("ends", "Write the end time as HH:MM.".into()));
        }
        let when = match (date, days.is_empty()) {
            (Some(d), true) => Some(Recurrence::Once(d)),
            (None, false) => Some(Recurrence::Weekly(Days::of(&days))),
            (Some(_), false) => {
                errors.push((
                    "days",
                    "Choose days of the week or one date, not both.".into(),
                ));
                None
            }
            (None, true) if errors.iter().all(|(f, _)| *f != "date") => {
                errors.push((
                    "days",
                    "Choose the days of the week it meets, or the date of a one-off session."
                        .into(),
                ));
                None
            }
            (None, true) => None,
        };
        match (when, starts, ends, errors.is_empty()) {
            (Some(w), Some(s), Some(e), true) => Block::new(w, s, e).map_err(|e| {
                let field = match e {
                    BlockError::EndsBeforeStart => "ends",
                    BlockError::NoDays => "days",
                };
                vec![(field, crate::domain::sentence(&e.to_string()))]
            }),
            _ => Err(errors),
        }
    }
}

impl Cohorts {
    pub fn new(pool: PgPool, default_zone: TimeZoneName) -> Self {
        Cohorts { pool, default_zone }
    }

    fn cohort_of(
        &self,
        name: String,
        row: Option<CohortRow>,
        students: i64,
        blocks: &[db::cohorts::BlockRow],
    ) -> Cohort {
        let blocks = blocks
            .iter()
            .filter(|b| b.cohort == name)
            .filter_map(|b| block_of(b).map(|k| (b.id, k)))
            .collect();
        match row {
            Some(r) => Cohort {
                slug: r.slug,
                zone: TimeZoneName::parse(&r.timezone)
                    .unwrap_or_else(|_| self.default_zone.clone()),
                first_day: r.first_day.map(to_civil),
                last_day: r.last_day.map(to_civil),
                profile: Profile {
                    memory_guarantee_mib: r.memory_guarantee_mib as u32,
                    memory_limit_mib: r.memory_limit_mib as u32,
                    cpu_limit_millis: r.cpu_limit_millis as u32,
                    idle_timeout_mins: r.idle_timeout_mins as u32,
                },
                saved: true,
                students,
                blocks,
                name,
            },
            None => Cohort {
                slug: slug(&name),
                zone: self.default_zone.clone(),
                first_day: None,
                last_day: None,
                profile: Profile::default(),
                saved: false,
                students,
                blocks,
                name,
            },
        }
    }

    /// The notebook profile of a person: their cohort's, or the default (no cohort, or a
    /// cohort nobody has saved). `None`: no such account.
    pub async fn profile_of(
        &self,
        username: &crate::domain::Username,
    ) -> Result<Option<(crate::db::users::UserRow, Profile)>, CalendarError> {
        let mut conn = self.pool.acquire().await?;
        let Some(user) = db::users::find_by_username(&mut conn, username).await? else {
            return Ok(None);
        };
        let profile = match &user.cohort {
            Some(c) => db::cohorts::find(&mut conn, c).await?.map(|r| Profile {
                memory_guarantee_mib: r.memory_guarantee_mib as u32,
                memory_limit_mib: r.memory_limit_mib as u32,
                cpu_limit_millis: r.cpu_limit_millis as u32,
                idle_timeout_mins: r.idle_timeout_mins as u32,
            }),
            None => None,
        };
        Ok(Some((user, profile.unwrap_or_default())))
    }

    /// Every cohort (students' and saved ones), by name.
    pub async fn list(&self) -> Result<Vec<Cohort>, CalendarError> {
        let mut conn = self.pool.acquire().await?;
        let lines = db::cohorts::overview(&mut conn).await?;
        let blocks = db::cohorts::all_blocks(&mut conn).await?;
        Ok(lines
            .into_iter()
            .map(|(line, row)| self.cohort_of(line.name, row, line.students, &blocks))
            .collect())
    }

    /// The cohorts in a counselor's `reach`.
    pub async fn list_in(
        &self,
        reach: &crate::domain::Reach,
    ) -> Result<Vec<Cohort>, CalendarError> {
        let mut all = self.list().await?;
        all.retain(|c| reach.admits(Some(&c.name)));
        Ok(all)
    }

    /// The cohort whose slug this is.
    pub async fn get(&self, wanted: &str) -> Result<Cohort, CalendarError> {
        self.list()
            .await?
            .into_iter()
            .find(|c| c.slug == wanted)
            .ok_or_else(|| CalendarError::NotFound(wanted.to_string()))
    }

    /// Saves the dates, zone and profile; every wrong field is named at once.
    pub async fn save(
        &self,
        actor: &Actor,
        slug_: &str,
        input: &SettingsInput,
    ) -> Result<Cohort, CalendarError> {
        let cohort = self.get(slug_).await?;
        let mut errors: Vec<(&'static str, String)> = Vec::new();
        let zone = TimeZoneName::parse(&input.timezone).map_err(|_| {
            errors.push((
                "timezone",
                "Use an IANA time zone name such as America/Chicago, Europe/Berlin or UTC.".into(),
            ))
        });
        let first = parse_day(&input.first_day).map_err(|e| errors.push(("first_day", e)));
        let last = parse_day(&input.last_day).map_err(|e| errors.push(("last_day", e)));
        if let (Ok(Some(f)), Ok(Some(l))) = (&first, &last) {
            if l < f {
                errors.push(("last_day", "The last day is before the first day.".into()));
            }
        }
        let profile = Profile::parse(
            &input.memory_guarantee,
            &input.memory_limit,
            &input.cpu_limit,
            &input.idle_timeout,
        )
        .map_err(|es| {
            errors.extend(
                es.iter()
                    .map(|e: &ProfileError| (e.field(), crate::domain::sentence(&e.to_string()))),
            )
        });
        let (Ok(zone), Ok(first), Ok(last), Ok(profile), true) =
            (zone, first, last, profile, errors.is_empty())
        else {
            return Err(CalendarError::Invalid(errors));
        };
        let row = CohortRow {
            name: cohort.name.clone(),
            slug: cohort.slug.clone(),
            timezone: zone.name().to_string(),
            first_day: first.and_then(from_civil),
            last_day: last.and_then(from_civil),
            memory_guarantee_mib: profile.memory_guarantee_mib as i32,
            memory_limit_mib: profile.memory_limit_mib as i32,
            cpu_limit_millis: profile.cpu_limit_millis as i32,
            idle_timeout_mins: profile.idle_timeout_mins as i32,
            updated_at: time::OffsetDateTime::now_utc(),
        };
        let mut tx = self.pool.begin().await?;
        db::cohorts::save(&mut tx, &row).await?;
        let detail = format!(
            "{} · {} to {} · {} guaranteed, {} at most, {} CPU, idle {} min",
            row.timezone,
            input.first_day.trim(),
            input.last_day.trim(),
            profile::show_mib(profile.memory_guarantee_mib),
            profile::show_mib(profile.memory_limit_mib),
            profile::show_cpus(profile.cpu_limit_millis),
            profile.idle_timeout_mins
        );
        db::audit::record(
            &mut tx,
            actor,
            "cohort.update",
            Some(&format!("cohort:{}", cohort.name)),
            Some(&detail),
        )
        .await?;
        tx.commit().await?;
        self.get(slug_).await
    }

    /// The row a block needs (the cohort's settings are saved with it the first time).
    async fn ensure_row(
        &self,
        conn: &mut sqlx::PgConnection,
        cohort: &Cohort,
    ) -> Result<(), CalendarError> {
        if !cohort.saved {
            let p = cohort.profile;
            db::cohorts::save(
                conn,
                &CohortRow {
                    name: cohort.name.clone(),
                    slug: cohort.slug.clone(),
                    timezone: cohort.zone.name().to_string(),
                    first_day: None,
                    last_day: None,
                    memory_guarantee_mib: p.memory_guarantee_mib as i32,
                    memory_limit_mib: p.memory_limit_mib as i32,
                    cpu_limit_millis: p.cpu_limit_millis as i32,
                    idle_timeout_mins: p.idle_timeout_mins as i32,
                    updated_at: time::OffsetDateTime::now_utc(),
                },
            )
            .await?;
        }
        Ok(())
    }

    pub async fn add_block(
        &self,
        actor: &Actor,
        slug_: &str,
        input: &BlockInput,
    ) -> Result<(i64, Block), CalendarError> {
        let cohort = self.get(slug_).await?;
        let block = input.parse().map_err(CalendarError::Invalid)?;
        let (days, on_date) = match block.when {
            Recurrence::Weekly(d) => (Some(i16::from(d.bits())), None),
            Recurrence::Once(d) => (None, from_civil(d)),
        };
        let t = |c: civil::Time| {
            time::Time::from_hms(c.hour() as u8, c.minute() as u8, 0)
                .unwrap_or(time::Time::MIDNIGHT)
        };
        let mut tx = self.pool.begin().await?;
        self.ensure_row(&mut tx, &cohort).await?;
        let id = db::cohorts::add_block(
            &mut tx,
            &cohort.name,
            days,
            on_date,
            t(block.starts),
            t(block.ends),
        )
        .await?;
        db::audit::record(
            &mut tx,
            actor,
            "cohort.timetable",
            Some(&format!("cohort:{}", cohort.name)),
            Some(&format!("added {}", block.label())),
        )
        .await?;
        tx.commit().await?;
        Ok((id, block))
    }

    pub async fn remove_block(
        &self,
        actor: &Actor,
        slug_: &str,
        id: i64,
    ) -> Result<Block, CalendarError> {
        let cohort = self.get(slug_).await?;
        let block = cohort
            .blocks
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| *b)
            .ok_or(CalendarError::NoSuchBlock)?;
        let mut tx = self.pool.begin().await?;
        if !db::cohorts::delete_block(&mut tx, &cohort.name, id).await? {
            return Err(CalendarError::NoSuchBlock);
        }
        db::audit::record(
            &mut tx,
            actor,
            "cohort.timetable",
            Some(&format!("cohort:{}", cohort.name)),
            Some(&format!("removed {}", block.label())),
        )
        .await?;
        tx.commit().await?;
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(days: &[&str], date: &str, starts: &str, ends: &str) -> BlockInput {
        BlockInput {
            days: days.iter().map(|d| d.to_string()).collect(),
            date: date.into(),
            starts: starts.into(),
            ends: ends.into(),
        }
    }

    #[test]
    fn a_block_form_parses_or_names_its_fields() {
        let b = input(&["mon", "tue", "wed", "thu", "fri"], "", "09:00", "12:00")
            .parse()
            .unwrap();
        assert_eq!(b.label(), "Mon–Fri 09:00–12:00");
        let once = input(&[], "2027-07-07", "19:00", "21:00").parse().unwrap();
        assert_eq!(once.when, Recurrence::Once(civil::date(2027, 7, 7)));
        let fields = |i: BlockInput| -> Vec<&'static str> {
            i.parse().unwrap_err().into_iter().map(|(f, _)| f).collect()
        };
        assert_eq!(fields(input(&[], "", "09:00", "12:00")), vec!["days"]);
        assert_eq!(
            fields(input(&["mon"], "2027-07-07", "09:00", "12:00")),
            vec!["days"]
        );
        assert_eq!(
            fields(input(&["mon"], "", "9", "noon")),
            vec!["starts", "ends"]
        );
        assert_eq!(fields(input(&["mon"], "", "12:00", "09:00")), vec!["ends"]);
        assert_eq!(
            fields(input(&[], "7/7/2027", "09:00", "12:00")),
            vec!["date"]
        );
    }

    #[test]
    fn dates_cross_between_the_two_time_crates() {
        let d = civil::date(2027, 3, 14);
        assert_eq!(to_civil(from_civil(d).unwrap()), d);
    }
}
