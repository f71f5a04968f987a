//! Resetting a cohort's (or a selection's) passwords behind one confirmation, as a job whose
//! result is a page of login cards readable in the asking browser for an hour.
use std::time::Duration;

use crate::helpers::{spawn_app, spawn_app_with_state, TestApp};

/// The hidden fields of the confirmation form (csrf token, form id, students, cohort).
fn confirm_fields(html: &str) -> Vec<(String, String)> {
    let form = html
        .split("action=\"/students/reset-passwords\"")
        .nth(1)
        .expect("a confirmation form")
        .split("</form>")
        .next()
        .unwrap();
    form.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|f| {
            let name = f.split('"').next().unwrap().to_string();
            let value = f
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (name, value.to_string())
        })
        .collect()
}

/// Every (username, password) on a cards page.
fn cards(html: &str) -> Vec<(String, String)> {
    html.split("<article class=\"card\">")
        .skip(1)
        .map(|c| {
            let field = |class: &str| {
                c.split(&format!("class=\"{class}\">"))
                    .nth(1)
                    .unwrap()
                    .split('<')
                    .next()
                    .unwrap()
                    .trim()
                    .to_string()
            };
            (field("card-username"), field("card-password"))
        })
        .collect()
}

/// The confirmation page of a selection (`?cohort=…`, `?student=…`): its address gets a form
/// id first (a redirect), which the page and its form then carry.
async fn confirm_page(app: &TestApp, selection: &str) -> (String, String) {
    let r = app
        .get(&format!("/students/reset-passwords?{selection}"))
        .await;
    assert_eq!(r.status(), 303);
    let path = TestApp::location(&r);
    assert!(path.contains("form="), "{path}");
    (path.clone(), app.get_html(&path).await)
}

