//! Routes, one module per page group; each handler sits next to its template struct.
pub mod api;
pub mod audit;
pub mod cards;
pub mod desk;
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
    /// The session's CSRF token, for the nav's logout button (a page's own forms may use
    /// another, like the login form's double-submit token).
    pub csrf: String,
}

impl NavUser {
    fn of(user: &CurrentUser) -> Self {
        Self {
            username: user.username.to_string(),
            display_name: user.display_name.clone(),
            is_staff: user.role.is_staff(),
            is_admin: user.role == crate::domain::Role::Admin,
            csrf: user.csrf_token.clone(),
        }
    }
}

impl Page {
    pub fn for_user(state: &AppState, user: &CurrentUser, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            camp: state.config.camp_name.clone(),
            user: Some(NavUser::of(user)),
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

    /// The nav bar of whoever is logged in, on a page built for anyone (the login form).
    pub fn with_nav(mut self, user: Option<&CurrentUser>) -> Self {
        self.user = user.map(NavUser::of);
        self
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

/// The client's address for throttling: the peer, or, behind our own reverse proxy, the
/// address that proxy saw.
pub fn client_addr(state: &AppState, req: &HttpRequest) -> String {
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    let proxied = state
        .config
        .behind_proxy
        .then(|| forwarded_client(&forwarded))
        .flatten();
    let peer = || {
        req.peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    proxied.unwrap_or_else(peer)
}

/// The last address in `X-Forwarded-For`: the one our proxy appended. Earlier entries come from
/// the client and can say anything (rotating them would dodge the address throttle; naming a
/// school's address would lock its classroom out).
fn forwarded_client(headers: &[&str]) -> Option<String> {
    let last = headers.iter().flat_map(|h| h.split(',')).last()?.trim();
    let ip = last
        .parse::<std::net::IpAddr>()
        .or_else(|_| last.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(ip.to_string())
}

/// Only local paths are followed after login: no `//host`, no `/\host`, no scheme, and no
/// control characters or whitespace anywhere (browsers drop tabs and newlines from URLs, so
/// `/<TAB>/host` would become `//host`; other control bytes cannot go into a header).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_control() || c.is_whitespace()) =>
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

/// Forms are small (a login, a name): 64 KiB. Only the import confirmation, which carries the
/// class as CSV, may be larger.
pub const FORM_LIMIT: usize = 64 * 1024;

/// How url-encoded forms are read: at most `limit` bytes; unreadable ones get a 400 page.
pub fn form_config(limit: usize) -> web::FormConfig {
    web::FormConfig::default()
        .limit(limit)
        .error_handler(|e, _| {
            WebError::BadRequest(format!("The form could not be read: {e}")).into()
        })
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
        .route(
            "/students/unlock-address",
            web::post().to(students::unlock_address),
        )
        .route("/students/import", web::get().to(import::form))
        .route("/students/import", web::post().to(import::preview))
        .service(
            web::resource("/students/import/commit")
                // The resolved CSV (≤ 1 MiB) url-encoded, with room for percent escapes.
                .app_data(form_config(4 * crate::roster::import::MAX_BYTES))
                .route(web::post().to(import::commit)),
        )
        .route("/students/{username}", web::get().to(students::detail))
        .route(
            "/students/{username}/reset-password",
            web::post().to(students::reset_password),
        )
        // disable | enable | unlock
        .route(
            "/students/{username}/{action}",
            web::post().to(students::account_action),
        )
        .route("/staff", web::get().to(staff::list))
        .route("/staff", web::post().to(staff::create))
        .route(
            "/staff/{username}/reset-password",
            web::post().to(staff::reset_password),
        )
        // disable | enable | unlock
        .route(
            "/staff/{username}/{action}",
            web::post().to(staff::account_action),
        )
        .route("/audit", web::get().to(audit::list))
        .configure(crate::oidc::routes)
        .service(web::scope("/api/v1").configure(api::routes))
        .default_service(web::to(not_found));
}

#[cfg(test)]
mod tests {
    use super::{forwarded_client, safe_next};

    #[test]
    fn forwarded_client_is_the_address_our_proxy_appended() {
        assert_eq!(
            forwarded_client(&["203.0.113.9"]).as_deref(),
            Some("203.0.113.9")
        );
        // A client-supplied entry in front is ignored, also across repeated headers.
        assert_eq!(
            forwarded_client(&["10.0.0.1, 203.0.113.9"]).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(
            forwarded_client(&["10.0.0.1", "2001:db8::1"]).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            forwarded_client(&["203.0.113.9:4711"]).as_deref(),
            Some("203.0.113.9")
        );
        assert_eq!(forwarded_client(&["1.2.3.4, not-an-address"]), None);
        assert_eq!(forwarded_client(&[]), None);
    }

    #[test]
    fn next_keeps_local_paths_only() {
        for ok in [
            "/",
            "/students?q=a%20b",
            "/oauth/authorize?client_id=x&state=%2F%2F",
        ] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\u{b}/evil.example",
            "/\n/evil.example",
            "/a\\b",
            "/\u{1}",
            "/\u{7f}",
            "/ /evil.example",
            "/\u{a0}x",
            "https://evil.example",
            "evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
