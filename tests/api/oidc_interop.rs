//! Any OpenID Connect app, not only the hub: RS256 by default, unknown scopes ignored, the
//! optional features discovery admits to, userinfo with the token in a form body, `at_hash`,
//! `{}` from revocation, RP-initiated logout with `post_logout_redirect_uri`, clients limited to
//! groups — and a full code flow driven by the `openidconnect` crate (its own discovery and
//! id_token validation).
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use secrecy::SecretString;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{
    spawn_app, spawn_app_with, TestApp, OTHER_LOGGED_OUT, OTHER_SECRET, PASSWORD,
};

const OTHER: &str = "other-app";
const OTHER_CALLBACK: &str = "http://127.0.0.1:8001/callback";

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn authorize(client: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", "openid profile"),
        ("state", "st-1"),
        ("nonce", "n-1"),
    ];
    for (k, v) in extra {
        pairs.retain(|(pk, _)| pk != k);
        pairs.push((k, v));
    }
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/oauth/authorize?{q}")
}

async fn student(app: &TestApp) {
    let pw = app
        .create_student("Ada Lovelace", "ada", Some("blue"))
        .await;
    app.login_ok("ada", &pw).await;
}

/// The other app's code for `extra`, asserting the redirect names the issuer (RFC 9207).
async fn other_code(app: &TestApp, extra: &[(&str, &str)]) -> String {
    let r = app.get(&authorize(OTHER, OTHER_CALLBACK, extra)).await;
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let q = query_of(&TestApp::location(&r));
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], app.state.config.public_url.as_str());
    q.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {q:?}"))
}

