//! `/calendar`: the coming week's classes, what the calendar will do and when, what it did
//! (with its jobs), the admins' pause switch and the iCalendar feed.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::{
    auth::CurrentUser,
    calendar::{
        clock::to_offset,
        overview::{ActionLine, CalendarOverview},
        profile,
        runner::Calendar,
    },
    config::Config,
    domain::Actor,
    web::{
        clock::Clock, clock::Moment, html_status, see_other, Csrf, Once, Page, RequireAdmin,
        RequireCounselor, WebError,
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
            "held" => "held: over budget",
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
    pub budget: BudgetView,
}

/// The week's budget, ready to show.
pub struct BudgetView {
    /// "Mon 8 Mar – Sun 14 Mar".
    pub week: String,
    pub spent: String,
    pub projected: String,
    /// The budget as the form shows it ("" for none).
    pub value: String,
    pub over: bool,
    pub allowed: bool,
    /// The form's error (a wrong number), beside the field.
    pub error: String,
    /// Why the week could not be projected (EC2 unreachable …).
    pub problem: Option<String>,
}

async fn budget_view(calendar: &Calendar, error: String, typed: Option<String>) -> BudgetView {
    match calendar.week_budget().await {
        Ok(w) => {
            let last = w
                .week
                .monday
                .checked_add(jiff::Span::new().days(6))
                .unwrap_or(w.week.monday);
            BudgetView {
                week: format!(
                    "{} – {}",
                    w.week.monday.strftime("%a %-d %b"),
                    last.strftime("%a %-d %b")
                ),
                spent: format!("${:.2}", w.spent),
                projected: format!("${:.2}", w.projected),
                value: typed
                    .unwrap_or_else(|| w.budget.map(|b| format!("{b:.2}")).unwrap_or_default()),
                over: w.over(),
                allowed: w.allowed,
                error,
                problem: None,
            }
        }
        Err(e) => BudgetView {
            week: String::new(),
            spent: String::new(),
            projected: String::new(),
            value: typed.unwrap_or_default(),
            over: false,
            allowed: false,
            error,
            problem: Some(format!("The week could not be projected: {e:#}")),
        },
    }
}

#[derive(Deserialize)]
pub struct CalendarQuery {
    paused: Option<String>,
    resumed: Option<String>,
    budget: Option<String>,
    allowed: Option<String>,
}

/// `GET /calendar`.
pub async fn show(
    calendar: web::Data<Calendar>,
    config: web::Data<Config>,
    user: RequireCounselor,
    q: web::Query<CalendarQuery>,
) -> Result<HttpResponse, WebError> {
    let notice = if q.paused.is_some() {
        Some("The calendar is paused.")
    } else if q.resumed.is_some() {
        Some("The calendar is running again.")
    } else if q.budget.is_some() {
        Some("The week's budget is saved.")
    } else if q.allowed.is_some() {
        Some("The calendar may launch over the budget until the end of this week.")
    } else {
        None
    };
    let budget = budget_view(&calendar, String::new(), None).await;
    render(&calendar, &config, &user, notice, budget, StatusCode::OK).await
}

async fn render(
    calendar: &Calendar,
    config: &Config,
    user: &CurrentUser,
    notice: Option<&'static str>,
    budget: BudgetView,
    status: StatusCode,
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
    let feed_url = format!(
        "{}/calendar.ics?token={}",
        config.public_url.trim_end_matches('/'),
        calendar.feed_token().await?
    );
    let (costs, cost_total) = week_costs(calendar, config).await?;
    html_status(
        status,
        &CalendarPage {
            costs,
            cost_total,
            budget,
            page: Page::for_user(config, user, "Calendar").with_notice(notice),
            zone: clock.zone_name().to_string(),
            is_admin: user.role == crate::domain::Role::Admin,
            overview,
            classes,
            actions,
            rules,
            feed_url,
        },
    )
}

#[derive(Deserialize)]
pub struct BudgetForm {
    #[serde(default)]
    budget: String,
}

/// `POST /calendar/budget`: sets the week's budget (empty: none).
pub async fn set_budget(
    calendar: web::Data<Calendar>,
    config: web::Data<Config>,
    admin: RequireAdmin,
    form: Csrf<BudgetForm>,
) -> Result<HttpResponse, WebError> {
    let typed = form.budget.trim().trim_start_matches('$').replace(',', "");
    let budget = if typed.is_empty() {
        Ok(None)
    } else {
        match typed.parse::<f64>() {
            Ok(b) if b.is_finite() && b >= 0.0 => Ok(Some(b)),
            _ => Err("A budget is a sum of dollars, like 120 or 85.50; leave it empty for none."),
        }
    };
    match budget {
        Ok(b) => {
            calendar
                .set_budget(&Actor::User(admin.username.clone()), b)
                .await
                .map_err(WebError::Internal)?;
            Ok(see_other("/calendar?budget=1#budget-h"))
        }
        Err(message) => {
            let view = budget_view(&calendar, message.to_string(), Some(form.budget.clone())).await;
            render(
                &calendar,
                &config,
                &admin,
                None,
                view,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

/// `POST /calendar/over-budget`: the calendar may pass the budget for the rest of this week.
pub async fn allow_over_budget(
    calendar: web::Data<Calendar>,
    user: RequireAdmin,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    form.run(move |_, _| async move {
        calendar
            .allow_over_budget(&Actor::User(user.username.clone()))
            .await
            .map_err(WebError::Internal)?;
        Ok(see_other("/calendar?allowed=1#budget-h"))
    })
    .await
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
