use hubdesk::domain::Role;

use crate::helpers::{csrf_from, spawn_app, urlenc, TestApp, PASSWORD};

#[tokio::test]
async fn student_logs_in_and_lands_on_the_notebook_button() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    let r = app.login("ada", &pw).await;
    assert_eq!(r.status(), 303);
    assert_eq!(TestApp::location(&r), "/");
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("hubdesk-session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let home = app.get_html("/").await;
    assert!(home.contains("id=\"open-notebook\""), "{home}");
    assert!(home.contains("http://127.0.0.1:9/hub/"));
}

#[tokio::test]
async fn login_forgives_case_in_the_username() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    assert_eq!(app.login(" ADA ", &pw).await.status(), 303);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_message() {
    let app = spawn_app().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    let wrong = app.login("ada", "not-her-password").await;
    assert_eq!(wrong.status(), 401);
    let wrong = wrong.text().await.unwrap();
    let unknown = app.login("nobody-here", "whatever-password").await;
    assert_eq!(unknown.status(), 401);
    let unknown = unknown.text().await.unwrap();
    assert!(wrong.contains("Wrong username or password."));
    assert!(unknown.contains("Wrong username or password."));
    // The typed username is kept in the form, nothing else differs.
    assert!(wrong.contains("value=\"ada\""));
}

