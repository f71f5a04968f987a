use std::sync::OnceLock;

use hubdesk::{
    app::Application,
    config::Config,
    db::{self, EmbeddedPostgres},
    domain::{Actor, DisplayName, NewAccount, NewPassword, Role, Username},
    roster,
    state::{Adapters, AppState},
};
use reqwest::{redirect::Policy, Client, Response};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{Executor, PgPool};

/// The server's maintenance URL: `DATABASE_URL`, or a private PostgreSQL started once under
/// `target/test-postgres` (left running for the next run).
fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let dir = std::env::var("CARGO_TARGET_TMPDIR").unwrap_or_else(|_| "/tmp".into());
            let pg = EmbeddedPostgres::start(&std::path::Path::new(&dir).join("test-postgres"))
                .expect("embedded PostgreSQL");
            let url = pg.url("postgres");
            std::mem::forget(pg);
            url
        }
    })
    .clone()
}

fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("DATABASE_URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

pub struct TestApp {
    pub addr: String,
    pub client: Client,
    pub pool: PgPool,
    pub state: AppState,
    pub db_name: String,
    /// The first handle of a test drops the test's database when it goes (clones made by
    /// `other_browser` do not).
    owns_database: bool,
}

impl Drop for TestApp {
    /// Drops the test's database (`WITH (FORCE)` ends the app's own connections), on a thread
    /// of its own because `Drop` cannot await.
    fn drop(&mut self) {
        if !self.owns_database {
            return;
        }
        let (server, name) = (server_url(), self.db_name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let admin = db::pool_for(&server).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                    .await?;
                admin.close().await;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e:#}", self.db_name);
        }
    }
}

pub const PASSWORD: &str = "plum-rocket-lantern-7";
pub const HUB_CLIENT: &str = "jupyterhub";
pub const HUB_SECRET: &str = "hub-secret-0123456789-abcdefghijklmnopqrstuv";
pub const HUB_CALLBACK: &str = "http://127.0.0.1:8000/hub/oauth_callback";
pub const OTHER_LOGGED_OUT: &str = "http://127.0.0.1:8001/logged-out";
pub const OTHER_SECRET: &str = "other-secret-0123456789-abcdefghijklmnopqrs";

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_state(tweak, |_| {}).await
}

/// The real app with changed configuration and changed handles (fake external systems, extra
/// job handlers), built through `Application::build_on` like production.
pub async fn spawn_app_with_state(
    tweak: impl FnOnce(&mut Config),
    handles: impl FnOnce(&mut AppState),
) -> TestApp {
    spawn_app_with_adapters(tweak, Adapters::default(), handles).await
}

/// The real app on fake external systems (`Adapters`), e.g. a `FakeHub`.
pub async fn spawn_app_with_adapters(
    tweak: impl FnOnce(&mut Config),
    adapters: Adapters,
    handles: impl FnOnce(&mut AppState),
) -> TestApp {
    let server = server_url();
    let db_name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = db::pool_for(&server)
        .await
        .expect("connect to test PostgreSQL");
    admin
        .execute(format!("CREATE DATABASE \"{db_name}\"").as_str())
        .await
        .expect("create test database");
    admin.close().await;

    let mut config = Config {
        bind: "127.0.0.1:0".into(),
        database_url: Some(SecretString::new(with_database(&server, &db_name))),
        hub_url: "http://127.0.0.1:9/hub/".into(),
        camp_name: "Test Camp".into(),
        ..Config::default()
    };
    config.oidc.clients = vec![
        hubdesk::config::OidcClientConfig {
            id: HUB_CLIENT.into(),
            secret: Some(SecretString::new(HUB_SECRET.into())),
            secret_file: None,
            redirect_uris: vec![HUB_CALLBACK.into()],
            require_pkce: true,
            // The hub reads userinfo, not the id_token; its client keeps the smaller ES256.
            id_token_signed_response_alg: "ES256".into(),
            post_logout_redirect_uris: Vec::new(),
            allowed_groups: Vec::new(),
        },
        hubdesk::config::OidcClientConfig {
            id: "other-app".into(),
            secret: Some(SecretString::new(OTHER_SECRET.into())),
            secret_file: None,
            redirect_uris: vec!["http://127.0.0.1:8001/callback".into()],
            require_pkce: false,
            id_token_signed_response_alg: "RS256".into(),
            post_logout_redirect_uris: vec![OTHER_LOGGED_OUT.into()],
            allowed_groups: Vec::new(),
        },
    ];
    // Homes under a directory of this test's own, never in the repository.
    let data_dir = std::env::temp_dir().join(format!("hubdesk-test-{}", &db_name[2..14]));
    config.data_dir = data_dir;
    // A hub given as an adapter stands for a configured one: pages then speak of hub problems
    // as they would with a real `[hub] api_token` (the token itself is never used).
    if adapters.hub.is_some() {
        config.hub.api_token = Some(SecretString::new("fake-hub-adapter".into()));
    }
    // The spawn timeline's sweep runs when a test says (`state.board.sweep()`), so the hub
    // calls a test counts are its own.
    config.hub.timeline_secs = 0;
    tweak(&mut config);
    config
        .homes
        .resolve(&config.data_dir.clone())
        .expect("homes configuration");
    let pool = db::pool_for(config.database_url.as_ref().unwrap().expose_secret())
        .await
        .expect("test pool");
    db::MIGRATOR.run(&pool).await.expect("migrations");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    config.public_url = format!("http://127.0.0.1:{port}");
    let mut state = AppState::with_adapters(pool.clone(), config, adapters)
        .await
        .expect("app state");
    handles(&mut state);
    let app = Application::build_on(listener, state)
        .await
        .expect("build app");
    let addr = format!("http://127.0.0.1:{}", app.port());
    let state = app.state.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        client: client(),
        pool,
        state,
        db_name,
        owns_database: true,
    }
}

