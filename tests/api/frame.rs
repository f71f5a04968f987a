//! The app's frame and its words (issue 15): error pages inside the frame with the right status,
//! `Cache-Control: no-store` on every page with a person's data, jobs and the audit log in
//! plain language, times on the camp's clock across a DST change, setup notices for admins
//! only, and the log a person (or a collector) reads.
use std::{
    io::Read,
    process::{Command, Stdio},
    time::Duration,
};

use hubdesk::{config::TimeZoneName, domain::Role};
use serde_json::Value;

use crate::helpers::{csrf_from, spawn_app, spawn_app_with, TestApp, PASSWORD};

async fn student(app: &TestApp, name: &str, username: &str) -> TestApp {
    let pw = app.create_student(name, username, Some("9B")).await;
    let s = app.other_browser();
    s.login_ok(username, &pw).await;
    s
}

fn no_store(r: &reqwest::Response) -> bool {
    r.headers()
        .get("cache-control")
        .is_some_and(|v| v.to_str().unwrap().contains("no-store"))
}

#[tokio::test]
async fn error_pages_are_inside_the_frame_with_the_right_status() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let ada = student(&app, "Ada Lovelace", "ada").await;

    // A student on a staff page: 403, her own top bar, who she is, where to go.
    let r = ada.get("/students").await;
    assert_eq!(r.status(), 403);
    assert!(no_store(&r));
    let page = r.text().await.unwrap();
    for needle in [
        "class=\"topbar",
        "<a href=\"/\">My notebook</a>",
        "action=\"/logout\"",
        "You are logged in as <strong>Ada Lovelace</strong> (<code>ada</code>, student)",
        "You do not have access to this page.",
        "href=\"/\">Your start page",
        "<title>Not allowed · Test Camp</title>",
    ] {
        assert!(page.contains(needle), "{needle} missing in:\n{page}");
    }
    assert!(
        !page.contains("href=\"/students\""),
        "no staff link for a student"
    );

    // An unknown student: a 404 that names what was looked for, with the way to the list.
    let r = app.get("/students/nosuch").await;
    assert_eq!(r.status(), 404);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("No student named &#x27;nosuch&#x27;."),
        "{page}"
    );
    assert!(page.contains("<li><a href=\"/students\">The student list</a></li>"));
    assert!(page.contains("<strong>connie person</strong>") && page.contains("counselor)"));
    // Negative control: an unknown page is the generic 404, in the frame as well.
    let r = app.get("/no/such/page").await;
    assert_eq!(r.status(), 404);
    let page = r.text().await.unwrap();
    assert!(page.contains("Page not found.") && page.contains("class=\"topbar"));
    assert!(!page.contains("No student"));
    // A job that does not exist, as a counselor: back to the jobs.
    let r = app.get("/jobs/7").await;
    assert_eq!(r.status(), 404);
    let page = r.text().await.unwrap();
    assert!(page.contains("No job 7.") && page.contains("href=\"/jobs\">All jobs"));

    // Nobody logged in: the page says so and offers the login form (no nav, no logout).
    let anon = app.other_browser();
    let r = anon.get("/nothing-here").await;
    assert_eq!(r.status(), 404);
    let page = r.text().await.unwrap();
    assert!(page.contains("You are not logged in.") && page.contains("href=\"/login\">Log in"));
    assert!(!page.contains("action=\"/logout\""));

    // A form without its token: 403, in the frame, with the reason.
    let r = app
        .client
        .post(app.url("/students/ada/disable"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let page = r.text().await.unwrap();
    assert!(page.contains("This form has expired") && page.contains("class=\"topbar"));

    // A conflict (a counselor disabling herself is refused) keeps its status.
    let admin = app.other_browser();
    admin.create_user(Role::Admin, "boss", PASSWORD).await;
    admin.login_ok("boss", PASSWORD).await;
    let r = admin
        .post_form_from("/staff", "/staff/boss/disable", &[])
        .await;
    assert_eq!(r.status(), 409);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("class=\"topbar") && page.contains("own account"),
        "{page}"
    );
}

