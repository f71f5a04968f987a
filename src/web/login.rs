//! Login and logout.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{client_addr, html_status, safe_next, Page};
use crate::{
    auth::{
        csrf, password::Gated, secret::hash_token, session, throttle, CurrentUser, MaybeUser,
        Verified,
    },
    db,
    domain::Username,
    error::WebError,
    state::AppState,
};

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub page: Page,
    pub next: String,
    pub username: String,
    pub error: Option<String>,
    /// Who is logged in already, if anyone.
    pub current: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    username: Option<String>,
    /// Set by authorize when the client asked for a new login (prompt=login, max_age): the
    /// current session does not do, so the form offers no "continue as …".
    fresh: Option<String>,
}

pub async fn form(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: MaybeUser,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, WebError> {
    let next = safe_next(q.next.as_deref());
    // Already logged in: still show the form (a shared laptop may need to switch person),
    // with their nav bar and, unless a fresh login was asked for, a way to carry on.
    let logged_in = LoggedIn {
        user: user.0.as_ref(),
        offer_continue: q.fresh.is_none(),
    };
    render(
        &state,
        &req,
        next,
        q.username.clone().unwrap_or_default(),
        None,
        logged_in,
        StatusCode::OK,
    )
}

/// Who is logged in already on the login page, if anyone.
#[derive(Default)]
struct LoggedIn<'a> {
    user: Option<&'a CurrentUser>,
    offer_continue: bool,
}

fn render(
    state: &AppState,
    req: &HttpRequest,
    next: String,
    username: String,
    error: Option<String>,
    logged_in: LoggedIn<'_>,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let token = csrf::anon_token(state, req);
    let current = (logged_in.user)
        .filter(|_| logged_in.offer_continue)
        .map(|u| u.username.to_string());
    let page = LoginPage {
        page: Page::anonymous(state, token.token, "Log in").with_nav(logged_in.user),
        next,
        username,
        error,
        current,
    };
    let mut resp = html_status(status, &page)?;
    if let Some(c) = token.set_cookie {
        resp.add_cookie(&c)
            .map_err(|e| WebError::Internal(e.into()))?;
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
    #[serde(default)]
    csrf_token: String,
}

const WRONG: &str = "Wrong username or password.";

pub async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, WebError> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    let typed = form.username.trim().to_string();
    let fail = |msg: &str, status| {
        render(
            &state,
            &req,
            next.clone(),
            typed.clone(),
            Some(msg.to_string()),
            LoggedIn::default(),
            status,
        )
    };

    if !csrf::verify_anon(&state, &req, &form.csrf_token) {
        return fail(
            "This form had expired. Please try again.",
            StatusCode::FORBIDDEN,
        );
    }
    if form.username.trim().is_empty() || form.password.is_empty() {
        return fail("Enter your username and password.", StatusCode::BAD_REQUEST);
    }
    if form.password.len() > 1024 {
        return fail(WRONG, StatusCode::UNAUTHORIZED);
    }
    let username = Username::parse_login(&form.username).ok();
    let addr = client_addr(&state, &req);
    let locked = |until: time::OffsetDateTime| {
        let secs = (until - time::OffsetDateTime::now_utc())
            .whole_seconds()
            .max(1);
        let wait = if secs < 90 {
            format!("{secs} seconds")
        } else {
            format!("{} minutes", (secs + 59) / 60)
        };
        fail(
            &format!("Too many failed attempts. Try again in {wait}, or ask a counselor to unlock your account."),
            StatusCode::TOO_MANY_REQUESTS,
        )
    };
    let mut conn = state.pool.acquire().await?;
    if let Some(until) = throttle::locked_until(&mut conn, username.as_ref(), &addr).await? {
        return locked(until);
    }
    let user = match &username {
        Some(u) => db::users::find_by_username(&mut conn, u).await?,
        None => None,
    };
    drop(conn);
    // Checked again once a hasher is free: parallel guesses queued behind the first failures
    // meet the lock those failures set.
    let gate = || async {
        let mut conn = state.pool.acquire().await?;
        Ok(throttle::locked_until(&mut conn, username.as_ref(), &addr).await?)
    };
    let stored = user.as_ref().map(|u| u.password_hash.as_str());
    let (verified, hasher) = match state
        .hasher
        .verify_gated(stored, &form.password, gate)
        .await?
    {
        Gated::Verified(v, held) => (v, held),
        Gated::Refused(until) => return locked(until),
        Gated::Busy => {
            return fail(
                "Many people are logging in right now. Please try again in a moment.",
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
    };
    let (user, rehashed) = match (user, verified) {
        (Some(user), Verified::Yes) => (user, None),
        (Some(user), Verified::YesRehashed(new_hash)) => (user, Some(new_hash)),
        _ => {
            let mut conn = state.pool.acquire().await?;
            throttle::record_failure(&mut conn, &state.config.throttle, username.as_ref(), &addr)
                .await?;
            drop(hasher); // only now may the next attempt check the lock
            return fail(WRONG, StatusCode::UNAUTHORIZED);
        }
    };
    drop(hasher);
    let mut conn = state.pool.acquire().await?;
    if let Some(new_hash) = rehashed {
        db::users::set_password_hash(&mut conn, user.id, &new_hash).await?;
    }
    if user.disabled {
        return fail(
            "This account is disabled. Please ask a counselor.",
            StatusCode::FORBIDDEN,
        );
    }
    if let Some(u) = &username {
        throttle::clear_account(&mut conn, u).await?;
    }
    // Rotate: whatever session this browser had ends here.
    if let Some(old) = req.cookie(state.session_cookie_name()) {
        db::sessions::delete(&mut conn, &hash_token(old.value())).await?;
    }
    drop(conn);
    let ua = req
        .headers()
        .get("User-Agent")
        .and_then(|v| v.to_str().ok());
    let cookie = session::create(&state, user.id, ua).await?;
    tracing::info!(username = %user.username, "login");
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", next))
        .cookie(cookie)
        .finish())
}

#[derive(Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
}

pub async fn logout(
    state: web::Data<AppState>,
    user: MaybeUser,
    form: web::Form<LogoutForm>,
) -> Result<HttpResponse, WebError> {
    if let Some(user) = user.0 {
        if !csrf::verify_user(&user, &form.csrf_token) {
            return Err(WebError::Csrf);
        }
        let mut tx = state.pool.begin().await?;
        db::sessions::delete(&mut tx, &user.session_hash).await?;
        // Logging out of hubdesk also ends the hub's hold on this person's identity.
        db::oauth::revoke_user_grants(&mut tx, user.id).await?;
        tx.commit().await?;
        state.oidc.cache.forget_user(user.id);
    }
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/login"))
        .cookie(session::removal_cookie(&state))
        .finish())
}
