//! Hand out (issue 19) through the real pages, the API and the app's own job runner, on a real
//! filesystem: a counselor hands `week1/` to a cohort; each home gets it, a student's own file
//! of the same name stays and the course's copy lands beside it, listed on the student's page
//! and on their landing page; other cohorts get nothing; wrong fields come back beside their
//! fields; a scoped counselor cannot hand out to another cohort; a late joiner gets it by the
//! API; what a killed hand-out leaves (a half-written staged file, half a folder) is finished by
//! the next one with nothing lost or written twice.
use std::path::{Path, PathBuf};

use reqwest::StatusCode;

use crate::helpers::{spawn_app_with, TestApp};

fn course_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hubdesk-courses-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("week1/data")).unwrap();
    std::fs::write(dir.join("week1/notes.ipynb"), "{\"cells\": [\"course\"]}").unwrap();
    std::fs::write(dir.join("week1/data/table one.csv"), "a,b\n1,2\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.join("week1/passwd")).unwrap();
    dir
}

fn home(app: &TestApp, u: &str) -> PathBuf {
    app.state.config.homes.root.clone().unwrap().join(u)
}

async fn wait_home(app: &TestApp, u: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !home(app, u).is_dir() {
        assert!(tokio::time::Instant::now() < deadline, "no home for {u}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every path under `top` (links not followed).
fn tree(top: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let rel = format!("{rel}/{}", e.file_name().to_string_lossy());
            out.push(rel.clone());
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &rel, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(top, "", &mut out);
    out.sort();
    out
}

async fn hand_out(app: &TestApp, fields: &[(&str, &str)]) -> reqwest::Response {
    app.post_form_from("/coursework", "/coursework/handout", fields)
        .await
}

#[tokio::test]
async fn a_counselor_hands_a_folder_to_a_cohort_and_nothing_of_a_students_is_overwritten() {
    let courses = course_dir();
    let c = courses.clone();
    let app = spawn_app_with(move |cfg| cfg.homes.courses = Some(c)).await;
    let ada_pw = app.create_student("Ada Lovelace", "ada", Some("Red")).await;
    app.create_student("Bo Bell", "bo", Some("Red")).await;
    app.create_student("Cy Cole", "cy", Some("Blue")).await;
    for u in ["ada", "bo", "cy"] {
        wait_home(&app, u).await;
    }
    std::fs::create_dir_all(home(&app, "ada").join("week1")).unwrap();
    std::fs::write(home(&app, "ada").join("week1/notes.ipynb"), "my answers").unwrap();
    app.as_counselor().await;
    let token = app.api_token().await;

    let page = app.get_html("/coursework").await;
    assert!(page.contains("<option value=\"week1\""), "{page}");
    // Wrong fields come back beside them, nothing queued.
    let r = hand_out(
        &app,
        &[("folder", "week1"), ("cohort", ""), ("username", "")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"to-error\""));
    let r = hand_out(
        &app,
        &[("folder", "week9"), ("cohort", "Red"), ("username", "")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("id=\"folder-error\"") && body.contains("no course folder"),
        "{body}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM jobs WHERE kind = 'homes.hand_out'")
            .await,
        0
    );

    let r = hand_out(
        &app,
        &[("folder", "week1"), ("cohort", "Red"), ("username", "")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let job = TestApp::location(&r)
        .trim_start_matches("/jobs/")
        .to_string();
    let done = app.job_done(&token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");

    // Ada's own notebook stays; the course's is beside it; the rest is there as the course has it.
    let ada = home(&app, "ada");
    assert_eq!(read(&ada.join("week1/notes.ipynb")), "my answers");
    assert_eq!(
        read(&ada.join("week1/notes (handout).ipynb")),
        "{\"cells\": [\"course\"]}"
    );
    assert_eq!(read(&ada.join("week1/data/table one.csv")), "a,b\n1,2\n");
    assert_eq!(
        std::fs::read_link(ada.join("week1/passwd")).unwrap(),
        PathBuf::from("/etc/passwd"),
        "a link stays a link"
    );
    let bo = home(&app, "bo");
    assert_eq!(
        read(&bo.join("week1/notes.ipynb")),
        "{\"cells\": [\"course\"]}"
    );
    assert!(!home(&app, "cy").join("week1").exists(), "Blue got nothing");
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'home.hand_out' AND target = 'cohort:Red'")
            .await,
        1
    );
    // The conflict on the student's page, and on Ada's own landing page.
    let staff = app.get_html("/students/ada").await;
    assert!(
        staff.contains("notes (handout).ipynb") && staff.contains("id=\"handouts\""),
        "{staff}"
    );
    let ada_browser = app.other_browser();
    ada_browser.login_ok("ada", &ada_pw).await;
    let landing = ada_browser.get_html("/").await;
    assert!(
        landing.contains("id=\"handout-conflicts\"") && landing.contains("notes (handout).ipynb")
    );

    // Again: nothing is written twice.
    let before = tree(&ada);
    let r = hand_out(
        &app,
        &[("folder", "week1"), ("cohort", "Red"), ("username", "")],
    )
    .await;
    let job = TestApp::location(&r)
        .trim_start_matches("/jobs/")
        .to_string();
    assert_eq!(app.job_done(&token, &job).await["result"]["written"], 0);
    assert_eq!(tree(&ada), before);

    // A late joiner, by the API (the same service): 202 and the job.
    app.create_student("Dee Dunn", "dee", Some("Red")).await;
    wait_home(&app, "dee").await;
    let r = app
        .client
        .post(app.url("/api/v1/coursework/handouts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"folder": "week1", "username": "dee"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = r.json().await.unwrap();
    let done = app.job_done(&token, body["job"].as_str().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        read(&home(&app, "dee").join("week1/data/table one.csv")),
        "a,b\n1,2\n"
    );
    let r = app
        .client
        .post(app.url("/api/v1/coursework/handouts"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"folder": "week1", "cohort": "Red", "username": "dee"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let _ = std::fs::remove_dir_all(&courses);
}

#[tokio::test]
async fn a_counselor_of_another_cohort_cannot_hand_out_to_this_one() {
    let courses = course_dir();
    let c = courses.clone();
    let app = spawn_app_with(move |cfg| cfg.homes.courses = Some(c)).await;
    app.create_student("Ada Lovelace", "ada", Some("Red")).await;
    wait_home(&app, "ada").await;
    app.as_counselor().await;
    sqlx::query("UPDATE users SET cohorts = ARRAY['Blue'] WHERE username = 'connie'")
        .execute(&app.pool)
        .await
        .unwrap();
    // The form offers only Blue; a forged Red (or Ada by name) is refused with the reason.
    let page = app.get_html("/coursework").await;
    assert!(!page.contains("<option value=\"Red\""), "{page}");
    let r = hand_out(
        &app,
        &[("folder", "week1"), ("cohort", "Red"), ("username", "")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = hand_out(
        &app,
        &[("folder", "week1"), ("cohort", ""), ("username", "ada")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!home(&app, "ada").join("week1").exists());
    // The control: with Red in reach it goes.
    sqlx::query("UPDATE users SET cohorts = ARRAY['Blue', 'Red'] WHERE username = 'connie'")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = hand_out(
        &app,
        &[("folder", "week1"), ("cohort", "Red"), ("username", "")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let _ = std::fs::remove_dir_all(&courses);
}

#[tokio::test]
async fn what_a_killed_hand_out_left_is_finished_by_the_next_with_nothing_lost_or_doubled() {
    let courses = course_dir();
    let c = courses.clone();
    let app = spawn_app_with(move |cfg| cfg.homes.courses = Some(c)).await;
    app.create_student("Ada Lovelace", "ada", Some("Red")).await;
    wait_home(&app, "ada").await;
    // The state a SIGKILL mid-hand-out leaves (files land by rename, so each is whole or
    // absent): half the folder in the home, a half-written file in hubdesk's staging directory.
    let ada = home(&app, "ada");
    std::fs::create_dir_all(ada.join("week1/data")).unwrap();
    std::fs::write(ada.join("week1/data/table one.csv"), "a,b\n1,2\n").unwrap();
    std::fs::write(ada.join("week1/mine.txt"), "the student's").unwrap();
    let root = app.state.config.homes.root.clone().unwrap();
    let staging = root.join(".hubdesk-tmp-handout-ada");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("f1"), "{\"cel").unwrap();
    app.as_counselor().await;
    let token = app.api_token().await;
    let r = hand_out(
        &app,
        &[("folder", "week1"), ("cohort", "Red"), ("username", "")],
    )
    .await;
    let job = TestApp::location(&r)
        .trim_start_matches("/jobs/")
        .to_string();
    let done = app.job_done(&token, &job).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["written"], 2,
        "notes and the link; the csv was there: {done}"
    );
    assert_eq!(
        tree(&ada.join("week1")),
        [
            "/data",
            "/data/table one.csv",
            "/mine.txt",
            "/notes.ipynb",
            "/passwd"
        ]
    );
    assert_eq!(read(&ada.join("week1/mine.txt")), "the student's");
    assert_eq!(
        read(&ada.join("week1/notes.ipynb")),
        "{\"cells\": [\"course\"]}"
    );
    assert!(!staging.exists(), "the staging directory is gone");
    let _ = std::fs::remove_dir_all(&courses);
}

/// The child of `a_hand_out_killed_mid_way_resumes_with_nothing_lost_or_doubled`: hands
/// `week1` out to ana and hangs after two files (the third staged, not renamed in).
#[tokio::test]
#[ignore = "runs only as a child process of the kill -9 test"]
async fn handout_child_process_hangs_mid_way() {
    let Ok(url) = std::env::var("HANDOUT_CHILD_DATABASE_URL") else {
        return;
    };
    let env = |k: &str| PathBuf::from(std::env::var(k).unwrap());
    let pool = hubdesk::db::pool_for(&url).await.unwrap();
    let homes = open_homes(
        pool,
        env("HANDOUT_CHILD_ROOT"),
        env("HANDOUT_CHILD_COURSES"),
    )
    .await;
    homes.set_failpoint(Some(hubdesk::homes::Failpoint {
        step: "handout:2".into(),
        when: hubdesk::homes::FailWhen::BeforeRecord,
        action: hubdesk::homes::FailAction::Hang(env("HANDOUT_CHILD_MARKER")),
    }));
    let folder = hubdesk::homes::handout::CourseFolder::parse("week1").unwrap();
    let ana = hubdesk::domain::Username::parse("ana").unwrap();
    let _ = homes.hand_out_home(&ana, &folder).await;
    unreachable!("the failpoint hangs until the parent kills this process");
}

async fn open_homes(pool: sqlx::PgPool, root: PathBuf, courses: PathBuf) -> hubdesk::homes::Homes {
    let mut config = hubdesk::config::HomesConfig {
        root: Some(root),
        courses: Some(courses),
        ..hubdesk::config::HomesConfig::default()
    };
    config.resolve(Path::new("/nonexistent")).unwrap();
    hubdesk::homes::Homes::open(&config, pool).await.unwrap()
}

#[tokio::test]
async fn a_hand_out_killed_mid_way_resumes_with_nothing_lost_or_doubled() {
    let courses = course_dir();
    for n in 1..=4 {
        std::fs::write(
            courses.join(format!("week1/part {n}.ipynb")),
            format!("part {n}"),
        )
        .unwrap();
    }
    let app = spawn_app_with(|_| {}).await;
    let base = std::env::temp_dir().join(format!("hubdesk-handout-kill-{}", uuid::Uuid::new_v4()));
    let root = base.join("homes");
    std::fs::create_dir_all(root.join("ana/week1")).unwrap();
    std::fs::write(root.join("ana/week1/notes.ipynb"), "my answers").unwrap();
    let marker = base.join("reached");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "handout::handout_child_process_hangs_mid_way",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("HANDOUT_CHILD_DATABASE_URL", app.database_url())
        .env("HANDOUT_CHILD_ROOT", &root)
        .env("HANDOUT_CHILD_COURSES", &courses)
        .env("HANDOUT_CHILD_MARKER", &marker)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    while !marker.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the child exited before the failpoint: {status}");
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the child never hung"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // Two files in, the third staged in hubdesk's staging directory.
    let staging = root.join(".hubdesk-tmp-handout-ana");
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 1);
    child.kill().unwrap(); // SIGKILL
    assert!(!child.wait().unwrap().success());

    // After the restart: the same hand-out again (the job's retry does this), once the dead
    // session's lock has gone.
    let homes = open_homes(app.pool.clone(), root.clone(), courses.clone()).await;
    let folder = hubdesk::homes::handout::CourseFolder::parse("week1").unwrap();
    let ana = hubdesk::domain::Username::parse("ana").unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let placed = loop {
        match homes.hand_out_home(&ana, &folder).await {
            Ok(p) => break p,
            Err(hubdesk::homes::HomesError::Busy(_)) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the killed lock stayed"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(placed.unchanged, 2, "the two files already in: {placed:?}");
    assert_eq!(
        tree(&root.join("ana/week1")),
        [
            "/data",
            "/data/table one.csv",
            "/notes (handout).ipynb",
            "/notes.ipynb",
            "/part 1.ipynb",
            "/part 2.ipynb",
            "/part 3.ipynb",
            "/part 4.ipynb",
            "/passwd",
        ]
    );
    assert_eq!(read(&root.join("ana/week1/notes.ipynb")), "my answers");
    for n in 1..=4 {
        assert_eq!(
            read(&root.join(format!("ana/week1/part {n}.ipynb"))),
            format!("part {n}")
        );
    }
    assert!(!staging.exists(), "the staging directory is gone");
    let _ = std::fs::remove_dir_all(&base);
    let _ = std::fs::remove_dir_all(&courses);
}