#[tokio::test]
async fn every_page_with_a_person_s_data_says_no_store() {
    let app = spawn_app().await;
    app.as_admin().await;
    let ada = student(&app, "Ada Lovelace", "ada").await;
    for path in [
        "/students",
        "/students/ada",
        "/students/new",
        "/students/import",
        "/students/export.csv",
        "/audit",
        "/jobs",
        "/staff",
        "/homes/purge",
        "/account/password",
        "/students/nosuch",
        "/nope",
    ] {
        let r = app.get(path).await;
        assert!(no_store(&r), "{path} ({}) may be cached", r.status());
    }
    for path in ["/", "/account/password", "/account/home.zip", "/students"] {
        let r = ada.get(path).await;
        assert!(
            no_store(&r),
            "{path} ({}) may be cached for a student",
            r.status()
        );
    }
    // The login page and its redirect after logout too (the back button must not bring the
    // previous person's page back).
    let anon = app.other_browser();
    for path in ["/login", "/students"] {
        assert!(no_store(&anon.get(path).await), "{path}");
    }
    // Negative control: what holds nobody's data may be cached.
    let css = app.get("/static/app.css").await;
    assert_eq!(
        css.headers()["cache-control"].to_str().unwrap(),
        "public, max-age=3600"
    );
}

#[tokio::test]
async fn jobs_and_the_audit_log_say_what_happened_to_whom() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let token = app.api_token().await;
    app.create_student("Ada Lovelace", "ada", Some("9B")).await;
    // Her home is created by a job: wait for it, then put work in it and reset it.
    let home = app.state.homes.root().join("ada");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !home.exists()
        || app
            .count("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")
            .await
            > 0
    {
        assert!(tokio::time::Instant::now() < deadline, "no home for ada");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(home.join("analysis.ipynb"), vec![b'x'; 300_000]).unwrap();
    let r = app
        .post_form_from(
            "/students/ada",
            "/students/ada/home/reset",
            &[("scope", "all"), ("reason", "broken kernel")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let job = TestApp::location(&r);
    let id = job.trim_start_matches("/jobs/").to_string();
    let done = app.job_done(&token, &id).await;
    assert_eq!(done["state"], "succeeded", "{done}");

    let page = app.get_html(&job).await;
    assert!(
        page.contains(
            "<h1 id=\"job-title\">Reset <a href=\"/students/ada\">Ada Lovelace</a>&#x27;s home</h1>"
        ),
        "{page}"
    );
    let summary = page
        .split("id=\"job-summary\"")
        .nth(1)
        .unwrap()
        .split("</p>")
        .next()
        .unwrap();
    assert!(
        summary.contains(">done</span>") && summary.contains("<time datetime="),
        "{summary}"
    );
    assert!(
        summary.contains("the old home is in the archive (") && summary.contains(" KiB)"),
        "{summary}"
    );
    assert!(page.contains("<title>Reset Ada Lovelace&#x27;s home (done) · Test Camp</title>"));
    assert!(
        page.contains("data-step=\"reset\">home reset</span>"),
        "{page}"
    );
    // The raw result is for admins only.
    assert!(!page.contains("id=\"job-details\"") && !page.contains("&quot;archive&quot;"));
    let admin = app.other_browser();
    admin.create_user(Role::Admin, "boss", PASSWORD).await;
    admin.login_ok("boss", PASSWORD).await;
    let as_admin = admin.get_html(&job).await;
    assert!(as_admin.contains("id=\"job-details\"") && as_admin.contains("&quot;archive&quot;"));

    // The list: the kind in words, the student linked, the counselor named.
    let list = app.get_html("/jobs").await;
    assert!(list.contains("Reset <a href=\"/students/ada\">Ada Lovelace</a>&#x27;s home"));
    assert!(list.contains("Create the homes of 1 new student"));
    assert!(list.contains("connie person") && !list.contains(">homes.reset<"));

    // The audit log: sentences, the codes only where scripts and filters need them.
    app.post_form_from("/students/ada", "/students/ada/reset-password", &[])
        .await;
    let audit = app.get_html("/audit").await;
    assert!(
        audit.contains("reset <a href=\"/students/ada\">Ada Lovelace</a>&#x27;s password"),
        "{audit}"
    );
    assert!(audit.contains(
        "reset <a href=\"/students/ada\">Ada Lovelace</a>&#x27;s home (the old one is in the archive)"
    ));
    assert!(audit.contains("<option value=\"student.reset_password\" >Password reset</option>"));
    assert!(!audit.contains("<td>student.reset_password</td>"));
    // A student's history reads the same way.
    let history = app.get_html("/students/ada").await;
    assert!(history.contains("<td>Password reset</td>") && history.contains("<td>Home reset</td>"));
}

/// Two audit entries a minute apart across Chicago's spring-forward (2025-03-09 08:00 UTC).
async fn dst_page(zone: &str) -> String {
    let zone = TimeZoneName::parse(zone).unwrap();
    let app = spawn_app_with(move |c| c.ui.timezone = zone).await;
    app.as_counselor().await;
    for at in ["2025-03-09T07:59:00Z", "2025-03-09T08:00:00Z"] {
        sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target) VALUES ($1::timestamptz, 'cli', 'roster.export', NULL)",
        )
        .bind(at)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    app.get_html("/audit?action=roster.export").await
}

#[tokio::test]
async fn times_follow_the_camp_s_clock_across_a_dst_change() {
    let page = dst_page("America/Chicago").await;
    // 07:59 UTC is 01:59 CST; a minute later the clock jumps to 03:00 CDT.
    assert!(
        page.contains("<time datetime=\"2025-03-09T07:59:00Z\" title=\"Sunday 9 March 2025, 01:59 CST · 2025-03-09 07:59 UTC\">"),
        "{page}"
    );
    assert!(page.contains(
        "<time datetime=\"2025-03-09T08:00:00Z\" title=\"Sunday 9 March 2025, 03:00 CDT · 2025-03-09 08:00 UTC\">"
    ));
    assert!(page.contains("camp's clock (America/Chicago)"));
    // Negative control: the same entries on a UTC camp read as UTC.
    let utc = dst_page("UTC").await;
    assert!(utc.contains("title=\"Sunday 9 March 2025, 07:59 UTC · 2025-03-09 07:59 UTC\""));
    assert!(!utc.contains("CST") && !utc.contains("CDT"));
}

#[tokio::test]
async fn the_hub_setup_notice_is_for_admins_and_each_dismisses_it_once() {
    let app = spawn_app().await; // no [hub] api_token
    app.as_admin().await;
    let list = app.get_html("/students").await;
    assert!(list.contains("id=\"setup-hub-not-configured\""), "{list}");
    assert!(app
        .get_html("/jobs")
        .await
        .contains("id=\"setup-hub-not-configured\""));
    // Counselors never see it, nor a configuration warning on the student pages.
    let counselor = app.other_browser();
    counselor.as_counselor().await;
    counselor.create_student("Ada Lovelace", "ada", None).await;
    for path in ["/students", "/students/ada", "/jobs"] {
        let page = counselor.get_html(path).await;
        assert!(!page.contains("setup-hub-not-configured"), "{path}");
        assert!(
            !page.contains("id=\"hub-problem\"") && !page.contains("api_token"),
            "{path}"
        );
    }
    // Dismissed: gone for this admin on every page, and back to where she was.
    let r = app
        .client
        .post(app.url("/notices/hub-not-configured/dismiss"))
        .header("referer", app.url("/jobs?x=1"))
        .form(&[(
            "csrf_token",
            csrf_from(&app.get_html("/jobs").await).as_str(),
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(TestApp::location(&r), "/jobs?x=1");
    assert!(!app
        .get_html("/students")
        .await
        .contains("setup-hub-not-configured"));
    // Another admin still sees it (remembered per admin).
    let other = app.other_browser();
    other.create_user(Role::Admin, "root2", PASSWORD).await;
    other.login_ok("root2", PASSWORD).await;
    assert!(other
        .get_html("/students")
        .await
        .contains("id=\"setup-hub-not-configured\""));
    // A counselor cannot dismiss anything; an unknown notice is a 404.
    let r = counselor
        .post_form_from("/students", "/notices/hub-not-configured/dismiss", &[])
        .await;
    assert_eq!(r.status(), 403);
    let r = other
        .post_form_from("/students", "/notices/nope/dismiss", &[])
        .await;
    assert_eq!(r.status(), 404);
}

/// `hubdesk serve` on the test's database, stderr to a file; `env` added.
struct Served {
    child: std::process::Child,
    url: String,
    log: std::path::PathBuf,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("HUBDESK_") || k == "RUST_LOG" || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
}

async fn serve(app: &TestApp, env: &[(&str, &str)]) -> Served {
    let dir = TempDir(std::env::temp_dir().join(format!("hubdesk-log-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let log = dir.0.join("stderr.log");
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hubdesk"));
    clean_env(&mut cmd);
    cmd.arg("serve")
        .env("DATABASE_URL", app.database_url())
        .env("HUBDESK_DATA_DIR", &dir.0)
        .env("HUBDESK_BIND", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let child = cmd.spawn().expect("start hubdesk serve");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/healthz")).await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Served {
        child,
        url,
        log,
        _dir: dir,
    }
}

impl Served {
    /// Stops the server and returns its log.
    fn stop(mut self) -> Vec<u8> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut bytes = Vec::new();
        std::fs::File::open(&self.log)
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    }
}

/// What the test asks of the server: a login as connie, her list, a 404, an authorize URL
/// whose query carries a secret, a stylesheet. Returns how many requests it made.
async fn traffic(url: &str) -> usize {
    let client = crate::helpers::client();
    let login = client.get(format!("{url}/login")).send().await.unwrap();
    let csrf = csrf_from(&login.text().await.unwrap());
    let r = client
        .post(format!("{url}/login"))
        .form(&[
            ("username", "connie"),
            ("password", PASSWORD),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    for path in [
        "/students",
        "/students/nosuch",
        "/oauth/authorize?client_id=x&code=SECRET-CODE-42",
        "/static/app.css",
    ] {
        client.get(format!("{url}{path}")).send().await.unwrap();
    }
    6
}

#[tokio::test]
async fn the_log_is_one_plain_line_per_request_and_json_on_request() {
    let app = spawn_app().await;
    app.create_user(Role::Counselor, "connie", PASSWORD).await;

    // Text (the default), to a file: no escape codes, one short line per request.
    let served = serve(&app, &[]).await;
    let before = std::fs::read(&served.log).unwrap();
    let made = traffic(&served.url).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = served.stop();
    assert!(!log.contains(&0x1b), "an escape code in a log file");
    let text = String::from_utf8(log).unwrap();
    let request_lines: Vec<&str> = text[before.len()..]
        .lines()
        .filter(|l| l.contains(" request: "))
        .collect();
    assert_eq!(request_lines.len(), made, "one line per request:\n{text}");
    for line in &request_lines {
        assert!(line.len() < 160, "a long request line: {line}");
        assert!(line.contains("ms id="), "{line}");
    }
    let students = request_lines
        .iter()
        .find(|l| l.contains("GET /students 200"))
        .expect("the list's line");
    assert!(students.ends_with("user=connie"), "{students}");
    assert!(request_lines
        .iter()
        .any(|l| l.contains("GET /students/nosuch 404")));
    assert!(request_lines
        .iter()
        .any(|l| l.contains("GET /oauth/authorize?client_id&code ")));
    assert!(!text.contains("SECRET-CODE-42"), "a query value in the log");
    assert!(!text.contains("http.user_agent") && !text.contains("otel."));
    println!("request lines:\n{}", request_lines.join("\n"));

    // JSON lines for a collector.
    let served = serve(&app, &[("HUBDESK_LOG_FORMAT", "json")]).await;
    let made = traffic(&served.url).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = String::from_utf8(served.stop()).unwrap();
    let mut requests = Vec::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["target"] == "request" {
            requests.push(v);
        }
    }
    // `/healthz` polls before the traffic are requests too: count from the login form on.
    let first = requests
        .iter()
        .position(|v| v["fields"]["path"] == "/login")
        .unwrap();
    assert_eq!(requests.len() - first, made, "{log}");
    let list = requests
        .iter()
        .find(|v| v["fields"]["path"] == "/students")
        .unwrap();
    assert_eq!(list["fields"]["status"], 200);
    assert_eq!(list["fields"]["user"], "connie");
    assert_eq!(list["fields"]["method"], "GET");
    assert!(list["fields"]["ms"].as_f64().is_some() && list["fields"]["request_id"].is_string());
}

#[tokio::test]
async fn colours_only_on_a_terminal() {
    // The same command (a warning while reading the configuration, then the migration, a
    // no-op), stderr to a pipe and on a terminal (`script` gives it a pty): escape codes only
    // on the terminal — the control that shows the checks above could see them — and none
    // there either with NO_COLOR.
    let app = spawn_app().await;
    let bin = env!("CARGO_BIN_EXE_hubdesk");
    let dir = TempDir(std::env::temp_dir().join(format!("hubdesk-tty-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let run = |program: &str, args: &[&str], no_color: bool| {
        let mut cmd = Command::new(program);
        clean_env(&mut cmd);
        cmd.args(args)
            .env("DATABASE_URL", app.database_url())
            .env("HUBDESK_DATA_DIR", &dir.0)
            .env("HUBDESK_NOT_A_KEY", "1")
            .stdin(Stdio::null());
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{program} {args:?}: {out:?}");
        out
    };
    let piped = run(bin, &["migrate"], false);
    let warned = |bytes: &[u8]| String::from_utf8_lossy(bytes).contains("HUBDESK_NOT_A_KEY");
    assert!(warned(&piped.stderr), "{piped:?}");
    assert!(!piped.stderr.contains(&0x1b), "escape codes on a pipe");
    let command = format!("{bin} migrate");
    let tty = run("script", &["-qec", &command, "/dev/null"], false);
    assert!(warned(&tty.stdout), "{tty:?}");
    assert!(tty.stdout.contains(&0x1b), "a terminal gets colours");
    let plain_tty = run("script", &["-qec", &command, "/dev/null"], true);
    assert!(warned(&plain_tty.stdout) && !plain_tty.stdout.contains(&0x1b));
}
