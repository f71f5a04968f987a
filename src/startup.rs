//! Builds the HTTP server around an `AppState`. Binds first (port 0 in tests), runs later.
use std::{net::TcpListener, time::Duration};

use actix_web::{
    dev::{Server, Service},
    http::Method,
    middleware, web, App, HttpServer,
};
use sqlx::PgPool;

use crate::{config::Config, error::WebError, state::AppState, web::routes};

pub struct Application {
    server: Server,
    port: u16,
    pub state: AppState,
}

/// Content-Security-Policy: no inline script or style, nothing framed, nothing from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

impl Application {
    pub async fn build(config: Config, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind_addr()?)?;
        Self::build_on(listener, config, pool).await
    }

    /// Serves on a listener bound by the caller (tests bind port 0 first, so the public URL
    /// in the configuration can name the real port).
    pub async fn build_on(
        listener: TcpListener,
        config: Config,
        pool: PgPool,
    ) -> anyhow::Result<Self> {
        let state = AppState::new(pool, config).await?;
        let port = listener.local_addr()?.port();
        spawn_session_sweeper(state.clone());
        spawn_key_reloader(state.clone());
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(crate::web::form_config(crate::web::FORM_LIMIT))
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
