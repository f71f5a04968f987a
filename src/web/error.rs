//! Error pages, inside the app's frame: the top bar of whoever is logged in (or a way to log
//! in), what went wrong, who you are and where to go from here. Unexpected failures show a
//! correlation id and are logged with it; internals never reach the browser.
//!
//! A handler (or an extractor) returns a [`WebError`]; its `error_response` renders a page
//! without knowing the request, and [`frame`], a middleware, renders it again with the
//! session's user, the camp's name and the links that fit the page that failed.
use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{header, StatusCode},
    middleware::Next,
    web, FromRequest, HttpResponse, ResponseError,
};
use askama::Template;

use super::{extract::MaybeUser, Page};
use crate::{auth::CurrentUser, config::Config};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not logged in: pages redirect to the login form and come back to `next`.
    #[error("login required")]
    LoginRequired { next: String },
    #[error("you do not have access to this page")]
    Forbidden,
    /// A student or cohort outside a counselor's reach, said as such.
    #[error("{0}")]
    NotYours(String),
    #[error("page not found")]
    NotFound,
    /// A named thing that does not exist, said as such ("No student named 'nosuch'").
    #[error("{0}")]
    Missing(String),
    #[error("{0}")]
    BadRequest(String),
    /// The request is understood but the account's state forbids it.
    #[error("{0}")]
    Conflict(String),
    #[error("this form has expired; go back, reload the page and try again")]
    Csrf,
    #[error("the database is unavailable; please try again in a moment")]
    Unavailable,
    /// A student while the camp is paused: the whole sentence they are told.
    #[error("{0}")]
    Paused(String),
    /// Asked too often (429): the whole sentence, with when to try again.
    #[error("{0}")]
    TooOften(String),
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

/// A link on an error page: where to go from here.
pub struct Way {
    pub href: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "web/error.html")]
struct ErrorPage {
    page: Page,
    status: u16,
    title: &'static str,
    message: String,
    correlation_id: Option<String>,
    ways: Vec<Way>,
}

/// The correlation id of an internal error, carried from `error_response` to [`frame`] in the
/// response's extensions (the id is logged once, with the error).
#[derive(Clone)]
struct CorrelationId(String);

impl WebError {
    fn title(&self) -> &'static str {
        match self {
            Self::Forbidden | Self::Csrf | Self::NotYours(_) => "Not allowed",
            Self::NotFound | Self::Missing(_) => "Not found",
            Self::BadRequest(_) => "Something is not right",
            Self::Conflict(_) => "Not possible",
            Self::Unavailable => "Database unavailable",
            Self::Paused(_) => "The camp is paused",
            Self::TooOften(_) => "Not so fast",
            _ => "Something went wrong",
        }
    }

    /// The message as a sentence: capitalised, ending with a full stop.
    fn sentence(&self) -> String {
        let text = self.to_string();
        let mut chars = text.chars();
        let mut out: String = match chars.next() {
            Some(c) => c.to_uppercase().chain(chars).collect(),
            None => return text,
        };
        if !out.ends_with(['.', '!', '?']) {
            out.push('.');
        }
        out
    }
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::LoginRequired { .. } => StatusCode::SEE_OTHER,
            Self::Forbidden | Self::NotYours(_) => StatusCode::FORBIDDEN,
            Self::NotFound | Self::Missing(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooOften(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Unavailable | Self::Paused(_) => StatusCode::SERVICE_UNAVAILABLE,
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
        // Without the request (the frame middleware not in place): the page with a bare frame.
        let body = render(
            self,
            Page::anonymous(&Config::default(), String::new(), self.title()),
            correlation_id.clone(),
            "/",
        );
        let mut resp = HttpResponse::build(status);
        if matches!(self, Self::Unavailable) {
            resp.insert_header(("Retry-After", "5"));
        }
        let mut resp = resp
            .content_type("text/html; charset=utf-8")
            .insert_header(("Cache-Control", "no-store"))
            .body(body);
        if let Some(id) = correlation_id {
            resp.extensions_mut().insert(CorrelationId(id));
        }
        resp
    }
}

fn render(e: &WebError, page: Page, correlation_id: Option<String>, path: &str) -> String {
    let ways = ways(page.user.as_ref(), path);
    let page = ErrorPage {
        status: e.status_code().as_u16(),
        title: e.title(),
        message: e.sentence(),
        correlation_id,
        ways,
        page,
    };
    page.render().unwrap_or_else(|_| "error".into())
}

