//! Forms that are kind after an error: a reserved username comes with free ones to try, and
//! a password just typed is kept when the error is in another field (never the current one).
use crate::helpers::{spawn_app, TestApp, PASSWORD};

/// The `value` of the input named `name` ("" when it has none).
fn value_of(html: &str, name: &str) -> String {
    let input = html
        .split(&format!("name=\"{name}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no input {name}"))
        .split('>')
        .next()
        .unwrap();
    input
        .split("value=\"")
        .nth(1)
        .map(|v| v.split('"').next().unwrap().to_string())
        .unwrap_or_default()
}

fn error_of(html: &str, field: &str) -> String {
    html.split(&format!("id=\"{field}-error\">"))
        .nth(1)
        .map(|e| e.split('<').next().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_reserved_username_comes_with_free_ones_to_try() {
    let app = spawn_app().await;
    app.as_admin().await;
    let staff = |username: &'static str, name: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let r = app
                .post_form(
                    "/staff",
                    &[
                        ("username", username),
                        ("display_name", name),
                        ("role", "counselor"),
                        ("password", password),
                    ],
                )
                .await;
            assert_eq!(r.status(), 422);
            r.text().await.unwrap()
        }
    };
    let html = staff("Admin", "Ada Lovelace", PASSWORD).await;
    assert_eq!(
        error_of(&html, "username"),
        "&#x27;admin&#x27; is reserved — try &#x27;admin-ada&#x27; or &#x27;ada&#x27;."
    );
    // The password, fine itself, is kept; the control: a refused one is not echoed.
    assert_eq!(value_of(&html, "password"), PASSWORD);
    let html = staff("admin", "Ada Lovelace", "short").await;
    assert!(!error_of(&html, "password").is_empty());
    assert_eq!(value_of(&html, "password"), "");

    // A suggestion that is taken is not offered.
    app.create_student("Ada Byron", "ada", None).await;
    let html = staff("admin", "Ada Lovelace", PASSWORD).await;
    assert!(
        error_of(&html, "username").contains("try &#x27;admin-ada&#x27; or &#x27;adal&#x27;"),
        "{}",
        error_of(&html, "username")
    );

    // The add-student form says the same.
    let r = app
        .post_form(
            "/students/new",
            &[
                ("display_name", "Grace Hopper"),
                ("username", "root"),
                ("cohort", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        error_of(&r.text().await.unwrap(), "username"),
        "&#x27;root&#x27; is reserved — try &#x27;root-grace&#x27; or &#x27;grace&#x27;."
    );
}

#[tokio::test]
async fn first_run_setup_offers_names_for_admin_and_keeps_the_passwords() {
    let app = spawn_app().await;
    let url = hubdesk::account::setup::first_run_url(&app.pool, &app.state.config.public_url)
        .await
        .unwrap()
        .unwrap();
    let path = url
        .trim_start_matches(&app.state.config.public_url)
        .to_string();
    let token = path.split("token=").nth(1).unwrap().to_string();
    let setup = |username: &'static str, password: &'static str, confirm: &'static str| {
        let (app, path, token) = (&app, &path, &token);
        async move {
            let r = app
                .post_form_from(
                    path,
                    "/setup",
                    &[
                        ("token", token),
                        ("username", username),
                        ("display_name", "Camp Boss"),
                        ("password", password),
                        ("confirm_password", confirm),
                    ],
                )
                .await;
            assert_eq!(r.status(), 422);
            r.text().await.unwrap()
        }
    };
    let html = setup("admin", PASSWORD, PASSWORD).await;
    assert_eq!(
        error_of(&html, "username"),
        "&#x27;admin&#x27; is reserved — try &#x27;admin-camp&#x27; or &#x27;camp&#x27;."
    );
    assert_eq!(value_of(&html, "password"), PASSWORD);
    assert_eq!(value_of(&html, "confirm_password"), PASSWORD);
    // Mismatched: which one is wrong is unknown, both are cleared.
    let html = setup("admin", PASSWORD, "plum-rocket-lantern-8").await;
    assert_eq!(value_of(&html, "password"), "");
    assert_eq!(value_of(&html, "confirm_password"), "");
}

#[tokio::test]
async fn changing_a_password_keeps_the_new_one_but_never_the_current_one() {
    let app = spawn_app().await;
    let old = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &old).await;
    let change = |current: String, new: &'static str, confirm: &'static str| {
        let app: &TestApp = &app;
        async move {
            let r = app
                .post_form(
                    "/account/password",
                    &[
                        ("current_password", current.as_str()),
                        ("new_password", new),
                        ("confirm_password", confirm),
                    ],
                )
                .await;
            assert_eq!(r.status(), 422);
            r.text().await.unwrap()
        }
    };
    let new = "correct-horse-battery-42";
    // A mistyped current password: the new one and its confirmation stay.
    let html = change("not-my-password".into(), new, new).await;
    assert!(!error_of(&html, "current_password").is_empty());
    assert_eq!(value_of(&html, "current_password"), "");
    assert_eq!(value_of(&html, "new_password"), new);
    assert_eq!(value_of(&html, "confirm_password"), new);
    // The new one refused (here: they differ): both go, and the right current one too.
    let html = change(old.clone(), new, "correct-horse-battery-43").await;
    assert!(!error_of(&html, "confirm_password").is_empty());
    assert_eq!(value_of(&html, "current_password"), "");
    assert_eq!(value_of(&html, "new_password"), "");
    assert_eq!(value_of(&html, "confirm_password"), "");
    assert!(
        !html.contains(&old),
        "the current password is nowhere on the page"
    );
}