async fn post_confirm(app: &TestApp, fields: &[(String, String)]) -> reqwest::Response {
    app.client
        .post(app.url("/students/reset-passwords"))
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// The cards page once the job has ended (it refreshes itself while the job runs).
async fn cards_when_done(app: &TestApp, path: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = app.get(path).await;
        let status = r.status();
        let html = r.text().await.unwrap();
        if !html.contains("data-why=\"running\"") {
            assert_eq!(status, 200, "{html}");
            return html;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never ended: {html}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_cohorts_passwords_are_reset_once_and_printed_on_cards() {
    let app = spawn_app().await;
    let mut old = Vec::new();
    for (name, user) in [("Ada L", "ada"), ("Bob B", "bob"), ("Cyd C", "cyd")] {
        old.push((user, app.create_student(name, user, Some("blue")).await));
    }
    let green = app.create_student("Gus G", "gus", Some("green")).await;
    // Each blue student is logged in somewhere.
    let mut sessions = Vec::new();
    for (user, pw) in &old {
        let b = app.other_browser();
        b.login_ok(user, pw).await;
        assert_eq!(b.get("/").await.status(), 200);
        sessions.push(b);
    }
    app.as_counselor().await;

    // One confirmation page that names how many and who.
    let (_, page) = confirm_page(&app, "cohort=blue").await;
    assert!(
        page.contains("Reset 3 passwords and print cards?"),
        "{page}"
    );
    for who in ["<code>ada</code>", "<code>bob</code>", "<code>cyd</code>"] {
        assert!(page.contains(who));
    }
    assert!(!page.contains("<code>gus</code>"));
    let fields = confirm_fields(&page);
    let r = post_confirm(&app, &fields).await;
    assert_eq!(r.status(), 303);
    let cards_path = TestApp::location(&r);
    assert!(cards_path.starts_with("/students/cards/"), "{cards_path}");
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.contains(&format!("Path={cards_path}")), "{cookie}");
    assert!(cookie.contains("Max-Age=3"), "about an hour: {cookie}");

    let html = cards_when_done(&app, &cards_path).await;
    assert!(html.contains("New passwords for 3 students"), "{html}");
    assert!(html.contains("<strong>Available until "), "{html}");
    let printed = cards(&html);
    assert_eq!(
        printed.iter().map(|(u, _)| u.as_str()).collect::<Vec<_>>(),
        ["ada", "bob", "cyd"]
    );
    for ((user, new), ((_, old_pw), session)) in printed.iter().zip(old.iter().zip(&sessions)) {
        let b = app.other_browser();
        assert_eq!(
            b.login(user, old_pw).await.status(),
            401,
            "{user}'s old password"
        );
        b.login_ok(user, new).await;
        // The session they had has ended (the landing page sends them to log in).
        assert_eq!(session.get("/").await.status(), 303, "{user}'s session");
    }
    app.other_browser().login_ok("gus", &green).await;

    // Audited: the batch, and one line per student; no password anywhere but the cards.
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'students.reset_passwords' AND target = 'blue' AND actor = 'connie' AND detail LIKE '3 students: ada, bob, cyd (job %'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'student.reset_password' AND detail LIKE 'in a bulk reset (job %): 1 session(s) ended%'")
            .await,
        3
    );
    for (_, pw) in &printed {
        for sql in [
            "SELECT count(*) FROM audit_log WHERE coalesce(detail, '') || coalesce(target, '') LIKE '%' || $1 || '%'",
            "SELECT count(*) FROM jobs WHERE payload::text || coalesce(result::text, '') || steps::text LIKE '%' || $1 || '%'",
            "SELECT count(*) FROM card_secrets WHERE position(convert_to($1, 'UTF8') in sealed) > 0",
        ] {
            let n: i64 = sqlx::query_scalar(sql).bind(pw).fetch_one(&app.pool).await.unwrap();
            assert_eq!(n, 0, "{sql}");
        }
    }
    // The job's steps are its progress: one per student.
    let steps: serde_json::Value =
        sqlx::query_scalar("SELECT steps FROM jobs WHERE kind = 'roster.reset_passwords'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let names: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["reset ada", "reset bob", "reset cyd"]);

    // Reprint: the same page again, the same cards.
    let again = cards(&app.get_html(&cards_path).await);
    assert_eq!(again, printed);
}

#[tokio::test]
async fn a_second_submission_of_the_same_confirmation_resets_nothing() {
    let app = spawn_app().await;
    app.create_student("Ada L", "ada", None).await;
    app.create_student("Bob B", "bob", None).await;
    app.as_counselor().await;
    let (confirm_path, page) = confirm_page(&app, "student=ada&student=bob").await;
    assert!(
        page.contains("Reset 2 passwords and print cards?"),
        "{page}"
    );
    // Reload shows the same confirmation (the same form id).
    assert_eq!(
        confirm_fields(&app.get_html(&confirm_path).await),
        confirm_fields(&page)
    );
    let fields = confirm_fields(&page);
    let first = post_confirm(&app, &fields).await;
    let cards_path = TestApp::location(&first);
    let printed = cards(&cards_when_done(&app, &cards_path).await);
    assert_eq!(printed.len(), 2);

    // Back + resubmit, a double click, a second tab: the same form, sent again (and twice at
    // once). Nothing is queued or reset; each answer leads to the first batch's cards.
    let (a, b) = tokio::join!(post_confirm(&app, &fields), post_confirm(&app, &fields));
    let again = post_confirm(&app, &fields).await;
    for r in [&a, &b, &again] {
        assert_eq!(r.status(), 303);
        assert_eq!(TestApp::location(r), format!("{cards_path}?again=1"));
        assert!(
            r.headers().get("set-cookie").is_none(),
            "the first key is kept"
        );
    }
    let html = app.get_html(&format!("{cards_path}?again=1")).await;
    assert!(
        html.contains("already confirmed: nothing was reset again"),
        "{html}"
    );
    // Back to the confirmation: it says it was sent, and offers no button.
    let html = app.get_html(&confirm_path).await;
    assert!(
        html.contains("This confirmation was already sent"),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"{cards_path}\"")));
    assert!(!html.contains("id=\"confirm-reset\""));
    assert_eq!(
        app.count("SELECT count(*) FROM jobs WHERE kind = 'roster.reset_passwords'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'student.reset_password'")
            .await,
        2
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (user, pw) in &printed {
        app.other_browser().login_ok(user, pw).await;
    }
    // A new confirmation page is a new form: that one does reset again (the control).
    let fields = confirm_fields(&confirm_page(&app, "student=ada").await.1);
    let r = post_confirm(&app, &fields).await;
    assert_ne!(TestApp::location(&r), cards_path);
    cards_when_done(&app, &TestApp::location(&r)).await;
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'student.reset_password'")
            .await,
        3
    );
}

#[tokio::test]
async fn a_job_run_again_resets_nobody_twice() {
    let app = spawn_app().await;
    app.create_student("Ada L", "ada", None).await;
    app.as_counselor().await;
    let fields = confirm_fields(&confirm_page(&app, "student=ada").await.1);
    let path = TestApp::location(&post_confirm(&app, &fields).await);
    let printed = cards(&cards_when_done(&app, &path).await);
    // As if a runner died after the reset and the job were claimed again.
    sqlx::query(
        "UPDATE jobs SET state = 'queued', finished_at = NULL, result = NULL, steps = '[]'
          WHERE kind = 'roster.reset_passwords'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    app.state.jobs.wake();
    let html = cards_when_done(&app, &path).await;
    assert_eq!(cards(&html), printed, "the same card, still valid");
    app.other_browser().login_ok("ada", &printed[0].1).await;
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'student.reset_password'")
            .await,
        1
    );
}

