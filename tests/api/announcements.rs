//! Announcements (issue 18) through the real pages and the hub's feed: a counselor posts one for a
//! cohort and one for everyone; each shows on the pages of the people it is for (a student of
//! another cohort does not see the cohort's); wrong values come back beside their fields; one
//! dismissed is gone for that person only; one ended (early, or by its end time) is gone for all;
//! the hub's feed (client credentials) lists what is on with its group and who dismissed it.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{csrf_from, spawn_app, spawn_app_with, TestApp, HUB_CLIENT, HUB_SECRET};

async fn feed(app: &TestApp) -> Value {
    let r = app
        .client
        .get(app.url("/oauth/announcements"))
        .basic_auth(HUB_CLIENT, Some(HUB_SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn local(t: time::OffsetDateTime) -> String {
    // The test app's camp zone is UTC.
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[tokio::test]
async fn announcements_reach_the_people_they_are_for_until_dismissed_or_ended() {
    let app = spawn_app().await;
    let ada_pw = app
        .create_student("Ada Lovelace", "ada", Some("Blue"))
        .await;
    let bob_pw = app.create_student("Bob Smith", "bob", Some("Green")).await;
    app.as_counselor().await;
    let page = app.get_html("/announcements").await;
    assert!(page.contains(r#"id="no-announcements""#), "{page}");

    // Wrong values: each beside its field, what was typed kept.
    let r = app
        .post_form(
            "/announcements",
            &[
                ("message", "Lunch moved"),
                ("cohort", "Purple"),
                ("starts", "tomorrow-ish"),
                ("ends", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(
        html.contains(r#"id="cohort-error""#) && html.contains(r#"id="starts-error""#),
        "{html}"
    );
    assert!(html.contains("Lunch moved"), "{html}");
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(2);
    let r = app
        .post_form(
            "/announcements",
            &[
                ("message", "Old news"),
                ("starts", &local(past)),
                ("ends", &local(past + time::Duration::minutes(30))),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("in the past"));

    for (message, cohort) in [
        ("Blue meets in room 4 today", "Blue"),
        ("Lunch is at 12:30", ""),
    ] {
        let r = app
            .post_form(
                "/announcements",
                &[
                    ("message", message),
                    ("cohort", cohort),
                    ("starts", ""),
                    ("ends", ""),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{message}");
    }
    let ada = app.other_browser();
    ada.login_ok("ada", &ada_pw).await;
    let bob = app.other_browser();
    bob.login_ok("bob", &bob_pw).await;
    let ada_home = ada.get_html("/").await;
    assert!(
        ada_home.contains("Blue meets in room 4 today") && ada_home.contains("Lunch is at 12:30")
    );
    let bob_home = bob.get_html("/").await;
    assert!(
        !bob_home.contains("Blue meets in room 4"),
        "another cohort's: {bob_home}"
    );
    assert!(bob_home.contains("Lunch is at 12:30"));
    let staff = app.get_html("/students").await;
    assert!(staff.contains("Lunch is at 12:30") && !staff.contains("Blue meets in room 4"));

    // The hub's feed: both, with their groups; a wrong secret is refused.
    let f = feed(&app).await;
    let list = f["announcements"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{f}");
    let blue = list
        .iter()
        .find(|a| a["message"] == "Blue meets in room 4 today")
        .unwrap();
    assert_eq!(blue["group"], "cohort-blue");
    let all = list
        .iter()
        .find(|a| a["message"] == "Lunch is at 12:30")
        .unwrap();
    assert_eq!(all["group"], Value::Null);
    let r = app
        .client
        .get(app.url("/oauth/announcements"))
        .basic_auth(HUB_CLIENT, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Ada dismisses the lunch one: gone for her (here and in the feed's list), not for Bob.
    let id = all["id"].as_i64().unwrap();
    let r = ada
        .client
        .post(ada.url(&format!("/announcements/{id}/dismiss")))
        .header("Referer", ada.url("/account/password"))
        .form(&[("csrf_token", csrf_from(&ada_home).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        TestApp::location(&r),
        "/account/password",
        "back where it was dismissed"
    );
    assert!(!ada.get_html("/").await.contains("Lunch is at 12:30"));
    assert!(bob.get_html("/").await.contains("Lunch is at 12:30"));
    let f = feed(&app).await;
    let all = f["announcements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap()
        .clone();
    assert_eq!(all["dismissed_by"], serde_json::json!(["ada"]));

    // The counselor ends Blue's early: gone for everyone.
    let blue_id = blue["id"].as_i64().unwrap();
    let r = app
        .post_form_from(
            "/announcements",
            &format!("/announcements/{blue_id}/end"),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(!ada.get_html("/").await.contains("Blue meets in room 4"));
    assert_eq!(
        feed(&app).await["announcements"].as_array().unwrap().len(),
        1
    );
    let list = app.get_html("/announcements").await;
    assert!(
        list.contains(&format!(r#"data-id="{blue_id}" data-state="ended""#)),
        "{list}"
    );
    for action in ["announcement.post", "announcement.end"] {
        assert!(
            app.count(&format!(
                "SELECT count(*) FROM audit_log WHERE action = '{action}'"
            ))
            .await
                >= 1
        );
    }
}

#[tokio::test]
async fn an_announcement_goes_by_itself_at_its_end_by_the_camps_clock() {
    // The camp's clock is a file (`[calendar] test_clock_file`): hubdesk's pages and the hub's
    // feed read "now" from it, so the end comes when the clock says, not the wall's.
    let clock = std::env::temp_dir().join(format!("hubdesk-clock-{}", uuid::Uuid::new_v4()));
    std::fs::write(&clock, "2027-07-06T09:00:00Z").unwrap();
    let file = clock.clone();
    let app = spawn_app_with(move |c| c.calendar.test_clock_file = Some(file)).await;
    let ada_pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.as_counselor().await;
    // Typed in the camp's zone (UTC here): on from 09:00 to 10:00 by the camp's clock.
    let r = app
        .post_form(
            "/announcements",
            &[
                ("message", "Fire drill now"),
                ("starts", "2027-07-06T09:00"),
                ("ends", "2027-07-06T10:00"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let ada = app.other_browser();
    ada.login_ok("ada", &ada_pw).await;
    // On at 09:59:59 (the control: the wall's clock, in 2026, is before its start).
    std::fs::write(&clock, "2027-07-06T09:59:59Z").unwrap();
    assert!(ada.get_html("/").await.contains("Fire drill now"));
    assert_eq!(
        feed(&app).await["announcements"].as_array().unwrap().len(),
        1
    );
    // Gone at 10:00, on hubdesk's pages and in the hub's feed; the staff page says it ended.
    std::fs::write(&clock, "2027-07-06T10:00:00Z").unwrap();
    assert!(!ada.get_html("/").await.contains("Fire drill now"));
    assert!(feed(&app).await["announcements"]
        .as_array()
        .unwrap()
        .is_empty());
    let staff = app.get_html("/announcements").await;
    assert!(staff.contains("data-state=\"ended\""), "{staff}");
    let _ = std::fs::remove_file(&clock);
}

#[tokio::test]
async fn students_cannot_post_announcements() {
    let app = spawn_app().await;
    let ada_pw = app.create_student("Ada Lovelace", "ada", None).await;
    app.login_ok("ada", &ada_pw).await;
    assert_eq!(
        app.get("/announcements").await.status(),
        StatusCode::FORBIDDEN
    );
}