pub fn client() -> Client {
    Client::builder()
        .redirect(Policy::none())
        .cookie_store(true)
        .build()
        .unwrap()
}

/// The password on the first login card of a credentials page.
pub fn password_on_card(html: &str) -> String {
    let marker = "class=\"card-password\">";
    let start = html.find(marker).expect("a login card with a password") + marker.len();
    html[start..].split('<').next().unwrap().trim().to_string()
}

/// The value of the last `csrf_token` hidden field in an HTML page: the page's own form comes
/// after the nav's logout form (on /login their tokens differ).
pub fn csrf_from(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.rfind(marker).expect("page has a csrf_token field") + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// A form id as a fresh rendering of a single-use form would give it.
pub fn fresh_form_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The `form_id` of the first form on `html` that posts to `action`.
pub fn form_id_for(html: &str, action: &str) -> Option<String> {
    let start = html.find(&format!("action=\"{action}\""))?;
    let form = &html[start..];
    let form = &form[..form.find("</form>")?];
    let marker = "name=\"form_id\" value=\"";
    let at = form.find(marker)? + marker.len();
    Some(form[at..].split('"').next()?.to_string())
}

impl TestApp {
    /// The URL of this test's own database.
    pub fn database_url(&self) -> String {
        self.state
            .config
            .database_url
            .as_ref()
            .expect("tests run on DATABASE_URL")
            .expose_secret()
            .clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn get_html(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// Posts a form with the CSRF token from `page` (a path whose HTML holds the token).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        self.post_form_from(path, path, fields).await
    }

    pub async fn post_form_from(
        &self,
        token_page: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Response {
        let page = self.get_html(token_page).await;
        let token = csrf_from(&page);
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        // A single-use form carries its id: the one its page gave it (a form not on the page
        // gets a fresh one, as a reloaded page would).
        let form_id = if fields.iter().any(|(k, _)| *k == "form_id") {
            None
        } else {
            Some(form_id_for(&page, path).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()))
        };
        if let Some(id) = &form_id {
            form.push(("form_id", id));
        }
        self.client
            .post(self.url(path))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_user(&self, role: Role, username: &str, password: &str) {
        let name = Username::parse(username).unwrap();
        let display = DisplayName::parse(&format!("{username} person")).unwrap();
        let password = NewPassword::parse(password, 8, username).unwrap();
        let account = NewAccount {
            username: name,
            display_name: display,
            password,
        };
        self.state
            .roster
            .create_staff(&Actor::System, &account, role)
            .await
            .unwrap();
    }

    /// Creates a student through the roster and returns the generated password.
    pub async fn create_student(
        &self,
        display_name: &str,
        username: &str,
        cohort: Option<&str>,
    ) -> String {
        let csv = format!(
            "display_name,username,cohort\n{display_name},{username},{}\n",
            cohort.unwrap_or("")
        );
        let rows = roster::import::parse(csv.as_bytes()).unwrap();
        let mut conn = self.pool.acquire().await.unwrap();
        let plan = roster::import::plan(&mut conn, rows).await.unwrap();
        let creds = self
            .state
            .roster
            .create_students(&Actor::System, &hubdesk::domain::Reach::All, &plan, "test")
            .await
            .unwrap();
        creds[0].password.clone()
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.post_form_from(
            "/login",
            "/login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Logs in and asserts success.
    pub async fn login_ok(&self, username: &str, password: &str) {
        let r = self.login(username, password).await;
        assert_eq!(
            r.status(),
            303,
            "login of {username} failed: {}",
            r.text().await.unwrap_or_default()
        );
    }

    pub async fn as_counselor(&self) {
        self.create_user(Role::Counselor, "connie", PASSWORD).await;
        self.login_ok("connie", PASSWORD).await;
    }

    pub async fn as_admin(&self) {
        self.create_user(Role::Admin, "boss", PASSWORD).await;
        self.login_ok("boss", PASSWORD).await;
    }

    /// A second browser (own cookie jar) on the same app.
    pub fn other_browser(&self) -> TestApp {
        TestApp {
            addr: self.addr.clone(),
            client: client(),
            pool: self.pool.clone(),
            state: self.state.clone(),
            db_name: self.db_name.clone(),
            owns_database: false,
        }
    }

    /// `GET /api/v1/jobs/{id}` until the job is in one of `states` (or 90 s pass: a bug fails
    /// the test instead of hanging it).
    pub async fn job_until(&self, token: &str, id: &str, states: &[&str]) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(90);
        loop {
            let body: serde_json::Value = self
                .client
                .get(self.url(&format!("/api/v1/jobs/{id}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if states.iter().any(|s| body["state"] == *s) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} never became {states:?}: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The job once it has ended (succeeded or failed).
    pub async fn job_done(&self, token: &str, id: &str) -> serde_json::Value {
        self.job_until(token, id, &["succeeded", "failed"]).await
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// GET the redirect target of `r` (a 303 after a form).
    pub async fn follow(&self, r: &Response) -> Response {
        let location = Self::location(r);
        assert!(!location.is_empty(), "no redirect: {}", r.status());
        self.get(&location).await
    }

    pub fn location(r: &Response) -> String {
        r.headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    pub async fn api_token(&self) -> String {
        self.api_token_named("sync").await
    }

    pub async fn api_token_named(&self, name: &str) -> String {
        let token = hubdesk::auth::secret::random_token();
        let mut conn = self.pool.acquire().await.unwrap();
        db::api_tokens::insert(
            &mut conn,
            None,
            name,
            &hubdesk::auth::secret::hash_token(&token),
        )
        .await
        .unwrap();
        token
    }
}

pub fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
