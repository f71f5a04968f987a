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
    web::{
        self as kit, assets, health,
        routes::{Access, Table},
        WebError,
    },
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
    let t = &mut Table::new(cfg, "");
    // The page kit: health, assets.
    t.get("/healthz", Access::Public, health::healthz)
        .get("/readyz", Access::Public, health::readyz)
        .get("/metrics", Access::Public, kit::metrics::metrics)
        .get("/static/app.css", Access::Public, assets::app_css)
        .get("/static/app.js", Access::Public, assets::app_js);
    // A person's own pages.
    t.get("/login", Access::Public, account::login::form)
        .post("/login", Access::Public, account::login::submit)
        .post("/logout", Access::Public, account::login::logout)
        .get("/reset", Access::Public, account::reset_code::form)
        .post("/reset", Access::Public, account::reset_code::submit)
        .get("/setup", Access::Public, account::setup::form)
        .post("/setup", Access::Public, account::setup::submit)
        .get("/", Access::Public, account::landing::home)
        .get("/account/home.zip", Access::User, homes::pages::own_zip)
        .post(
            "/account/server/stop",
            Access::User,
            servers::pages::stop_own,
        )
        .post(
            "/account/server/unstick",
            Access::User,
            servers::pages::unstick_own,
        )
        .get("/account/tokens", Access::Counselor, account::tokens::list)
        .post(
            "/account/tokens",
            Access::Counselor,
            account::tokens::create,
        )
        .post(
            "/account/tokens/{id}/revoke",
            Access::Counselor,
            account::tokens::revoke,
        )
        .get("/account/password", Access::User, account::password::form)
        .post("/account/password", Access::User, account::password::submit)
        .post(
            "/notices/{key}/dismiss",
            Access::Admin,
            account::notices::dismiss,
        );
    // The people desk.
    crate::board::pages::routes(t);
    t.get("/students", Access::Counselor, roster_pages::students::list)
        .get(
            "/students/new",
            Access::Counselor,
            roster_pages::students::new_form,
        )
        .post(
            "/students/new",
            Access::Counselor,
            roster_pages::students::new_submit,
        )
        .get(
            "/students/export.csv",
            Access::Counselor,
            roster_pages::students::export,
        )
        .get(
            "/students/homes.zip",
            Access::Counselor,
            homes::pages::cohort_zip,
        )
        .post(
            "/students/servers/start",
            Access::Counselor,
            servers::pages::start_cohort,
        )
        .post(
            "/students/unlock-address",
            Access::Counselor,
            roster_pages::students::unlock_address,
        )
        .get(
            "/students/reset-passwords",
            Access::Counselor,
            roster_pages::reset_many::confirm_form,
        )
        .post(
            "/students/reset-passwords",
            Access::Counselor,
            roster_pages::reset_many::confirm,
        )
        .get(
            "/students/cards/{job}",
            Access::Counselor,
            roster_pages::reset_many::cards_page,
        )
        .get(
            "/students/import",
            Access::Counselor,
            roster_pages::import::form,
        )
        .post(
            "/students/import",
            Access::Counselor,
            roster_pages::import::preview,
        )
        .get(
            "/students/import/{draft}",
            Access::Counselor,
            roster_pages::import::show_preview,
        )
        // The resolved CSV (≤ 1 MiB) url-encoded, with room for percent escapes.
        .post_large(
            "/students/import/commit",
            Access::Counselor,
            4 * roster::import::MAX_BYTES,
            roster_pages::import::commit,
        )
        .get(
            "/students/{username}",
            Access::Counselor,
            roster_pages::students::detail,
        )
        .post(
            "/students/{username}/server/stop",
            Access::Counselor,
            servers::pages::stop,
        )
        .get(
            "/students/{username}/home.zip",
            Access::Counselor,
            homes::pages::student_zip,
        )
        .post(
            "/students/{username}/home/reset",
            Access::Counselor,
            homes::pages::reset,
        )
        .post(
            "/students/{username}/home/restore",
            Access::Counselor,
            homes::pages::restore,
        )
        .post(
            "/students/{username}/home/quota",
            Access::Counselor,
            roster_pages::students::home_quota,
        )
        .post(
            "/students/{username}/reset-password",
            Access::Counselor,
            roster_pages::students::reset_password,
        )
        .post(
            "/students/{username}/reset-code",
            Access::Counselor,
            roster_pages::reset_code::issue,
        )
        .get(
            "/reset-codes/{form_id}",
            Access::Counselor,
            roster_pages::reset_code::show,
        )
        // disable | enable | unlock
        .post(
            "/students/{username}/{action}",
            Access::Counselor,
            roster_pages::students::account_action,
        )
        .get("/staff", Access::Admin, roster_pages::staff::list)
        .post("/staff", Access::Admin, roster_pages::staff::create)
        .post(
            "/staff/{username}/reset-password",
            Access::Admin,
            roster_pages::staff::reset_password,
        )
        .post(
            "/staff/{username}/cohorts",
            Access::Admin,
            roster_pages::staff::set_cohorts,
        )
        // disable | enable | unlock
        .post(
            "/staff/{username}/{action}",
            Access::Admin,
            roster_pages::staff::account_action,
        )
        // The result page of the forms that make passwords (shown once).
        .get(
            "/credentials/{form_id}",
            Access::Counselor,
            roster_pages::shown::show,
        )
        .get("/audit", Access::Counselor, roster_pages::audit::list)
        .get("/homes/purge", Access::Admin, homes::pages::purge_form)
        .post("/homes/purge", Access::Admin, homes::pages::purge)
        // Coursework (issue 19): hand out a course folder; the reach is checked in the
        // service (the path names no student or cohort).
        .get("/coursework", Access::Counselor, homes::pages::coursework)
        .post(
            "/coursework/handout",
            Access::Counselor,
            homes::pages::hand_out,
        );
    // The calendar: cohorts' class times and profiles.
    t.get("/cohorts", Access::Counselor, cohort_pages::list)
        .get("/cohorts/{slug}", Access::Counselor, cohort_pages::show)
        .post("/cohorts/{slug}", Access::Counselor, cohort_pages::save)
        .post(
            "/cohorts/{slug}/blocks",
            Access::Counselor,
            cohort_pages::add_block,
        )
        .post(
            "/cohorts/{slug}/blocks/{id}/remove",
            Access::Counselor,
            cohort_pages::remove_block,
        );
    t.get("/calendar", Access::Counselor, calendar_page::show)
        .get(
            "/calendar/ledger.csv",
            Access::Counselor,
            calendar_page::ledger_csv,
        )
        .get("/calendar.ics", Access::Public, calendar_page::feed)
        .get(
            "/announcements",
            Access::Counselor,
            announcements::pages::list,
        )
        .post(
            "/announcements",
            Access::Counselor,
            announcements::pages::post,
        )
        .post(
            "/announcements/{id}/end",
            Access::Counselor,
            announcements::pages::end,
        )
        .post(
            "/announcements/{id}/dismiss",
            Access::User,
            announcements::pages::dismiss,
        )
        .post("/camp/pause", Access::Admin, servers::pages::pause)
        .post("/camp/resume", Access::Admin, servers::pages::resume)
        .post("/calendar/budget", Access::Admin, calendar_page::set_budget)
        .post(
            "/calendar/over-budget",
            Access::Admin,
            calendar_page::allow_over_budget,
        )
        .post("/calendar/{switch}", Access::Admin, calendar_page::switch);
    // The cluster desk (admins).
    t.get("/cluster", Access::Admin, cluster_pages::show)
        .post("/cluster/workers", Access::Admin, cluster_pages::launch)
        .post("/cluster/dry-run", Access::Admin, cluster_pages::dry_run)
        .get(
            "/cluster/workers/{instance_id}/remove",
            Access::Admin,
            cluster_pages::confirm_remove,
        )
        .post(
            "/cluster/workers/{instance_id}/remove",
            Access::Admin,
            cluster_pages::remove,
        );
    // What hubdesk is doing.
    t.get("/jobs", Access::Counselor, activity::pages::list)
        .get("/jobs/{id}", Access::Counselor, activity::pages::detail);
    // The identity provider.
    t.get(
        "/.well-known/openid-configuration",
        Access::Public,
        oidc::endpoints::discovery::configuration,
    )
    .get(
        "/oauth/jwks.json",
        Access::Public,
        oidc::endpoints::discovery::jwks,
    )
    .get(
        "/oauth/authorize",
        Access::Public,
        oidc::endpoints::authorize::authorize,
    )
    .post(
        "/oauth/token",
        Access::Public,
        oidc::endpoints::token::token,
    )
    .get(
        "/oauth/userinfo",
        Access::Public,
        oidc::endpoints::userinfo::userinfo,
    )
    .post(
        "/oauth/userinfo",
        Access::Public,
        oidc::endpoints::userinfo::userinfo,
    )
    .get(
        "/oauth/profile/{username}",
        Access::Public,
        oidc::endpoints::profile::profile,
    )
    .get(
        "/oauth/announcements",
        Access::Public,
        oidc::endpoints::announcements::announcements,
    )
    .post(
        "/oauth/revoke",
        Access::Public,
        oidc::endpoints::token::revoke,
    )
    .get(
        "/oauth/logout",
        Access::Public,
        oidc::endpoints::logout::end_session,
    )
    .post(
        "/oauth/logout",
        Access::Public,
        oidc::endpoints::logout::end_session_confirmed,
    );
    // The JSON API for scripts.
    let cfg = t.config();
    cfg.service(
        web::scope("/api/v1")
            .wrap(middleware::from_fn(kit::idempotency::keyed))
            .app_data(kit::api::json_config())
            .configure(|c| {
                let t = &mut Table::new(c, "/api/v1");
                roster::api::routes(t);
                homes::api::routes(t);
                servers::api::routes(t);
                crate::board::api::routes(t);
                activity::api::routes(t);
                cluster::api::routes(t);
                crate::calendar::api::routes(t);
            })
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
