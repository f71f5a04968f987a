//! Error pages. Unexpected failures show a correlation id and are logged with it; internals
//! never reach the browser.
use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use askama::Template;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not logged in: pages redirect to the login form and come back to `next`.
    #[error("login required")]
    LoginRequired { next: String },
    #[error("you do not have access to this page")]
    Forbidden,
    #[error("page not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// The request is understood but the account's state forbids it.
    #[error("{0}")]
    Conflict(String),
    #[error("this form has expired; go back, reload the page and try again")]
    Csrf,
    #[error("the database is unavailable; please try again in a moment")]
    Unavailable,
    #[error("internal error")]
    Internal(anyhow::Error),
}

impl From<anyhow::Error> for WebError {
    /// A database error that travelled inside an `anyhow::Error` (e.g. from a closure the
    /// hasher ran) still reads as "database unavailable" when it is one.
    fn from(e: anyhow::Error) -> Self {
        match e.downcast::<sqlx::Error>() {
            Ok(db) => db.into(),
            Err(e) => Self::Internal(e),
        }
    }
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            Self::Unavailable
        } else {
            Self::Internal(e.into())
        }
    }
}

impl From<askama::Error> for WebError {
    fn from(e: askama::Error) -> Self {
        Self::Internal(e.into())
    }
}

#[derive(Template)]
#[template(path = "web/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: String,
    correlation_id: Option<String>,
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginRequired { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::LoginRequired { next } = self {
            let location = format!("/login?next={}", urlencode(next));
            return HttpResponse::SeeOther()
                .insert_header(("Location", location))
                .finish();
        }
        let status = self.status_code();
        let correlation_id = match self {
            Self::Internal(e) => {
                let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
                tracing::error!(correlation_id = %id, error = ?e, "internal error");
                Some(id)
            }
            _ => None,
        };
        let title = match self {
            Self::Forbidden | Self::Csrf => "Not allowed",
            Self::NotFound => "Not found",
            Self::BadRequest(_) => "Something is not right",
            Self::Conflict(_) => "Not possible",
            Self::Unavailable => "Database unavailable",
            _ => "Something went wrong",
        };
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message: self.to_string(),
            correlation_id,
        };
        let body = page.render().unwrap_or_else(|_| "error".into());
        let mut resp = HttpResponse::build(status);
        if matches!(self, Self::Unavailable) {
            resp.insert_header(("Retry-After", "5"));
        }
        resp.content_type("text/html; charset=utf-8").body(body)
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
