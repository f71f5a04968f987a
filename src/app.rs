//! Builds the HTTP server from the handles in an `AppState`: registers each handle, the
//! security headers, request spans and the route table, and starts the periodic tasks. Binds
//! first (port 0 in tests), runs later. The only module that knows every page.
use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{
    dev::{Server, Service},
    http::Method,
    middleware, web, App, HttpServer,
};
use tracing_actix_web::TracingLogger;

use crate::telemetry::RequestSpan;

use crate::{
    account::pages as account,
    activity, announcements,
    calendar::pages::{calendar as calendar_page, cohorts as cohort_pages},
    cluster::{self, pages as cluster_pages},
    db, homes,
    jobs::{self, Runner, RunnerHandle},
    oidc,
    roster::{self, pages as roster_pages},
    servers,
    state::AppState,
    web::{self as kit, assets, health, WebError},
};

pub struct Application {
    server: Server,
    port: u16,
    runner: Option<RunnerHandle>,
    pub state: AppState,
}

/// Advisory lock keys of the periodic tasks (one instance of a fleet runs each).
const SWEEPER_LOCK: i64 = 0x6875_6264_0001;
const HOME_USAGE_LOCK: i64 = 0x6875_6264_0002;
const CALENDAR_LOCK: i64 = 0x6875_6264_0003;
const LEDGER_LOCK: i64 = 0x6875_6264_0004;
const PAUSE_LOCK: i64 = 0x6875_6264_0005;
const BOARD_LOCK: i64 = 0x6875_6264_0006;

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
        spawn_periodic_tasks(&state);
        let runner = (!state.job_handlers.is_empty()).then(|| {
            Runner::new(state.pool.clone(), state.job_handlers.clone())
                .with_waker(state.jobs.clone())
                .spawn()
        });
        let handles = state.clone();
        let server = HttpServer::new(move || {
            let h = &handles;
            // cluster desk: its handle only when `[cluster] enabled` (handlers take an Option).
            let cluster_data = h.cluster.clone().map(web::Data::from);
            App::new()
                .configure(move |c| {
                    if let Some(d) = cluster_data {
                        c.app_data(d);
                    }
                })
                .app_data(web::Data::new(h.pool.clone()))
                .app_data(web::Data::from(h.config.clone()))
                .app_data(web::Data::new(h.hasher.clone()))
                .app_data(web::Data::from(h.tokens.clone()))
                .app_data(web::Data::from(h.oidc.clone()))
                .app_data(web::Data::new(h.roster.clone()))
                .app_data(web::Data::new(h.homes.clone()))
                .app_data(web::Data::new(h.servers.clone()))
                .app_data(web::Data::new(h.board.clone()))
                .app_data(web::Data::new(h.cohorts.clone()))
                .app_data(web::Data::new(h.announcements.clone()))
                .app_data(web::Data::new(h.calendar.clone()))
                // The week's budget, as the cluster desk asks it before a launch by hand.
                .app_data(web::Data::from(
                    Arc::new(h.calendar.clone()) as Arc<dyn crate::cluster::Budget>
                ))
                .app_data(web::Data::new(h.jobs.clone()))
                .app_data(web::Data::from(h.metrics.clone()))
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
                // Error pages inside the app's frame (the session's nav, who you are, where
                // to go): inside the default headers and the request span.
                .wrap(middleware::from_fn(kit::error::frame))
                .wrap(
                    middleware::DefaultHeaders::new()
                        .add(("Content-Security-Policy", CSP))
                        // Any response that sets no caching of its own (every page, every error
                        // page, every redirect) is not stored: nothing with a person's name
                        // comes back from a shared computer's cache or its back-forward cache
                        // after logout. Static assets and discovery documents set their own.
                        .add(("Cache-Control", "no-store"))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Cross-Origin-Opener-Policy", "same-origin"))
                        .add((
                            "Permissions-Policy",
                            "camera=(), microphone=(), geolocation=()",
                        )),
                )
                // A span per request holding only its id (every line a handler writes
                // carries it), and one `request` line per response (telemetry::RequestSpan).
                .wrap(TracingLogger::<RequestSpan>::new())
                .configure(routes)
        })
        .listen(listener)?
        .shutdown_timeout(10)
        .run();
        Ok(Self {
            server,
            port,
            runner,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped (SIGTERM, SIGINT), then lets running jobs finish
    /// their step (bounded; an unfinished job resumes on the next start).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Some(runner) = self.runner {
            runner.shutdown().await;
        }
        served
    }
}

