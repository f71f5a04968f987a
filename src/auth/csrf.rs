//! CSRF protection. Logged-in forms carry the session's own token (synchronizer pattern);
//! anonymous forms (login, first-run setup) use a double-submit cookie, which the `__Host-`
//! prefix protects from being planted by a sibling host.
use actix_web::{
    cookie::{Cookie, SameSite},
    HttpRequest,
};

use super::{secret, session::CurrentUser};
use crate::config::Config;

/// The token to embed in a form, and the cookie to set if the browser has none yet.
pub struct AnonToken {
    pub token: String,
    pub set_cookie: Option<Cookie<'static>>,
}

pub fn anon_token(config: &Config, req: &HttpRequest) -> AnonToken {
    match req.cookie(config.csrf_cookie_name()) {
        Some(c) if c.value().len() == 43 => AnonToken {
            token: c.value().to_string(),
            set_cookie: None,
        },
        _ => {
            let token = secret::random_token();
            let cookie = Cookie::build(config.csrf_cookie_name(), token.clone())
                .path("/")
                .http_only(true)
                .secure(config.secure_cookies())
                .same_site(SameSite::Strict)
                .finish();
            AnonToken {
                token,
                set_cookie: Some(cookie),
            }
        }
    }
}

/// Checks a submitted anonymous form's token against the browser's CSRF cookie.
pub fn verify_anon(config: &Config, req: &HttpRequest, submitted: &str) -> bool {
    req.cookie(config.csrf_cookie_name())
        .is_some_and(|c| c.value().len() == 43 && secret::equal(c.value(), submitted))
}

/// Checks a logged-in form's token against the session's.
pub fn verify_user(user: &CurrentUser, submitted: &str) -> bool {
    secret::equal(&user.csrf_token, submitted)
}
