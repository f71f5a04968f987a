//! `GET /api/v1/jobs/{id}` → `{id, kind, state, steps: [{name, at}], result, error, …}`.
use actix_web::{web, HttpResponse};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db,
    jobs::JobView,
    web::api::{ApiClient, ApiError},
    web::routes::{Access, Table},
};

async fn job(
    pool: web::Data<PgPool>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("no job {}", path.as_str()));
    let id = Uuid::parse_str(&path).map_err(|_| not_found())?;
    let mut conn = pool.acquire().await?;
    // A counselor of some cohorts reads the jobs they started (a job may name anyone).
    let row = db::jobs::get(&mut conn, id)
        .await?
        .filter(|r| client.reach().is_all() || r.actor == client.0.label())
        .ok_or_else(not_found)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(JobView::from(row)))
}

pub fn routes(t: &mut Table) {
    t.get("/jobs/{id}", Access::Token, job);
}
