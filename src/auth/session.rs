//! Server-side sessions in PostgreSQL: the cookie holds 256 random bits, the table their
//! SHA-256. Sessions survive restarts, can be revoked, and expire on idle and absolute timeouts.
use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    HttpRequest,
};
use time::OffsetDateTime;

use super::secret::{hash_token, random_token};
use crate::{
    db::{self, users::UserRow},
    domain::{Role, Username},
    state::AppState,
};

/// The logged-in person behind a request.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub username: Username,
    pub display_name: String,
    pub role: Role,
    pub csrf_token: String,
    pub session_hash: Vec<u8>,
    /// When this session logged in (the OIDC `auth_time`).
    pub authenticated_at: OffsetDateTime,
}

impl CurrentUser {
    fn from_row(
        user: UserRow,
        csrf_token: String,
        session_hash: Vec<u8>,
        authenticated_at: OffsetDateTime,
    ) -> Option<Self> {
        Some(Self {
            id: user.id,
            username: Username::parse(&user.username).ok()?,
            role: Role::parse(&user.role)?,
            display_name: user.display_name,
            csrf_token,
            session_hash,
            authenticated_at,
        })
    }
}

/// Creates a session for `user_id`; returns the cookie to set. Any session the browser already
/// had is deleted by the caller (the id is rotated at login).
pub async fn create(
    state: &AppState,
    user_id: i64,
    user_agent: Option<&str>,
) -> Result<Cookie<'static>, sqlx::Error> {
    let id = random_token();
    let csrf = random_token();
    let mut conn = state.pool.acquire().await?;
    db::sessions::insert(&mut conn, &hash_token(&id), user_id, &csrf, user_agent).await?;
    Ok(session_cookie(state, id))
}

fn session_cookie(state: &AppState, value: String) -> Cookie<'static> {
    Cookie::build(state.session_cookie_name(), value)
        .path("/")
        .http_only(true)
        .secure(state.config.secure_cookies())
        .same_site(SameSite::Lax)
        .finish()
}

/// A cookie that tells the browser to forget the session.
pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = session_cookie(state, String::new());
    c.set_max_age(CookieDuration::ZERO);
    c.set_expires(OffsetDateTime::UNIX_EPOCH);
    c
}

/// Loads the session named by the request's cookie. Expired sessions, sessions of disabled
/// users and unknown ids all yield `None` (expired ones are deleted).
pub async fn load(state: &AppState, req: &HttpRequest) -> Result<Option<CurrentUser>, sqlx::Error> {
    let Some(cookie) = req.cookie(state.session_cookie_name()) else {
        return Ok(None);
    };
    if cookie.value().len() != 43 {
        return Ok(None);
    }
    let hash = hash_token(cookie.value());
    let mut conn = state.pool.acquire().await?;
    let Some(db::sessions::SessionWithUser { session, user }) =
        db::sessions::find_with_user(&mut conn, &hash).await?
    else {
        return Ok(None);
    };
    let now = OffsetDateTime::now_utc();
    let idle = now - session.last_seen_at;
    let age = now - session.created_at;
    if idle > state.config.idle_timeout() || age > state.config.absolute_timeout() {
        db::sessions::delete(&mut conn, &hash).await?;
        return Ok(None);
    }
    if user.disabled {
        db::sessions::delete(&mut conn, &hash).await?;
        return Ok(None);
    }
    // Write at most once a minute per session: idle precision does not need more.
    if idle > time::Duration::seconds(60) {
        db::sessions::touch(&mut conn, &hash).await?;
    }
    Ok(CurrentUser::from_row(
        user,
        session.csrf_token,
        hash,
        session.created_at,
    ))
}
