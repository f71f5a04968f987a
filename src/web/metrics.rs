//! `GET /metrics`: Prometheus scrapes with `Authorization: Bearer` and either the configured
//! `metrics.scrape_token` or an API token (`hubdesk token create`). Never public: counts of
//! logins and jobs tell an outsider more than they should.
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use sqlx::PgPool;

use super::api::ApiError;
use crate::{
    auth::{bearer, secret},
    config::Config,
    db,
    metrics::Metrics,
};

pub async fn metrics(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    metrics: web::Data<Metrics>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let token = bearer::token(&req).ok_or(ApiError::Unauthorized)?;
    let by_scrape_token = config
        .metrics
        .scrape_token
        .as_ref()
        .is_some_and(|t| secret::equal(t.expose_secret(), token));
    let mut conn = pool.acquire().await?;
    if !by_scrape_token
        && db::api_tokens::authenticate(&mut conn, &secret::hash_token(token))
            .await?
            .is_none()
    {
        return Err(ApiError::Unauthorized);
    }
    let counts = db::jobs::counts(&mut conn).await?;
    drop(conn);
    metrics.set_jobs(
        counts
            .into_iter()
            .map(|c| (c.kind, c.state.as_str().to_string(), c.count)),
    );
    metrics.set_pool(
        pool.num_idle(),
        pool.size(),
        pool.options().get_max_connections(),
    );
    let body = metrics
        .encode()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("encoding metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}
