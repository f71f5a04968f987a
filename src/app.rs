//! Builds the HTTP server from the handles in an `AppState`: registers each handle, the
//! security headers, request spans and the route table, and starts the periodic tasks. Binds
//! first (port 0 in tests), runs later. The only module that knows every page.
use std::{net::TcpListener, time::Duration};

use actix_web::{
    dev::{Server, Service},
    http::Method,
    middleware, web, App, HttpServer,
};
use tracing_actix_web::TracingLogger;

use crate::{
    account::pages as account,
    oidc,
    roster::{api, pages as roster},
    state::AppState,
    web::{self as kit, assets, health, WebError},
};

pub struct Application {
    server: Server,
    port: u16,
    pub state: AppState,
}

/// Content-Security-Policy: no inline script or style, nothing framed, nothing from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

impl Application {
    pub async fn build(state: AppState) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(state.config.bind_addr()?)?;
        Self::build_on(listener, state).await
    }

    /// Serves `state` on a listener bound by the caller (tests bind port 0 first, so the public
    /// URL in the configuration can name the real port, and build the state with what they
    /// want changed).
    pub async fn build_on(listener: TcpListener, state: AppState) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        spawn_session_sweeper(state.clone());
        spawn_key_reloader(state.clone());
        let handles = state.clone();
        let server = HttpServer::new(move || {
            let h = &handles;
            App::new()
                .app_data(web::Data::new(h.pool.clone()))
                .app_data(web::Data::from(h.config.clone()))
                .app_data(web::Data::new(h.hasher.clone()))
                .app_data(web::Data::from(h.tokens.clone()))
                .app_data(web::Data::from(h.oidc.clone()))
                .app_data(web::Data::new(h.roster.clone()))
                .app_data(kit::form_config(kit::FORM_LIMIT))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    WebError::BadRequest(format!("Bad query string: {e}")).into()
                }))
                .app_data(
                    web::PathConfig::default().error_handler(|_, _| WebError::NotFound.into()),
                )
                // HEAD is GET without a body (the HTTP codec drops the body): monitors and
                // link checkers use it.
                .wrap_fn(|mut req, srv| {
                    if req.method() == Method::HEAD {
                        req.head_mut().method = Method::GET;
                    }
                    srv.call(req)
                })
                .wrap(
                    middleware::DefaultHeaders::new()
                        .add(("Content-Security-Policy", CSP))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Cross-Origin-Opener-Policy", "same-origin"))
                        .add((
                            "Permissions-Policy",
                            "camera=(), microphone=(), geolocation=()",
                        )),
                )
                // A span per request (method, route, status, request id): every log line a
                // handler writes carries it.
                .wrap(TracingLogger::default())
                .configure(routes)
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self {
            server,
            port,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The route table: every page and endpoint, grouped by capability.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // The page kit: health, assets.
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/static/app.css", web::get().to(assets::app_css))
        .route("/static/app.js", web::get().to(assets::app_js));
    // A person's own pages.
    cfg.route("/login", web::get().to(account::login::form))
        .route("/login", web::post().to(account::login::submit))
        .route("/logout", web::post().to(account::login::logout))
        .route("/setup", web::get().to(account::setup::form))
        .route("/setup", web::post().to(account::setup::submit))
        .route("/", web::get().to(account::landing::home))
        .route("/account/password", web::get().to(account::password::form))
        .route(
            "/account/password",
            web::post().to(account::password::submit),
        );
    // The people desk.
    cfg.route("/students", web::get().to(roster::students::list))
        .route("/students/new", web::get().to(roster::students::new_form))
        .route(
            "/students/new",
            web::post().to(roster::students::new_submit),
        )
        .route(
            "/students/export.csv",
            web::get().to(roster::students::export),
        )
        .route(
            "/students/unlock-address",
            web::post().to(roster::students::unlock_address),
        )
        .route("/students/import", web::get().to(roster::import::form))
        .route("/students/import", web::post().to(roster::import::preview))
        .service(
            web::resource("/students/import/commit")
                // The resolved CSV (≤ 1 MiB) url-encoded, with room for percent escapes.
                .app_data(kit::form_config(4 * crate::roster::import::MAX_BYTES))
                .route(web::post().to(roster::import::commit)),
        )
        .route(
            "/students/{username}",
            web::get().to(roster::students::detail),
        )
        .route(
            "/students/{username}/reset-password",
            web::post().to(roster::students::reset_password),
        )
        // disable | enable | unlock
        .route(
            "/students/{username}/{action}",
            web::post().to(roster::students::account_action),
        )
        .route("/staff", web::get().to(roster::staff::list))
        .route("/staff", web::post().to(roster::staff::create))
        .route(
            "/staff/{username}/reset-password",
            web::post().to(roster::staff::reset_password),
        )
        // disable | enable | unlock
        .route(
            "/staff/{username}/{action}",
            web::post().to(roster::staff::account_action),
        )
        .route("/audit", web::get().to(roster::audit::list));
    // The identity provider.
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(oidc::endpoints::discovery::configuration),
    )
    .route(
        "/oauth/jwks.json",
        web::get().to(oidc::endpoints::discovery::jwks),
    )
    .route(
        "/oauth/authorize",
        web::get().to(oidc::endpoints::authorize::authorize),
    )
    .route(
        "/oauth/token",
        web::post().to(oidc::endpoints::token::token),
    )
    .route(
        "/oauth/userinfo",
        web::get().to(oidc::endpoints::userinfo::userinfo),
    )
    .route(
        "/oauth/userinfo",
        web::post().to(oidc::endpoints::userinfo::userinfo),
    )
    .route(
        "/oauth/revoke",
        web::post().to(oidc::endpoints::token::revoke),
    )
    .route(
        "/oauth/logout",
        web::get().to(oidc::endpoints::logout::end_session),
    )
    .route(
        "/oauth/logout",
        web::post().to(oidc::endpoints::logout::end_session_confirmed),
    );
    // The JSON API for scripts.
    cfg.service(web::scope("/api/v1").configure(api::routes))
        .default_service(web::to(health::not_found));
}

/// Picks up `hubdesk oidc rotate-key` run by another process.
fn spawn_key_reloader(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::oidc::keys::RELOAD_EVERY);
        tick.tick().await; // the first tick is immediate; the keys were just loaded
        loop {
            tick.tick().await;
            if let Err(e) = state.oidc.keys.reload(&state.pool).await {
                tracing::warn!(error = %e, "reloading OIDC signing keys");
            }
        }
    });
}

/// Deletes expired sessions, codes, tokens, spent grants, stale throttle rows and old keys
/// every ten minutes.
fn spawn_session_sweeper(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let idle = state.config.idle_timeout().as_secs() as i64;
            let abs = state.config.absolute_timeout().as_secs() as i64;
            if let Ok(mut conn) = state.pool.acquire().await {
                if let Err(e) = crate::db::sessions::delete_expired(&mut conn, idle, abs).await {
                    tracing::warn!(error = %e, "sweeping sessions");
                }
                if let Err(e) = crate::db::oauth::delete_expired(&mut conn).await {
                    tracing::warn!(error = %e, "sweeping OAuth codes and tokens");
                }
                let window = state.config.throttle.window_minutes * 60;
                if let Err(e) = crate::db::throttle::delete_stale(&mut conn, window).await {
                    tracing::warn!(error = %e, "sweeping login throttle");
                }
            }
        }
    });
}
