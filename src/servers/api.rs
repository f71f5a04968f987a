//! `POST /api/v1/cohorts/{cohort}/servers/start` → 202 {job};
//! `DELETE /api/v1/students/{u}/server` → 204 (stopped) or 202 {job} (still stopping).
use actix_web::{web, HttpResponse};
use serde_json::json;
use sqlx::PgPool;

use super::{jobs::StopJob, Servers};
use crate::{
    domain::Username,
    hub::{HubError, StopOutcome},
    jobs::Waker,
    web::api::{ApiClient, ApiError},
};

fn hub_error(e: HubError) -> ApiError {
    ApiError::Conflict(format!("the hub could not do it: {e}"))
}

async fn start(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    waker: web::Data<Waker>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !servers.configured() {
        return Err(ApiError::Conflict(
            "no hub is configured ([hub] api_token)".into(),
        ));
    }
    let students = {
        let mut conn = pool.acquire().await?;
        crate::db::users::cohort_usernames(&mut conn, &path).await?
    };
    if students.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no students in cohort '{}'",
            path.as_str()
        )));
    }
    let job = super::pages::enqueue_start(&pool, &client.0, &path, students).await?;
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
    match servers.stop(&name).await.map_err(hub_error)? {
        StopOutcome::Stopped => Ok(HttpResponse::NoContent().finish()),
        StopOutcome::Pending => {
            let mut tx = pool.begin().await?;
            let job = StopJob {
                username: name.to_string(),
            }
            .enqueue(&mut tx, &client.0)
            .await?;
            tx.commit().await?;
            waker.wake();
            Ok(HttpResponse::Accepted().json(json!({ "job": job })))
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cohorts/{cohort}/servers/start", web::post().to(start))
        .route("/students/{username}/server", web::delete().to(stop));
}
