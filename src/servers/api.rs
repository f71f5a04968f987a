//! `POST /api/v1/cohorts/{cohort}/servers/start` → 202 {job};
//! `DELETE /api/v1/students/{u}/server` → 204 (stopped) or 202 {job} (still stopping); both
//! audited as the token, through the same use cases as the pages.
use actix_web::{web, HttpResponse};
use serde_json::json;
use sqlx::PgPool;

use super::{
    start::StartError,
    stop::{StopError, Stopped},
    Servers,
};
use crate::{
    domain::Username,
    jobs::Waker,
    web::api::{ApiClient, ApiError},
    web::routes::{Access, Table},
};

async fn start(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    waker: web::Data<Waker>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let job = servers
        .start_cohort(&pool, &client.0, client.reach(), &path)
        .await
        .map_err(|e| match e {
            StartError::Db(d) => d.into(),
            StartError::NotYours(why) => ApiError::Forbidden(why.0),
            StartError::NoStudents(_) => ApiError::NotFound(e.to_string()),
            other => ApiError::Conflict(other.to_string()),
        })?;
    waker.wake();
    Ok(HttpResponse::Accepted().json(json!({ "job": job })))
}

async fn stop(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    waker: web::Data<Waker>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = Username::parse(&path)
        .map_err(|_| ApiError::NotFound(format!("no student named '{}'", path.as_str())))?;
    match servers.stop_for(&pool, &client.0, &name).await {
        Ok(Stopped::Now) => Ok(HttpResponse::NoContent().finish()),
        Ok(Stopped::Queued(job)) => {
            waker.wake();
            Ok(HttpResponse::Accepted().json(json!({ "job": job })))
        }
        Err(StopError::Db(d)) => Err(d.into()),
        Err(e @ StopError::Hub(_)) => Err(ApiError::Conflict(e.to_string())),
    }
}

pub fn routes(t: &mut Table) {
    t.post("/cohorts/{cohort}/servers/start", Access::Token, start)
        .delete("/students/{username}/server", Access::Token, stop);
}
