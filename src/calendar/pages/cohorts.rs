//! The cohort pages: every cohort with its class times and profile (`/cohorts`), and one
//! cohort's settings, timetable and coming week (`/cohorts/{slug}`). Counselors and admins.
use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::calendar::{
    cohorts::{BlockInput, CalendarError, Cohort, Cohorts, SettingsInput},
    profile,
};
use crate::{
    config::Config,
    domain::Actor,
    web::{
        form::FieldErrors, html, html_status, see_other, Once, Page, RequireCounselor, WebError,
    },
};

impl From<CalendarError> for WebError {
    fn from(e: CalendarError) -> Self {
        match e {
            CalendarError::NotFound(slug) => WebError::Missing(format!("No cohort named '{slug}'.")),
            CalendarError::Invalid(_) => WebError::BadRequest(e.to_string()),
            CalendarError::NoSuchBlock => WebError::Conflict(
                "That class block is not there any more (removed in another tab?): reload the page."
                    .into(),
            ),
            CalendarError::Db(e) => e.into(),
        }
    }
}

/// A cohort's line on the list, ready to show.
pub struct Line {
    pub cohort: Cohort,
}

impl Line {
    pub fn timetable(&self) -> String {
        if self.cohort.blocks.is_empty() {
            return String::new();
        }
        self.cohort
            .blocks
            .iter()
            .map(|(_, b)| b.label())
            .collect::<Vec<_>>()
            .join(" · ")
    }

    pub fn profile(&self) -> String {
        profile_words(&self.cohort)
    }

    pub fn dates(&self) -> String {
        dates(&self.cohort)
    }
}

fn profile_words(c: &Cohort) -> String {
    let p = c.profile;
    format!(
        "{} guaranteed, {} at most, {} CPU",
        profile::show_mib(p.memory_guarantee_mib),
        profile::show_mib(p.memory_limit_mib),
        profile::show_cpus(p.cpu_limit_millis)
    )
}

fn dates(c: &Cohort) -> String {
    let d = |d: jiff::civil::Date| d.strftime("%a %-d %b %Y").to_string();
    match (c.first_day, c.last_day) {
        (Some(f), Some(l)) => format!("{} – {}", d(f), d(l)),
        (Some(f), None) => format!("from {}", d(f)),
        (None, Some(l)) => format!("until {}", d(l)),
        (None, None) => String::new(),
    }
}

#[derive(Template)]
#[template(path = "calendar/cohorts.html")]
pub struct CohortsPage {
    pub page: Page,
    pub lines: Vec<Line>,
}

/// `GET /cohorts`.
pub async fn list(
    cohorts: web::Data<Cohorts>,
    config: web::Data<Config>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    let lines = cohorts
        .list_in(&user.reach)
        .await?
        .into_iter()
        .map(|cohort| Line { cohort })
        .collect();
    html(&CohortsPage {
        page: Page::for_user(&config, &user, "Cohorts"),
        lines,
    })
}

/// One meeting of the coming week, in the cohort's zone.
pub struct MeetingLine {
    pub iso: String,
    pub day: String,
    pub hours: String,
    pub block: String,
}

#[derive(Template)]
#[template(path = "calendar/cohort.html")]
pub struct CohortPage {
    pub page: Page,
    pub cohort: Cohort,
    pub settings: SettingsInput,
    pub settings_form_id: String,
    pub block: BlockInput,
    pub block_form_id: String,
    pub errors: FieldErrors,
    pub week: Vec<MeetingLine>,
    pub zones: Vec<&'static str>,
}

impl CohortPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }

    pub fn day_checked(&self, day: &str) -> bool {
        self.block.days.iter().any(|d| d == day)
    }

    pub fn dates(&self) -> String {
        dates(&self.cohort)
    }

    pub fn profile(&self) -> String {
        profile_words(&self.cohort)
    }
}

/// Days of the add-block form: (value, label).
pub use crate::calendar::timetable::DAY_KEYS as DAYS;

/// Zones offered in the time zone field (any IANA name is accepted).
const ZONES: [&str; 12] = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
];

