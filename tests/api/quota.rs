//! Storage limits on hubdesk's side, on a real filesystem and a real PostgreSQL: the guard (no
//! restore, reset or new home grows a home past its limit; nothing moves when refused, and the
//! same operation under a larger limit goes through), the student page's limit form, the
//! student list and the landing page against the sweep's figures, the API, and zip names that
//! cannot climb out of the extract folder on Windows.
use std::{
    io::Read,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::Duration,
};

use hubdesk::{
    config::{HomesConfig, StorageLimit},
    db,
    domain::{Actor, Username},
    homes::{
        jobs as homes_jobs, quota::QUOTA_LIST, usage, Homes, HomesError, ResetScope, RestoreJob,
    },
    jobs::{Backoff, JobState, Runner, RunnerOptions},
};
use serde_json::{json, Value};

use crate::helpers::{csrf_from, fresh_form_id, spawn_app, spawn_app_with_state, TestApp};

const MIB: u64 = 1 << 20;

fn u(s: &str) -> Username {
    Username::parse(s).unwrap()
}

fn mib(n: u64) -> Option<StorageLimit> {
    Some(StorageLimit::from_bytes(n * MIB).unwrap())
}

/// `n` MiB of data that occupies its blocks (no holes).
fn fill(path: &Path, n: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, vec![7u8; (n * MIB) as usize]).unwrap();
}

struct Fixture {
    app: TestApp,
    base: PathBuf,
    root: PathBuf,
    homes: Homes,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// A homes root of the test's own, with a template holding `template_mib` of data, and the
/// students (their accounts: limits belong to students).
async fn fixture(template_mib: u64, students: &[&str]) -> Fixture {
    let app = spawn_app_with_state(|_| {}, |s| s.job_handlers.clear()).await;
    let base =
        std::env::temp_dir().join(format!("hubdesk-guard-{}", uuid::Uuid::new_v4().simple()));
    let root = base.join("homes");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(base.join("template")).unwrap();
    std::fs::write(base.join("template/README.md"), "# camp\n").unwrap();
    if template_mib > 0 {
        fill(&base.join("template/data/course.bin"), template_mib);
    }
    let mut config = HomesConfig {
        root: Some(root.clone()),
        template: Some(base.join("template")),
        ..HomesConfig::default()
    };
    config.resolve(&base).unwrap();
    let homes = Homes::open(&config, app.pool.clone()).await.unwrap();
    for s in students {
        app.create_student(&format!("{s} x"), s, None).await;
    }
    Fixture {
        app,
        base,
        root,
        homes,
    }
}

impl Fixture {
    async fn limit(&self, who: &str, limit: Option<StorageLimit>) {
        self.homes
            .set_quota(&Actor::System, &u(who), limit)
            .await
            .unwrap();
    }

    fn ino(&self, who: &str) -> u64 {
        std::fs::symlink_metadata(self.root.join(who))
            .unwrap()
            .ino()
    }

