use crate::helpers::{password_on_card, spawn_app, spawn_app_with, TestApp};

#[tokio::test]
async fn counselor_creates_one_student_and_sees_a_card_once() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let r = app
        .post_form(
            "/students/new",
            &[
                ("display_name", "Ada Lovelace"),
                ("username", ""),
                ("cohort", "blue"),
            ],
        )
        .await;
    // Redirect after POST: the card is a GET page.
    assert_eq!(r.status(), 303);
    let r = app.follow(&r).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let html = r.text().await.unwrap();
    assert!(html.contains("class=\"card-username\">adal<"), "{html}");
    let pw = password_on_card(&html);
    assert_eq!(pw.len(), 17);
    let student = app.other_browser();
    student.login_ok("adal", &pw).await;
    // Audit entry written.
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'student.create' AND actor = 'connie' AND target = 'adal'").await, 1);
}

#[tokio::test]
async fn bad_fields_rerender_with_messages_beside_them_and_keep_input() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let r = app
        .post_form(
            "/students/new",
            &[
                ("display_name", "  "),
                ("username", "../etc"),
                ("cohort", "a/b"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"display_name-error\""));
    assert!(html.contains("id=\"username-error\""));
    assert!(html.contains("id=\"cohort-error\""));
    assert!(html.contains("value=\"../etc\""), "input kept");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE role = 'student'")
            .await,
        0
    );
}

#[tokio::test]
async fn duplicate_username_including_case_variant_is_refused() {
    let app = spawn_app().await;
    app.as_counselor().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    let r = app
        .post_form(
            "/students/new",
            &[
                ("display_name", "Another Ada"),
                ("username", "ADA"),
                ("cohort", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("already exists"));
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE role = 'student'")
            .await,
        1
    );
}

#[tokio::test]
async fn list_searches_filters_sorts_and_pages() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let mut csv = String::from("display_name,username,cohort\n");
    for i in 0..120 {
        csv.push_str(&format!(
            "Student {i:03},s{i:03},{}\n",
            if i % 2 == 0 { "even" } else { "odd" }
        ));
    }
    let rows = hubdesk::roster::import::parse(csv.as_bytes()).unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    let plan = hubdesk::roster::import::plan(&mut conn, rows)
        .await
        .unwrap();
    app.state
        .roster
        .create_students(
            &hubdesk::domain::Actor::System,
            &hubdesk::domain::Reach::All,
            &plan,
            "test",
        )
        .await
        .unwrap();
    sqlx::query("UPDATE users SET disabled = true WHERE username = 's007'")
        .execute(&app.pool)
        .await
        .unwrap();

    let page = app.get_html("/students").await;
    assert_eq!(
        page.matches("<tr class=\"student").count(),
        50,
        "first page"
    );
    assert!(page.contains("Page 1 of 3"));
    let page = app.get_html("/students?q=student%2001").await;
    assert_eq!(page.matches("<tr class=\"student").count(), 10); // 010..019
    let page = app.get_html("/students?cohort=odd").await;
    assert!(page.contains("<span class=\"count\">60</span>"));
    let page = app.get_html("/students?status=disabled").await;
    assert_eq!(page.matches("<tr class=\"student").count(), 1);
    assert!(page.contains("data-username=\"s007\""));
    let page = app.get_html("/students?sort=username&dir=desc").await;
    let first = page
        .split("data-username=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(first, "s119");
    let page = app.get_html("/students?page=3").await;
    assert_eq!(page.matches("<tr class=\"student").count(), 20);
    // Nonsense parameters are ignored, not errors.
    assert_eq!(
        app.get("/students?sort=;drop&dir=sideways&page=-4")
            .await
            .status(),
        200
    );
    assert_eq!(app.get("/students?page=abc").await.status(), 400);
}

#[tokio::test]
async fn empty_roster_shows_a_helpful_empty_state() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let page = app.get_html("/students").await;
    assert!(page.contains("No students yet"));
    assert!(page.contains("/students/import"));
}

#[tokio::test]
async fn reset_password_ends_the_students_sessions() {
    let app = spawn_app().await;
    let old = app.create_student("Ada Lovelace", "ada", None).await;
    let student = app.other_browser();
    student.login_ok("ada", &old).await;
    assert_eq!(student.get("/").await.status(), 200);

    app.as_counselor().await;
    let r = app
        .post_form_from("/students/ada", "/students/ada/reset-password", &[])
        .await;
    assert_eq!(r.status(), 303);
    let html = app.follow(&r).await.text().await.unwrap();
    let new = password_on_card(&html);
    assert_ne!(new, old);
    assert_eq!(
        student.get("/").await.status(),
        303,
        "student's session ended"
    );
    assert_eq!(student.login("ada", &old).await.status(), 401);
    student.login_ok("ada", &new).await;
    assert_eq!(app.count("SELECT count(*) FROM audit_log WHERE action = 'student.reset_password' AND target = 'ada'").await, 1);
}

