//! The authorization endpoint (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2).
use actix_web::{web, HttpRequest, HttpResponse};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use time::OffsetDateTime;
use uuid::Uuid;

use super::params::Params;
use crate::oidc::{Oidc, CODE_TTL_SECS, SCOPES};
use crate::{
    auth::secret,
    db,
    web::{error::urlencode, MaybeUser, WebError},
};

/// Where an error goes once the client and redirect URI are trusted: back to the client.
/// RFC 9207: every authorization response names its issuer, so a client talking to several
/// providers can tell whose answer it got.
fn error_redirect(
    redirect_uri: &str,
    state: Option<&str>,
    issuer: &str,
    code: &str,
    description: &str,
) -> HttpResponse {
    let mut url = url::Url::parse(redirect_uri).expect("registered redirect URIs are valid URLs");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("error", code)
            .append_pair("error_description", description);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    found(url.as_str())
}

fn found(location: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header(("Location", location))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

/// PKCE challenges are BASE64URL(SHA256(verifier)): exactly 43 URL-safe characters.
pub fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub async fn authorize(
    oidc: web::Data<Oidc>,
    req: HttpRequest,
    user: MaybeUser,
) -> Result<HttpResponse, WebError> {
    let p = Params::parse(req.query_string().as_bytes());
    // Until client and redirect URI are known good, errors are shown here, never redirected.
    if p.duplicates
        .iter()
        .any(|d| d == "client_id" || d == "redirect_uri")
    {
        return Err(WebError::BadRequest(
            "The sign-in request repeats client_id or redirect_uri.".into(),
        ));
    }
    let client = p
        .get("client_id")
        .and_then(|id| oidc.clients.get(id))
        .ok_or_else(|| {
            WebError::BadRequest(
                "The sign-in request names an unknown application (client_id).".into(),
            )
        })?;
    let redirect_uri = p
        .get("redirect_uri")
        .filter(|r| client.has_redirect_uri(r))
        .ok_or_else(|| WebError::BadRequest("The sign-in request has a redirect_uri that is not registered for this application.".into()))?
        .to_string();
    let st = p.get("state");
    let issuer = oidc.config.public_url.as_str();
    let fail = |code: &str, desc: &str| Ok(error_redirect(&redirect_uri, st, issuer, code, desc));

    if let Some(d) = p.duplicates.first() {
        return fail("invalid_request", &format!("parameter '{d}' is repeated"));
    }
    match p.get("response_type") {
        Some("code") => {}
        None => return fail("invalid_request", "response_type is required"),
        Some(_) => {
            return fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            )
        }
    }
    match p.get("response_mode") {
        None | Some("query") => {}
        Some(other) => {
            return fail(
                "invalid_request",
                &format!("response_mode '{other}' is not supported; use query"),
            )
        }
    }
    for unsupported in ["request", "request_uri"] {
        if p.get(unsupported).is_some() {
            let code = format!("{unsupported}_not_supported");
            return fail(
                &code,
                &format!("the {unsupported} parameter is not supported"),
            );
        }
    }
    // OpenID Connect Core §3.1.2.1: scopes that are not understood are ignored; the token
    // response's `scope` says what was granted.
    let asked = p.get("scope").unwrap_or("openid");
    let mut scopes: Vec<&str> = asked.split(' ').filter(|s| SCOPES.contains(s)).collect();
    scopes.dedup();
    if scopes.is_empty() {
        scopes.push("openid");
    }
    let challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (None, None) if client.require_pkce => {
            return fail(
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            )
        }
        (None, None) => None,
        (None, Some(_)) => {
            return fail(
                "invalid_request",
                "code_challenge_method without code_challenge",
            )
        }
        (Some(c), Some("S256")) if valid_challenge(c) => Some(c.to_string()),
        (Some(_), Some("S256")) => {
            return fail(
                "invalid_request",
                "code_challenge must be 43 base64url characters",
            )
        }
        (Some(_), _) => {
            return fail(
                "invalid_request",
                "only code_challenge_method=S256 is supported",
            )
        }
    };
    let nonce = p.get("nonce").map(str::to_string);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return fail("invalid_request", "nonce is too long");
    }
    let prompt = p.get("prompt").unwrap_or("");
    let prompt_is = |value: &str| prompt.split(' ').any(|x| x == value);
    let max_age = match p.get("max_age").map(str::parse::<u32>) {
        None => None,
        Some(Ok(secs)) => Some(secs),
        Some(Err(_)) => return fail("invalid_request", "max_age must be a number of seconds"),
    };
    // OpenID Connect Core §3.1.2.1: prompt=login and max_age ask for a recent password.
    let recent = |u: &crate::auth::CurrentUser| match max_age {
        None => true,
        Some(secs) => {
            (OffsetDateTime::now_utc() - u.authenticated_at).whole_seconds() <= i64::from(secs)
        }
    };

    let user = match user.0 {
        Some(u) if !prompt_is("login") && recent(&u) => u,
        _ if prompt_is("none") => return fail("login_required", "the user is not logged in"),
        current => {
            // Log in, then come back to this very request. prompt=login and max_age become a
            // short max_age, so the return trip neither loops nor accepts an old session.
            let query = if prompt_is("login") || max_age.is_some() {
                return_query(req.query_string())
            } else {
                without_prompt(req.query_string())
            };
            let back = format!("/oauth/authorize?{query}");
            let mut login = format!("/login?next={}", urlencode(&back));
            if current.is_some() {
                login.push_str("&fresh=1"); // no "continue as …" on the form
            }
            return Ok(HttpResponse::SeeOther()
                .insert_header(("Location", login))
                .insert_header(("Cache-Control", "no-store"))
                .finish());
        }
    };

    // While the camp is paused a student is told so here, in hubdesk's frame, rather than
    // sent back to the application with `access_denied`: the person is at hubdesk, and the
    // hub's error page would not say why or until when.
    if user.role == crate::domain::Role::Student {
        if let Some(message) = &user.camp_paused {
            return Err(WebError::Paused(crate::web::paused_sentence(message)));
        }
    }
    let mut conn = oidc.pool.acquire().await?;
    if !client.allowed_groups.is_empty() {
        let account = db::users::find_by_id(&mut conn, user.id)
            .await?
            .ok_or(WebError::NotFound)?;
        let groups = crate::oidc::claims::groups(account.role, account.cohort.as_deref(), None);
        if !client.admits(&groups) {
            return fail(
                "access_denied",
                &format!(
                    "this application is only for: {}",
                    client.allowed_groups.join(", ")
                ),
            );
        }
    }
    let code = secret::random_token();
    let grant_id = Uuid::new_v4();
    db::oauth::insert_grant_with_code(
        &mut conn,
        db::oauth::NewGrant {
            id: grant_id,
            client_id: &client.id,
            user_id: user.id,
            scope: &scopes.join(" "),
            nonce: nonce.as_deref(),
            auth_time: user.authenticated_at,
        },
        &secret::hash_token(&code),
        &redirect_uri,
        challenge.as_deref(),
        CODE_TTL_SECS,
    )
    .await?;
    drop(conn);

    let mut url = url::Url::parse(&redirect_uri).map_err(|e| WebError::Internal(e.into()))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = st {
            q.append_pair("state", s);
        }
        q.append_pair("iss", issuer);
    }
    Ok(found(url.as_str()))
}

