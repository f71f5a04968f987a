//! The authorization matrix: every route the app registers (read from the route table, so a
//! new route cannot be missed) × who asks (nobody, a student, a counselor of cohort Alpha, a
//! counselor of cohort Beta, an admin; for the API: no token, a student's token, each
//! counselor's own token, an admin's, the command line's) × a student of Alpha or of Beta.
//! Refused exactly where expected (login, 401, 403 with the reason), and every list a Beta
//! counselor reads leaves Alpha's student out.
use std::collections::BTreeMap;

use hubdesk::{
    domain::{Actor, Reach, Role},
    web::routes::{self, Access, Route},
};
use reqwest::{Method, StatusCode};

use crate::helpers::{csrf_from, spawn_app, TestApp, PASSWORD};

/// Alpha's student: a name that appears nowhere else, so a page that shows it is caught.
const ALPHA_STUDENT: &str = "annalpha";
const BETA_STUDENT: &str = "bobbeta";
/// A counselor no test logs in as (the staff routes' target).
const STAFF_TARGET: &str = "zedstaff";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Nobody,
    Student,
    CounselorA,
    CounselorB,
    Admin,
    /// API only: the command line's token (no owner).
    Cli,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Alpha,
    Beta,
}

/// What the matrix expects of one request.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Login,
    Unauthorized,
    Forbidden,
    /// 403 naming the student or cohort as not theirs.
    NotYours,
    Allowed,
}

fn expect(route: &Route, who: Who, target: Target) -> Expect {
    use Access::*;
    let targeted = route.names_target() && !route.path.starts_with("/staff");
    match (route.access, who) {
        (Public, _) => Expect::Allowed,
        (User | Counselor | Admin, Who::Nobody) => Expect::Login,
        (Token | AdminToken, Who::Nobody | Who::Student) => Expect::Unauthorized,
        (User, _) => Expect::Allowed,
        (Counselor, Who::Student) => Expect::Forbidden,
        (Admin, w) if w != Who::Admin => Expect::Forbidden,
        (AdminToken, w) if w != Who::Admin && w != Who::Cli => Expect::Forbidden,
        (Counselor | Token, Who::CounselorA) if targeted && target == Target::Beta => {
            Expect::NotYours
        }
        (Counselor | Token, Who::CounselorB) if targeted && target == Target::Alpha => {
            Expect::NotYours
        }
        _ => Expect::Allowed,
    }
}

/// The route's path with its parameters filled for `target`.
fn fill(route: &Route, target: Target) -> String {
    let (student, cohort, slug) = match target {
        Target::Alpha => (ALPHA_STUDENT, "Alpha", "alpha"),
        Target::Beta => (BETA_STUDENT, "Beta", "beta"),
    };
    let username = if route.path.starts_with("/staff") {
        STAFF_TARGET
    } else {
        student
    };
    let none = uuid::Uuid::nil().to_string();
    route
        .path
        .replace("{username}", username)
        .replace("{cohort}", cohort)
        .replace("{slug}", slug)
        // disable | enable | unlock: unlock changes nothing here.
        .replace("{action}", "unlock")
        .replace("{id}", "987654")
        .replace("{job}", &none)
        .replace("{draft}", &none)
        .replace("{form_id}", &none)
        .replace("{key}", "nosuch")
        .replace("{switch}", "nosuch")
        .replace("{instance_id}", "i-0123456789abcdef0")
}

struct Cast {
    app: TestApp,
    browsers: BTreeMap<Who, (TestApp, String)>,
    tokens: BTreeMap<Who, String>,
}

