//! `/calendar`: the coming week's classes, what the calendar will do and when, what it did
//! (with its jobs), the admins' pause switch and the iCalendar feed.
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::{
    calendar::{
        clock::to_offset,
        overview::{ActionLine, CalendarOverview},
        profile,
        runner::Calendar,
    },
    config::Config,
    domain::Actor,
    web::{
        clock::Clock, clock::Moment, html, see_other, Once, Page, RequireAdmin, RequireCounselor,
        WebError,
    },
};

pub struct ClassRow {
    pub cohort: String,
    pub slug: String,
    pub day: String,
    pub starts: Moment,
    pub hours: String,
    pub students: u32,
}

pub struct ActionRow {
    pub at: Moment,
    pub line: ActionLine,
}

impl ActionRow {
    pub fn status_words(&self) -> &'static str {
        match self.line.status.as_str() {
            "planned" => "planned",
            "due" => "due now",
            "plan-only" => "not done (plan only)",
            "done" => "done",
            "missed" => "missed",
            "paused" => "not done: paused",
            "skipped" => "not done",
            _ => "",
        }
    }
}

/// One day of the cost ledger, ready to show.
pub struct CostDay {
    pub day: String,
    pub hours: String,
    pub cost: String,
    /// "Morning 3.5 h · between classes 2.0 h".
    pub split: String,
}

/// The last seven days of the ledger (real time, the camp's zone), and its total.
async fn week_costs(
    calendar: &Calendar,
    config: &Config,
) -> Result<(Vec<CostDay>, String), WebError> {
    let to = jiff::Timestamp::now();
    let from = to
        .checked_sub(jiff::SignedDuration::from_hours(24 * 7))
        .unwrap_or(to);
    let lines = calendar
        .ledger(config.ui.timezone.zone(), from, to)
        .await
        .map_err(WebError::Internal)?;
    let (mut hours, mut cost) = (0.0, 0.0);
    let days = lines
        .iter()
        .map(|l| {
            hours += l.hours;
            cost += l.cost;
            CostDay {
                day: l.day.strftime("%a %-d %b").to_string(),
                hours: format!("{:.1}", l.hours),
                cost: format!("${:.2}", l.cost),
                split: l
                    .cohorts
                    .iter()
                    .map(|(c, s)| format!("{c} {:.1} h", s.hours))
                    .collect::<Vec<_>>()
                    .join(" · "),
            }
        })
        .collect();
    Ok((days, format!("{hours:.1} worker-hours, ${cost:.2}")))
}

#[derive(Template)]
#[template(path = "calendar/calendar.html")]
pub struct CalendarPage {
    pub page: Page,
    pub overview: CalendarOverview,
    pub zone: String,
    pub classes: Vec<ClassRow>,
    pub actions: Vec<ActionRow>,
    pub rules: String,
    pub is_admin: bool,
    pub feed_url: String,
    pub costs: Vec<CostDay>,
    pub cost_total: String,
}

#[derive(Deserialize)]
pub struct CalendarQuery {
    paused: Option<String>,
    resumed: Option<String>,
}

/// `GET /calendar`.
pub async fn show(
    calendar: web::Data<Calendar>,
    config: web::Data<Config>,
    user: RequireCounselor,
    q: web::Query<CalendarQuery>,
) -> Result<HttpResponse, WebError> {
    let overview = calendar.overview().await.map_err(WebError::Internal)?;
    let clock = Clock::at(config.ui.timezone.zone().clone(), to_offset(overview.now));
    let zone = config.ui.timezone.zone().clone();
    let classes = overview
        .classes
        .iter()
        .map(|c| {
            let (s, e) = (
                c.starts.to_zoned_datetime(zone.clone()),
                c.ends.to_zoned_datetime(zone.clone()),
            );
            ClassRow {
                slug: crate::domain::cohort::slug(&c.cohort),
                cohort: c.cohort.clone(),
                day: s.strftime("%a %-d %b").to_string(),
                starts: clock.moment(to_offset(c.starts)),
                hours: format!("{}–{}", s.strftime("%H:%M"), e.strftime("%H:%M")),
                students: c.students,
            }
        })
        .collect();
    let actions = overview
        .actions
        .iter()
        .map(|a| ActionRow {
            at: clock.moment(to_offset(a.at)),
            line: a.clone(),
        })
        .collect();
    let rules = overview
        .rules
        .map(|r| {
            format!(
                "Workers of {} each, {} % headroom, at least {}; launched {} min and servers \
                 started {} min before a class; capacity kept {} min after it.",
                profile::show_mib((r.worker_memory >> 20) as u32),
                (r.headroom * 100.0).round(),
                r.floor,
                r.lead.as_mins(),
                r.warm.as_mins(),
                r.grace.as_mins()
            )
        })
        .unwrap_or_default();
    let notice = if q.paused.is_some() {
        Some("The calendar is paused.")
    } else if q.resumed.is_some() {
        Some("The calendar is running again.")
    } else {
        None
    };
    let feed_url = format!(
        "{}/calendar.ics?token={}",
        config.public_url.trim_end_matches('/'),
        calendar.feed_token().await?
    );
    let (costs, cost_total) = week_costs(&calendar, &config).await?;
    html(&CalendarPage {
        costs,
        cost_total,
        page: Page::for_user(&config, &user, "Calendar").with_notice(notice),
        zone: clock.zone_name().to_string(),
        is_admin: user.role == crate::domain::Role::Admin,
        overview,
        classes,
        actions,
        rules,
        feed_url,
    })
}

#[derive(Deserialize)]
pub struct Button {}

/// `POST /calendar/pause` and `/calendar/resume`.
pub async fn switch(
    calendar: web::Data<Calendar>,
    user: RequireAdmin,
    path: web::Path<String>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    let paused = match path.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return Err(WebError::NotFound),
    };
    form.run(move |_, _| async move {
        calendar
            .set_paused(&Actor::User(user.username.clone()), paused)
            .await?;
        Ok(see_other(if paused {
            "/calendar?paused=1"
        } else {
            "/calendar?resumed=1"
        }))
    })
    .await
}

/// `GET /calendar/ledger.csv`: the last 28 days of the ledger, by day and cohort.
pub async fn ledger_csv(
    calendar: web::Data<Calendar>,
    config: web::Data<Config>,
    _user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    let to = jiff::Timestamp::now();
    let from = to
        .checked_sub(jiff::SignedDuration::from_hours(24 * 28))
        .unwrap_or(to);
    let lines = calendar
        .ledger(config.ui.timezone.zone(), from, to)
        .await
        .map_err(WebError::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"worker-hours.csv\"",
        ))
        .body(crate::calendar::ledger::csv(&lines)))
}

#[derive(Deserialize)]
pub struct FeedQuery {
    #[serde(default)]
    token: String,
}

/// `GET /calendar.ics?token=…`: no login (calendar apps cannot log in); a wrong token is 404.
pub async fn feed(
    calendar: web::Data<Calendar>,
    config: web::Data<Config>,
    q: web::Query<FeedQuery>,
    _req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    match calendar
        .ics(&q.token, &config.camp_name)
        .await
        .map_err(WebError::Internal)?
    {
        Some(body) => Ok(HttpResponse::Ok()
            .content_type("text/calendar; charset=utf-8")
            .insert_header(("Content-Disposition", "inline; filename=\"classes.ics\""))
            .body(body)),
        None => Err(WebError::NotFound),
    }
}