    async fn ops(&self, kind: &str) -> i64 {
        self.app
            .count(&format!(
                "SELECT count(*) FROM home_ops WHERE kind = '{kind}'"
            ))
            .await
    }
}

#[tokio::test]
async fn quota_guard_a_restore_larger_than_the_limit_is_refused_and_nothing_moves() {
    let f = fixture(0, &["ana"]).await;
    let actor = Actor::System;
    f.homes.create(&u("ana"), &actor).await.unwrap();
    fill(&f.root.join("ana/data.bin"), 3);
    let old = f
        .homes
        .reset(&u("ana"), ResetScope::All, "big", &actor)
        .await
        .unwrap()
        .archive
        .unwrap();
    f.limit("ana", mib(2)).await;
    let home = f.ino("ana");
    let entry = f.root.join(".archive/ana").join(old.as_str());
    let err = f.homes.restore(&u("ana"), &old, &actor).await.unwrap_err();
    assert!(matches!(err, HomesError::OverQuota(_)), "{err}");
    assert_eq!(err.status_code(), 409);
    let text = err.to_string();
    assert!(
        text.contains(&format!("Restoring archive {old}"))
            && text.contains("more than its storage limit of 2 MiB")
            && text.contains("Nothing was moved"),
        "{text}"
    );
    assert_eq!(f.ino("ana"), home, "the home stayed");
    assert!(entry.join("data.bin").exists(), "the archive stayed");
    assert_eq!(f.ops("restore").await, 0, "not even journalled");

    // The same restore under a limit it fits: it goes through (the guard's negative control).
    f.limit("ana", mib(4)).await;
    f.homes.restore(&u("ana"), &old, &actor).await.unwrap();
    assert_eq!(
        std::fs::metadata(f.root.join("ana/data.bin"))
            .unwrap()
            .len(),
        3 * MIB
    );
}

#[tokio::test]
async fn quota_guard_a_template_larger_than_the_limit_is_refused_unless_the_home_shrinks() {
    let f = fixture(2, &["ana", "bob"]).await;
    let actor = Actor::System;
    f.homes.create(&u("ana"), &actor).await.unwrap();
    // The student deleted the course data: the home is far smaller than the template.
    std::fs::remove_dir_all(f.root.join("ana/data")).unwrap();
    std::fs::write(f.root.join("ana/notes.txt"), "mine").unwrap();
    f.limit("ana", mib(1)).await;
    let home = f.ino("ana");
    let err = f
        .homes
        .reset(&u("ana"), ResetScope::All, "again", &actor)
        .await
        .unwrap_err();
    assert!(matches!(err, HomesError::OverQuota(_)), "{err}");
    assert!(
        err.to_string().contains("Resetting to the template"),
        "{err}"
    );
    assert_eq!(f.ino("ana"), home);
    assert!(f.homes.archives(&u("ana")).await.unwrap().is_empty());
    assert_eq!(f.ops("reset").await, 0);
    // An environment reset only moves things out: allowed at any size.
    std::fs::create_dir(f.root.join("ana/.cache")).unwrap();
    f.homes
        .reset(&u("ana"), ResetScope::Environment, "", &actor)
        .await
        .unwrap();

    // A home already larger than the template: the reset makes it smaller, so it may run
    // even though the result is still over the limit.
    fill(&f.root.join("ana/big.bin"), 4);
    f.homes
        .reset(&u("ana"), ResetScope::All, "shrink", &actor)
        .await
        .unwrap();
    assert!(!f.root.join("ana/big.bin").exists());

    // A new home from a template that does not fit is not laid.
    f.limit("bob", mib(1)).await;
    let err = f.homes.create(&u("bob"), &actor).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("Laying a new home from the template"),
        "{err}"
    );
    assert!(!f.root.join("bob").exists());
    f.limit("bob", mib(10)).await;
    assert!(f.homes.create(&u("bob"), &actor).await.unwrap());
}

#[tokio::test]
async fn quota_guard_an_environment_restore_counts_what_comes_back_and_what_leaves() {
    let f = fixture(0, &["ana"]).await;
    let actor = Actor::System;
    f.homes.create(&u("ana"), &actor).await.unwrap();
    fill(&f.root.join("ana/.local/lib/torch.so"), 3);
    let env = f
        .homes
        .reset(&u("ana"), ResetScope::Environment, "pip", &actor)
        .await
        .unwrap()
        .archive
        .unwrap();
    fill(&f.root.join("ana/work.bin"), 1);
    f.limit("ana", mib(3)).await;
    // 1 MiB of work + 3 MiB coming back > 3 MiB.
    let err = f.homes.restore(&u("ana"), &env, &actor).await.unwrap_err();
    assert!(matches!(err, HomesError::OverQuota(_)), "{err}");
    assert!(!f.root.join("ana/.local").exists());
    // What the restore would take out counts: a 2 MiB .cache in the home leaves for the archive.
    fill(&f.root.join("ana/.cache/pip.bin"), 2);
    f.limit("ana", mib(5)).await;
    let out = f.homes.restore(&u("ana"), &env, &actor).await.unwrap();
    assert!(out.archive.is_some(), "the .cache went to the archive");
    assert!(f.root.join("ana/.local/lib/torch.so").exists());
}

