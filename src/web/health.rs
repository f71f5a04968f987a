use std::time::Duration;

use actix_web::{web, HttpResponse};
use sqlx::PgPool;

/// The process is alive (even when the database is not).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready to serve: the database answers.
pub async fn readyz(pool: web::Data<PgPool>) -> HttpResponse {
    let ping = tokio::time::timeout(
        Duration::from_secs(3),
        sqlx::query("SELECT 1").execute(pool.get_ref()),
    )
    .await;
    match ping {
        Ok(Ok(_)) => HttpResponse::Ok().content_type("text/plain").body("ready"),
        _ => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("database unavailable"),
    }
}

/// Anything without a route: the friendly 404 page.
pub async fn not_found() -> Result<HttpResponse, super::WebError> {
    Err(super::WebError::NotFound)
}
