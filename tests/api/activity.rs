//! Jobs as people and scripts see them: the runner the app starts, the job page that follows a
//! job to its end, and `GET /api/v1/jobs/{id}`.
use std::{sync::Arc, time::Duration};

use hubdesk::{
    db,
    jobs::{BoxFuture, JobContext, JobError, JobHandler},
};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_state, TestApp};

/// Two steps, then a result; `gate` keeps it running until the test lets it finish.
struct TwoSteps {
    gate: Arc<tokio::sync::Semaphore>,
}

impl JobHandler for TwoSteps {
    fn kind(&self) -> &'static str {
        "test.two_steps"
    }
    fn run<'a>(&'a self, ctx: &'a JobContext) -> BoxFuture<'a, Result<Value, JobError>> {
        Box::pin(async move {
            ctx.step("prepared").await?;
            let _permit = self.gate.acquire().await.map_err(JobError::fatal)?;
            ctx.step("finished").await?;
            Ok(json!({"files": 3}))
        })
    }
}

async fn enqueue(app: &TestApp, kind: &str) -> uuid::Uuid {
    let mut conn = app.pool.acquire().await.unwrap();
    db::jobs::enqueue(&mut conn, kind, &json!({}), "connie", 1)
        .await
        .unwrap()
}

async fn job_json(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    let r = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn until_state(app: &TestApp, token: &str, id: &str, want: &str) -> Value {
    app.job_until(token, id, &[want]).await
}

#[tokio::test]
async fn the_app_runs_jobs_and_the_page_follows_them_to_the_end() {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let handler = Arc::new(TwoSteps { gate: gate.clone() });
    let app = spawn_app_with_state(|_| {}, |s| s.job_handlers.push(handler)).await;
    app.as_counselor().await;
    let token = app.api_token().await;
    let id = enqueue(&app, "test.two_steps").await;
    app.state.jobs.wake();

    let running = until_state(&app, &token, &id.to_string(), "running").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut page = String::new();
    while tokio::time::Instant::now() < deadline {
        page = app.get_html(&format!("/jobs/{id}")).await;
        if page.contains("prepared") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        page.contains("http-equiv=\"refresh\""),
        "a running job's page refreshes itself"
    );
    assert!(page.contains("data-state=\"running\""));
    assert!(page.contains("prepared") && !page.contains("finished</span>"));
    assert_eq!(running["kind"], "test.two_steps");

    gate.add_permits(1);
    let done = until_state(&app, &token, &id.to_string(), "succeeded").await;
    let steps: Vec<&str> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["prepared", "finished"]);
    assert!(done["steps"][0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(done["result"], json!({"files": 3}));
    assert_eq!(done["error"], Value::Null);
    assert_eq!(done["id"], id.to_string());

    let page = app.get_html(&format!("/jobs/{id}")).await;
    assert!(
        !page.contains("http-equiv=\"refresh\""),
        "a finished job's page stays put"
    );
    assert!(page.contains("data-state=\"succeeded\"") && page.contains("data-step=\"finished\""));
    // The raw result is a disclosure for admins; a kind without words shows as recorded.
    assert!(
        !page.contains("&quot;files&quot;: 3") && page.contains("<code>test.two_steps</code></h1>")
    );
    let admin = app.other_browser();
    admin.as_admin().await;
    let page = admin.get_html(&format!("/jobs/{id}")).await;
    assert!(page.contains("id=\"job-details\"") && page.contains("&quot;files&quot;: 3"));
    let list = app.get_html("/jobs").await;
    assert!(list.contains(&format!("data-id=\"{id}\"")));
}

#[tokio::test]
async fn job_api_answers_404_and_401_with_a_reason() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let (status, body) = job_json(&app, &token, &uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "not_found");
    let (status, _) = job_json(&app, &token, "not-a-uuid").await;
    assert_eq!(status, 404);
    let r = app
        .client
        .get(app.url(&format!("/api/v1/jobs/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
}

#[tokio::test]
async fn job_pages_are_for_staff_and_empty_states_say_what_will_come() {
    let app = spawn_app().await;
    app.as_counselor().await;
    let page = app.get_html("/jobs").await;
    assert!(page.contains("id=\"no-jobs\""));
    // Creating a student queues their home as a job.
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    let page = app.get_html("/jobs").await;
    assert!(page.contains("Create the homes of 1 new student"), "{page}");
    assert!(page.contains("data-kind=\"homes.create_many\""));
    let student = app.other_browser();
    student.login_ok("ada", &pw).await;
    assert_eq!(student.get("/jobs").await.status(), 403);
    assert_eq!(
        app.get(&format!("/jobs/{}", uuid::Uuid::new_v4()))
            .await
            .status(),
        404
    );
    // A job that failed shows its error.
    let id = enqueue(&app, "test.unknown").await;
    sqlx::query(
        "UPDATE jobs SET state = 'failed', error = 'the hub could not be reached', finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await
    .unwrap();
    let page = app.get_html(&format!("/jobs/{id}")).await;
    assert!(page.contains("id=\"job-error\"") && page.contains("the hub could not be reached"));
}
