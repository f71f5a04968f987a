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