/// Where to go from a failed page: the list the page belongs to (when its section is one the
/// person may see), then their own start page, or the login form.
fn ways(user: Option<&super::NavUser>, path: &str) -> Vec<Way> {
    let within = |section: &str| {
        path.strip_prefix(section)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    let mut ways = Vec::new();
    match user {
        None => ways.push(Way {
            href: "/login",
            label: "Log in",
        }),
        Some(u) if u.is_staff => {
            let sections: &[(&str, &str, bool)] = &[
                ("/staff", "The staff list", u.is_admin),
                ("/jobs", "All jobs", true),
                ("/cluster", "The cluster", u.is_admin),
            ];
            for (section, label, allowed) in sections {
                if *allowed && within(section) {
                    ways.push(Way {
                        href: section,
                        label,
                    });
                }
            }
            ways.push(Way {
                href: "/students",
                label: "The student list",
            });
        }
        Some(_) => ways.push(Way {
            href: "/",
            label: "Your start page (your notebook)",
        }),
    }
    ways
}

/// Renders a [`WebError`]'s page again inside the app's frame: with the session's user (the
/// nav for their role, who they are, log out), the camp's name and clock, and links that fit
/// the path that failed. Other responses pass untouched.
pub async fn frame(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let Some(error) = res.response().error() else {
        return Ok(res.map_into_boxed_body());
    };
    let Some(e) = error.as_error::<WebError>() else {
        return Ok(res.map_into_boxed_body());
    };
    if matches!(e, WebError::LoginRequired { .. }) {
        return Ok(res.map_into_boxed_body());
    }
    let request = res.request().clone();
    let correlation_id = res
        .response()
        .extensions()
        .get::<CorrelationId>()
        .map(|c| c.0.clone());
    // The user as the handler saw them (cached), or looked up now; an outage shows the page
    // without a user rather than waiting on the database again.
    let user: Option<CurrentUser> = if matches!(e, WebError::Unavailable) {
        super::extract::cached_user(&request)
    } else {
        MaybeUser::extract(&request).await.ok().and_then(|m| m.0)
    };
    let Some(config) = request.app_data::<web::Data<Config>>() else {
        return Ok(res.map_into_boxed_body());
    };
    let page = match &user {
        Some(u) => Page::for_user(config, u, e.title()),
        None => Page::anonymous(config, String::new(), e.title()),
    };
    let body = render(e, page, correlation_id, request.path());
    Ok(res.map_body(|head, _| {
        head.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/html; charset=utf-8"),
        );
        head.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        BoxBody::new(body)
    }))
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::NavUser;

    fn nav(role: &'static str) -> NavUser {
        NavUser {
            username: "u".into(),
            display_name: "U".into(),
            is_staff: role != "student",
            is_admin: role == "admin",
            role,
            csrf: String::new(),
        }
    }

    fn hrefs(ways: Vec<Way>) -> Vec<&'static str> {
        ways.into_iter().map(|w| w.href).collect()
    }

    #[test]
    fn an_error_page_offers_the_section_it_belongs_to_and_a_start_page() {
        assert_eq!(hrefs(ways(None, "/students/x")), ["/login"]);
        assert_eq!(hrefs(ways(Some(&nav("student")), "/students")), ["/"]);
        assert_eq!(
            hrefs(ways(Some(&nav("counselor")), "/students/nosuch")),
            ["/students"]
        );
        assert_eq!(
            hrefs(ways(Some(&nav("counselor")), "/jobs/nope")),
            ["/jobs", "/students"]
        );
        // A section the person may not see is not offered.
        assert_eq!(
            hrefs(ways(Some(&nav("counselor")), "/staff/bob")),
            ["/students"]
        );
        assert_eq!(
            hrefs(ways(Some(&nav("admin")), "/staff/bob")),
            ["/staff", "/students"]
        );
        assert_eq!(
            hrefs(ways(Some(&nav("admin")), "/jobsfoo/x")),
            ["/students"]
        );
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(
            WebError::Missing("no student named 'nosuch'".into()).sentence(),
            "No student named 'nosuch'."
        );
        assert_eq!(
            WebError::Forbidden.sentence(),
            "You do not have access to this page."
        );
        assert_eq!(WebError::BadRequest("Ok!".into()).sentence(), "Ok!");
    }
}
