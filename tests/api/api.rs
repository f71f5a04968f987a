use serde_json::{json, Value};

use crate::helpers::spawn_app;

#[tokio::test]
async fn api_requires_a_valid_bearer_token() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/api/v1/students"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthorized");
    let r = app
        .client
        .get(app.url("/api/v1/students"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // A logged-in student's cookie is not an API credential.
    let pw = app.create_student("Ada", "ada", None).await;
    app.login_ok("ada", &pw).await;
    assert_eq!(app.get("/api/v1/students").await.status(), 401);
}

#[tokio::test]
async fn api_lists_creates_imports_resets_disables_and_enables() {
    let app = spawn_app().await;
    let token = app.api_token().await;
    let api = |m: reqwest::Method, p: &str| {
        app.client
            .request(m, app.url(&format!("/api/v1{p}")))
            .bearer_auth(&token)
    };

    let r = api(reqwest::Method::POST, "/students")
        .json(&json!({"display_name": "Ada Lovelace", "cohort": "blue"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store", "a password reply");
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["username"], "adal");
    let pw = created["password"].as_str().unwrap().to_string();
    app.other_browser().login_ok("adal", &pw).await;

    let r = api(reqwest::Method::POST, "/students")
        .json(&json!({"display_name": "X", "username": "adal"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = api(reqwest::Method::POST, "/students")
        .json(&json!({"display_name": "X", "username": "Bad Name"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = api(reqwest::Method::POST, "/students")
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_request");

    let r = api(reqwest::Method::POST, "/students/import")
        .header("content-type", "text/csv")
        .body("display_name,username\nGrace Hopper,grace\nAlan Turing,\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["cache-control"], "no-store", "a password reply");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["created"].as_array().unwrap().len(), 2);
    assert_eq!(body["created"][0]["username"], "grace");
    assert_eq!(body["created"][1]["username"], "alant");

    let r = api(reqwest::Method::POST, "/students/import")
        .header("content-type", "text/csv")
        .body("display_name,username\nNew,newbie\nDup,grace\nBad,9x\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["line"], 4);
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE username = 'newbie'")
            .await,
        0,
        "nothing created"
    );

    let r = api(reqwest::Method::GET, "/students").send().await.unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(
        list[0],
        json!({"username": "adal", "display_name": "Ada Lovelace", "cohort": "blue", "status": "active"})
    );

    let r = api(reqwest::Method::POST, "/students/grace/reset-password")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let new_pw = r.json::<Value>().await.unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string();
    app.other_browser().login_ok("grace", &new_pw).await;

    assert_eq!(
        api(reqwest::Method::POST, "/students/grace/disable")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        app.other_browser().login("grace", &new_pw).await.status(),
        403
    );
    let list: Value = api(reqwest::Method::GET, "/students")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["username"] == "grace" && s["status"] == "disabled"));
    assert_eq!(
        api(reqwest::Method::POST, "/students/grace/enable")
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    app.other_browser().login_ok("grace", &new_pw).await;

    assert_eq!(
        api(reqwest::Method::POST, "/students/nobody/disable")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM audit_log WHERE actor = 'token:sync' AND action NOT LIKE 'home.%'"
        )
        .await,
        6,
        "the API's own actions (the new students' homes are audited too, by their job)"
    );
}