async fn cast() -> Cast {
    let app = spawn_app().await;
    let ann_password = app
        .create_student("Ann Alpha", ALPHA_STUDENT, Some("Alpha"))
        .await;
    app.create_student("Bob Beta", BETA_STUDENT, Some("Beta"))
        .await;
    for (role, name) in [
        (Role::Counselor, "caraalpha"),
        (Role::Counselor, "codybeta"),
        (Role::Admin, "adaadmin"),
        (Role::Counselor, STAFF_TARGET),
    ] {
        app.create_user(role, name, PASSWORD).await;
    }
    let roster = &app.state.roster;
    for (name, cohort) in [("caraalpha", "Alpha"), ("codybeta", "Beta")] {
        roster
            .set_reach(&Actor::System, name, Reach::Cohorts(vec![cohort.into()]))
            .await
            .unwrap();
    }
    let mut browsers = BTreeMap::new();
    let mut tokens = BTreeMap::new();
    for (who, name, password) in [
        (Who::Student, ALPHA_STUDENT, ann_password.as_str()),
        (Who::CounselorA, "caraalpha", PASSWORD),
        (Who::CounselorB, "codybeta", PASSWORD),
        (Who::Admin, "adaadmin", PASSWORD),
    ] {
        let b = app.other_browser();
        b.login_ok(name, password).await;
        let csrf = csrf_from(&b.get_html("/account/password").await);
        browsers.insert(who, (b, csrf));
        let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = $1")
            .bind(name)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        let username = hubdesk::domain::Username::parse(name).unwrap();
        // A student cannot make one on a page; planted here, it must not work either.
        let token = if who == Who::Student {
            let t = hubdesk::auth::secret::random_token();
            let mut conn = app.pool.acquire().await.unwrap();
            hubdesk::db::api_tokens::insert(
                &mut conn,
                Some(id),
                "planted",
                &hubdesk::auth::secret::hash_token(&t),
            )
            .await
            .unwrap();
            t
        } else {
            hubdesk::account::tokens::create(&app.pool, id, &username, "matrix")
                .await
                .unwrap()
        };
        tokens.insert(who, token);
    }
    tokens.insert(Who::Cli, app.api_token().await);
    browsers.insert(Who::Nobody, (app.other_browser(), String::new()));
    Cast {
        app,
        browsers,
        tokens,
    }
}

async fn page_request(cast: &Cast, route: &Route, who: Who, path: &str) -> reqwest::Response {
    let (b, csrf) = &cast.browsers[&who];
    let method = Method::from_bytes(route.method.as_bytes()).unwrap();
    let mut req = b.client.request(method.clone(), b.url(path));
    if method == Method::POST {
        // The session's CSRF token and no form id: a single-use form refuses before acting.
        req = req.form(&[("csrf_token", csrf.as_str())]);
    }
    req.send().await.unwrap()
}

async fn api_request(cast: &Cast, route: &Route, who: Who, path: &str) -> reqwest::Response {
    let method = Method::from_bytes(route.method.as_bytes()).unwrap();
    let mut req = cast.app.client.request(method.clone(), cast.app.url(path));
    if let Some(t) = cast.tokens.get(&who) {
        req = req.bearer_auth(t);
    }
    if method != Method::GET {
        req = req.header("Content-Type", "application/json").body("{}");
    }
    req.send().await.unwrap()
}

fn judge(got: StatusCode, location: &str, body: &str, want: &Expect) -> Result<(), String> {
    let ok = match want {
        Expect::Login => got == StatusCode::SEE_OTHER && location.starts_with("/login"),
        Expect::Unauthorized => got == StatusCode::UNAUTHORIZED,
        Expect::Forbidden => got == StatusCode::FORBIDDEN,
        Expect::NotYours => {
            got == StatusCode::FORBIDDEN
                && (body.contains("not in one of your cohorts")
                    || body.contains("is not one of yours"))
        }
        Expect::Allowed => {
            got != StatusCode::FORBIDDEN
                && got != StatusCode::UNAUTHORIZED
                && !location.starts_with("/login")
                && got != StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {want:?}, got {got} → {location} {}",
            &body[..body.len().min(200)]
        ))
    }
}

