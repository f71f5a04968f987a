//! `GET /api/v1/jobs/{id}` → `{id, kind, state, steps: [{name, at}], result, error, …}`.
use actix_web::{web, HttpResponse};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db,
    jobs::JobView,
    web::api::{ApiClient, ApiError},
};

async fn job(
    pool: web::Data<PgPool>,
    _: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || ApiError::NotFound(format!("no job {}", path.as_str()));
    let id = Uuid::parse_str(&path).map_err(|_| not_found())?;
    let mut conn = pool.acquire().await?;
    let row = db::jobs::get(&mut conn, id).await?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(JobView::from(row)))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs/{id}", web::get().to(job));
}
