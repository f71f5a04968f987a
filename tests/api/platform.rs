use sqlx::Executor;

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn security_headers_on_every_page() {
    let app = spawn_app().await;
    for path in ["/login", "/nowhere", "/healthz"] {
        let r = app.get(path).await;
        let h = r.headers();
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'")
                && csp.contains("script-src 'self'")
                && !csp.contains("unsafe-inline"),
            "{path}"
        );
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert!(h.get("referrer-policy").is_some());
    }
}

#[tokio::test]
async fn unknown_page_is_a_friendly_404() {
    let app = spawn_app().await;
    let r = app.get("/no/such/page").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("Not found"));
}

#[tokio::test]
async fn database_outage_gives_503_and_recovers_without_restart() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada", "ada", None).await;
    app.login_ok("ada", &pw).await;
    // Refuse new connections and kill the app's live ones, from another database.
    let maint_url = {
        let mut u = url::Url::parse(&app.database_url()).unwrap();
        u.set_path("/postgres");
        u.to_string()
    };
    let maint = hubdesk::db::pool_for(&maint_url).await.unwrap();
    maint
        .execute(format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS false", app.db_name).as_str())
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&app.db_name)
        .execute(&maint)
        .await
        .unwrap();

    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 503);
    let r = app.get("/").await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("database is unavailable"));
    let r = app.get("/login").await;
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("Database unavailable"));

    maint
        .execute(format!("ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true", app.db_name).as_str())
        .await
        .unwrap();
    let mut ready = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "recovers without a restart");
    assert_eq!(app.get("/").await.status(), 200, "session still valid");
}

#[tokio::test]
async fn head_requests_answer_like_get_without_a_body() {
    let app = spawn_app().await;
    for path in ["/healthz", "/login"] {
        let r = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.bytes().await.unwrap().is_empty(), "{path}");
    }
    let r = app.client.head(app.url("/logout")).send().await.unwrap();
    assert_eq!(r.status(), 404, "HEAD never reaches a POST route");
}

#[tokio::test]
async fn metrics_need_a_token_and_count_logins_tokens_and_jobs() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.metrics.scrape_token = Some(secrecy::SecretString::new("p".repeat(40)));
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), 401);
    let scrape = |token: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/metrics"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(scrape("q".repeat(40)).await.status(), 401);
    let pw = app.create_student("Ada", "ada", None).await;
    assert_eq!(app.login("ada", "wrong-password").await.status(), 401);
    app.login_ok("ada", &pw).await;
    let mut conn = app.pool.acquire().await.unwrap();
    hubdesk::db::jobs::enqueue(&mut conn, "homes.reset", &serde_json::json!({}), "t", 1)
        .await
        .unwrap();
    drop(conn);
    let r = scrape("p".repeat(40)).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains("hubdesk_logins_total{outcome=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hubdesk_logins_total{outcome=\"wrong\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hubdesk_jobs{kind=\"homes.reset\",state=\"queued\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hubdesk_db_pool_connections{state=\"max\"} 16"),
        "{text}"
    );
    // An API token works as well.
    let token = app.api_token().await;
    assert_eq!(scrape(token).await.status(), 200);
}

/// The list, after real calls: logins by outcome (success, wrong = failures, locked =
/// throttled), tokens issued (tests/api/oidc_interop.rs), jobs by kind and state, the pool, and
/// the latency of calls to a real JupyterHub, a real Docker engine and EC2 (moto), measured at
/// the seams the app wraps around them (`hub::MeteredHub`, `Cluster::metered`).
#[tokio::test]
async fn metrics_time_real_calls_to_the_hub_docker_and_ec2() {
    use std::sync::Arc;

    use crate::cluster_peers::{docker, require, Moto};
    if !require(
        "a Docker engine",
        docker(&["version", "-f", "{{.Server.Version}}"]).map(|_| ()),
    ) {
        return;
    }
    let Some(venv) = crate::hub::venv() else {
        return;
    };
    let Some(moto) = Moto::start(&[]).await else {
        return;
    };
    let (hub, _) = crate::hub::RealHub::start(&venv).await;
    let (api, token) = (hub.api.clone(), hub.service_token.clone());
    let sdk = moto.sdk("testing", "testing");
    let app = crate::helpers::spawn_app_with_state(
        move |c| {
            c.hub.api_url = api;
            c.hub.api_token = Some(secrecy::SecretString::new(token));
            c.metrics.scrape_token = Some(secrecy::SecretString::new("p".repeat(40)));
        },
        move |s| {
            let mut config = s.config.cluster.clone();
            config.enabled = true;
            config.name = "camp".into();
            // The host's engine, read-only: GET /info (it is no swarm manager, so /nodes and
            // the rest answer 503, which is timed as well).
            let runtime =
                hubdesk::cluster::DockerRuntime::lazy("unix:///var/run/docker.sock").unwrap();
            let fleet = hubdesk::cluster::Ec2Fleet::from_sdk(&sdk, &config);
            s.cluster = Some(Arc::new(hubdesk::cluster::Cluster::metered(
                Arc::new(runtime),
                Arc::new(fleet),
                s.pool.clone(),
                config,
                s.metrics.clone(),
            )));
        },
    )
    .await;
    app.as_admin().await;
    let students = app.get("/students").await;
    assert_eq!(students.status(), 200);
    let cluster = app.get("/cluster").await;
    assert_eq!(cluster.status(), 200);
    let other = app.other_browser();
    let pw = app.create_student("Bea", "bea", None).await;
    for _ in 0..5 {
        assert_eq!(other.login("bea", "wrong-password").await.status(), 401);
    }
    assert_eq!(other.login("bea", &pw).await.status(), 429, "throttled");
    let text = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("p".repeat(40))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |labels: &str| -> u64 {
        let key = format!("hubdesk_external_call_seconds_count{{{labels}}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key}in\n{text}"))
    };
    assert!(count("system=\"hub\",call=\"active_servers\"") >= 1);
    assert!(count("system=\"docker\",call=\"swarm\"") >= 1);
    assert!(count("system=\"docker\",call=\"nodes\"") >= 1);
    assert!(count("system=\"ec2\",call=\"instances\"") >= 1);
    assert!(count("system=\"ec2\",call=\"instance_types\"") >= 1);
    assert!(
        text.lines()
            .any(|l| l.starts_with("hubdesk_external_call_seconds_bucket{")
                && l.contains("system=\"hub\"")
                && l.contains("le=\"0.005\"")),
        "{text}"
    );
    assert!(
        text.contains("hubdesk_logins_total{outcome=\"success\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hubdesk_logins_total{outcome=\"wrong\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("hubdesk_logins_total{outcome=\"locked\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("hubdesk_db_pool_connections{state=\"in_use\"}"),
        "{text}"
    );
}