#[tokio::test]
async fn the_cards_open_only_in_the_asking_browser_and_only_for_the_window() {
    let app = spawn_app().await;
    app.create_student("Ada L", "ada", Some("blue")).await;
    app.as_counselor().await;
    let fields = confirm_fields(&confirm_page(&app, "cohort=blue").await.1);
    let path = TestApp::location(&post_confirm(&app, &fields).await);
    let printed = cards(&cards_when_done(&app, &path).await);
    assert_eq!(printed.len(), 1);

    // Another counselor, logged in elsewhere: no key, no cards.
    let other = app.other_browser();
    app.create_user(
        hubdesk::domain::Role::Counselor,
        "carl",
        crate::helpers::PASSWORD,
    )
    .await;
    other.login_ok("carl", crate::helpers::PASSWORD).await;
    let r = other.get(&path).await;
    assert_eq!(r.status(), 403);
    let html = r.text().await.unwrap();
    assert!(html.contains("can be shown only in the browser that confirmed it"));
    assert!(!html.contains(&printed[0].1));
    // A student is not let in at all.
    let student = app.other_browser();
    student.login_ok("ada", &printed[0].1).await;
    assert_eq!(student.get(&path).await.status(), 403);

    // The window ends: the page says so and the sealed passwords are gone.
    sqlx::query("UPDATE card_batches SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = app.get(&path).await;
    assert_eq!(r.status(), 410);
    let html = r.text().await.unwrap();
    assert!(html.contains("These cards have expired"), "{html}");
    assert!(!html.contains(&printed[0].1));
    assert_eq!(app.count("SELECT count(*) FROM card_secrets").await, 0);
    // The purge deletes any other expired batch's secrets without a page view.
    let mut conn = app.pool.acquire().await.unwrap();
    assert_eq!(
        hubdesk::db::cards::purge_expired(&mut conn).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn a_job_run_too_late_for_its_cards_changes_nothing() {
    // No runner in the app: the test runs the job itself, when it chooses.
    let mut handlers = Vec::new();
    let app =
        spawn_app_with_state(|_| {}, |s| handlers = std::mem::take(&mut s.job_handlers)).await;
    let pw = app.create_student("Ada L", "ada", None).await;
    app.as_counselor().await;
    let fields = confirm_fields(&confirm_page(&app, "student=ada").await.1);
    let path = TestApp::location(&post_confirm(&app, &fields).await);
    let waiting = app.get_html(&path).await;
    assert!(waiting.contains("0 of 1 done"), "{waiting}");
    assert!(waiting.contains("<meta http-equiv=\"refresh\" content=\"2\">"));
    // The runner was down for most of the hour.
    sqlx::query("UPDATE card_batches SET expires_at = now() + interval '2 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
    let runner = hubdesk::jobs::Runner::new(app.pool.clone(), handlers);
    assert!(runner.tick().await.unwrap() >= 1);
    let html = app.get_html(&path).await;
    assert!(html.contains("The reset failed"), "{html}");
    assert!(html.contains("too soon to print new cards"), "{html}");
    app.other_browser().login_ok("ada", &pw).await;
}

#[tokio::test]
async fn a_selection_that_names_nobody_or_not_a_student_is_refused_plainly() {
    let app = spawn_app().await;
    app.create_student("Ada L", "ada", None).await;
    app.as_counselor().await;
    let form = "form=00000000-0000-4000-8000-000000000000";
    let r = app.get(&format!("/students/reset-passwords?{form}")).await;
    assert_eq!(r.status(), 422);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Choose at least one student."));
    let r = app
        .get(&format!(
            "/students/reset-passwords?student=ada&student=connie&student=%3Cb%3E&{form}"
        ))
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("No student named connie; 1 name(s) that are not usernames."),
        "{html}"
    );
    let r = app
        .get(&format!("/students/reset-passwords?cohort=nobody&{form}"))
        .await;
    assert_eq!(r.status(), 422);
    // A confirmation without its form id (a hand-made POST) is refused, nothing queued.
    let (_, page) = confirm_page(&app, "student=ada").await;
    let fields: Vec<_> = confirm_fields(&page)
        .into_iter()
        .filter(|(k, _)| k != "form_id")
        .collect();
    assert_eq!(post_confirm(&app, &fields).await.status(), 400);
    // And without the CSRF token.
    let fields: Vec<_> = confirm_fields(&page)
        .into_iter()
        .filter(|(k, _)| k != "csrf_token")
        .collect();
    assert_eq!(post_confirm(&app, &fields).await.status(), 403);
    assert_eq!(
        app.count("SELECT count(*) FROM jobs WHERE kind = 'roster.reset_passwords'")
            .await,
        0
    );
}