fn week_of(c: &Cohort, now: Timestamp) -> Vec<MeetingLine> {
    let t = c.timetable();
    let until = now
        .checked_add(SignedDuration::from_hours(24 * 7))
        .unwrap_or(now);
    t.meetings(now, until)
        .into_iter()
        .map(|m| {
            let z = |ts: Timestamp| ts.to_zoned_datetime(t.zone.clone());
            let (s, e) = (z(m.starts), z(m.ends));
            MeetingLine {
                iso: m.starts.to_string(),
                day: s.strftime("%a %-d %b").to_string(),
                hours: format!(
                    "{}–{} {}",
                    s.strftime("%H:%M"),
                    e.strftime("%H:%M"),
                    e.strftime("%Z")
                ),
                block: c
                    .blocks
                    .get(m.block)
                    .map(|(_, b)| b.label())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

fn page_of(
    config: &Config,
    user: &RequireCounselor,
    cohort: Cohort,
    notice: Option<&str>,
) -> CohortPage {
    let page = Page::for_user(config, user, format!("Cohort {}", cohort.name)).with_notice(notice);
    CohortPage {
        settings: SettingsInput::of(&cohort),
        settings_form_id: page.new_form_id(),
        block: BlockInput::default(),
        block_form_id: page.new_form_id(),
        errors: FieldErrors::default(),
        week: week_of(&cohort, Timestamp::now()),
        zones: ZONES.to_vec(),
        page,
        cohort,
    }
}

#[derive(Deserialize)]
pub struct CohortQuery {
    saved: Option<String>,
    added: Option<String>,
    removed: Option<String>,
}

impl CohortQuery {
    fn notice(&self) -> Option<&'static str> {
        if self.saved.is_some() {
            Some("Settings saved.")
        } else if self.added.is_some() {
            Some("Class block added.")
        } else if self.removed.is_some() {
            Some("Class block removed.")
        } else {
            None
        }
    }
}

/// `GET /cohorts/{slug}`.
pub async fn show(
    cohorts: web::Data<Cohorts>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
    q: web::Query<CohortQuery>,
) -> Result<HttpResponse, WebError> {
    let cohort = cohorts.get(&path).await?;
    html(&page_of(&config, &user, cohort, q.notice()))
}

/// The page again with the form's errors beside its fields (422) and what was typed kept.
async fn with_errors(
    cohorts: &Cohorts,
    config: &Config,
    user: &RequireCounselor,
    slug: &str,
    errors: Vec<(&'static str, String)>,
    keep: impl FnOnce(&mut CohortPage),
) -> Result<HttpResponse, WebError> {
    let mut page = page_of(config, user, cohorts.get(slug).await?, None);
    for (field, message) in errors {
        page.errors.add(field, message);
    }
    keep(&mut page);
    html_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// `POST /cohorts/{slug}`: dates, zone, profile.
pub async fn save(
    cohorts: web::Data<Cohorts>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: Once<SettingsInput>,
) -> Result<HttpResponse, WebError> {
    let form_id = form.id().to_string();
    form.run(move |input, _| async move {
        let actor = Actor::User(user.username.clone());
        match cohorts.save(&actor, &path, &input).await {
            Ok(c) => Ok(see_other(&format!("/cohorts/{}?saved=1", c.slug))),
            Err(CalendarError::Invalid(errors)) => {
                with_errors(&cohorts, &config, &user, &path, errors, |p| {
                    p.settings = input;
                    p.settings_form_id = form_id;
                })
                .await
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// `POST /cohorts/{slug}/blocks`.
pub async fn add_block(
    cohorts: web::Data<Cohorts>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: Once<BlockForm>,
) -> Result<HttpResponse, WebError> {
    let form_id = form.id().to_string();
    form.run(move |form, _| async move {
        let input = form.input();
        let actor = Actor::User(user.username.clone());
        match cohorts.add_block(&actor, &path, &input).await {
            Ok(_) => Ok(see_other(&format!("/cohorts/{path}?added=1#blocks"))),
            Err(CalendarError::Invalid(errors)) => {
                with_errors(&cohorts, &config, &user, &path, errors, |p| {
                    p.block = input;
                    p.block_form_id = form_id;
                })
                .await
            }
            Err(e) => Err(e.into()),
        }
    })
    .await
}

/// The add-block form as the browser sends it: one `day` field per ticked box.
#[derive(Deserialize, Default)]
pub struct BlockForm {
    #[serde(default)]
    mon: Option<String>,
    #[serde(default)]
    tue: Option<String>,
    #[serde(default)]
    wed: Option<String>,
    #[serde(default)]
    thu: Option<String>,
    #[serde(default)]
    fri: Option<String>,
    #[serde(default)]
    sat: Option<String>,
    #[serde(default)]
    sun: Option<String>,
    #[serde(default)]
    date: String,
    #[serde(default)]
    starts: String,
    #[serde(default)]
    ends: String,
}

impl BlockForm {
    fn input(&self) -> BlockInput {
        let ticked = [
            &self.mon, &self.tue, &self.wed, &self.thu, &self.fri, &self.sat, &self.sun,
        ];
        BlockInput {
            days: DAYS
                .iter()
                .zip(ticked)
                .filter(|(_, v)| v.is_some())
                .map(|((d, _), _)| d.to_string())
                .collect(),
            date: self.date.clone(),
            starts: self.starts.clone(),
            ends: self.ends.clone(),
        }
    }
}

#[derive(Deserialize)]
pub struct Button {}

/// `POST /cohorts/{slug}/blocks/{id}/remove`.
pub async fn remove_block(
    cohorts: web::Data<Cohorts>,
    user: RequireCounselor,
    path: web::Path<(String, i64)>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    let (slug, id) = path.into_inner();
    form.run(move |_, _| async move {
        let actor = Actor::User(user.username.clone());
        cohorts.remove_block(&actor, &slug, id).await?;
        Ok(see_other(&format!("/cohorts/{slug}?removed=1#blocks")))
    })
    .await
}