#[tokio::test]
async fn every_route_refuses_exactly_whom_it_should() {
    let cast = cast().await;
    let table = routes::registered();
    assert!(
        table.len() > 100,
        "the route table was not recorded: {table:?}"
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    // Pages first: the API's allowed calls may reset Alpha's student (ending her session).
    let (pages, api): (Vec<&Route>, Vec<&Route>) = table
        .iter()
        .filter(|r| r.access != Access::Public)
        .partition(|r| !r.access.is_api());
    for route in pages.into_iter().chain(api) {
        let people: &[Who] = if route.access.is_api() {
            &[
                Who::Nobody,
                Who::Student,
                Who::CounselorA,
                Who::CounselorB,
                Who::Admin,
                Who::Cli,
            ]
        } else {
            &[
                Who::Nobody,
                Who::Student,
                Who::CounselorA,
                Who::CounselorB,
                Who::Admin,
            ]
        };
        let targets: &[Target] = if route.names_target() {
            &[Target::Alpha, Target::Beta]
        } else {
            &[Target::Alpha]
        };
        for &target in targets {
            let path = fill(route, target);
            for &who in people {
                let want = expect(route, who, target);
                let r = if route.access.is_api() {
                    api_request(&cast, route, who, &path).await
                } else {
                    page_request(&cast, route, who, &path).await
                };
                let status = r.status();
                let location = TestApp::location(&r);
                let body = r.text().await.unwrap_or_default();
                checked += 1;
                if let Err(e) = judge(status, &location, &body, &want) {
                    failures.push(format!("{} {} as {who:?}: {e}", route.method, path));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "authorization matrix: {checked} requests over {} routes ({} public, not asked)",
        table.len(),
        table.iter().filter(|r| r.access == Access::Public).count()
    );
    assert!(checked > 500, "only {checked} requests");
}

#[tokio::test]
async fn what_a_counselor_reads_leaves_out_other_cohorts() {
    let cast = cast().await;
    let reads: Vec<Route> = routes::registered()
        .into_iter()
        .filter(|r| r.method == "GET" && matches!(r.access, Access::Counselor | Access::Token))
        .collect();
    let mut leaks = Vec::new();
    for route in &reads {
        // A path naming a target names Beta's (Alpha's is refused, above).
        let path = fill(route, Target::Beta);
        let r = if route.access.is_api() {
            api_request(&cast, route, Who::CounselorB, &path).await
        } else {
            page_request(&cast, route, Who::CounselorB, &path).await
        };
        let body = r.bytes().await.unwrap();
        if body
            .windows(ALPHA_STUDENT.len())
            .any(|w| w == ALPHA_STUDENT.as_bytes())
        {
            leaks.push(path);
        }
    }
    assert!(
        leaks.is_empty(),
        "Beta's counselor sees {ALPHA_STUDENT} on {leaks:?}"
    );
    // The control: the same reads by Alpha's counselor, and by a counselor of every cohort,
    // do show her (the check above can fail).
    for who in [Who::CounselorA, Who::Admin] {
        for path in ["/students", "/audit", "/board", "/students/export.csv"] {
            let route = reads.iter().find(|r| r.path == path).unwrap();
            let body = page_request(&cast, route, who, path)
                .await
                .text()
                .await
                .unwrap();
            assert!(
                body.contains(ALPHA_STUDENT),
                "{who:?} does not see her on {path}"
            );
        }
        let body = api_request(
            &cast,
            &reads
                .iter()
                .find(|r| r.path == "/api/v1/students")
                .unwrap()
                .clone(),
            who,
            "/api/v1/students",
        )
        .await
        .text()
        .await
        .unwrap();
        assert!(
            body.contains(ALPHA_STUDENT),
            "{who:?}'s token does not list her"
        );
    }
}

impl Cast {
    /// `GET path` with `token`.
    async fn with_token(&self, path: &str, token: &str) -> reqwest::Response {
        let url = self.app.url(path);
        self.app
            .client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn set_reach(&self, counselor: &str, reach: Reach) {
        let roster = &self.app.state.roster;
        roster
            .set_reach(&Actor::System, counselor, reach)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn removing_an_assignment_takes_effect_on_the_next_request() {
    let cast = cast().await;
    let (cara, _) = &cast.browsers[&Who::CounselorA];
    let token = &cast.tokens[&Who::CounselorA];
    let page = format!("/students/{ALPHA_STUDENT}");
    let api = format!("/api/v1/students/{ALPHA_STUDENT}/home");
    assert_eq!(cara.get(&page).await.status(), 200);
    assert_ne!(cast.with_token(&api, token).await.status(), 403);
    cast.set_reach("caraalpha", Reach::Cohorts(vec!["Beta".into()]))
        .await;
    let r = cara.get(&page).await;
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("not in one of your cohorts (Beta)"), "{body}");
    assert_eq!(cast.with_token(&api, token).await.status(), 403);
    // Every cohort again: back at once.
    cast.set_reach("caraalpha", Reach::All).await;
    assert_eq!(cara.get(&page).await.status(), 200);
    // A disabled owner's token stops working.
    let (boss, csrf) = &cast.browsers[&Who::Admin];
    let form_id = uuid::Uuid::new_v4().to_string();
    let r = boss
        .client
        .post(boss.url("/staff/caraalpha/disable"))
        .form(&[("csrf_token", csrf.as_str()), ("form_id", &form_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(cast.with_token(&api, token).await.status(), 401);
}

#[test]
fn routes_are_registered_only_through_the_table() {
    // The matrix walks the table; a route added any other way would escape it.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("web/routes.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap();
                for needle in [".route(", "web::resource(", "web::scope(\"/"] {
                    if text.contains(needle)
                        && !(needle == "web::scope(\"/" && path.ends_with("app.rs"))
                    {
                        offenders.push(format!("{}: {needle}", path.display()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "routes outside web::routes::Table: {offenders:?}"
    );
}
