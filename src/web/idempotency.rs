//! `Idempotency-Key` for the JSON API (draft-ietf-httpapi-idempotency-key-header), in front of
//! every `POST`/`PUT` under `/api/v1`: a script that retries after a timeout does not create a
//! class twice or reset a password again.
//!
//! Keys are per API token (its SHA-256, as `api_tokens` holds it). The first request with a key
//! runs while a transaction holds an advisory lock on (token, key); its response (status and
//! body, < 500, not 401/429) is stored with the request's fingerprint (method, path, body) in the
//! same transaction. Then the same key and the same request get the stored response again
//! (`Idempotency-Replayed: true`), the same key with another request 422, and the same key while
//! the first is still running 409. The body is sealed under a key derived from the API token
//! (a reply may hold a new password). Keys are kept a day.
use actix_web::{
    body::{self, BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    http::{Method, StatusCode},
    middleware::Next,
    web, HttpResponse, ResponseError,
};
use futures_util::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::{api::ApiError, seal};
use crate::{
    auth::{bearer, secret},
    db,
};

pub const HEADER: &str = "Idempotency-Key";

/// The largest body a keyed request may have (the CSV import's limit, with room).
const MAX_BODY: usize = 2 * 1024 * 1024;

/// The middleware (`middleware::from_fn(idempotency::keyed)` on the API scope).
pub async fn keyed(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let wanted = matches!(*req.method(), Method::POST | Method::PUT);
    let Some(raw_key) = req.headers().get(HEADER).filter(|_| wanted).cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let Some(token) = bearer::token(req.request()).map(str::to_string) else {
        // No client to keep the key for: the handler answers 401.
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let refuse = |req: ServiceRequest, e: ApiError| {
        let (http, _) = req.into_parts();
        Ok(ServiceResponse::new(http, e.error_response()))
    };
    let key = match parse_key(raw_key.to_str().unwrap_or("")) {
        Ok(key) => key,
        Err(message) => return refuse(req, ApiError::BadRequest(message)),
    };
    let Some(pool) = req
        .app_data::<web::Data<PgPool>>()
        .map(|p| p.get_ref().clone())
    else {
        return refuse(
            req,
            ApiError::Internal(anyhow::anyhow!("no pool registered")),
        );
    };
    let body = match read_body(req.parts_mut().1).await {
        Ok(body) => body,
        Err(e) => return refuse(req, e),
    };
    let fingerprint = fingerprint(req.method(), &req.uri().to_string(), &body);
    req.set_payload(Payload::from(body));
    // A task of its own: a client that hangs up must not cut the work off before its record.
    actix_web::rt::spawn(decide(pool, token, key, fingerprint, req, next))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("keyed request ended early: {e}")).into())
        .and_then(|r| r)
}

async fn decide(
    pool: PgPool,
    token: String,
    key: String,
    fingerprint: Vec<u8>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let token_hash = secret::hash_token(&token);
    let context = format!("idempotency-key:{key}");
    let answer = |req: ServiceRequest, resp: HttpResponse| {
        let (http, _) = req.into_parts();
        Ok(ServiceResponse::new(http, resp))
    };
    let mut tx = pool.begin().await.map_err(ApiError::from)?;
    if !db::once::try_lock(&mut tx, lock_key(&token_hash, &key))
        .await
        .map_err(ApiError::from)?
    {
        let e = ApiError::Conflict(
            "a request with this Idempotency-Key is still being processed; retry later".into(),
        );
        return answer(req, e.error_response());
    }
    if let Some(stored) = db::once::find_response(&mut tx, &token_hash, &key)
        .await
        .map_err(ApiError::from)?
    {
        // The key's lock goes with the transaction: ended here, not whenever the pool gets
        // round to a dropped one (a retry right behind would find it held and get a 409).
        release(tx).await;
        if stored.fingerprint != fingerprint {
            let resp = HttpResponse::UnprocessableEntity().json(json!({
                "error": "idempotency_key_reused",
                "message": "this Idempotency-Key was used for another request (method, path or body differ)",
            }));
            return answer(req, resp);
        }
        let body = seal::open(&token, &context, &stored.sealed_body).unwrap_or_default();
        let status = StatusCode::from_u16(stored.status as u16).unwrap_or(StatusCode::OK);
        let mut resp = HttpResponse::build(status);
        resp.insert_header(("Idempotency-Replayed", "true"))
            .insert_header(("Cache-Control", "no-store"));
        if !body.is_empty() {
            resp.content_type("application/json");
        }
        return answer(req, resp.body(body));
    }
    let res = next.call(req).await?;
    let status = res.status();
    let (http, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("reading a response: {}", e.into())))?;
    let keep = !status.is_server_error()
        && status != StatusCode::UNAUTHORIZED
        && status != StatusCode::TOO_MANY_REQUESTS;
    if keep {
        let sealed = seal::seal(&token, &context, &bytes);
        let stored = db::once::store_response(
            &mut tx,
            &token_hash,
            &key,
            &fingerprint,
            status.as_u16(),
            &sealed,
        )
        .await;
        match stored {
            Ok(()) => {
                if let Err(e) = tx.commit().await {
                    tracing::error!(error = %e, "an idempotency key was not recorded");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "an idempotency key was not recorded");
                release(tx).await;
            }
        }
    } else {
        release(tx).await;
    }
    Ok(ServiceResponse::new(
        http,
        head.set_body(BoxBody::new(bytes)),
    ))
}

/// Ends a transaction that holds a key's lock and keeps nothing.
async fn release(tx: sqlx::Transaction<'_, sqlx::Postgres>) {
    if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "an idempotency key's lock was not released at once");
    }
}

/// The key as sent: an RFC 8941 string (`"…"`) or, forgiving, the bare text; 1–255 visible
/// ASCII characters.
fn parse_key(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    let key = raw
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(raw);
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(format!(
            "{HEADER} must be 1-255 visible ASCII characters, e.g. a UUID"
        ));
    }
    Ok(key.to_string())
}

async fn read_body(payload: &mut Payload) -> Result<web::Bytes, ApiError> {
    let mut payload = payload.take();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::BadRequest(format!(
                "a request with {HEADER} may have at most {} KiB of body",
                MAX_BODY / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn fingerprint(method: &Method, target: &str, body: &[u8]) -> Vec<u8> {
    Sha256::new()
        .chain_update(method.as_str())
        .chain_update([0])
        .chain_update(target)
        .chain_update([0])
        .chain_update(body)
        .finalize()
        .to_vec()
}

fn lock_key(token_hash: &[u8], key: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"hubdesk idempotency\0")
        .chain_update(token_hash)
        .chain_update(key)
        .finalize();
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_as_structured_strings_or_bare() {
        assert_eq!(parse_key("\"8e03978e-40d5\"").unwrap(), "8e03978e-40d5");
        assert_eq!(parse_key("abc").unwrap(), "abc");
        assert!(parse_key("").is_err());
        assert!(parse_key("\"\"").is_err());
        assert!(parse_key(&"k".repeat(256)).is_err());
        assert!(parse_key("caf\u{e9}").is_err());
    }
}