#[tokio::test]
async fn login_without_csrf_is_rejected() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[("username", "ada"), ("password", pw.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(app.get("/").await.status() == 303, "must not be logged in");
    // A forged token with a cookie of its own choosing fails too.
    let _ = app.get("/login").await;
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("username", "ada"),
            ("password", pw.as_str()),
            ("csrf_token", "x".repeat(43).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn next_parameter_only_allows_local_paths() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    let page = app.get_html("/login?next=//evil.example/x").await;
    let token = csrf_from(&page);
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("username", "ada"),
            ("password", pw.as_str()),
            ("csrf_token", token.as_str()),
            ("next", "//evil.example/x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(TestApp::location(&r), "/");
    // A tab (browsers drop it: `/<TAB>/host` is `//host`) and other control bytes.
    for next in ["/\t/evil.example", "/\u{1}x"] {
        let page = app.get_html(&format!("/login?next={}", urlenc(next))).await;
        assert!(!page.contains("evil.example"));
        let r = app
            .post_form_from(
                "/login",
                "/login",
                &[
                    ("username", "ada"),
                    ("password", pw.as_str()),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(r.status(), 303, "{next:?}");
        assert_eq!(TestApp::location(&r), "/", "{next:?}");
    }
}

#[tokio::test]
async fn session_id_is_rotated_at_login_and_logout_is_a_post() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &pw).await;
    let first: Vec<Vec<u8>> = sqlx::query_scalar("SELECT id_hash FROM sessions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    app.login_ok("ada", &pw).await; // logging in again from the same browser
    let second: Vec<Vec<u8>> = sqlx::query_scalar("SELECT id_hash FROM sessions")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(second.len(), 1, "old session deleted");
    assert_ne!(first, second);

    assert_eq!(
        app.get("/logout").await.status(),
        404,
        "GET must not log out"
    );
    assert_eq!(app.get("/").await.status(), 200, "still logged in");
    let r = app.post_form_from("/", "/logout", &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
    assert_eq!(app.get("/").await.status(), 303);
}

#[tokio::test]
async fn logout_without_csrf_is_rejected() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &pw).await;
    let r = app
        .client
        .post(app.url("/logout"))
        .form(&[("csrf_token", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.get("/").await.status(), 200);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_a_counselor_can_unlock() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    for _ in 0..5 {
        assert_eq!(app.login("ada", "wrong-password-x").await.status(), 401);
    }
    let locked = app.login("ada", &pw).await;
    assert_eq!(locked.status(), 429, "even the right password waits");
    assert!(locked
        .text()
        .await
        .unwrap()
        .contains("Too many failed attempts"));
    // Persisted in the database.
    assert_eq!(
        app.count(
            "SELECT count(*) FROM login_throttle WHERE key = 'user:ada' AND locked_until > now()"
        )
        .await,
        1
    );

    let counselor = app.other_browser();
    counselor.as_counselor().await;
    let page = counselor.get_html("/students/ada").await;
    assert!(page.contains("Unlock login"));
    let r = counselor
        .post_form_from("/students/ada", "/students/ada/unlock", &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(app.login("ada", &pw).await.status(), 303);
}

#[tokio::test]
async fn failures_from_one_address_are_throttled_across_accounts() {
    let app = hubdesk_app_with_low_address_limit().await;
    for i in 0..3 {
        let r = app.login(&format!("ghost{i}"), "wrong-password-x").await;
        assert_eq!(r.status(), 401);
    }
    assert_eq!(app.login("ghost9", "wrong-password-x").await.status(), 429);
}

async fn hubdesk_app_with_low_address_limit() -> TestApp {
    crate::helpers::spawn_app_with(|c| c.throttle.address_failures = 3).await
}

#[tokio::test]
async fn disabled_account_cannot_log_in() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    sqlx::query("UPDATE users SET disabled = true WHERE username = 'ada'")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app.login("ada", &pw).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("disabled"));
}

#[tokio::test]
async fn old_argon2_hashes_are_upgraded_at_login() {
    let app = spawn_app().await;
    app.create_user(Role::Student, "old", PASSWORD).await;
    use argon2::{
        password_hash::{PasswordHasher, SaltString},
        Algorithm, Argon2, Params, Version,
    };
    let weak = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(8192, 1, 1, None).unwrap(),
    )
    .hash_password(
        PASSWORD.as_bytes(),
        &SaltString::from_b64("c2FsdHNhbHRzYWx0").unwrap(),
    )
    .unwrap()
    .to_string();
    sqlx::query("UPDATE users SET password_hash = $1 WHERE username = 'old'")
        .bind(&weak)
        .execute(&app.pool)
        .await
        .unwrap();
    app.login_ok("old", PASSWORD).await;
    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE username = 'old'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(stored.contains("m=19456,t=2,p=1"), "{stored}");
}

#[tokio::test]
async fn sessions_survive_a_restart_of_the_app() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &pw).await;
    // A second app instance on the same database stands for a restarted hubdesk.
    let mut config = (*app.state.config).clone();
    config.bind = "127.0.0.1:0".into();
    let state = hubdesk::state::AppState::new(app.pool.clone(), config)
        .await
        .unwrap();
    let second = hubdesk::app::Application::build(state).await.unwrap();
    let port = second.port();
    tokio::spawn(second.run_until_stopped());
    let r = app
        .client
        .get(format!("http://127.0.0.1:{port}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn idle_sessions_expire() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &pw).await;
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '13 hours'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.get("/").await.status(), 303);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test]
async fn absolute_session_lifetime_is_enforced() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &pw).await;
    sqlx::query("UPDATE sessions SET created_at = now() - interval '8 days'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.get("/").await.status(), 303);
}

#[tokio::test]
async fn cookies_are_host_prefixed_and_secure_behind_tls() {
    let app = crate::helpers::spawn_app_with(|_| {}).await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    // Same database, but configured as served over https (TLS ends at the proxy).
    let mut config = (*app.state.config).clone();
    config.public_url = "https://desk.camp.example".into();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = hubdesk::state::AppState::new(app.pool.clone(), config)
        .await
        .unwrap();
    let tls = hubdesk::app::Application::build_on(listener, state)
        .await
        .unwrap();
    tokio::spawn(tls.run_until_stopped());
    let client = crate::helpers::client();
    let page = client
        .get(format!("http://127.0.0.1:{port}/login"))
        .send()
        .await
        .unwrap();
    let csrf_cookie = page
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csrf_cookie.starts_with("__Host-hubdesk-csrf=")
            && csrf_cookie.contains("Secure")
            && csrf_cookie.contains("Path=/"),
        "{csrf_cookie}"
    );
    let token = csrf_from(&page.text().await.unwrap());
    let csrf_value = csrf_cookie.split(';').next().unwrap().to_string();
    let r = client
        .post(format!("http://127.0.0.1:{port}/login"))
        .header("Cookie", csrf_value)
        .form(&[
            ("username", "ada"),
            ("password", pw.as_str()),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(session.starts_with("__Host-hubdesk-session="), "{session}");
    for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{attr} missing: {session}");
    }
    assert!(
        !session.contains("Domain="),
        "__Host- cookies carry no Domain"
    );
}

#[tokio::test]
async fn parallel_guesses_meet_the_lock_the_first_failures_set() {
    let app = spawn_app().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    let token = csrf_from(&app.get_html("/login").await);
    let threshold = app.state.config.throttle.account_failures as usize;
    let hashers = app.state.hasher.permits();
    let attempts = 24;
    let guesses = (0..attempts).map(|i| {
        let (client, url, token) = (app.client.clone(), app.url("/login"), token.clone());
        async move {
            let password = format!("guess-number-{i}");
            let form = [
                ("username", "ada"),
                ("password", password.as_str()),
                ("csrf_token", token.as_str()),
            ];
            client.post(url).form(&form).send().await.unwrap().status()
        }
    });
    let statuses = futures_util::future::join_all(guesses).await;
    let verified = statuses.iter().filter(|s| s.as_u16() == 401).count();
    let locked = statuses.iter().filter(|s| s.as_u16() == 429).count();
    assert_eq!(verified + locked, attempts, "{statuses:?}");
    assert!(
        verified <= threshold + hashers,
        "{verified} of {attempts} parallel guesses were checked (lock after {threshold}, {hashers} hashers)"
    );
}

#[tokio::test]
async fn login_page_of_a_logged_in_person_has_their_nav_and_a_working_logout() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &pw).await;
    let page = app.get_html("/login").await;
    assert!(
        page.contains("id=\"already\""),
        "continue as ada is offered"
    );
    assert!(
        page.contains("Ada Lovelace (ada)"),
        "the nav shows who is logged in"
    );
    // The nav's logout carries the session's token (the first on the page) and works.
    let marker = "name=\"csrf_token\" value=\"";
    let start = page.find(marker).unwrap() + marker.len();
    let nav_token = page[start..].split('"').next().unwrap();
    assert_ne!(
        nav_token,
        csrf_from(&page),
        "the login form has its own token"
    );
    let r = app
        .client
        .post(app.url("/logout"))
        .form(&[("csrf_token", nav_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(app.get("/").await.status(), 303, "logged out");
}