/// The route table: every page and endpoint, grouped by capability.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // The page kit: health, assets.
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(kit::metrics::metrics))
        .route("/static/app.css", web::get().to(assets::app_css))
        .route("/static/app.js", web::get().to(assets::app_js));
    // A person's own pages.
    cfg.route("/login", web::get().to(account::login::form))
        .route("/login", web::post().to(account::login::submit))
        .route("/logout", web::post().to(account::login::logout))
        .route("/reset", web::get().to(account::reset_code::form))
        .route("/reset", web::post().to(account::reset_code::submit))
        .route("/setup", web::get().to(account::setup::form))
        .route("/setup", web::post().to(account::setup::submit))
        .route("/", web::get().to(account::landing::home))
        .route("/account/home.zip", web::get().to(homes::pages::own_zip))
        .route(
            "/account/server/stop",
            web::post().to(servers::pages::stop_own),
        )
        .route(
            "/account/server/unstick",
            web::post().to(servers::pages::unstick_own),
        )
        .route("/account/password", web::get().to(account::password::form))
        .route(
            "/account/password",
            web::post().to(account::password::submit),
        )
        .route(
            "/notices/{key}/dismiss",
            web::post().to(account::notices::dismiss),
        );
    // The people desk.
    cfg.configure(crate::board::pages::routes);
    cfg.route("/students", web::get().to(roster_pages::students::list))
        .route(
            "/students/new",
            web::get().to(roster_pages::students::new_form),
        )
        .route(
            "/students/new",
            web::post().to(roster_pages::students::new_submit),
        )
        .route(
            "/students/export.csv",
            web::get().to(roster_pages::students::export),
        )
        .route(
            "/students/homes.zip",
            web::get().to(homes::pages::cohort_zip),
        )
        .route(
            "/students/servers/start",
            web::post().to(servers::pages::start_cohort),
        )
        .route(
            "/students/unlock-address",
            web::post().to(roster_pages::students::unlock_address),
        )
        .route(
            "/students/reset-passwords",
            web::get().to(roster_pages::reset_many::confirm_form),
        )
        .route(
            "/students/reset-passwords",
            web::post().to(roster_pages::reset_many::confirm),
        )
        .route(
            "/students/cards/{job}",
            web::get().to(roster_pages::reset_many::cards_page),
        )
        .route(
            "/students/import",
            web::get().to(roster_pages::import::form),
        )
        .route(
            "/students/import",
            web::post().to(roster_pages::import::preview),
        )
        .route(
            "/students/import/{draft}",
            web::get().to(roster_pages::import::show_preview),
        )
        .service(
            web::resource("/students/import/commit")
                // The resolved CSV (≤ 1 MiB) url-encoded, with room for percent escapes.
                .app_data(kit::form_config(4 * roster::import::MAX_BYTES))
                .route(web::post().to(roster_pages::import::commit)),
        )
        .route(
            "/students/{username}",
            web::get().to(roster_pages::students::detail),
        )
        .route(
            "/students/{username}/server/stop",
            web::post().to(servers::pages::stop),
        )
        .route(
            "/students/{username}/home.zip",
            web::get().to(homes::pages::student_zip),
        )
        .route(
            "/students/{username}/home/reset",
            web::post().to(homes::pages::reset),
        )
        .route(
            "/students/{username}/home/restore",
            web::post().to(homes::pages::restore),
        )
        .route(
            "/students/{username}/home/quota",
            web::post().to(roster_pages::students::home_quota),
        )
        .route(
            "/students/{username}/reset-password",
            web::post().to(roster_pages::students::reset_password),
        )
        .route(
            "/students/{username}/reset-code",
            web::post().to(roster_pages::reset_code::issue),
        )
        .route(
            "/reset-codes/{form_id}",
            web::get().to(roster_pages::reset_code::show),
        )
        // disable | enable | unlock
        .route(
            "/students/{username}/{action}",
            web::post().to(roster_pages::students::account_action),
        )
        .route("/staff", web::get().to(roster_pages::staff::list))
        .route("/staff", web::post().to(roster_pages::staff::create))
        .route(
            "/staff/{username}/reset-password",
            web::post().to(roster_pages::staff::reset_password),
        )
        // disable | enable | unlock
        .route(
            "/staff/{username}/{action}",
            web::post().to(roster_pages::staff::account_action),
        )
        // The result page of the forms that make passwords (shown once).
        .route(
            "/credentials/{form_id}",
            web::get().to(roster_pages::shown::show),
        )
        .route("/audit", web::get().to(roster_pages::audit::list))
        .route("/homes/purge", web::get().to(homes::pages::purge_form))
        .route("/homes/purge", web::post().to(homes::pages::purge));
    // The calendar: cohorts' class times and profiles.
    cfg.route("/cohorts", web::get().to(cohort_pages::list))
        .route("/cohorts/{slug}", web::get().to(cohort_pages::show))
        .route("/cohorts/{slug}", web::post().to(cohort_pages::save))
        .route(
            "/cohorts/{slug}/blocks",
            web::post().to(cohort_pages::add_block),
        )
        .route(
            "/cohorts/{slug}/blocks/{id}/remove",
            web::post().to(cohort_pages::remove_block),
        );
    cfg.route("/calendar", web::get().to(calendar_page::show))
        .route(
            "/calendar/ledger.csv",
            web::get().to(calendar_page::ledger_csv),
        )
        .route("/calendar.ics", web::get().to(calendar_page::feed))
        .route("/announcements", web::get().to(announcements::pages::list))
        .route("/announcements", web::post().to(announcements::pages::post))
        .route(
            "/announcements/{id}/end",
            web::post().to(announcements::pages::end),
        )
        .route(
            "/announcements/{id}/dismiss",
            web::post().to(announcements::pages::dismiss),
        )
        .route("/camp/pause", web::post().to(servers::pages::pause))
        .route("/camp/resume", web::post().to(servers::pages::resume))
        .route(
            "/calendar/budget",
            web::post().to(calendar_page::set_budget),
        )
        .route(
            "/calendar/over-budget",
            web::post().to(calendar_page::allow_over_budget),
        )
        .route("/calendar/{switch}", web::post().to(calendar_page::switch));
    // The cluster desk (admins).
    cfg.route("/cluster", web::get().to(cluster_pages::show))
        .route("/cluster/workers", web::post().to(cluster_pages::launch))
        .route("/cluster/dry-run", web::post().to(cluster_pages::dry_run))
        .route(
            "/cluster/workers/{instance_id}/remove",
            web::get().to(cluster_pages::confirm_remove),
        )
        .route(
            "/cluster/workers/{instance_id}/remove",
            web::post().to(cluster_pages::remove),
        );
    // What hubdesk is doing.
    cfg.route("/jobs", web::get().to(activity::pages::list))
        .route("/jobs/{id}", web::get().to(activity::pages::detail));
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
        "/oauth/profile/{username}",
        web::get().to(oidc::endpoints::profile::profile),
    )
    .route(
        "/oauth/announcements",
        web::get().to(oidc::endpoints::announcements::announcements),
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
    cfg.service(
        web::scope("/api/v1")
            .wrap(middleware::from_fn(kit::idempotency::keyed))
            .app_data(kit::api::json_config())
            .configure(roster::api::routes)
            .configure(homes::api::routes)
            .configure(servers::api::routes)
            .configure(crate::board::api::routes)
            .configure(activity::api::routes)
            .configure(cluster::api::routes)
            .configure(crate::calendar::api::routes)
            .default_service(web::to(kit::api::not_found)),
    )
    .default_service(web::to(health::not_found));
}

