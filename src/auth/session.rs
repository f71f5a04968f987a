//! Server-side sessions in PostgreSQL: the cookie holds 256 random bits, the table their
//! SHA-256. Sessions survive restarts, can be revoked, and expire on idle and absolute timeouts.
use actix_web::{
    cookie::{time::Duration as CookieDuration, Cookie, SameSite},
    HttpRequest,
};
use time::OffsetDateTime;

use sqlx::PgPool;

use super::secret::{hash_token, random_token};
use crate::{
    config::Config,
    db,
    domain::{Reach, Role, Username},
};

/// The session cookie as the request carries it, if any.
pub fn cookie_hash(config: &Config, req: &HttpRequest) -> Option<Vec<u8>> {
    req.cookie(config.session_cookie_name())
        .map(|c| hash_token(c.value()))
}

/// The logged-in person behind a request. `Debug` leaves out the CSRF token and session hash.
#[derive(Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub username: Username,
    pub display_name: String,
    pub role: Role,
    pub csrf_token: String,
    pub session_hash: Vec<u8>,
    /// When this session logged in (the OIDC `auth_time`).
    pub authenticated_at: OffsetDateTime,
    /// Setup notices this person has dismissed (`web::notices`).
    pub dismissed_notices: Vec<String>,
    /// While the camp is paused: the message students are told (maybe empty).
    pub camp_paused: Option<String>,
    /// Announcements on now for this person, not dismissed: (id, message).
    pub announcements: Vec<(i64, String)>,
    /// Which students this person sees and acts on (counselors assigned to cohorts).
    pub reach: Reach,
}

impl std::fmt::Debug for CurrentUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentUser")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("reach", &self.reach)
            .field("authenticated_at", &self.authenticated_at)
            .finish_non_exhaustive()
    }
}

impl CurrentUser {
    /// The session's one row, as the request's person.
    fn from_row(row: db::sessions::SessionWithUser, session_hash: Vec<u8>) -> Self {
        let db::sessions::SessionWithUser {
            session,
            user,
            dismissed_notices,
            camp_paused,
            announcements,
            reach_cohorts,
        } = row;
        Self {
            id: user.id,
            username: user.username,
            role: user.role,
            display_name: user.display_name,
            csrf_token: session.csrf_token,
            session_hash,
            authenticated_at: session.created_at,
            dismissed_notices,
            camp_paused,
            announcements: announcements
                .iter()
                .filter_map(|a| {
                    let (id, message) = a.split_once(':')?;
                    Some((id.parse().ok()?, message.to_string()))
                })
                .collect(),
            reach: Reach::from_column(reach_cohorts),
        }
    }
}

/// Creates a session for `user_id`; returns the cookie to set. Any session the browser already
/// had is deleted by the caller (the id is rotated at login).
pub async fn create(
    pool: &PgPool,
    config: &Config,
    user_id: i64,
    user_agent: Option<&str>,
) -> Result<Cookie<'static>, sqlx::Error> {
    let id = random_token();
    let csrf = random_token();
    let mut conn = pool.acquire().await?;
    db::sessions::insert(&mut conn, &hash_token(&id), user_id, &csrf, user_agent).await?;
    Ok(session_cookie(config, id))
}

fn session_cookie(config: &Config, value: String) -> Cookie<'static> {
    Cookie::build(config.session_cookie_name(), value)
        .path("/")
        .http_only(true)
        .secure(config.secure_cookies())
        .same_site(SameSite::Lax)
        .finish()
}

/// A cookie that tells the browser to forget the session.
pub fn removal_cookie(config: &Config) -> Cookie<'static> {
    let mut c = session_cookie(config, String::new());
    c.set_max_age(CookieDuration::ZERO);
    c.set_expires(OffsetDateTime::UNIX_EPOCH);
    c
}

/// Loads the session named by the request's cookie. Expired sessions, sessions of disabled
/// users and unknown ids all yield `None` (expired ones are deleted).
pub async fn load(
    pool: &PgPool,
    config: &Config,
    req: &HttpRequest,
) -> Result<Option<CurrentUser>, sqlx::Error> {
    let Some(cookie) = req.cookie(config.session_cookie_name()) else {
        return Ok(None);
    };
    if cookie.value().len() != 43 {
        return Ok(None);
    }
    let hash = hash_token(cookie.value());
    let mut conn = pool.acquire().await?;
    let Some(row) = db::sessions::find_with_user(&mut conn, &hash, config.calendar.now()).await?
    else {
        return Ok(None);
    };
    let now = OffsetDateTime::now_utc();
    let idle = now - row.session.last_seen_at;
    let age = now - row.session.created_at;
    if idle > config.idle_timeout() || age > config.absolute_timeout() {
        db::sessions::delete(&mut conn, &hash).await?;
        return Ok(None);
    }
    if row.user.disabled {
        db::sessions::delete(&mut conn, &hash).await?;
        return Ok(None);
    }
    // Write at most once a minute per session: idle precision does not need more.
    if idle > time::Duration::seconds(60) {
        db::sessions::touch(&mut conn, &hash).await?;
    }
    Ok(Some(CurrentUser::from_row(row, hash)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_out_the_csrf_token_and_session_hash() {
        let user = CurrentUser {
            id: 7,
            username: Username::parse("ada").unwrap(),
            display_name: "Ada".into(),
            role: Role::Student,
            csrf_token: "csrf-secret-value".into(),
            session_hash: b"session-hash-bytes".to_vec(),
            authenticated_at: OffsetDateTime::UNIX_EPOCH,
            dismissed_notices: Vec::new(),
            camp_paused: None,
            announcements: Vec::new(),
            reach: Reach::Cohorts(Vec::new()),
        };
        let printed = format!("{user:?}");
        assert!(printed.contains("ada"));
        assert!(!printed.contains("csrf-secret-value"));
        assert!(!printed.contains("115, 101, 115")); // the hash's bytes
    }
}