async fn other_tokens(app: &TestApp, code: &str) -> Value {
    let r = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(OTHER, Some(OTHER_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", OTHER_CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn other_apps_get_rs256_id_tokens_with_at_hash_and_unknown_scopes_are_dropped() {
    let app = spawn_app().await;
    student(&app).await;
    let code = other_code(&app, &[("scope", "openid email profile made-up")]).await;
    let t = other_tokens(&app, &code).await;
    assert_eq!(t["scope"], "openid profile", "granted scopes are reported");
    let jwt = t["id_token"].as_str().unwrap();
    let header = jwt_part(jwt, 0);
    assert_eq!(header["alg"], "RS256", "the default algorithm");
    // Verify with the published RSA key.
    let jwks: Value = app.get("/oauth/jwks.json").await.json().await.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("the kid is published");
    assert_eq!(jwk["kty"], "RSA");
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[OTHER]);
    validation.set_issuer(&[app.state.config.public_url.as_str()]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("a valid RS256 signature")
        .claims;
    let access = t["access_token"].as_str().unwrap();
    let want = URL_SAFE_NO_PAD.encode(&Sha256::digest(access.as_bytes())[..16]);
    assert_eq!(claims["at_hash"], want.as_str());
    assert_eq!(claims["nonce"], "n-1");
    assert_eq!(claims["preferred_username"], "ada");
    // The hub's client still gets ES256 (its configuration says so).
    assert_eq!(jwks["keys"][0]["alg"], "RS256");
    assert_eq!(jwks["keys"][1]["alg"], "ES256");
    // /metrics counts the exchange.
    let token = app.api_token().await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("hubdesk_oauth_tokens_issued_total{grant=\"authorization_code\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn discovery_tells_the_truth_about_optional_features() {
    let app = spawn_app().await;
    let d: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    let algs = d["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&"RS256".into()) && algs.contains(&"ES256".into()));
    for flag in [
        "request_parameter_supported",
        "request_uri_parameter_supported",
        "claims_parameter_supported",
    ] {
        assert_eq!(d[flag], false, "{flag}");
    }
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(d["response_modes_supported"], serde_json::json!(["query"]));
    assert_eq!(
        d["prompt_values_supported"],
        serde_json::json!(["none", "login"])
    );
}

#[tokio::test]
async fn unsupported_response_modes_and_request_objects_are_refused() {
    let app = spawn_app().await;
    student(&app).await;
    for (extra, want) in [
        (("response_mode", "form_post"), "invalid_request"),
        (("response_mode", "fragment"), "invalid_request"),
        (
            ("request", "eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
    ] {
        let r = app.get(&authorize(OTHER, OTHER_CALLBACK, &[extra])).await;
        let q = query_of(&TestApp::location(&r));
        assert_eq!(q["error"], want, "{extra:?}");
        assert!(!q.contains_key("code"));
        assert_eq!(q["iss"], app.state.config.public_url.as_str());
    }
    // Explicitly asking for the query mode is fine.
    other_code(&app, &[("response_mode", "query")]).await;
}

#[tokio::test]
async fn userinfo_takes_the_token_in_a_form_body_but_not_twice() {
    let app = spawn_app().await;
    student(&app).await;
    let t = other_tokens(&app, &other_code(&app, &[]).await).await;
    let access = t["access_token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/oauth/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["preferred_username"], "ada");
    let r = app
        .client
        .post(app.url("/oauth/userinfo"))
        .bearer_auth(access)
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    let r = app
        .client
        .post(app.url("/oauth/userinfo"))
        .form(&[("access_token", "x".repeat(43))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn revocation_answers_an_empty_json_object() {
    let app = spawn_app().await;
    student(&app).await;
    let t = other_tokens(&app, &other_code(&app, &[]).await).await;
    let r = app
        .client
        .post(app.url("/oauth/revoke"))
        .basic_auth(OTHER, Some(OTHER_SECRET))
        .form(&[("token", t["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), serde_json::json!({}));
}

fn logout_path(pairs: &[(&str, &str)]) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("/oauth/logout?{q}")
}

#[tokio::test]
async fn rp_initiated_logout_returns_to_the_registered_page_with_state() {
    let app = spawn_app().await;
    student(&app).await;
    let t = other_tokens(&app, &other_code(&app, &[]).await).await;
    let hint = t["id_token"].as_str().unwrap().to_string();

    // Unregistered return address: logged out, but the browser stays with us.
    let r = app
        .client
        .get(app.url(&logout_path(&[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("id=\"logged-out\""));
    assert_eq!(app.get("/").await.status(), 303, "the session ended");

    // A cross-site request carrying the logged-in person's own id_token: no question, and the
    // browser goes back to the app's registered page with its state.
    student_again(&app).await;
    let r = app
        .client
        .get(app.url(&logout_path(&[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", OTHER_LOGGED_OUT),
            ("state", "s-42"),
        ])))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Referer", "https://elsewhere.example/page")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        TestApp::location(&r),
        format!("{OTHER_LOGGED_OUT}?state=s-42")
    );
    assert_eq!(app.get("/").await.status(), 303, "the session ended");

    // client_id alone names the client; a hint for another client is refused.
    let r = app
        .client
        .get(app.url(&logout_path(&[
            ("client_id", "jupyterhub"),
            ("id_token_hint", &hint),
        ])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A hint we did not sign is refused.
    let forged = format!(
        "{}.{}.AAAA",
        hint.split('.').next().unwrap(),
        hint.split('.').nth(1).unwrap()
    );
    let r = app
        .client
        .get(app.url(&logout_path(&[("id_token_hint", &forged)])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The return address is for the client it is registered to only.
    let r = app
        .client
        .get(app.url(&logout_path(&[
            ("client_id", "jupyterhub"),
            ("post_logout_redirect_uri", OTHER_LOGGED_OUT),
        ])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "not registered for the hub: our page");
}

/// Logs Ada in again in the same browser.
async fn student_again(app: &TestApp) {
    let pw = app
        .state
        .roster
        .reset_password(
            &hubdesk::domain::Actor::System,
            hubdesk::roster::Scope::Students,
            "ada",
        )
        .await
        .unwrap()
        .password;
    app.login_ok("ada", &pw).await;
}

#[tokio::test]
async fn a_cross_site_logout_without_a_hint_still_asks_and_keeps_the_return_address() {
    let app = spawn_app().await;
    student(&app).await;
    let r = app
        .client
        .get(app.url(&logout_path(&[
            ("client_id", OTHER),
            ("post_logout_redirect_uri", OTHER_LOGGED_OUT),
            ("state", "s-7"),
        ])))
        .header("Sec-Fetch-Site", "cross-site")
        .header("Referer", "https://elsewhere.example/page")
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"logout-confirm\""), "asked first");
    assert_eq!(app.get("/").await.status(), 200, "nothing ended yet");
    let csrf = crate::helpers::csrf_from(&page);
    assert!(page.contains(&format!("value=\"{OTHER_LOGGED_OUT}\"")));
    let r = app
        .client
        .post(app.url("/oauth/logout"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("client_id", OTHER),
            ("post_logout_redirect_uri", OTHER_LOGGED_OUT),
            ("state", "s-7"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        TestApp::location(&r),
        format!("{OTHER_LOGGED_OUT}?state=s-7")
    );
    assert_eq!(app.get("/").await.status(), 303);
}

#[tokio::test]
async fn a_client_limited_to_counselors_turns_students_away() {
    let app = spawn_app_with(|c| {
        c.oidc.clients.push(hubdesk::config::OidcClientConfig {
            id: "grading".into(),
            secret: Some(SecretString::new(
                "grading-secret-0123456789-abcdefghijkl".into(),
            )),
            secret_file: None,
            redirect_uris: vec!["http://127.0.0.1:8002/cb".into()],
            require_pkce: false,
            id_token_signed_response_alg: "RS256".into(),
            post_logout_redirect_uris: Vec::new(),
            allowed_groups: vec!["counselors".into()],
        })
    })
    .await;
    student(&app).await;
    let r = app
        .get(&authorize("grading", "http://127.0.0.1:8002/cb", &[]))
        .await;
    let q = query_of(&TestApp::location(&r));
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].contains("counselors"));
    // The same student may still use the other apps (each client has its own rules).
    other_code(&app, &[]).await;

    let staff = app.other_browser();
    staff
        .create_user(hubdesk::domain::Role::Counselor, "connie", PASSWORD)
        .await;
    staff.login_ok("connie", PASSWORD).await;
    let r = staff
        .get(&authorize("grading", "http://127.0.0.1:8002/cb", &[]))
        .await;
    assert!(query_of(&TestApp::location(&r)).contains_key("code"));
}

#[tokio::test]
async fn the_openidconnect_crate_logs_in_with_its_own_discovery_and_validation() {
    use openidconnect::{
        core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
        AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
        OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
    };
    let app = spawn_app().await;
    student(&app).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let issuer = IssuerUrl::new(app.state.config.public_url.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(OTHER.into()),
        Some(ClientSecret::new(OTHER_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(OTHER_CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    // The browser part: our logged-in browser follows the library's URL.
    let r = app.client.get(url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let q = query_of(&TestApp::location(&r));
    assert_eq!(&q["state"], csrf.secret());
    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .expect("token endpoint known")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("token exchange");
    let id_token = tokens.id_token().expect("an id_token");
    let verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("the library accepts the id_token");
    assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("ada"));
    let expected = claims.access_token_hash().expect("at_hash present");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(&actual, expected);
    let info: openidconnect::core::CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .expect("userinfo endpoint known")
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject(), claims.subject());
}
