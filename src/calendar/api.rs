//! The cohorts in the JSON API, the same use cases as the pages (`Cohorts`), audited as the
//! token that called:
//! `GET /api/v1/cohorts`, `GET|PUT /api/v1/cohorts/{slug}`,
//! `POST /api/v1/cohorts/{slug}/blocks` → 201, `DELETE /api/v1/cohorts/{slug}/blocks/{id}` → 204;
//! `GET|PUT /api/v1/calendar/budget` (`{"budget": dollars | null}`): the week's budget and its
//! projection.
//! Values are written as on the page ("2 GiB", "09:00", "2027-03-08"); wrong ones answer 422
//! with a message per field.
use crate::web::routes::{Access, Table};
use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::{
    budget::WeekBudget,
    cohorts::{BlockInput, CalendarError, Cohort, Cohorts, SettingsInput},
    runner::Calendar,
    timetable::{Block, Recurrence},
};
use crate::web::api::{ApiClient, ApiError};

impl From<CalendarError> for ApiError {
    fn from(e: CalendarError) -> Self {
        match e {
            CalendarError::NotFound(slug) => ApiError::NotFound(format!("no cohort '{slug}'")),
            CalendarError::Invalid(fields) => ApiError::Fields(fields),
            CalendarError::NoSuchBlock => ApiError::NotFound(e.to_string()),
            CalendarError::Db(e) => e.into(),
        }
    }
}

fn block_json(id: i64, b: &Block) -> Value {
    let hm = |t: jiff::civil::Time| format!("{:02}:{:02}", t.hour(), t.minute());
    let (days, date) = match b.when {
        Recurrence::Weekly(d) => (json!(d.keys()), Value::Null),
        Recurrence::Once(d) => (Value::Null, json!(d.to_string())),
    };
    json!({"id": id, "days": days, "date": date, "starts": hm(b.starts), "ends": hm(b.ends),
           "label": b.label()})
}

fn cohort_json(c: &Cohort) -> Value {
    let p = c.profile;
    json!({
        "name": c.name,
        "slug": c.slug,
        "students": c.students,
        "saved": c.saved,
        "timezone": c.zone.name(),
        "first_day": c.first_day.map(|d| d.to_string()),
        "last_day": c.last_day.map(|d| d.to_string()),
        "profile": {
            "memory_guarantee_bytes": p.memory_guarantee_bytes(),
            "memory_limit_bytes": p.memory_limit_bytes(),
            "cpu_limit": f64::from(p.cpu_limit_millis) / 1000.0,
            "idle_timeout_mins": p.idle_timeout_mins,
        },
        "blocks": c.blocks.iter().map(|(id, b)| block_json(*id, b)).collect::<Vec<_>>(),
    })
}

async fn list(cohorts: web::Data<Cohorts>, client: ApiClient) -> Result<HttpResponse, ApiError> {
    let all: Vec<Value> = cohorts
        .list_in(client.reach())
        .await?
        .iter()
        .map(cohort_json)
        .collect();
    Ok(HttpResponse::Ok().json(all))
}

async fn show(
    cohorts: web::Data<Cohorts>,
    _: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(cohort_json(&cohorts.get(&path).await?)))
}

async fn save(
    cohorts: web::Data<Cohorts>,
    client: ApiClient,
    path: web::Path<String>,
    body: web::Json<SettingsInput>,
) -> Result<HttpResponse, ApiError> {
    let c = cohorts.save(&client.0, &path, &body).await?;
    Ok(HttpResponse::Ok().json(cohort_json(&c)))
}

async fn add_block(
    cohorts: web::Data<Cohorts>,
    client: ApiClient,
    path: web::Path<String>,
    body: web::Json<BlockInput>,
) -> Result<HttpResponse, ApiError> {
    let (id, block) = cohorts.add_block(&client.0, &path, &body).await?;
    Ok(HttpResponse::Created().json(block_json(id, &block)))
}

async fn remove_block(
    cohorts: web::Data<Cohorts>,
    client: ApiClient,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (slug, id) = path.into_inner();
    cohorts.remove_block(&client.0, &slug, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The calendar's API routes (mounted under `/api/v1` by `app.rs`).
fn budget_json(w: &WeekBudget) -> Value {
    json!({
        "week_start": w.week.monday.to_string(),
        "budget": w.budget,
        "spent": (w.spent * 100.0).round() / 100.0,
        "projected": (w.projected * 100.0).round() / 100.0,
        "over": w.over(),
        "allowed": w.allowed,
    })
}

async fn budget(calendar: web::Data<Calendar>, _: ApiClient) -> Result<HttpResponse, ApiError> {
    let w = calendar.week_budget().await.map_err(ApiError::Internal)?;
    Ok(HttpResponse::Ok().json(budget_json(&w)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetIn {
    budget: Option<f64>,
}

async fn set_budget(
    calendar: web::Data<Calendar>,
    client: ApiClient,
    body: web::Json<BudgetIn>,
) -> Result<HttpResponse, ApiError> {
    if body.budget.is_some_and(|b| !b.is_finite() || b < 0.0) {
        return Err(ApiError::Fields(vec![(
            "budget",
            "a budget is a sum of dollars, 0 or more (null: none)".into(),
        )]));
    }
    calendar
        .set_budget(&client.0, body.budget)
        .await
        .map_err(ApiError::Internal)?;
    budget(calendar, client).await
}

pub fn routes(t: &mut Table) {
    t.get("/calendar/budget", Access::AdminToken, budget)
        .put("/calendar/budget", Access::AdminToken, set_budget)
        .get("/cohorts", Access::Token, list)
        .get("/cohorts/{slug}", Access::Token, show)
        .put("/cohorts/{slug}", Access::Token, save)
        .post("/cohorts/{slug}/blocks", Access::Token, add_block)
        .delete("/cohorts/{slug}/blocks/{id}", Access::Token, remove_block);
}
