//! The JSON API's kit: bearer-token clients and JSON errors (`{error, message}`), shared by
//! every capability's `api.rs`.
use actix_web::{
    dev::Payload, http::StatusCode, web, FromRequest, HttpMessage, HttpRequest, HttpResponse,
    ResponseError,
};
use futures_util::future::LocalBoxFuture;
use serde_json::json;

use crate::{
    auth::{bearer, secret},
    db,
    domain::{Actor, Reach, Role},
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
    /// Understood, and refused whoever asks (e.g. terminating an instance hubdesk did not launch).
    #[error("{0}")]
    Forbidden(String),
    /// A peer (the Docker engine, EC2) failed; the message says how, plainly.
    #[error("{0}")]
    Upstream(String),
    /// Row-by-row problems of an import: `[{line, message}]`.
    #[error("invalid import")]
    Rows(Vec<serde_json::Value>),
    /// Wrong values, a message per field: 422 `{"error": "invalid", "fields": {…}}`.
    #[error("invalid values")]
    Fields(Vec<(&'static str, String)>),
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

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Rows(_) | Self::Fields(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
            Self::Fields(fields) => {
                let fields: serde_json::Map<String, serde_json::Value> = fields
                    .iter()
                    .map(|(f, m)| (f.to_string(), json!(m)))
                    .collect();
                resp.json(
                    json!({"error": "invalid", "message": "invalid values", "fields": fields}),
                )
            }
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
                    Self::Forbidden(_) => "forbidden",
                    Self::Upstream(_) => "upstream",
                    Self::Unavailable => "unavailable",
                    _ => "bad_request",
                };
                resp.json(json!({"error": code, "message": other.to_string()}))
            }
        }
    }
}

/// A request authenticated by an API token: who acts (for the audit log), and the role and
/// reach of the token's owner (a token made on the command line has none: an admin's).
#[derive(Clone)]
pub struct ApiClient(pub Actor, pub Caller);

/// What a token may do: its owner's role and reach, read at each request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    pub reach: Reach,
}

impl ApiClient {
    pub fn reach(&self) -> &Reach {
        &self.1.reach
    }

    /// The token of the request, authenticated once per request (the route table's check and
    /// the handler's extractor share it).
    pub async fn authenticate(req: &HttpRequest) -> Result<Self, ApiError> {
        if let Some(c) = req.extensions().get::<Self>().cloned() {
            return Ok(c);
        }
        let token = bearer::token(req)
            .filter(|t| t.len() < 200)
            .ok_or(ApiError::Unauthorized)?;
        let pool = handle::<sqlx::PgPool>(req).map_err(|_| ApiError::Unauthorized)?;
        let mut conn = pool.acquire().await?;
        let found = db::api_tokens::authenticate(&mut conn, &secret::hash_token(token))
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let client = match found.owner {
            None => ApiClient(
                Actor::Token(found.name),
                Caller {
                    role: Role::Admin,
                    reach: Reach::All,
                },
            ),
            Some(owner) => ApiClient(
                Actor::User(owner.username),
                Caller {
                    role: owner.role,
                    reach: Reach::from_column(owner.reach),
                },
            ),
        };
        req.extensions_mut().insert(client.clone());
        Ok(client)
    }
}

impl FromRequest for ApiClient {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Self::authenticate(&req).await })
    }
}

/// JSON bodies are small; an unreadable one is a 400 with the reason.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|e, _| ApiError::BadRequest(format!("invalid JSON: {e}")).into())
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such API endpoint".into()))
}