#[tokio::test]
async fn quota_guard_a_restore_job_over_the_limit_fails_once_with_the_reason() {
    let f = fixture(0, &["ana"]).await;
    let actor = Actor::System;
    f.homes.create(&u("ana"), &actor).await.unwrap();
    fill(&f.root.join("ana/data.bin"), 2);
    let old = f
        .homes
        .reset(&u("ana"), ResetScope::All, "", &actor)
        .await
        .unwrap()
        .archive
        .unwrap();
    f.limit("ana", mib(1)).await;
    let pool = f.app.pool.clone();
    let mut conn = pool.acquire().await.unwrap();
    let id = RestoreJob {
        username: "ana".into(),
        archive: old.as_str().into(),
    }
    .enqueue(&mut conn, &actor)
    .await
    .unwrap();
    let runner = Runner::new(pool.clone(), homes_jobs::handlers(f.homes.clone(), None))
        .with_options(RunnerOptions {
            poll_interval: Duration::from_millis(20),
            lease: Duration::from_secs(30),
            heartbeat: None,
            concurrency: 1,
            backoff: Backoff {
                base: Duration::from_millis(10),
                max: Duration::from_millis(50),
            },
            shutdown_grace: Duration::from_secs(5),
        });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let row = loop {
        runner.tick().await.unwrap();
        let row = db::jobs::get(&mut conn, id).await.unwrap().unwrap();
        if row.state.is_final() {
            break row;
        }
        assert!(tokio::time::Instant::now() < deadline, "{row:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(row.state, JobState::Failed, "{row:?}");
    assert_eq!(row.attempts, 1, "not retried: it cannot succeed");
    assert!(
        row.error
            .as_deref()
            .unwrap_or("")
            .contains("storage limit of 1 MiB"),
        "{row:?}"
    );
    assert!(f
        .root
        .join(".archive/ana")
        .join(old.as_str())
        .join("data.bin")
        .exists());
}

// ---- pages, API and list, through the app's own homes root and job runner ----------------

/// Waits until `who`'s home exists and no job is queued or running.
async fn home_of(app: &TestApp, who: &str) -> PathBuf {
    let home = app.state.homes.root().join(who);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !home.exists()
        || app
            .count("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
            .await
            > 0
    {
        assert!(tokio::time::Instant::now() < deadline, "no home for {who}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    home
}

async fn post_limit(
    app: &TestApp,
    csrf: &str,
    who: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let id = fresh_form_id();
    let mut form = vec![("csrf_token", csrf), ("form_id", id.as_str())];
    form.extend_from_slice(fields);
    app.client
        .post(app.url(&format!("/students/{who}/home/quota")))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// With `HUBDESK_QUOTA_SNAPSHOT=DIR`, keeps a page to look at (e.g. as a phone renders it).
fn snapshot(name: &str, html: &str) {
    if let Ok(dir) = std::env::var("HUBDESK_QUOTA_SNAPSHOT") {
        std::fs::write(Path::new(&dir).join(name), html).unwrap();
    }
}

async fn own_limit(app: &TestApp, who: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT home_quota_bytes FROM users WHERE username = $1")
        .bind(who)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn quota_a_counselor_sets_a_limit_with_errors_beside_the_field_and_a_confirmation_below_use()
{
    let app = spawn_app().await;
    app.as_counselor().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    let home = home_of(&app, "ada").await;
    let page = app.get_html("/students/ada").await;
    assert!(
        page.contains("<label for=\"quota-limit\">Storage limit</label>")
            && page.contains("(the default limit)")
            && page.contains("of 5 GiB"),
        "{page}"
    );
    let csrf = csrf_from(&page);

    // Bad input: the page again (422) with the message beside the field and the value kept.
    for (typed, says) in [
        ("lots", "is not a size"),
        ("512KiB", "at least 1 MiB"),
        ("99TiB", "16 TiB"),
    ] {
        let r = post_limit(&app, &csrf, "ada", &[("limit", typed)]).await;
        assert_eq!(r.status(), 422, "{typed}");
        let body = r.text().await.unwrap();
        let field = body
            .split("id=\"quota-limit\"")
            .nth(1)
            .unwrap()
            .split('>')
            .next()
            .unwrap();
        assert!(
            field.contains(&format!("value=\"{typed}\""))
                && field.contains("aria-invalid=\"true\""),
            "{field}"
        );
        let error = body
            .split("id=\"quota-error\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap();
        assert!(error.contains(says), "{typed}: {error}");
    }
    assert_eq!(own_limit(&app, "ada").await, None);

    // Below what the home holds: asked first, nothing saved.
    fill(&home.join("data.bin"), 3);
    let r = post_limit(&app, &csrf, "ada", &[("limit", "2MiB")]).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    snapshot("student-confirm.html", &body);
    let confirm = body
        .split("id=\"quota-confirm\"")
        .nth(1)
        .expect("a confirmation")
        .split("</div>")
        .next()
        .unwrap();
    assert!(
        confirm.contains("holds 3 MiB, more than 2 MiB")
            && confirm.contains("cannot save anything"),
        "{confirm}"
    );
    assert!(
        confirm.contains("name=\"confirm\" value=\"yes\"") && confirm.contains("Set 2 MiB anyway")
    );
    assert_eq!(own_limit(&app, "ada").await, None);
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'home.quota'")
            .await,
        0
    );
    // Confirmed: saved, audited, and in the node's list.
    let r = post_limit(&app, &csrf, "ada", &[("limit", "2MiB"), ("confirm", "yes")]).await;
    assert_eq!(r.status(), 303);
    let back = TestApp::location(&r);
    assert_eq!(back, "/students/ada?notice=quota#home");
    assert_eq!(own_limit(&app, "ada").await, Some(2 << 20));
    let detail: String = sqlx::query_scalar(
        "SELECT detail FROM audit_log WHERE action = 'home.quota' AND target = 'ada'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(detail, "storage limit 2 MiB (was the default (5 GiB))");
    let list = std::fs::read_to_string(app.state.homes.root().join(QUOTA_LIST)).unwrap();
    assert!(
        list.contains("\nhome ada 2097152\n") && list.contains("\ndefault 5368709120\n"),
        "{list}"
    );
    let page = app.get_html(back.trim_end_matches("#home")).await;
    assert!(page.contains("Storage limit saved."), "{page}");
    assert!(
        page.contains("(their own limit; the default is 5 GiB)"),
        "{page}"
    );
    assert!(page.contains("id=\"quota-badge\">full<"), "{page}");
    assert!(
        page.contains("value=\"2 MiB\""),
        "the field shows the limit"
    );

    // Above what the home holds: saved at once (the confirmation's negative control).
    let r = post_limit(&app, &csrf, "ada", &[("limit", "10 MiB")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(own_limit(&app, "ada").await, Some(10 << 20));
    // Empty: back to the default.
    let r = post_limit(&app, &csrf, "ada", &[("limit", "")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(own_limit(&app, "ada").await, None);
    // No token, no change; staff and strangers are not students.
    let r = app
        .client
        .post(app.url("/students/ada/home/quota"))
        .form(&[("limit", "1GiB")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        post_limit(&app, &csrf, "connie", &[("limit", "1GiB")])
            .await
            .status(),
        404
    );
    assert_eq!(
        post_limit(&app, &csrf, "nobody", &[("limit", "1GiB")])
            .await
            .status(),
        404
    );
}

#[tokio::test]
async fn quota_the_list_and_the_landing_page_show_use_against_the_limit() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let mut passwords = std::collections::HashMap::new();
    for who in ["ada", "bob", "cy"] {
        passwords.insert(
            who,
            app.create_student(&format!("{who} x"), who, None).await,
        );
        home_of(&app, who).await;
    }
    let homes = &app.state.homes;
    homes
        .set_quota(&Actor::System, &u("ada"), mib(1))
        .await
        .unwrap();
    homes
        .set_quota(&Actor::System, &u("bob"), mib(1))
        .await
        .unwrap();
    fill(&homes.root().join("ada/data.bin"), 2);
    std::fs::write(homes.root().join("bob/data.bin"), vec![1u8; 950 << 10]).unwrap();
    let report = usage::sweep(homes).await.unwrap();
    assert_eq!(report.full, ["ada"], "{report:?}");
    assert_eq!(report.nearly_full, ["bob"], "{report:?}");
    assert!(report.list_written);
    // Created after the sweep: not measured yet.
    passwords.insert("dee", app.create_student("dee x", "dee", None).await);
    home_of(&app, "dee").await;

    let page = app.get_html("/students").await;
    snapshot("students.html", &page);
    let row = |who: &str| {
        page.split(&format!("data-username=\"{who}\""))
            .nth(1)
            .unwrap()
            .split("</tr>")
            .next()
            .unwrap()
            .to_string()
    };
    assert!(
        row("ada").contains("2 MiB / 1 MiB")
            && row("ada").contains("class=\"badge fill-full\">full<"),
        "{}",
        row("ada")
    );
    assert!(
        row("bob").contains("class=\"badge fill-nearly-full\">nearly full<"),
        "{}",
        row("bob")
    );
    assert!(
        row("cy").contains(" / 5 GiB") && !row("cy").contains("badge fill"),
        "{}",
        row("cy")
    );
    assert!(row("dee").contains("not measured yet"), "{}", row("dee"));
    // On a phone the table becomes labelled cards: every cell says what it is.
    assert!(
        row("ada").matches("data-label=").count() >= 7,
        "{}",
        row("ada")
    );
    let css = app.get_html("/static/app.css").await;
    assert!(css.contains("@media (max-width: 40rem)") && css.contains("td[data-label]::before"));

    let landing = |who: &'static str| {
        let (app, pw) = (app.other_browser(), passwords[who].clone());
        async move {
            app.login_ok(who, &pw).await;
            app.get_html("/").await
        }
    };
    let ada = landing("ada").await;
    let warning = ada
        .split("id=\"storage-warning\">")
        .nth(1)
        .expect("a warning")
        .split("</p>")
        .next()
        .unwrap();
    assert!(warning.contains("Your home is full"), "{warning}");
    assert!(ada.contains("2 MiB of 1 MiB (200 %)"), "{ada}");
    let bob = landing("bob").await;
    assert!(
        bob.contains("Your home is nearly full</strong> (93 % of 1 MiB)")
            || bob.contains("Your home is nearly full</strong> (92 % of 1 MiB)"),
        "{bob}"
    );
    let cy = landing("cy").await;
    assert!(
        !cy.contains("storage-warning") && cy.contains(" of 5 GiB ("),
        "{cy}"
    );
    let dee = landing("dee").await;
    assert!(
        dee.contains("<span id=\"storage-use\">not measured yet</span>"),
        "{dee}"
    );
}

#[tokio::test]
async fn quota_the_api_sets_and_shows_a_students_limit() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    home_of(&app, "ada").await;
    let put = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            app.client
                .put(app.url("/api/v1/students/ada/home/quota"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = put(json!({"limit": "3GiB"})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["own_bytes"], 3u64 << 30);
    assert_eq!(body["quota"]["limit_bytes"], 3u64 << 30);
    assert_eq!(body["quota"]["own_limit"], true);
    assert_eq!(body["list_written"], true);
    let r = put(json!({"limit": 1048576})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(own_limit(&app, "ada").await, Some(1 << 20));
    for bad in [
        json!({"limit": "abc"}),
        json!({"limit": 0}),
        json!({"limit": true}),
        json!({"limit": -5}),
        json!({"size": "1GiB"}),
    ] {
        let r = put(bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = put(json!({"limit": null})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(own_limit(&app, "ada").await, None);
    let r = app
        .client
        .put(app.url("/api/v1/students/nobody/home/quota"))
        .bearer_auth(&token)
        .json(&json!({"limit": "1GiB"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .client
        .put(app.url("/api/v1/students/ada/home/quota"))
        .json(&json!({"limit": "1GiB"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let home: Value = app
        .client
        .get(app.url("/api/v1/students/ada/home"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(home["quota"]["limit_bytes"], 5u64 << 30, "{home}");
    assert_eq!(home["quota"]["own_limit"], false);
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE action = 'home.quota' AND actor = 'token:sync'"
        )
        .await,
        3
    );

    // A restore that would not fit is a 409 with the reason, before any job is queued.
    app.state
        .homes
        .set_quota(&Actor::System, &u("ada"), mib(1))
        .await
        .unwrap();
    fill(&app.state.homes.root().join("ada/data.bin"), 2);
    let reset = app
        .state
        .homes
        .reset(&u("ada"), ResetScope::All, "", &Actor::System)
        .await
        .unwrap();
    let r = app
        .client
        .post(app.url("/api/v1/students/ada/home/restore"))
        .bearer_auth(&token)
        .json(&json!({"archive": reset.archive.unwrap().as_str()}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert!(
        body.to_string().contains("storage limit of 1 MiB"),
        "{body}"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM jobs WHERE kind = 'homes.restore'")
            .await,
        0
    );
}

#[tokio::test]
async fn quota_zip_names_with_backslashes_and_colons_are_mapped_and_read_back() {
    let app = spawn_app().await;
    app.as_counselor().await;
    app.create_student("Ada Lovelace", "ada", None).await;
    let home = home_of(&app, "ada").await;
    for (name, text) in [
        ("..\\..\\startup.bat", "evil"),
        ("C:x.txt", "drive"),
        ("a%5Cb", "literal"),
        ("a\\b", "backslash"),
        ("plain.txt", "plain"),
    ] {
        std::fs::write(home.join(name), text).unwrap();
    }
    std::fs::create_dir(home.join("dir\\sub")).unwrap();
    std::fs::write(home.join("dir\\sub/inner.txt"), "inner").unwrap();
    let r = app.get("/students/ada/home.zip").await;
    assert_eq!(r.status(), 200);
    let bytes = r.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut found = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        assert!(!name.contains('\\') && !name.contains(':'), "{name}");
        assert!(f.enclosed_name().is_some(), "{name} leaves the folder");
        let mut text = String::new();
        if f.is_file() {
            f.read_to_string(&mut text).unwrap();
        }
        found.insert(name, text);
    }
    for (name, text) in [
        ("..%5C..%5Cstartup.bat", "evil"),
        ("C%3Ax.txt", "drive"),
        ("a%5Cb", "literal"),
        ("a%5Cb~2", "backslash"),
        ("plain.txt", "plain"),
        ("dir%5Csub/inner.txt", "inner"),
    ] {
        assert_eq!(
            found.get(name).map(String::as_str),
            Some(text),
            "{name}: {found:?}"
        );
    }
}
