//! Login and logout.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use sqlx::PgPool;

use crate::{
    account::login::{self, Attempt, Outcome},
    auth::{csrf, session, CurrentUser, Hasher, TokenCache},
    config::Config,
    metrics::Metrics,
    web::{client_addr, html_status, safe_next, AnonCsrf, Csrf, MaybeUser, Page, WebError},
};

#[derive(Template)]
#[template(path = "account/login.html")]
pub struct LoginPage {
    pub page: Page,
    pub next: String,
    pub username: String,
    pub error: Option<String>,
    /// Who is logged in already, if anyone.
    pub current: Option<String>,
    /// Just set a new password with a reset code.
    pub reset_done: bool,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    username: Option<String>,
    /// Set by authorize when the client asked for a new login (prompt=login, max_age): the
    /// current session does not do, so the form offers no "continue as …".
    fresh: Option<String>,
    /// Back from `/reset` with a new password.
    reset: Option<String>,
}

pub async fn form(
    config: web::Data<Config>,
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
        reset_done: q.reset.is_some(),
    };
    render(
        &config,
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
    /// Back from `/reset`: say the new password is set.
    reset_done: bool,
}

fn render(
    config: &Config,
    req: &HttpRequest,
    next: String,
    username: String,
    error: Option<String>,
    logged_in: LoggedIn<'_>,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let token = csrf::anon_token(config, req);
    let current = (logged_in.user)
        .filter(|_| logged_in.offer_continue)
        .map(|u| u.username.to_string());
    let page = LoginPage {
        page: Page::anonymous(config, token.token, "Log in").with_nav(logged_in.user),
        next,
        username,
        error,
        current,
        reset_done: logged_in.reset_done,
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
}

const WRONG: &str = "Wrong username or password.";

/// "Try again in 40 seconds" / "in 3 minutes".
fn wait_text(until: time::OffsetDateTime) -> String {
    let secs = (until - time::OffsetDateTime::now_utc())
        .whole_seconds()
        .max(1);
    if secs < 90 {
        format!("{secs} seconds")
    } else {
        format!("{} minutes", (secs + 59) / 60)
    }
}

pub async fn submit(
    pool: web::Data<PgPool>,
    hasher: web::Data<Hasher>,
    config: web::Data<Config>,
    metrics: web::Data<Metrics>,
    req: HttpRequest,
    form: AnonCsrf<LoginForm>,
) -> Result<HttpResponse, WebError> {
    let (form, expired) = match form.checked() {
        Ok(form) => (form, false),
        Err(expired) => (expired.0, true),
    };
    let next = safe_next(form.next.as_deref());
    let typed = form.username.trim().to_string();
    let fail = |msg: &str, status| {
        render(
            &config,
            &req,
            next.clone(),
            typed.clone(),
            Some(msg.to_string()),
            LoggedIn::default(),
            status,
        )
    };
    if expired {
        return fail(
            "This form had expired. Please try again.",
            StatusCode::FORBIDDEN,
        );
    }
    if typed.is_empty() || form.password.is_empty() {
        return fail("Enter your username and password.", StatusCode::BAD_REQUEST);
    }
    let addr = client_addr(&config, &req);
    let attempt = Attempt {
        username: &form.username,
        password: &form.password,
        addr: &addr,
        old_session: session::cookie_hash(&config, &req),
        user_agent: req
            .headers()
            .get("User-Agent")
            .and_then(|v| v.to_str().ok()),
    };
    let outcome = login::log_in(&pool, &hasher, &config, attempt).await?;
    metrics.login(match &outcome {
        Outcome::LoggedIn { .. } => "success",
        Outcome::Wrong => "wrong",
        Outcome::Locked(_) => "locked",
        Outcome::Disabled => "disabled",
        Outcome::CampPaused(_) => "paused",
        Outcome::Busy => "busy",
    });
    match outcome {
        Outcome::LoggedIn { cookie, .. } => Ok(HttpResponse::SeeOther()
            .insert_header(("Location", next.clone()))
            .cookie(cookie)
            .finish()),
        Outcome::Wrong => fail(WRONG, StatusCode::UNAUTHORIZED),
        Outcome::Locked(until) => fail(
            &format!(
                "Too many failed attempts. Try again in {}, or ask a counselor to unlock your account.",
                wait_text(until)
            ),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Outcome::Disabled => fail(
            "This account is disabled. Please ask a counselor.",
            StatusCode::FORBIDDEN,
        ),
        Outcome::CampPaused(message) => fail(
            &crate::web::paused_sentence(&message),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        Outcome::Busy => fail(
            "Many people are logging in right now. Please try again in a moment.",
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    }
}

#[derive(Deserialize)]
pub struct LogoutForm {}

pub async fn logout(
    pool: web::Data<PgPool>,
    tokens: web::Data<TokenCache>,
    config: web::Data<Config>,
    user: MaybeUser,
    _: Csrf<LogoutForm>,
) -> Result<HttpResponse, WebError> {
    if let Some(user) = user.0 {
        login::log_out(&pool, &tokens, &user).await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/login"))
        .cookie(session::removal_cookie(&config))
        .finish())
}
