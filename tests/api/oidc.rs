//! The OIDC provider against the wire contract the hub speaks (see ARCHITECTURE.md).
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hubdesk::oidc::keys::Alg;
use reqwest::{Response, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{
    csrf_from, password_on_card, spawn_app, TestApp, HUB_CALLBACK, HUB_CLIENT, HUB_SECRET,
    OTHER_SECRET,
};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-and-some-more";
/// The hub's state is base64url JSON and may end in '='.
const STATE: &str = "eyJzdGF0ZV9pZCI6ICJhYmMiLCAibmV4dF91cmwiOiAiL2h1Yi8ifQ==";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_path(extra: &[(&str, &str)]) -> String {
    let ch = challenge(VERIFIER);
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", HUB_CLIENT),
        ("redirect_uri", HUB_CALLBACK),
        ("scope", "openid profile groups"),
        ("state", STATE),
        ("code_challenge", ch.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            pairs.push((k, v));
        }
    }
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/oauth/authorize?{q}")
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// Logged-in browser → authorization code.
async fn code_for(app: &TestApp) -> String {
    let r = app.get(&authorize_path(&[])).await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let loc = TestApp::location(&r);
    assert!(loc.starts_with(HUB_CALLBACK), "{loc}");
    let q = query_of(&loc);
    assert_eq!(q["state"], STATE, "state byte-identical");
    q["code"].clone()
}

/// The token request exactly as oauthenticator 17 sends it (client_secret_post, `data=None`).
async fn exchange(app: &TestApp, code: &str, verifier: &str) -> Response {
    app.client
        .post(app.url("/oauth/token"))
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .header("Accept", "application/json")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("code", code),
                    ("grant_type", "authorization_code"),
                    ("redirect_uri", HUB_CALLBACK),
                    ("code_verifier", verifier),
                    ("client_id", HUB_CLIENT),
                    ("client_secret", HUB_SECRET),
                    ("data", "None"),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap()
}

async fn token_form(app: &TestApp, pairs: &[(&str, &str)]) -> Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    app.client
        .post(app.url("/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn userinfo(app: &TestApp, token: &str) -> Response {
    app.client
        .get(app.url("/oauth/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn error_of(r: Response) -> (StatusCode, String) {
    let status = r.status();
    assert_eq!(
        r.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let body: Value = r.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_string())
}

async fn logged_in_student(app: &TestApp) {
    let pw = app
        .create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    app.login_ok("ada", &pw).await;
}

/// grant_type=refresh_token as the hub sends it (client_secret_post).
async fn refresh_with(app: &TestApp, refresh_token: String) -> Response {
    token_form(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
            ("client_id", HUB_CLIENT),
            ("client_secret", HUB_SECRET),
        ],
    )
    .await
}

async fn tokens(app: &TestApp) -> Value {
    let code = code_for(app).await;
    let r = exchange(app, &code, VERIFIER).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn full_code_flow_with_pkce_and_client_secret_post() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let code = code_for(&app).await;
    assert!(code.len() >= 43, "≥128 bits");
    let r = exchange(&app, &code, VERIFIER).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 600);
    assert!(t["refresh_token"].is_string() && t["id_token"].is_string());
    assert_eq!(t["scope"], "openid profile groups");

    let info: Value = userinfo(&app, t["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["preferred_username"], "ada");
    assert_eq!(info["name"], "Ada Lovelace");
    assert_eq!(
        info["groups"],
        serde_json::json!(["students", "cohort-blue"])
    );
    let sub: String = sqlx::query_scalar("SELECT subject::text FROM users WHERE username = 'ada'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(info["sub"], sub);
    // POST works too.
    let r = app
        .client
        .post(app.url("/oauth/userinfo"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn id_token_is_signed_with_the_published_key() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let code = {
        let r = app.get(&authorize_path(&[("nonce", "n-0S6_WzA2Mj")])).await;
        query_of(&TestApp::location(&r))["code"].clone()
    };
    let t: Value = exchange(&app, &code, VERIFIER).await.json().await.unwrap();
    let jwt = t["id_token"].as_str().unwrap();
    let jwks: Value = app.get("/oauth/jwks.json").await.json().await.unwrap();
    let (kid, claims) = verify_id_token(&jwks, jwt).expect("signed by the published key");
    // The signing keys come first, one per algorithm; the hub's client signs with ES256.
    let first_two: Vec<(&str, &str)> = jwks["keys"].as_array().unwrap()[..2]
        .iter()
        .map(|k| (k["alg"].as_str().unwrap(), k["kid"].as_str().unwrap()))
        .collect();
    assert_eq!(first_two[0].0, "RS256");
    assert_eq!(first_two[1], ("ES256", kid.as_str()));
    assert_eq!(claims["iss"], app.state.config.public_url.as_str());
    assert_eq!(claims["aud"], HUB_CLIENT);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["preferred_username"], "ada");
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    // The key persists: a restarted hubdesk on the same database publishes the same one.
    let again = hubdesk::state::AppState::new(app.pool.clone(), (*app.state.config).clone())
        .await
        .unwrap();
    assert_eq!(again.oidc.keys.signing_kid(Alg::ES256), kid);
}

/// Verifies an ES256 id_token against a JWKS document; returns the kid and the claims.
fn verify_id_token(jwks: &Value, jwt: &str) -> Result<(String, Value), String> {
    use p256::ecdsa::{signature::Verifier, Signature, VerifyingKey};
    let parts: Vec<&str> = jwt.split('.').collect();
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let (header, claims) = (decode(parts[0]), decode(parts[1]));
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().ok_or("no kid")?.to_string();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or(format!("kid {kid} is not published"))?;
    let bare =
        serde_json::json!({"kty": jwk["kty"], "crv": jwk["crv"], "x": jwk["x"], "y": jwk["y"]});
    let public = p256::PublicKey::from_jwk_str(&bare.to_string()).unwrap();
    let sig = Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
    VerifyingKey::from(public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .map_err(|e| format!("bad signature: {e}"))?;
    Ok((kid, claims))
}

async fn fresh_id_token(app: &TestApp) -> String {
    let r = app.get(&authorize_path(&[])).await;
    let code = query_of(&TestApp::location(&r))["code"].clone();
    let t: Value = exchange(app, &code, VERIFIER).await.json().await.unwrap();
    t["id_token"].as_str().unwrap().to_string()
}

/// The published kids of the hub's algorithm (ES256), in JWKS order.
async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.get("/oauth/jwks.json").await.json().await.unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn rotate_key_switches_signing_and_keeps_the_old_key_published_for_a_day() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let old_token = fresh_id_token(&app).await;
    let old_kid = app.state.oidc.keys.signing_kid(Alg::ES256);
    assert_eq!(jwks_kids(&app).await, vec![old_kid.clone()]);

    // The real command, on the app's database.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hubdesk"))
        .args(["oidc", "rotate-key"])
        .env("DATABASE_URL", app.database_url())
        .env("HUBDESK_DATA_DIR", std::env::temp_dir())
        .output()
        .expect("run hubdesk oidc rotate-key");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rotate-key failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One key of each algorithm (RS256, ES256) is retired.
    assert!(stdout.contains("2 key(s) retired"), "{stdout}");

    // A running server publishes the new key at its next reload (every minute; here: now)...
    app.state.oidc.keys.reload(&app.pool).await.unwrap();
    let kids = jwks_kids(&app).await;
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert_eq!(kids[0], old_kid, "the old key still signs");
    let new_kid = kids[1].clone();
    assert!(stdout.contains(&new_kid), "{stdout}");
    assert_eq!(app.state.oidc.keys.signing_kid(Alg::ES256), old_kid);
    // ...and signs with it once every cached JWKS can know it (6 minutes; here: aged).
    sqlx::query("UPDATE oidc_keys SET created_at = now() - interval '7 minutes' WHERE kid = $1")
        .bind(&new_kid)
        .execute(&app.pool)
        .await
        .unwrap();
    app.state.oidc.keys.reload(&app.pool).await.unwrap();
    assert_eq!(app.state.oidc.keys.signing_kid(Alg::ES256), new_kid);
    assert_eq!(
        jwks_kids(&app).await,
        vec![new_kid.clone(), old_kid.clone()]
    );
    let jwks: Value = app.get("/oauth/jwks.json").await.json().await.unwrap();
    let (kid, _) = verify_id_token(&jwks, &fresh_id_token(&app).await).unwrap();
    assert_eq!(kid, new_kid, "new id_tokens use the new key");
    let (kid, _) = verify_id_token(&jwks, &old_token).unwrap();
    assert_eq!(
        kid, old_kid,
        "tokens signed before the rotation still verify"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM audit_log WHERE action = 'oidc.rotate_key'")
            .await,
        2,
        "one entry per algorithm"
    );

    // A day later the old key leaves JWKS and the sweeper deletes it.
    sqlx::query("UPDATE oidc_keys SET retired_at = now() - interval '25 hours' WHERE kid = $1")
        .bind(&old_kid)
        .execute(&app.pool)
        .await
        .unwrap();
    app.state.oidc.keys.reload(&app.pool).await.unwrap();
    assert_eq!(jwks_kids(&app).await, vec![new_kid.clone()]);
    let jwks: Value = app.get("/oauth/jwks.json").await.json().await.unwrap();
    assert!(verify_id_token(&jwks, &old_token).is_err());
    let mut conn = app.pool.acquire().await.unwrap();
    hubdesk::db::oauth::delete_expired(&mut conn).await.unwrap();
    assert_eq!(
        app.count("SELECT count(*) FROM oidc_keys WHERE alg = 'ES256'")
            .await,
        1
    );

    // A restart keeps signing with the new key; no second current key appears.
    let again = hubdesk::state::AppState::new(app.pool.clone(), (*app.state.config).clone())
        .await
        .unwrap();
    assert_eq!(again.oidc.keys.signing_kid(Alg::ES256), new_kid);
    assert_eq!(
        app.count("SELECT count(*) FROM oidc_keys WHERE retired_at IS NULL")
            .await,
        2,
        "one current key per algorithm"
    );
}

#[tokio::test]
async fn discovery_document() {
    let app = spawn_app().await;
    let d: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let iss = app.state.config.public_url.clone();
    assert_eq!(iss, app.addr, "the issuer is the URL the app is reached at");
    assert_eq!(d["issuer"], iss.as_str());
    assert_eq!(
        d["authorization_endpoint"],
        format!("{iss}/oauth/authorize")
    );
    assert_eq!(d["token_endpoint"], format!("{iss}/oauth/token"));
    assert_eq!(d["userinfo_endpoint"], format!("{iss}/oauth/userinfo"));
    assert_eq!(d["jwks_uri"], format!("{iss}/oauth/jwks.json"));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
}

#[tokio::test]
async fn client_secret_basic_works_and_basic_with_wrong_secret_is_401() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let code = code_for(&app).await;
    let body = format!("grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}&data=None", crate::helpers::urlenc(HUB_CALLBACK));
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(HUB_CLIENT, Some(HUB_SECRET))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let code = code_for(&app).await;
    let body = body.replace(
        &body[body.find("code=").unwrap()..body.find("&redirect").unwrap()],
        &format!("code={code}"),
    );
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(HUB_CLIENT, Some("wrong-secret"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(error_of(r).await.1, "invalid_client");
}

#[tokio::test]
async fn no_session_goes_to_login_and_comes_back() {
    let app = spawn_app().await;
    let pw = app.create_student("Ada Lovelace", "ada", None).await;
    let path = authorize_path(&[]);
    let r = app.get(&path).await;
    assert_eq!(r.status(), 303);
    let loc = TestApp::location(&r);
    assert!(loc.starts_with("/login?next="), "{loc}");
    let next = url::form_urlencoded::parse(loc.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "next")
        .unwrap()
        .1
        .to_string();
    assert_eq!(next, path);
    let page = app.get_html(&loc).await;
    let token = crate::helpers::csrf_from(&page);
    let r = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("username", "ada"),
            ("password", pw.as_str()),
            ("next", next.as_str()),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(TestApp::location(&r), path);
    let code = code_for(&app).await;
    assert_eq!(exchange(&app, &code, VERIFIER).await.status(), 200);
}

#[tokio::test]
async fn unknown_client_or_unregistered_redirect_uri_never_redirects() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    for bad in [
        authorize_path(&[("client_id", "nope")]),
        authorize_path(&[("redirect_uri", "http://127.0.0.1:8000/hub/oauth_callback/")]),
        authorize_path(&[(
            "redirect_uri",
            "http://127.0.0.1:8000/hub/oauth_callback?x=1",
        )]),
        authorize_path(&[("redirect_uri", "http://evil.example/hub/oauth_callback")]),
        authorize_path(&[("redirect_uri", "")]),
        format!(
            "{}&redirect_uri=http%3A%2F%2Fevil.example%2F",
            authorize_path(&[])
        ),
    ] {
        let r = app.get(&bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(r.headers().get("location").is_none(), "{bad}");
    }
}

#[tokio::test]
async fn authorize_errors_redirect_with_rfc_codes_and_state() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let cases: Vec<(String, &str)> = vec![
        (
            authorize_path(&[("response_type", "token")]),
            "unsupported_response_type",
        ),
        (authorize_path(&[("response_type", "")]), "invalid_request"),
        (
            authorize_path(&[("code_challenge", ""), ("code_challenge_method", "")]),
            "invalid_request",
        ),
        (
            authorize_path(&[("code_challenge_method", "plain")]),
            "invalid_request",
        ),
        (
            authorize_path(&[("code_challenge_method", "")]),
            "invalid_request",
        ),
        (
            authorize_path(&[("code_challenge", "tooshort")]),
            "invalid_request",
        ),
        (
            authorize_path(&[("response_mode", "fragment")]),
            "invalid_request",
        ),
        (
            authorize_path(&[("request_uri", "https://rp.example/req.jwt")]),
            "request_uri_not_supported",
        ),
        (
            format!("{}&state=again", authorize_path(&[])),
            "invalid_request",
        ),
    ];
    for (path, want) in cases {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 302, "{path}");
        let loc = TestApp::location(&r);
        assert!(loc.starts_with(HUB_CALLBACK), "{loc}");
        let q = query_of(&loc);
        assert_eq!(q["error"], want, "{path}");
        assert!(!q.contains_key("code"));
        if !path.ends_with("state=again") {
            assert_eq!(q["state"], STATE);
        }
        // RFC 9207: error responses name the issuer too.
        assert_eq!(q["iss"], app.state.config.public_url.as_str(), "{path}");
    }
    let r = app.get(&authorize_path(&[("prompt", "none")])).await;
    assert_eq!(r.status(), 302, "logged in: prompt=none is fine");
    let anon = app.other_browser();
    let r = anon.get(&authorize_path(&[("prompt", "none")])).await;
    assert_eq!(query_of(&TestApp::location(&r))["error"], "login_required");
}

#[tokio::test]
async fn pkce_mismatch_missing_verifier_and_downgrade_fail() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let code = code_for(&app).await;
    assert_eq!(
        error_of(exchange(&app, &code, "x".repeat(50).as_str()).await).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    // The failed attempt spent the code.
    assert_eq!(
        error_of(exchange(&app, &code, VERIFIER).await).await.1,
        "invalid_grant"
    );
    let code = code_for(&app).await;
    let r = token_form(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", HUB_CALLBACK),
            ("client_id", HUB_CLIENT),
            ("client_secret", HUB_SECRET),
        ],
    )
    .await;
    assert_eq!(error_of(r).await.1, "invalid_grant");

    // A client without required PKCE may skip it, but a verifier without a challenge is a downgrade.
    let other_cb = "http://127.0.0.1:8001/callback";
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", "other-app"),
            ("redirect_uri", other_cb),
            ("scope", "openid"),
            ("state", "s"),
        ])
        .finish();
    let r = app.get(&format!("/oauth/authorize?{q}")).await;
    let code = query_of(&TestApp::location(&r))["code"].clone();
    let r = token_form(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", other_cb),
            ("client_id", "other-app"),
            ("client_secret", OTHER_SECRET),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(error_of(r).await.1, "invalid_grant");
}

#[tokio::test]
async fn reused_code_fails_and_revokes_what_it_issued() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let code = code_for(&app).await;
    let first: Value = exchange(&app, &code, VERIFIER).await.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await.status(), 200);
    assert_eq!(
        error_of(exchange(&app, &code, VERIFIER).await).await.1,
        "invalid_grant"
    );
    assert_eq!(
        userinfo(&app, access).await.status(),
        401,
        "first tokens revoked"
    );
    let r = token_form(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
            ("client_id", HUB_CLIENT),
            ("client_secret", HUB_SECRET),
        ],
    )
    .await;
    assert_eq!(error_of(r).await.1, "invalid_grant");
}

