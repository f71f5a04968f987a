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

#[tokio::test]
async fn doctor_reports_each_check_and_fails_with_the_fix() {
    let app = spawn_app().await;
    let run = |extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hubdesk"));
        cmd.arg("doctor")
            .env("DATABASE_URL", app.database_url())
            .env("HUBDESK_DATA_DIR", std::env::temp_dir())
            .env("HUBDESK_HUB_URL", "http://127.0.0.1:8000/hub/");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().expect("run hubdesk doctor")
    };
    let healthy = run(&[
        ("HUBDESK_OIDC_CLIENT_ID", "jupyterhub"),
        ("HUBDESK_OIDC_CLIENT_SECRET", crate::helpers::HUB_SECRET),
        (
            "HUBDESK_OIDC_REDIRECT_URIS",
            "http://127.0.0.1:8000/hub/oauth_callback",
        ),
    ]);
    let out = String::from_utf8_lossy(&healthy.stdout);
    assert!(
        healthy.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    assert!(out.contains("ok   migrations"), "{out}");
    assert!(
        out.contains("ok   signing keys") && out.contains("ES256, RS256"),
        "{out}"
    );
    assert!(out.contains("ok   hub redirect URI"), "{out}");
    assert!(out.contains("WARN public_url"), "{out}");

    let broken = run(&[]);
    let out = String::from_utf8_lossy(&broken.stdout);
    assert!(!broken.status.success());
    assert!(
        out.contains("FAIL oidc clients") && out.contains("fix:"),
        "{out}"
    );
}
