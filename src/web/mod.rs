//! Routes, one module per page group; each handler sits next to its template struct.
pub mod api;
pub mod audit;
pub mod cards;
pub mod form;
pub mod health;
pub mod home;
pub mod import;
pub mod login;
pub mod setup;
pub mod staff;
pub mod students;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;

use crate::{auth::CurrentUser, error::WebError, state::AppState};

/// What the layout needs on every page.
pub struct Page {
    pub title: String,
    pub camp: String,
    pub user: Option<NavUser>,
    pub csrf: String,
    pub notice: Option<String>,
}

pub struct NavUser {
    pub username: String,
    pub display_name: String,
    pub is_staff: bool,
    pub is_admin: bool,
}

impl Page {
    pub fn for_user(state: &AppState, user: &CurrentUser, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            camp: state.config.camp_name.clone(),
            user: Some(NavUser {
                username: user.username.to_string(),
                display_name: user.display_name.clone(),
                is_staff: user.role.is_staff(),
                is_admin: user.role == crate::domain::Role::Admin,
            }),
            csrf: user.csrf_token.clone(),
            notice: None,
        }
    }

    pub fn anonymous(state: &AppState, csrf: String, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            camp: state.config.camp_name.clone(),
            user: None,
            csrf,
            notice: None,
        }
    }

    pub fn with_notice(mut self, notice: Option<&str>) -> Self {
        self.notice = notice.map(str::to_string);
        self
    }
}

pub fn html(t: &impl Template) -> Result<HttpResponse, WebError> {
    html_status(StatusCode::OK, t)
}

pub fn html_status(status: StatusCode, t: &impl Template) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(t.render()?))
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location.to_string()))
        .finish()
}

/// The client's address for throttling: the peer, or `X-Forwarded-For` behind our own proxy.
pub fn client_addr(state: &AppState, req: &HttpRequest) -> String {
    let info = req.connection_info();
    let addr = if state.config.behind_proxy {
        info.realip_remote_addr()
    } else {
        info.peer_addr()
    };
    addr.map(|a| {
        a.parse::<std::net::SocketAddr>()
            .map(|s| s.ip().to_string())
            .unwrap_or_else(|_| a.to_string())
    })
    .unwrap_or_else(|| "unknown".into())
}

/// Only local paths are followed after login: no `//host`, no `/\host`, no scheme.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains(['\r', '\n']) =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");

async fn app_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(APP_CSS)
}

async fn app_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(APP_JS)
}

async fn not_found() -> Result<HttpResponse, WebError> {
    Err(WebError::NotFound)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/static/app.css", web::get().to(app_css))
        .route("/static/app.js", web::get().to(app_js))
        .route("/login", web::get().to(login::form))
        .route("/login", web::post().to(login::submit))
        .route("/logout", web::post().to(login::logout))
        .route("/setup", web::get().to(setup::form))
        .route("/setup", web::post().to(setup::submit))
        .route("/", web::get().to(home::home))
        .route("/account/password", web::get().to(home::password_form))
        .route("/account/password", web::post().to(home::password_submit))
        .route("/students", web::get().to(students::list))
        .route("/students/new", web::get().to(students::new_form))
        .route("/students/new", web::post().to(students::new_submit))
        .route("/students/export.csv", web::get().to(students::export))
        .route("/students/import", web::get().to(import::form))
        .route("/students/import", web::post().to(import::preview))
        .route("/students/import/commit", web::post().to(import::commit))
        .route("/students/{username}", web::get().to(students::detail))
        .route(
            "/students/{username}/reset-password",
            web::post().to(students::reset_password),
        )
        .route(
            "/students/{username}/disable",
            web::post().to(students::disable),
        )
        .route(
            "/students/{username}/enable",
            web::post().to(students::enable),
        )
        .route(
            "/students/{username}/unlock",
            web::post().to(students::unlock),
        )
        .route("/staff", web::get().to(staff::list))
        .route("/staff", web::post().to(staff::create))
        .route(
            "/staff/{username}/reset-password",
            web::post().to(staff::reset_password),
        )
        .route("/staff/{username}/disable", web::post().to(staff::disable))
        .route("/staff/{username}/enable", web::post().to(staff::enable))
        .route("/audit", web::get().to(audit::list))
        .configure(crate::oidc::routes)
        .service(web::scope("/api/v1").configure(api::routes))
        .default_service(web::to(not_found));
}