/// The query without `prompt` (it asked for nothing the login form does not give).
fn without_prompt(query: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(url::form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| k != "prompt"))
        .finish()
}

/// How recent a login must be when the browser returns from a prompt=login.
pub const FRESH_LOGIN_SECS: u32 = 120;

/// The authorize query for the trip back from the login form we sent the browser to: without
/// `prompt`, and with `max_age` = [`FRESH_LOGIN_SECS`] (the login just made satisfies it, even
/// with `max_age=0` asked for or a database clock a little behind; an old session does not).
fn return_query(query: &str) -> String {
    let pairs = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k != "prompt" && k != "max_age");
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .append_pair("max_age", &FRESH_LOGIN_SECS.to_string())
        .finish()
}

/// RFC 7636 §4.6: BASE64URL(SHA256(ASCII(code_verifier))) == code_challenge.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use sha2::{Digest, Sha256};
    let valid = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    valid
        && secret::equal(
            &URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            challenge,
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rfc7636_appendix_b_example() {
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "short",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }
    #[test]
    fn prompt_login_becomes_a_short_max_age_for_the_return_trip() {
        assert_eq!(
            return_query("a=1&prompt=login&b=x%3D"),
            "a=1&b=x%3D&max_age=120"
        );
        assert_eq!(
            return_query("a=1&prompt=login&max_age=0"),
            "a=1&max_age=120"
        );
        assert_eq!(return_query("max_age=30&a=1"), "a=1&max_age=120");
    }
}
