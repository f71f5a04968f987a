//! The JSON API for scripts (e.g. syncing from a registration system).
//! `Authorization: Bearer TOKEN`, tokens made by `hubdesk token create NAME`, stored hashed.
use actix_web::{
    dev::Payload, http::StatusCode, web, FromRequest, HttpRequest, HttpResponse, ResponseError,
};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    auth::{bearer, secret},
    db::{self, users::StudentFilter},
    domain::Actor,
    roster::{
        self,
        import::{RowError, MAX_BYTES},
        ops::{Scope, StudentFields},
        Roster, RosterError,
    },
    web::extract::handle,
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("invalid import")]
    Rows(Vec<RowError>),
    #[error("database unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal(anyhow::Error),
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if db::is_unavailable(&e) {
            Self::Unavailable
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<RosterError> for ApiError {
    fn from(e: RosterError) -> Self {
        match e {
            RosterError::NotFound(_) => Self::NotFound(e.to_string()),
            RosterError::Invalid(_) => Self::BadRequest(e.to_string()),
            RosterError::Duplicate(_) | RosterError::OwnAccount | RosterError::Conflict(_) => {
                Self::Conflict(e.to_string())
            }
            RosterError::Db(e) => e.into(),
            RosterError::Internal(e) => Self::Internal(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Rows(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            Self::Unauthorized => {
                resp.insert_header(("WWW-Authenticate", "Bearer realm=\"hubdesk\""));
                resp.json(json!({"error": "unauthorized", "message": self.to_string()}))
            }
            Self::Rows(rows) => resp.json(json!({"error": "invalid_import", "errors": rows})),
            Self::Internal(e) => {
                let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
                tracing::error!(correlation_id = %id, error = ?e, "internal API error");
                resp.json(
                    json!({"error": "internal", "message": "internal error", "correlation_id": id}),
                )
            }
            other => {
                let code = match other {
                    Self::NotFound(_) => "not_found",
                    Self::Conflict(_) => "conflict",
                    Self::Unavailable => "unavailable",
                    _ => "bad_request",
                };
                resp.json(json!({"error": code, "message": other.to_string()}))
            }
        }
    }
}

/// A request authenticated by an API token.
pub struct ApiClient(pub Actor);

impl FromRequest for ApiClient {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let token = bearer::token(&req)
                .filter(|t| t.len() < 200)
                .ok_or(ApiError::Unauthorized)?;
            let pool = handle::<sqlx::PgPool>(&req).map_err(|_| ApiError::Unauthorized)?;
            let mut conn = pool.acquire().await?;
            let name = db::api_tokens::authenticate(&mut conn, &secret::hash_token(token))
                .await?
                .ok_or(ApiError::Unauthorized)?;
            Ok(ApiClient(Actor::Token(name)))
        })
    }
}

#[derive(Serialize)]
struct StudentOut {
    username: String,
    display_name: String,
    cohort: Option<String>,
    status: &'static str,
}

async fn list(roster: web::Data<Roster>, _: ApiClient) -> Result<HttpResponse, ApiError> {
    let mut conn = roster.pool.acquire().await?;
    let (rows, _) = db::users::list_students(&mut conn, &StudentFilter::default()).await?;
    let out: Vec<StudentOut> = rows
        .into_iter()
        .map(|r| StudentOut {
            status: r.status(),
            username: r.username.to_string(),
            display_name: r.display_name,
            cohort: r.cohort,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    display_name: String,
    username: Option<String>,
    cohort: Option<String>,
}

async fn create(
    roster: web::Data<Roster>,
    client: ApiClient,
    body: web::Json<CreateIn>,
) -> Result<HttpResponse, ApiError> {
    let fields = StudentFields {
        display_name: &body.display_name,
        username: body.username.as_deref().unwrap_or(""),
        cohort: body.cohort.as_deref().unwrap_or(""),
    };
    let c = roster.add_student(&client.0, fields, "api").await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"username": c.username, "password": c.password})))
}

async fn import(
    roster: web::Data<Roster>,
    client: ApiClient,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let rows = roster::import::parse(&body).map_err(ApiError::Rows)?;
    let mut conn = roster.pool.acquire().await?;
    let planned = roster::import::plan(&mut conn, rows)
        .await
        .map_err(ApiError::Rows)?;
    drop(conn);
    let creds = roster.create_students(&client.0, &planned, "api").await?;
    let created: Vec<_> = creds
        .into_iter()
        .map(|c| json!({"username": c.username, "password": c.password}))
        .collect();
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "created": created })))
}

async fn reset_password(
    roster: web::Data<Roster>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cred = roster
        .reset_password(&client.0, Scope::Students, &path)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"password": cred.password})))
}

async fn disable(
    roster: web::Data<Roster>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    roster
        .set_disabled(&client.0, Scope::Students, &path, true)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn enable(
    roster: web::Data<Roster>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    roster
        .set_disabled(&client.0, Scope::Students, &path, false)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn api_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such API endpoint".into()))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|e, _| ApiError::BadRequest(format!("invalid JSON: {e}")).into()),
    )
    .app_data(web::PayloadConfig::new(MAX_BYTES + 1))
    .route("/students", web::get().to(list))
    .route("/students", web::post().to(create))
    .route("/students/import", web::post().to(import))
    .route(
        "/students/{username}/reset-password",
        web::post().to(reset_password),
    )
    .route("/students/{username}/disable", web::post().to(disable))
    .route("/students/{username}/enable", web::post().to(enable))
    .default_service(web::to(api_not_found));
}
