//! Routes, one module per page group; each handler sits next to its template struct.
//! The page kit: what every page shares (layout data, HTML responses, error pages, the
//! extractors that put authorization and CSRF checks in handler signatures, static assets).
//! It knows no capability: pages live in their capability's `pages/` folder and the route table
//! in `app.rs`.
pub mod api;
pub mod assets;
pub mod clock;
pub mod error;
pub mod extract;
pub mod form;
pub mod health;
pub mod idempotency;
pub mod metrics;
pub mod notices;
pub mod once;
pub mod routes;
pub mod seal;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;

pub use clock::{Clock, Moment};
pub use error::WebError;
pub use extract::{AnonCsrf, Csrf, MaybeUser, RequireAdmin, RequireCounselor, RequireUser};
pub use notices::SetupNotice;
pub use once::{Keep, Once};

use crate::{auth::CurrentUser, config::Config};

/// What the layout needs on every page.
pub struct Page {
    pub title: String,
    pub camp: String,
    pub user: Option<NavUser>,
    pub csrf: String,
    pub notice: Option<String>,
    /// The camp's clock (`[ui] timezone`): `{% call t::time(page.clock.moment(x)) %}`.
    pub clock: Clock,
    /// Setup problems for an admin to fix, until this admin dismisses them; never for others.
    pub setup_notices: Vec<SetupNotice>,
    /// A hub API token is configured. Without one, pages that show notebook servers keep the
    /// configuration problem to themselves (admins get the setup notice instead).
    pub hub_configured: bool,
    /// While the camp is paused: what students are told (maybe empty); a banner on every page.
    pub camp_paused: Option<String>,
    /// Announcements on now for this person, not dismissed: (id, message).
    pub announcements: Vec<(i64, String)>,
}

pub struct NavUser {
    pub username: String,
    pub display_name: String,
    pub is_staff: bool,
    pub is_admin: bool,
    /// "student", "counselor" or "admin", to say who someone is on an error page.
    pub role: &'static str,
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
            role: user.role.as_str(),
            csrf: user.csrf_token.clone(),
        }
    }
}

fn setup_notices_for(config: &Config, user: Option<&CurrentUser>) -> Vec<SetupNotice> {
    match user {
        Some(u) if u.role == crate::domain::Role::Admin => SetupNotice::active(config)
            .into_iter()
            .filter(|n| !u.dismissed_notices.iter().any(|d| d == n.key()))
            .collect(),
        _ => Vec::new(),
    }
}

impl Page {
    pub fn for_user(config: &Config, user: &CurrentUser, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            camp: config.camp_name.clone(),
            user: Some(NavUser::of(user)),
            csrf: user.csrf_token.clone(),
            notice: None,
            clock: Clock::new(config),
            setup_notices: setup_notices_for(config, Some(user)),
            hub_configured: notices::hub_configured(config),
            camp_paused: user.camp_paused.clone(),
            announcements: user.announcements.clone(),
        }
    }

    pub fn anonymous(config: &Config, csrf: String, title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            camp: config.camp_name.clone(),
            user: None,
            csrf,
            notice: None,
            clock: Clock::new(config),
            setup_notices: Vec::new(),
            hub_configured: notices::hub_configured(config),
            camp_paused: None,
            announcements: Vec::new(),
        }
    }

    /// What a student is told while the camp is paused.
    pub fn paused_words(&self) -> String {
        paused_sentence(self.camp_paused.as_deref().unwrap_or(""))
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

    /// A fresh id for a single-use form (`<input type="hidden" name="form_id" …>`): each
    /// rendering of a form gets its own, so what one rendering's form does happens once.
    pub fn new_form_id(&self) -> String {
        uuid::Uuid::new_v4().to_string()
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

/// A zip download, streamed as it is made and never cached: `<filename>.zip`.
pub fn zip_download<S>(filename: &str, body: S) -> HttpResponse
where
    S: futures_util::Stream<Item = std::io::Result<actix_web::web::Bytes>> + 'static,
{
    HttpResponse::Ok()
        .content_type("application/zip")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{filename}.zip\""),
        ))
        .insert_header(("Cache-Control", "no-store"))
        .streaming(body)
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header(("Location", location.to_string()))
        .finish()
}

/// The client's address for throttling: the peer, or, behind our own reverse proxy, the
/// address that proxy saw.
pub fn client_addr(config: &Config, req: &HttpRequest) -> String {
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>();
    let proxied = config
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

/// What a student is told while the camp is paused (the login form, the sign-in, their pages).
pub fn paused_sentence(message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    if message.is_empty() {
        "The camp is paused. You can log in again when your counselor says so.".into()
    } else {
        format!("The camp is paused: {message}. You can log in again when your counselor says so.")
    }
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
