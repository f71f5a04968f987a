//! Homes as counselors and scripts use them: the student page's buttons and the homes API, on a
//! real filesystem under the test's own data dir, with the app's job runner doing the work.
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{csrf_from, fresh_form_id, spawn_app, spawn_app_with_state, TestApp};

async fn job_state(app: &TestApp, token: &str, id: &str) -> Value {
    app.job_done(token, id).await
}

/// Waits until the home the student's creation queued exists and its job has finished (until
/// then a reset is refused as "in progress").
async fn home_of(app: &TestApp, username: &str) -> std::path::PathBuf {
    let home = app.state.homes.root().join(username);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !home.exists()
        || app
            .count("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
            .await
            > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no home for {username}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    home
}

fn job_of(location: &str) -> String {
    location
        .strip_prefix("/jobs/")
        .expect("a job page")
        .to_string()
}

#[tokio::test]
async fn a_counselor_resets_and_restores_a_home_from_the_student_page() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let token = app.api_token().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    let home = home_of(&app, "ada").await;
    std::fs::write(home.join("analysis.ipynb"), "my work").unwrap();

    let page = app.get_html("/students/ada").await;
    assert!(page.contains("id=\"home-size\""), "{page}");
    assert!(page.contains("id=\"no-archives\""));
    let csrf = csrf_from(&page);
    let r = app
        .client
        .post(app.url("/students/ada/home/reset"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_id", &fresh_form_id()),
            ("scope", "all"),
            ("reason", "broken kernel"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let done = job_state(&app, &token, &job_of(&TestApp::location(&r))).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert!(!home.join("analysis.ipynb").exists(), "a fresh home");

    let page = app.get_html("/students/ada").await;
    assert!(
        page.contains("broken kernel") && page.contains("class=\"archive\""),
        "{page}"
    );
    let archive = page
        .split("class=\"archive\" data-id=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = app
        .client
        .post(app.url("/students/ada/home/restore"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_id", &fresh_form_id()),
            ("archive", archive.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let done = job_state(&app, &token, &job_of(&TestApp::location(&r))).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        std::fs::read_to_string(home.join("analysis.ipynb")).unwrap(),
        "my work",
        "the restore brought the file back"
    );
    // Without the form's token nothing is queued.
    let r = app
        .client
        .post(app.url("/students/ada/home/reset"))
        .form(&[("scope", "all")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A bad scope is a 400 with a reason; a staff name or nobody is a 404.
    let r = app
        .client
        .post(app.url("/students/ada/home/reset"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_id", &fresh_form_id()),
            ("scope", "everything"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .post(app.url("/students/connie/home/reset"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_id", &fresh_form_id()),
            ("scope", "all"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_homes_api_answers_the_contract_and_a_second_operation_is_409() {
    // No job handlers: queued jobs stay queued, so "one is in progress" is deterministic.
    let app = spawn_app_with_state(|_| {}, |s| s.job_handlers.clear()).await;
    app.create_student("Ada Lovelace", "ada", None).await;
    let token = app.api_token().await;
    let api = |method: reqwest::Method, path: &str| {
        app.client
            .request(method, app.url(&format!("/api/v1{path}")))
            .bearer_auth(&token)
    };
    let home: Value = api(reqwest::Method::GET, "/students/ada/home")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(home["exists"], false, "the create job has not run");
    assert_eq!(home["archives"], json!([]));
    assert!(home.get("server").is_some() && home.get("bytes").is_some());
    // The job that lays ada's home is queued: a reset must wait for it.
    let r = api(reqwest::Method::POST, "/students/ada/home/reset")
        .json(&json!({"scope": "environment"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "her home is still being made");
    sqlx::query("DELETE FROM jobs")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = api(reqwest::Method::POST, "/students/ada/home/reset")
        .json(&json!({"scope": "environment"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert!(r.headers().get("location").is_some());
    let job: Value = r.json().await.unwrap();
    assert!(job["job"].as_str().is_some());
    let r = api(reqwest::Method::POST, "/students/ada/home/reset")
        .json(&json!({"scope": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "conflict");
    assert!(body["message"].as_str().unwrap().contains("in progress"));
    let r = api(reqwest::Method::POST, "/students/ada/home/restore")
        .json(&json!({"archive": "20260101T000000Z-x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no such archive");
    let r = api(reqwest::Method::POST, "/students/ada/home/reset")
        .json(&json!({"scope": "sideways"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = api(reqwest::Method::GET, "/students/nobody/home")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// The entries of a zip, with each file's content (symlinks as their target).
fn zip_entries(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut content = String::new();
        if f.is_file() || f.is_symlink() {
            std::io::Read::read_to_string(&mut f, &mut content).unwrap();
        }
        out.insert(f.name().unwrap().to_string(), content);
    }
    out
}

#[tokio::test]
async fn homes_download_as_zip_with_links_stored_never_followed() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let pw = app
        .create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    app.create_student("Bob Smith", "bob", Some("blue")).await;
    let ada = home_of(&app, "ada").await;
    let bob = home_of(&app, "bob").await;
    std::fs::create_dir_all(ada.join("project")).unwrap();
    std::fs::write(ada.join("project/data.csv"), "a,b\n1,2\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ada.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink("../bob", ada.join("bob-link")).unwrap();
    std::fs::write(bob.join("bob.txt"), "bob's").unwrap();

    let r = app.get("/students/ada/home.zip").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("content-type").unwrap(), "application/zip");
    let entries = zip_entries(&r.bytes().await.unwrap());
    assert_eq!(entries["project/data.csv"], "a,b\n1,2\n");
    assert_eq!(entries["passwd-link"], "/etc/passwd", "stored as a link");
    assert_eq!(entries["bob-link"], "../bob");
    assert!(
        !entries
            .keys()
            .any(|k| k.starts_with("bob-link/") || k.contains("bob.txt")),
        "links are never followed: {entries:?}"
    );
    assert!(
        !entries.values().any(|v| v.contains("root:")),
        "no /etc content"
    );

    let r = app.get("/students/homes.zip?cohort=blue").await;
    assert_eq!(r.status(), 200);
    let entries = zip_entries(&r.bytes().await.unwrap());
    assert_eq!(entries["ada/project/data.csv"], "a,b\n1,2\n");
    assert_eq!(entries["bob/bob.txt"], "bob's");
    assert_eq!(
        app.get("/students/homes.zip?cohort=nobody").await.status(),
        404
    );

    // A student downloads their own home, and only theirs.
    let student = app.other_browser();
    student.login_ok("ada", &pw).await;
    let r = student.get("/account/home.zip").await;
    assert_eq!(r.status(), 200);
    let entries = zip_entries(&r.bytes().await.unwrap());
    assert!(entries.contains_key("project/data.csv"));
    assert_eq!(student.get("/students/bob/home.zip").await.status(), 403);
    assert!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'home.export'")
            .await
            >= 3
    );
}

#[tokio::test]
async fn the_student_list_shows_home_sizes_measured_in_the_background_and_sorts_by_them() {
    let app = spawn_app().await;
    app.as_counselor().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    app.create_student("Bob Smith", "bob", None).await;
    app.create_student("Cy Young", "cy", None).await;
    let ada = home_of(&app, "ada").await;
    home_of(&app, "bob").await;
    home_of(&app, "cy").await;
    std::fs::write(ada.join("big.csv"), vec![b'x'; 3_000_000]).unwrap();
    std::fs::remove_dir(app.state.homes.root().join("cy")).ok(); // an empty home removed by hand
    let measured = hubdesk::homes::usage::measure_all(&app.state.homes)
        .await
        .unwrap();
    assert_eq!(measured, 3);
    let page = app.get_html("/students?sort=usage&dir=desc").await;
    let order: Vec<&str> = page
        .split("data-username=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert_eq!(order[0], "ada", "largest first: {order:?}");
    let ada_row = page
        .split("data-username=\"ada\"")
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    assert!(ada_row.contains("2.9 MiB / 5 GiB"), "{ada_row}");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE username = 'cy' AND home_bytes IS NULL AND home_measured_at IS NOT NULL")
            .await,
        1,
        "no home: measured as none"
    );
}

#[tokio::test]
async fn only_an_admin_purges_old_archives_and_recent_ones_stay() {
    let app = spawn_app().await;
    app.as_counselor().await;
    assert_eq!(
        app.get("/homes/purge").await.status(),
        403,
        "counselors cannot"
    );
    let admin = app.other_browser();
    admin.as_admin().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    home_of(&app, "ada").await;
    let actor = hubdesk::domain::Actor::System;
    let ada = hubdesk::domain::Username::parse("ada").unwrap();
    app.state
        .homes
        .reset(&ada, hubdesk::homes::ResetScope::All, "old", &actor)
        .await
        .unwrap();
    app.state
        .homes
        .reset(&ada, hubdesk::homes::ResetScope::All, "recent", &actor)
        .await
        .unwrap();
    // The first archive is from last summer.
    sqlx::query(
        "UPDATE home_archives SET created_at = now() - interval '90 days' WHERE reason = 'old'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let page = admin.get_html("/homes/purge").await;
    assert!(page.contains("id=\"purge-archives\"") && page.contains("data-confirm"));
    let csrf = csrf_from(&page);
    let r = admin
        .client
        .post(admin.url("/homes/purge"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_id", &fresh_form_id()),
            ("before", "not a date"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "the form again, with the message");
    assert!(r.text().await.unwrap().contains("Enter a date"));
    let cutoff = (time::OffsetDateTime::now_utc() - time::Duration::days(30)).date();
    let r = admin
        .client
        .post(admin.url("/homes/purge"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("form_id", &fresh_form_id()),
            ("before", cutoff.to_string().as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(
        TestApp::location(&r).contains("Deleted+1+archive"),
        "{}",
        TestApp::location(&r)
    );
    let left: Vec<String> = app
        .state
        .homes
        .archives(&ada)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.reason)
        .collect();
    assert_eq!(left, ["recent"]);
}