/// The sweeper runs on one instance of a fleet (under an advisory lock); every instance reloads
/// its own copy of the OIDC keys, to pick up `hubdesk oidc rotate-key` run by another process.
fn spawn_periodic_tasks(state: &AppState) {
    let (pool, config) = (state.pool.clone(), state.config.clone());
    jobs::periodic(
        state.pool.clone(),
        "sweeper",
        SWEEPER_LOCK,
        Duration::from_secs(600),
        move || sweep(pool.clone(), config.clone()),
    );
    // The usage sweep also rewrites the NFS node's quota list (homes::quota).
    let homes = state.homes.clone();
    jobs::periodic(
        state.pool.clone(),
        "home-usage",
        HOME_USAGE_LOCK,
        state.config.homes.usage_interval(),
        move || {
            let homes = homes.clone();
            async move {
                let report = homes::usage::sweep(&homes).await?;
                tracing::debug!(?report, "home usage measured");
                Ok(())
            }
        },
    );
    // While the camp is paused, student servers that still run are stopped (one instance).
    let servers = state.servers.clone();
    let pool = state.pool.clone();
    jobs::periodic(
        state.pool.clone(),
        "camp-pause",
        PAUSE_LOCK,
        servers::pause::SWEEP_EVERY,
        move || {
            let (servers, pool) = (servers.clone(), pool.clone());
            async move {
                servers.sweep_paused(&pool).await?;
                Ok(())
            }
        },
    );
    // The spawn timeline: each start of a student's server and its task's steps (one instance).
    if state.servers.configured() && state.config.hub.timeline_secs > 0 {
        let board = state.board.clone();
        jobs::periodic(
            state.pool.clone(),
            "spawn-timeline",
            BOARD_LOCK,
            Duration::from_secs(state.config.hub.timeline_secs),
            move || {
                let board = board.clone();
                async move {
                    let report = board.sweep().await?;
                    if report != crate::board::sweep::Report::default() {
                        tracing::debug!(?report, "spawn timeline");
                    }
                    Ok(())
                }
            },
        );
    }
    // The calendar acts on its plan, on one instance ([calendar] enabled).
    if state.config.calendar.enabled {
        let calendar = state.calendar.clone();
        jobs::periodic(
            state.pool.clone(),
            "calendar",
            CALENDAR_LOCK,
            Duration::from_secs(state.config.calendar.tick_secs.max(1)),
            move || {
                let calendar = calendar.clone();
                async move {
                    let report = calendar.tick().await?;
                    if !report.decided.is_empty() {
                        tracing::debug!(?report, "calendar tick");
                    }
                    Ok(())
                }
            },
        );
    }
    // The fleet's timeline for the cost ledger, with the cluster desk on.
    if state.cluster.is_some() {
        let calendar = state.calendar.clone();
        jobs::periodic(
            state.pool.clone(),
            "ledger",
            LEDGER_LOCK,
            Duration::from_secs(state.config.calendar.tick_secs.max(1)),
            move || {
                let calendar = calendar.clone();
                async move { calendar.record_fleet().await }
            },
        );
    }
    // A bulk reset's sealed passwords go within a minute of their window's end. One DELETE,
    // harmless when two instances run it, so no leader lock (and no connection held for one).
    let pool = state.pool.clone();
    jobs::every("cards-purge", Duration::from_secs(60), move || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await?;
            let purged = db::cards::purge_expired(&mut conn).await?;
            if purged > 0 {
                tracing::info!(purged, "expired login cards deleted");
            }
            Ok(())
        }
    });
    let (pool, oidc) = (state.pool.clone(), state.oidc.clone());
    jobs::every(
        "oidc-key-reload",
        crate::oidc::keys::RELOAD_EVERY,
        move || {
            let (pool, oidc) = (pool.clone(), oidc.clone());
            async move { oidc.keys.reload(&pool).await }
        },
    );
}

/// Deletes expired sessions, codes, tokens, spent grants, stale throttle rows and old keys;
/// spent forms, import drafts and idempotency keys after a day, unseen sealed passwords after
/// minutes.
async fn sweep(
    pool: sqlx::PgPool,
    config: std::sync::Arc<crate::config::Config>,
) -> anyhow::Result<()> {
    let idle = config.idle_timeout().as_secs() as i64;
    let abs = config.absolute_timeout().as_secs() as i64;
    let window = config.throttle.window_minutes * 60;
    let mut conn = pool.acquire().await?;
    db::sessions::delete_expired(&mut conn, idle, abs).await?;
    db::oauth::delete_expired(&mut conn).await?;
    db::throttle::delete_stale(&mut conn, window).await?;
    db::once::delete_expired(&mut conn).await?;
    Ok(())
}