#[tokio::test]
async fn two_concurrent_redemptions_exactly_one_succeeds() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    for _ in 0..5 {
        let code = code_for(&app).await;
        let (a, b) = tokio::join!(
            exchange(&app, &code, VERIFIER),
            exchange(&app, &code, VERIFIER)
        );
        let ok = [a.status(), b.status()]
            .iter()
            .filter(|s| **s == 200)
            .count();
        assert_eq!(ok, 1);
    }
}

#[tokio::test]
async fn expired_code_wrong_client_and_wrong_redirect_uri_fail() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let code = code_for(&app).await;
    sqlx::query("UPDATE oauth_codes SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        error_of(exchange(&app, &code, VERIFIER).await).await.1,
        "invalid_grant"
    );

    let code = code_for(&app).await;
    let r = token_form(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", HUB_CALLBACK),
            ("client_id", "other-app"),
            ("client_secret", OTHER_SECRET),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(error_of(r).await.1, "invalid_grant");

    let code = code_for(&app).await;
    let r = token_form(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:8000/hub/oauth_callback/"),
            ("client_id", HUB_CLIENT),
            ("client_secret", HUB_SECRET),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(error_of(r).await.1, "invalid_grant");
}

#[tokio::test]
async fn client_authentication_failures() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let code = code_for(&app).await;
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", HUB_CALLBACK),
        ("code_verifier", VERIFIER),
    ];
    for creds in [
        vec![("client_id", HUB_CLIENT)],
        vec![("client_id", HUB_CLIENT), ("client_secret", "wrong")],
        vec![("client_id", "ghost"), ("client_secret", HUB_SECRET)],
        vec![],
    ] {
        let mut pairs = base.to_vec();
        pairs.extend(creds);
        let r = token_form(&app, &pairs).await;
        let challenge = r.headers().get("www-authenticate").cloned();
        assert_eq!(
            error_of(r).await,
            (StatusCode::UNAUTHORIZED, "invalid_client".into())
        );
        assert!(
            challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Basic")),
            "a 401 names its scheme (RFC 9110)"
        );
    }
    // The code survived failed client authentication.
    assert_eq!(exchange(&app, &code, VERIFIER).await.status(), 200);
}

