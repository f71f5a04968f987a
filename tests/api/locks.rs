//! Locks in sight: lockouts in the audit log (one line per lock), the locked badge, filter and
//! banner of the student list, and unlocking from the list.
use crate::helpers::{spawn_app, spawn_app_with, TestApp};

const WRONG: &str = "wrong-password-x";

async fn audit_lines(app: &TestApp, action: &str) -> Vec<(Option<String>, String)> {
    sqlx::query_as(
        "SELECT target, coalesce(detail, '') FROM audit_log WHERE action = $1 ORDER BY id",
    )
    .bind(action)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_lockout_is_one_audit_line_that_sums_up_the_failures() {
    // Locks of 1 s, so the test can see a second lock begin after the first ends.
    let app = spawn_app_with(|c| c.throttle.lock_seconds = 1).await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    for _ in 0..4 {
        assert_eq!(app.login("ada", WRONG).await.status(), 401);
    }
    assert!(
        audit_lines(&app, "login.locked").await.is_empty(),
        "failures below the threshold are not audited one by one"
    );
    assert_eq!(app.login("ada", WRONG).await.status(), 401);
    // Refused while locked: not counted, not audited again.
    assert_eq!(app.login("ada", &pw).await.status(), 429);
    assert_eq!(app.login("ada", WRONG).await.status(), 429);
    let lines = audit_lines(&app, "login.locked").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (target, detail) = &lines[0];
    assert_eq!(target.as_deref(), Some("ada"));
    assert!(
        detail.starts_with("locked for 1 s after 5 failed logins between "),
        "{detail}"
    );
    assert!(detail.ends_with("the last from 127.0.0.1"), "{detail}");
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE actor = 'system' AND action = 'login.locked'"
        )
        .await,
        1
    );

    // The lock runs out; the next failure begins a second, longer lock: a second line.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.login("ada", WRONG).await.status(), 401);
    let lines = audit_lines(&app, "login.locked").await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1]
            .1
            .starts_with("locked for 2 s after 6 failed logins"),
        "{lines:?}"
    );
    // Never the password, anywhere in the audit log.
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM audit_log WHERE detail LIKE '%{WRONG}%' OR target LIKE '%{WRONG}%'"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn unknown_names_are_audited_bounded_and_addresses_by_their_own_lock() {
    let app = spawn_app_with(|c| c.throttle.address_failures = 12).await;
    // A name that could be an account but is not: audited, without a target, named as parsed.
    for _ in 0..5 {
        assert_eq!(app.login("  Ghost ", WRONG).await.status(), 401);
    }
    let lines = audit_lines(&app, "login.locked").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0, None, "no account is named as a target");
    assert!(
        lines[0]
            .1
            .starts_with("no account named 'ghost': locked for 30 s after 5 failed"),
        "{lines:?}"
    );
    // Text that is no username at all never reaches the audit log; the address lock it helps
    // set is one line of its own.
    let hostile = "<script>alert(1)</script>' OR 1=1 --";
    for _ in 0..7 {
        assert_eq!(app.login(hostile, WRONG).await.status(), 401);
    }
    assert_eq!(app.login(hostile, WRONG).await.status(), 429);
    let lines = audit_lines(&app, "address.locked").await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0.as_deref(), Some("127.0.0.1"));
    assert!(
        lines[0]
            .1
            .starts_with("logins from 127.0.0.1 locked for 30 s after 12 failed logins"),
        "{lines:?}"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log
              WHERE detail LIKE '%script%' OR target LIKE '%script%' OR detail LIKE '%OR 1=1%'"
        )
        .await,
        0
    );
}

/// `n` wrong passwords for `username`, from a browser of its own.
async fn fail_logins(app: &TestApp, username: &str, n: usize) {
    let b = app.other_browser();
    for _ in 0..n {
        b.login(username, WRONG).await;
    }
}

/// The usernames of the rows of a student list page, in order.
fn rows(html: &str) -> Vec<String> {
    html.split("<tr class=\"student")
        .skip(1)
        .filter_map(|r| r.split("data-username=\"").nth(1))
        .map(|r| r.split('"').next().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn locked_students_have_a_badge_a_filter_a_count_and_an_unlock_button() {
    let app = spawn_app().await;
    let pw = app
        .create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    app.create_student("Bob Babbage", "bob", Some("blue")).await;
    app.create_student("Cyd Charisse", "cyd", Some("blue"))
        .await;
    app.as_counselor().await;
    let page = app.get_html("/students").await;
    assert!(
        !page.contains("id=\"locked-banner\""),
        "nobody is locked yet"
    );
    assert!(!page.contains("badge locked"));

    fail_logins(&app, "ada", 5).await;
    fail_logins(&app, "bob", 5).await;
    let page = app.get_html("/students").await;
    assert!(
        page.contains("<strong>2 students are locked out</strong>"),
        "{page}"
    );
    assert!(page.contains("href=\"/students?status=locked\""));
    // ada's row: the badge, until when in words, the Unlock button with its question.
    let ada_row = page
        .split("data-username=\"ada\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        ada_row.contains("<span class=\"badge locked\">locked</span>"),
        "{ada_row}"
    );
    assert!(
        !ada_row.contains(">active<"),
        "a locked student is not called active"
    );
    assert!(ada_row.contains("until "), "{ada_row}");
    assert!(ada_row.contains(" UTC (in "), "{ada_row}");
    assert!(ada_row.contains("action=\"/students/ada/unlock\""));
    assert!(ada_row.contains("data-confirm=\"Unlock the login of Ada Lovelace now?"));
    let cyd_row = page.split("data-username=\"cyd\"").nth(1).unwrap();
    let cyd_row = cyd_row.split("</tr>").next().unwrap();
    assert!(cyd_row.contains(">active<") && !cyd_row.contains("unlock"));

    // The filter: the locked ones, and "active" now leaves them out.
    assert_eq!(
        rows(&app.get_html("/students?status=locked").await),
        ["ada", "bob"]
    );
    assert_eq!(
        rows(&app.get_html("/students?status=active").await),
        ["cyd"]
    );
    assert_eq!(
        rows(&app.get_html("/students").await),
        ["ada", "bob", "cyd"]
    );
    // The student's page says it too.
    let own = app.get_html("/students/ada").await;
    assert!(own.contains("id=\"locked-badge\""));
    assert!(own.contains("after 5 failed attempts, until "), "{own}");

    // Unlock from the filtered list: back to the filter, with a notice naming her.
    let r = app
        .post_form_from(
            "/students?status=locked",
            "/students/ada/unlock",
            &[("back", "locked")],
        )
        .await;
    assert_eq!(
        TestApp::location(&r),
        "/students?status=locked&notice=unlocked&student=ada"
    );
    let page = app
        .get_html("/students?status=locked&notice=unlocked&student=ada")
        .await;
    assert!(page.contains("ada can log in again."), "{page}");
    assert!(page.contains("<strong>1 student is locked out</strong>"));
    assert_eq!(rows(&page), ["bob"]);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'account.unlock' AND target = 'ada' AND actor = 'connie'")
            .await,
        1
    );
    app.other_browser().login_ok("ada", &pw).await;
    // A crafted notice echoes nothing that is not a username.
    let crafted = app
        .get_html("/students?notice=unlocked&student=%3Cb%3Ehi%3C%2Fb%3E")
        .await;
    assert!(!crafted.contains("can log in again") && !crafted.contains("<b>hi"));
}