#[tokio::test]
async fn disable_ends_sessions_and_enable_restores_login() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    let student = app.other_browser();
    student.login_ok("ada", &pw).await;
    app.as_counselor().await;
    let r = app
        .post_form_from("/students/ada", "/students/ada/disable", &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(student.get("/").await.status(), 303);
    assert_eq!(student.login("ada", &pw).await.status(), 403);
    let page = app.get_html("/students/ada").await;
    assert!(page.contains("badge disabled"));
    app.post_form_from("/students/ada", "/students/ada/enable", &[])
        .await;
    student.login_ok("ada", &pw).await;
    let audit = app.get_html("/audit?target=ada").await;
    assert!(audit.contains("student.disable") && audit.contains("student.enable"));
}

#[tokio::test]
async fn actions_without_csrf_are_rejected() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await;
    for path in [
        "/students/ada/disable",
        "/students/ada/reset-password",
        "/students/new",
    ] {
        let r = app
            .client
            .post(app.url(path))
            .form(&[("display_name", "X")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE disabled").await,
        0
    );
    let student = app.other_browser();
    student.login_ok("ada", &pw).await;
}

#[tokio::test]
async fn unknown_student_is_a_404_page() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let r = app.get("/students/nobody").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("Not found"));
    let r = app
        .post_form_from("/students", "/students/nobody/disable", &[])
        .await;
    assert_eq!(r.status(), 404);
    // An action the desk does not have, on a real student: 404, nothing changed.
    app.create_student("Ada Lovelace", "ada", None).await;
    let r = app
        .post_form_from("/students", "/students/ada/delete", &[])
        .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE username = 'ada' AND NOT disabled")
            .await,
        1
    );
}

#[tokio::test]
async fn roster_export_neutralises_formulas_and_has_no_passwords() {
    let app = spawn_app().await;
    app.create_student("=HYPERLINK(\"http://x\")", "eve", Some("blue"))
        .await;
    app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await;
    let r = app.get("/students/export.csv").await;
    assert_eq!(r.status(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let body = r.text().await.unwrap();
    assert!(body.starts_with("\u{feff}username,display_name,cohort,status,created_at\n"));
    assert!(
        body.contains("eve,\"'=HYPERLINK(\"\"http://x\"\")\",blue,active"),
        "{body}"
    );
    assert!(!body.contains("argon2"));
}

#[tokio::test]
async fn audit_log_is_filterable() {
    let app = spawn_app().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    app.create_student("Grace Hopper", "grace", None).await;
    app.as_counselor().await;
    app.post_form_from("/students/ada", "/students/ada/disable", &[])
        .await;
    app.post_form_from("/students/grace", "/students/grace/reset-password", &[])
        .await;
    let all = app.get_html("/audit").await;
    assert!(all.matches("class=\"audit-entry\"").count() >= 4);
    let by_action = app.get_html("/audit?action=student.disable").await;
    assert_eq!(by_action.matches("class=\"audit-entry\"").count(), 1);
    let by_actor = app.get_html("/audit?actor=connie").await;
    assert_eq!(by_actor.matches("class=\"audit-entry\"").count(), 2);
    let nothing = app.get_html("/audit?target=nobody").await;
    assert!(nothing.contains("No entries"));
    let _ = TestApp::location;
}

#[tokio::test]
async fn counselor_sees_and_lifts_a_classroom_address_lock() {
    let app = spawn_app_with(|c| c.throttle.address_failures = 4).await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await; // logged in before the classroom's typos
    let class = app.other_browser();
    // Four different students mistype once each, all behind the classroom's one address.
    for who in ["bea", "cy", "dot", "eli"] {
        assert_eq!(class.login(who, "typo-typo-typo").await.status(), 401);
    }
    assert_eq!(
        class.login("ada", &pw).await.status(),
        429,
        "the address is locked"
    );

    let page = app.get_html("/students").await;
    assert!(page.contains("Logins from 127.0.0.1 are locked"), "{page}");
    let r = app
        .post_form_from(
            "/students",
            "/students/unlock-address",
            &[("address", "127.0.0.1")],
        )
        .await;
    assert_eq!(TestApp::location(&r), "/students?notice=address-unlocked");
    assert!(!app.get_html("/students").await.contains("are locked"));
    class.login_ok("ada", &pw).await;
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'address.unlock' AND target = '127.0.0.1'")
            .await,
        1
    );
    let r = app
        .post_form_from(
            "/students",
            "/students/unlock-address",
            &[("address", "not an ip")],
        )
        .await;
    assert_eq!(r.status(), 400);
}
