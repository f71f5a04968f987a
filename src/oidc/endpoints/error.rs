//! OAuth error responses (RFC 6749 §5.2; RFC 6750 §3 for bearer tokens).
use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
    /// The client tried HTTP Basic: a 401 must carry a Basic challenge.
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
    pub fn invalid_client(basic: bool) -> Self {
        Self {
            code: "invalid_client",
            description: "client authentication failed".into(),
            basic_challenge: basic,
        }
    }
    pub fn server_error() -> Self {
        Self::new("server_error", "internal error")
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            Self::new("temporarily_unavailable", "database unavailable")
        } else {
            tracing::error!(error = %e, "oauth database error");
            Self::server_error()
        }
    }
}

impl From<anyhow::Error> for OAuthError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = ?e, "oauth internal error");
        Self::server_error()
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self.code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header(("Cache-Control", "no-store"))
            .insert_header(("Pragma", "no-cache"));
        // RFC 9110 §15.5.2: every 401 names a scheme, also when the client sent its secret
        // in the body (RFC 6749 §5.2 allows the 401 then).
        if self.basic_challenge || self.status_code() == StatusCode::UNAUTHORIZED {
            resp.insert_header(("WWW-Authenticate", "Basic realm=\"hubdesk\""));
        }
        resp.json(json!({"error": self.code, "error_description": self.description}))
    }
}

/// RFC 6750 errors at the userinfo endpoint.
#[derive(Debug, thiserror::Error)]
pub enum BearerError {
    #[error("no bearer token")]
    Missing,
    #[error("invalid token")]
    Invalid,
    /// RFC 6750 §2: a token in the header and in the body.
    #[error("more than one way of sending the token")]
    TwoMethods,
    #[error("database unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl From<sqlx::Error> for BearerError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            Self::Unavailable
        } else {
            tracing::error!(error = %e, "userinfo database error");
            Self::Internal
        }
    }
}

impl ResponseError for BearerError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Missing | Self::Invalid => StatusCode::UNAUTHORIZED,
            Self::TwoMethods => StatusCode::BAD_REQUEST,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header(("Cache-Control", "no-store"));
        match self {
            Self::Missing => resp.insert_header(("WWW-Authenticate", "Bearer realm=\"hubdesk\"")).json(json!({"error": "invalid_request", "error_description": "bearer token required"})),
            Self::Invalid => resp
                .insert_header(("WWW-Authenticate", "Bearer realm=\"hubdesk\", error=\"invalid_token\", error_description=\"the access token is invalid, expired or revoked\""))
                .json(json!({"error": "invalid_token", "error_description": "the access token is invalid, expired or revoked"})),
            Self::TwoMethods => resp
                .insert_header(("WWW-Authenticate", "Bearer realm=\"hubdesk\", error=\"invalid_request\""))
                .json(json!({"error": "invalid_request", "error_description": "send the access token one way only (header or body)"})),
            Self::Unavailable => resp.json(json!({"error": "temporarily_unavailable"})),
            Self::Internal => resp.json(json!({"error": "server_error"})),
        }
    }
}
