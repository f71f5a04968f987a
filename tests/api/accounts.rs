use hubdesk::domain::Role;

use crate::helpers::{csrf_from, password_on_card, spawn_app, TestApp, PASSWORD};

#[tokio::test]
async fn student_changes_password() {
    let app = spawn_app().await;
    let old = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &old).await;
    let other_device = app.other_browser();
    other_device.login_ok("ada", &old).await;
    let new = "violet-otter-compass-93";
    let r = app
        .post_form(
            "/account/password",
            &[
                ("current_password", &old),
                ("new_password", new),
                ("confirm_password", new),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(TestApp::location(&r), "/?password_changed=1");
    assert!(app
        .get_html("/?password_changed=1")
        .await
        .contains("Your password has been changed."));
    assert_eq!(
        other_device.get("/").await.status(),
        303,
        "other devices are logged out"
    );
    let fresh = app.other_browser();
    assert_eq!(fresh.login("ada", &old).await.status(), 401);
    fresh.login_ok("ada", new).await;
}

#[tokio::test]
async fn password_change_errors_are_shown_beside_the_fields() {
    let app = spawn_app().await;
    let old = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &old).await;
    let r = app
        .post_form(
            "/account/password",
            &[
                ("current_password", "nope"),
                ("new_password", "password"),
                ("confirm_password", "other"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"current_password-error\""));
    assert!(html.contains("id=\"new_password-error\""));
    assert!(html.contains("id=\"confirm_password-error\""));
    let r = app
        .post_form(
            "/account/password",
            &[
                ("current_password", &old),
                ("new_password", "short"),
                ("confirm_password", "short"),
            ],
        )
        .await;
    assert!(r.text().await.unwrap().contains("at least 8 characters"));
    let r = app
        .post_form(
            "/account/password",
            &[
                ("current_password", &old),
                ("new_password", "password123"),
                ("confirm_password", "password123"),
            ],
        )
        .await;
    assert!(r.text().await.unwrap().contains("too common"));
    // Nothing changed.
    app.other_browser().login_ok("ada", &old).await;
}

#[tokio::test]
async fn roles_are_enforced_on_every_page() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    let staff_pages = [
        "/students",
        "/students/new",
        "/students/import",
        "/students/ada",
        "/students/export.csv",
        "/audit",
    ];
    // Anonymous: sent to the login form, coming back afterwards.
    for p in staff_pages
        .iter()
        .chain(["/staff", "/account/password"].iter())
    {
        let r = app.get(p).await;
        assert_eq!(r.status(), 303, "{p}");
        assert!(TestApp::location(&r).starts_with("/login?next="), "{p}");
    }
    // Student: 403 on staff pages and actions.
    app.login_ok("ada", &pw).await;
    for p in staff_pages.iter().chain(["/staff"].iter()) {
        assert_eq!(app.get(p).await.status(), 403, "{p}");
    }
    let token = csrf_from(&app.get_html("/").await);
    for p in [
        "/students/new",
        "/students/ada/disable",
        "/students/ada/reset-password",
        "/students/import/commit",
        "/staff",
    ] {
        let r = app
            .client
            .post(app.url(p))
            .form(&[("csrf_token", token.as_str()), ("display_name", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{p}");
    }
    // Counselor: everything but the admin pages.
    let c = app.other_browser();
    c.as_counselor().await;
    for p in staff_pages {
        assert_eq!(c.get(p).await.status(), 200, "{p}");
    }
    assert_eq!(c.get("/staff").await.status(), 403);
    let r = c
        .post_form_from(
            "/students",
            "/staff",
            &[
                ("username", "sneaky"),
                ("display_name", "S"),
                ("role", "admin"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        c.get("/").await.status(),
        303,
        "staff land on the student list"
    );
}

#[tokio::test]
async fn admin_creates_counselors_and_admins() {
    let app = spawn_app().await;
    app.as_admin().await;
    let r = app
        .post_form(
            "/staff",
            &[
                ("username", "carla"),
                ("display_name", "Carla Counselor"),
                ("role", "counselor"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let r = app
        .post_form(
            "/staff",
            &[
                ("username", "carla"),
                ("display_name", "Again"),
                ("role", "admin"),
                ("password", "x"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"username-error\"") && html.contains("id=\"password-error\""));
    let carla = app.other_browser();
    carla.login_ok("carla", PASSWORD).await;
    assert_eq!(carla.get("/students").await.status(), 200);
    assert_eq!(carla.get("/staff").await.status(), 403);
    // Admins see everything counselors see.
    assert_eq!(app.get("/students").await.status(), 200);
    assert_eq!(app.get("/audit").await.status(), 200);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE username='carla' AND role='counselor'")
            .await,
        1
    );
}

#[tokio::test]
async fn first_run_setup_link_creates_the_first_admin_once() {
    let app = spawn_app().await;
    let url = hubdesk::account::setup::first_run_url(&app.pool, &app.state.config.public_url)
        .await
        .unwrap()
        .expect("no admin yet");
    let path = url
        .trim_start_matches(&app.state.config.public_url)
        .to_string();
    let page = app.get_html(&path).await;
    assert!(page.contains("Create the first admin"));
    let token = path.split("token=").nth(1).unwrap().to_string();
    let r = app
        .post_form_from(
            &path,
            "/setup",
            &[
                ("token", &token),
                ("username", "Root"),
                ("display_name", "R"),
                ("password", "x"),
                ("confirm_password", "y"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422, "bad fields re-render");
    let r = app
        .post_form_from(
            &path,
            "/setup",
            &[
                ("token", &token),
                ("username", "camp-boss"),
                ("display_name", "Camp Boss"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        app.get("/students").await.status(),
        200,
        "logged in as the new admin"
    );
    assert_eq!(app.get(&path).await.status(), 400, "link is single use");
    assert!(
        hubdesk::account::setup::first_run_url(&app.pool, &app.state.config.public_url)
            .await
            .unwrap()
            .is_none()
    );
    let _ = Role::Admin;
}

#[tokio::test]
async fn admin_disables_and_enables_a_counselor() {
    let app = spawn_app().await;
    app.as_admin().await;
    app.create_user(Role::Counselor, "carla", PASSWORD).await;
    let carla = app.other_browser();
    carla.login_ok("carla", PASSWORD).await;
    assert_eq!(carla.get("/students").await.status(), 200);

    // The staff page offers the actions on carla's row, none on the admin's own row.
    let page = app.get_html("/staff").await;
    assert!(page.contains("action=\"/staff/carla/disable\""));
    assert!(!page.contains("action=\"/staff/boss/disable\""));

    let r = app
        .post_form_from("/staff", "/staff/carla/disable", &[])
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(TestApp::location(&r), "/staff?disabled=carla");
    assert!(app
        .get_html("/staff?disabled=carla")
        .await
        .contains("Account carla disabled"));
    // Her session ended and she cannot log in again.
    assert_eq!(carla.get("/students").await.status(), 303);
    let r = carla.login("carla", PASSWORD).await;
    assert_eq!(r.status(), 403, "a disabled counselor cannot log in");
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'staff.disable' AND target = 'carla' AND actor = 'boss'")
            .await,
        1
    );

    let r = app
        .post_form_from("/staff", "/staff/carla/enable", &[])
        .await;
    assert_eq!(r.status(), 303);
    carla.login_ok("carla", PASSWORD).await;
    assert_eq!(carla.get("/students").await.status(), 200);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'staff.enable' AND target = 'carla'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn admin_resets_a_counselors_password() {
    let app = spawn_app().await;
    app.as_admin().await;
    app.create_user(Role::Counselor, "carla", PASSWORD).await;
    let carla = app.other_browser();
    carla.login_ok("carla", PASSWORD).await;

    let r = app
        .post_form_from("/staff", "/staff/carla/reset-password", &[])
        .await;
    assert_eq!(r.status(), 303);
    let html = app.follow(&r).await.text().await.unwrap();
    let new_password = password_on_card(&html);
    assert!(
        new_password.len() >= 10,
        "generated password: {new_password:?}"
    );

    assert_eq!(
        carla.get("/students").await.status(),
        303,
        "her session ended"
    );
    assert_eq!(
        carla.login("carla", PASSWORD).await.status(),
        401,
        "old password refused"
    );
    carla.login_ok("carla", &new_password).await;
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'staff.reset_password' AND target = 'carla'")
            .await,
        1
    );
}

#[tokio::test]
async fn staff_actions_are_for_admins_on_staff_only() {
    let app = spawn_app().await;
    app.as_admin().await;
    app.create_user(Role::Admin, "olga", PASSWORD).await;
    app.create_user(Role::Counselor, "carla", PASSWORD).await;
    app.create_student("Ada Lovelace", "ada", None).await;

    // An admin cannot lock themselves out.
    for action in ["disable", "reset-password"] {
        let r = app
            .post_form_from("/staff", &format!("/staff/boss/{action}"), &[])
            .await;
        assert_eq!(r.status(), 409, "{action} of one's own account");
        assert!(r.text().await.unwrap().contains("your own account"));
    }
    // Students are not managed here, staff not on the student pages.
    let r = app
        .post_form_from("/staff", "/staff/ada/disable", &[])
        .await;
    assert_eq!(r.status(), 404);
    let r = app
        .post_form_from("/staff", "/students/carla/disable", &[])
        .await;
    assert_eq!(r.status(), 404);
    // Without the CSRF token: refused.
    let r = app
        .client
        .post(app.url("/staff/carla/disable"))
        .form(&[("csrf_token", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A counselor: 403.
    let carla = app.other_browser();
    carla.login_ok("carla", PASSWORD).await;
    let r = carla
        .post_form_from("/students", "/staff/olga/disable", &[])
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE disabled").await,
        0,
        "nothing was disabled"
    );
    // Another admin can be disabled by this one.
    let r = app
        .post_form_from("/staff", "/staff/olga/disable", &[])
        .await;
    assert_eq!(r.status(), 303);
}

#[tokio::test]
async fn guessing_the_current_password_is_throttled_like_logins() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &pw).await;
    let threshold = app.state.config.throttle.account_failures;
    let attempt = |guess: &'static str| {
        let app = &app;
        async move {
            app.post_form(
                "/account/password",
                &[
                    ("current_password", guess),
                    ("new_password", "violet-otter-compass-93"),
                    ("confirm_password", "violet-otter-compass-93"),
                ],
            )
            .await
        }
    };
    for _ in 0..threshold {
        assert_eq!(attempt("not-my-password").await.status(), 422);
    }
    let r = attempt("not-my-password").await;
    assert_eq!(r.status(), 429);
    assert!(r.text().await.unwrap().contains("Too many wrong passwords"));
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'account.change_password'")
            .await,
        0
    );
}

#[tokio::test]
async fn admin_unlocks_a_locked_out_counselor() {
    let app = spawn_app().await;
    app.as_admin().await;
    app.create_user(Role::Counselor, "carla", PASSWORD).await;
    let carla = app.other_browser();
    for _ in 0..app.state.config.throttle.account_failures {
        assert_eq!(carla.login("carla", "not-her-password").await.status(), 401);
    }
    assert_eq!(carla.login("carla", PASSWORD).await.status(), 429);
    let page = app.get_html("/staff").await;
    assert!(page.contains("badge locked"));
    assert!(page.contains("action=\"/staff/carla/unlock\""));

    let r = app
        .post_form_from("/staff", "/staff/carla/unlock", &[])
        .await;
    assert_eq!(TestApp::location(&r), "/staff?unlocked=carla");
    assert!(!app.get_html("/staff").await.contains("badge locked"));
    carla.login_ok("carla", PASSWORD).await;
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'account.unlock' AND target = 'carla'"
        )
        .await,
        1
    );
}