#[tokio::test]
async fn token_request_shape_errors() {
    let app = spawn_app().await;
    let auth = [("client_id", HUB_CLIENT), ("client_secret", HUB_SECRET)];
    let mut pairs = auth.to_vec();
    pairs.push(("grant_type", "password"));
    assert_eq!(
        error_of(token_form(&app, &pairs).await).await.1,
        "unsupported_grant_type"
    );
    let mut pairs = auth.to_vec();
    pairs.push(("grant_type", "client_credentials"));
    assert_eq!(
        error_of(token_form(&app, &pairs).await).await.1,
        "unsupported_grant_type"
    );
    assert_eq!(
        error_of(token_form(&app, &auth).await).await.1,
        "invalid_request"
    );
    let mut pairs = auth.to_vec();
    pairs.extend([
        ("grant_type", "authorization_code"),
        ("code", "a"),
        ("code", "b"),
        ("redirect_uri", HUB_CALLBACK),
    ]);
    assert_eq!(
        error_of(token_form(&app, &pairs).await).await.1,
        "invalid_request"
    );
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .json(&serde_json::json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r).await.1, "invalid_request");
    let mut pairs = auth.to_vec();
    pairs.extend([
        ("grant_type", "authorization_code"),
        ("code", "made-up"),
        ("redirect_uri", HUB_CALLBACK),
        ("code_verifier", VERIFIER),
    ]);
    assert_eq!(
        error_of(token_form(&app, &pairs).await).await.1,
        "invalid_grant"
    );
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replay_revokes_the_grant() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let t1 = tokens(&app).await;
    let refresh = |rt: String| refresh_with(&app, rt);
    let r = refresh(t1["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(r.status(), 200);
    let t2: Value = r.json().await.unwrap();
    assert_ne!(t2["refresh_token"], t1["refresh_token"]);
    assert_eq!(
        userinfo(&app, t2["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    // Concurrent refreshes by the hub present the same token moments apart: honoured.
    let again = refresh(t1["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(again.status(), 200, "within the grace period");
    // Later, the old refresh token is a replay: refused, and the new tokens die with the grant.
    sqlx::query(
        "UPDATE oauth_tokens SET used_at = now() - interval '1 minute' WHERE used_at IS NOT NULL",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        error_of(refresh(t1["refresh_token"].as_str().unwrap().to_string()).await)
            .await
            .1,
        "invalid_grant"
    );
    assert_eq!(
        userinfo(&app, t2["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    assert_eq!(
        error_of(refresh(t2["refresh_token"].as_str().unwrap().to_string()).await)
            .await
            .1,
        "invalid_grant"
    );
}

#[tokio::test]
async fn bad_bearer_tokens_get_rfc6750_errors() {
    let app = spawn_app().await;
    let r = app
        .client
        .get(app.url("/oauth/userinfo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    for bad in ["x", &"A".repeat(43), "Basic abc"] {
        let r = userinfo(&app, bad).await;
        assert_eq!(r.status(), 401);
        assert!(r
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("invalid_token"));
    }
    logged_in_student(&app).await;
    let t = tokens(&app).await;
    sqlx::query(
        "UPDATE oauth_tokens SET expires_at = now() - interval '1 second' WHERE kind = 'access'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401,
        "expired"
    );
}

#[tokio::test]
async fn disable_reset_and_logout_revoke_tokens() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let counselor = app.other_browser();
    counselor.as_counselor().await;
    let refresh_ok = |t: Value| {
        let rt = t["refresh_token"].as_str().unwrap().to_string();
        let app = &app;
        async move { refresh_with(app, rt).await.status() }
    };

    // Disable.
    let t = tokens(&app).await;
    counselor
        .post_form_from("/students/ada", "/students/ada/disable", &[])
        .await;
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    assert_eq!(refresh_ok(t).await, 400);
    counselor
        .post_form_from("/students/ada", "/students/ada/enable", &[])
        .await;

    // Password reset.
    let reset = || async {
        let r = counselor
            .post_form_from("/students/ada", "/students/ada/reset-password", &[])
            .await;
        password_on_card(&counselor.follow(&r).await.text().await.unwrap())
    };
    let pw = reset().await;
    app.login_ok("ada", &pw).await;
    let t = tokens(&app).await;
    let pw = reset().await;
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    assert_eq!(refresh_ok(t).await, 400);

    // The student changes their own password: the hub's tokens die (a stolen refresh token
    // with them), while this browser stays logged in and gets new ones without a password.
    app.login_ok("ada", &pw).await;
    let t = tokens(&app).await;
    let new = "violet-otter-compass-93";
    let r = app
        .post_form(
            "/account/password",
            &[
                ("current_password", pw.as_str()),
                ("new_password", new),
                ("confirm_password", new),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    assert_eq!(refresh_ok(t).await, 400);
    let t = tokens(&app).await;
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn refresh_rotation_cannot_outlive_the_grants_absolute_lifetime() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let t = tokens(&app).await;
    let refresh = |rt: String| refresh_with(&app, rt);
    // Young grant: the rotated refresh token works.
    let r = refresh(t["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    // The login behind the grant is now older than the absolute session lifetime (7 days).
    sqlx::query("UPDATE oauth_grants SET auth_time = now() - interval '8 days'")
        .execute(&app.pool)
        .await
        .unwrap();
    let r = refresh(t["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(
        r.status(),
        200,
        "the token presented was issued while the grant was young"
    );
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        error_of(refresh(t["refresh_token"].as_str().unwrap().to_string()).await)
            .await
            .1,
        "invalid_grant",
        "a refresh token issued past the grant's lifetime is born expired"
    );
}

#[tokio::test]
async fn hub_logout_ends_the_hubdesk_session_and_tokens() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let t = tokens(&app).await;
    let r = app.get("/oauth/logout").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("You are logged out"));
    assert_eq!(app.get("/").await.status(), 303, "session ended");
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    // The next authorize asks for a login again.
    let r = app.get(&authorize_path(&[])).await;
    assert_eq!(r.status(), 303);
    assert!(TestApp::location(&r).starts_with("/login"));
}

#[tokio::test]
async fn hubdesk_logout_revokes_tokens_too() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let t = tokens(&app).await;
    app.post_form_from("/", "/logout", &[]).await;
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn revocation_endpoint() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let t = tokens(&app).await;
    let r = token_revoke(&app, t["access_token"].as_str().unwrap(), HUB_SECRET).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let t = tokens(&app).await;
    assert_eq!(
        token_revoke(&app, t["refresh_token"].as_str().unwrap(), HUB_SECRET)
            .await
            .status(),
        200
    );
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401,
        "refresh revocation ends the grant"
    );
    assert_eq!(
        token_revoke(&app, "unknown-token", HUB_SECRET)
            .await
            .status(),
        200
    );
    assert_eq!(
        token_revoke(&app, "unknown-token", "wrong").await.status(),
        401
    );
    // Another client cannot revoke the hub's token (RFC 7009 §2.1): refused, token intact.
    let t = tokens(&app).await;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("token", t["access_token"].as_str().unwrap()),
            ("client_id", "other-app"),
            ("client_secret", OTHER_SECRET),
        ])
        .finish();
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(r).await,
        (StatusCode::BAD_REQUEST, "unauthorized_client".into())
    );
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

async fn token_revoke(app: &TestApp, token: &str, secret: &str) -> Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("token", token),
            ("client_id", HUB_CLIENT),
            ("client_secret", secret),
        ])
        .finish();
    app.client
        .post(app.url("/oauth/revoke"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn subject_is_never_reused_for_a_recreated_username() {
    let app = spawn_app().await;
    app.create_student("Ada", "ada", None).await;
    let first: String = sqlx::query_scalar("SELECT subject::text FROM users WHERE username='ada'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM users WHERE username='ada'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.create_student("Ada Again", "ada", None).await;
    let second: String = sqlx::query_scalar("SELECT subject::text FROM users WHERE username='ada'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_ne!(first, second);
}

#[tokio::test]
async fn admin_and_counselor_groups() {
    let app = spawn_app().await;
    app.as_admin().await;
    let t = tokens(&app).await;
    let info: Value = userinfo(&app, t["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["groups"], serde_json::json!(["admins", "counselors"]));
}

#[tokio::test]
async fn refused_refresh_does_not_spend_the_token_or_raise_a_replay() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let t = tokens(&app).await;
    sqlx::query("UPDATE users SET disabled = true WHERE username = 'ada'")
        .execute(&app.pool)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = token_form(
            &app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", t["refresh_token"].as_str().unwrap()),
                ("client_id", HUB_CLIENT),
                ("client_secret", HUB_SECRET),
            ],
        )
        .await;
        assert_eq!(error_of(r).await.1, "invalid_grant");
    }
    assert_eq!(
        app.count(
            "SELECT count(*) FROM oauth_tokens WHERE kind = 'refresh' AND used_at IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        app.count("SELECT count(*) FROM oauth_grants WHERE revoked_at IS NOT NULL")
            .await,
        0,
        "no replay alarm"
    );
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_a_recent_password() {
    let app = spawn_app().await;
    let pw = app
        .create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    app.login_ok("ada", &pw).await;
    let age_session = |minutes: i32| {
        let pool = app.pool.clone();
        async move {
            sqlx::query("UPDATE sessions SET created_at = now() - make_interval(mins => $1)")
                .bind(minutes)
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    age_session(10).await;

    // max_age: an older login is not enough; a young enough one is.
    let r = app.get(&authorize_path(&[("max_age", "3600")])).await;
    assert_eq!(
        r.status(),
        302,
        "logged in 10 minutes ago, max_age one hour"
    );
    let r = app.get(&authorize_path(&[("max_age", "60")])).await;
    assert_eq!(r.status(), 303);
    assert!(TestApp::location(&r).starts_with("/login?"));
    let r = app.get(&authorize_path(&[("max_age", "soon")])).await;
    assert_eq!(query_of(&TestApp::location(&r))["error"], "invalid_request");

    // prompt=login: to the form, which offers no "continue as ada"...
    let r = app.get(&authorize_path(&[("prompt", "login")])).await;
    assert_eq!(r.status(), 303);
    let login = TestApp::location(&r);
    assert!(login.contains("fresh=1"), "{login}");
    let page = app.get_html(&login).await;
    assert!(
        !page.contains("id=\"already\""),
        "the old session is offered"
    );
    let next = query_of(&app.url(&login))["next"].clone();
    assert!(
        !next.contains("prompt") && next.contains("max_age=120"),
        "{next}"
    );
    // ...and following the return URL with the old session does not skip the password.
    let r = app.get(&next).await;
    assert_eq!(r.status(), 303);
    assert!(TestApp::location(&r).starts_with("/login?"));

    // After a new login the same URL yields a code, and the id_token says when.
    let before = time::OffsetDateTime::now_utc().unix_timestamp();
    let r = app
        .post_form_from(
            &login,
            "/login",
            &[
                ("username", "ada"),
                ("password", pw.as_str()),
                ("next", next.as_str()),
            ],
        )
        .await;
    assert_eq!(TestApp::location(&r), next);
    let r = app.get(&next).await;
    assert_eq!(r.status(), 302);
    let code = query_of(&TestApp::location(&r))["code"].clone();
    let t: Value = exchange(&app, &code, VERIFIER).await.json().await.unwrap();
    let jwks: Value = app.get("/oauth/jwks.json").await.json().await.unwrap();
    let (_, claims) = verify_id_token(&jwks, t["id_token"].as_str().unwrap()).unwrap();
    assert!(claims["auth_time"].as_i64().unwrap() >= before - 1);
}

#[tokio::test]
async fn a_logout_link_on_another_site_asks_first() {
    let app = spawn_app().await;
    logged_in_student(&app).await;
    let t = tokens(&app).await;
    let cross_site = |referer: &'static str| {
        app.client
            .get(app.url("/oauth/logout"))
            .header("Sec-Fetch-Site", "cross-site")
            .header("Referer", referer)
            .send()
    };
    // A page elsewhere: a question, nothing ended.
    let r = cross_site("https://evil.example/page").await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"logout-confirm\""), "{page}");
    assert_eq!(app.get("/").await.status(), 200, "still logged in");
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await.status(), 200);
    // Without the CSRF token the button does nothing.
    let r = app
        .client
        .post(app.url("/oauth/logout"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.get("/").await.status(), 200);
    // The person's own click: logged out.
    let r = app
        .client
        .post(app.url("/oauth/logout"))
        .form(&[("csrf_token", csrf_from(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("You are logged out"));
    assert_eq!(app.get("/").await.status(), 303);
    assert_eq!(userinfo(&app, access).await.status(), 401);

    // Coming from the hub (its origin in the Referer) or from the same site: no question.
    app.login_ok("ada", &app_password(&app).await).await;
    let r = cross_site("http://127.0.0.1:9/hub/home").await.unwrap();
    assert!(r.text().await.unwrap().contains("You are logged out"));
    app.login_ok("ada", &app_password(&app).await).await;
    let r = app
        .client
        .get(app.url("/oauth/logout"))
        .header("Sec-Fetch-Site", "same-site")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("You are logged out"));
}

/// Ada's password, reset through the roster (the test does not keep the first one).
async fn app_password(app: &TestApp) -> String {
    app.state
        .roster
        .reset_password(
            &hubdesk::domain::Actor::System,
            hubdesk::roster::Scope::Students,
            "ada",
        )
        .await
        .unwrap()
        .password
}
