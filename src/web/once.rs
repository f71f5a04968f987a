//! Single-use forms. Every state-changing form of the desks carries a random `form_id` (rendered
//! by [`Page::new_form_id`](super::Page::new_form_id), or a draft's id). `Once<T>` reads it with
//! the CSRF check of [`Csrf`](super::Csrf), and [`Once::run`] does the handler's work at most
//! once per (person, form id):
//!
//! 1. a transaction takes a PostgreSQL advisory lock on the pair (a second tab or a double click
//!    waits here, trying again every 100 ms for up to 3 minutes);
//! 2. if `spent_forms` has the pair, the work was done: 303 to where the first submission went;
//! 3. else the work runs; when it answers with a redirect (PRG: its result is a GET page) the
//!    pair and that URL are recorded in the same transaction, which then commits and lets the
//!    waiter in; any other answer (the form again with its errors, an error page) records
//!    nothing, so the corrected form can be sent with the same id.
//!
//! The work runs in a task of its own: a browser that drops a request (a double click cancels
//! the first) must not cut it off between its commit and the record. The record is a separate
//! transaction from the work's own, so a crash between the two commits could let a later
//! resubmission do it again; nothing else can.
use std::{cell::RefCell, future::Future, rc::Rc};

use actix_web::{dev::Payload, http::StatusCode, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    extract::{form_pairs, handle, load, split_token},
    seal, see_other, WebError,
};
use crate::{
    auth::{csrf, CurrentUser},
    config::Config,
    db,
};

/// The hidden field that names a form.
pub const FIELD: &str = "form_id";

/// How long a second submission waits for the first to finish (a class of 2,000 is hashed in
/// well under this on two cores).
const WAIT: std::time::Duration = std::time::Duration::from_secs(180);
/// How often a waiting submission looks again. It holds no connection in between: a dozen tabs
/// waiting on one form must not take the pool the first one's work needs.
const POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// A state-changing form of a logged-in person, CSRF-checked, that [`Once::run`] acts on once.
pub struct Once<T> {
    form: T,
    claim: Claim,
}

struct Claim {
    pool: PgPool,
    user_id: i64,
    /// `None`: the form came without an id (a page from before single-use forms); refused in
    /// `run`, so the handler's own checks (who may send it) answer first.
    id: Option<Uuid>,
    /// The session cookie's value: the key that seals what the result page shows once.
    session: Option<String>,
}

/// What the work keeps for its result page: `result` (names, usernames — never a password)
/// and a secret (passwords) shown once, stored sealed until the page's first view.
#[derive(Clone, Default)]
pub struct Keep(Rc<RefCell<Kept>>);

#[derive(Default)]
struct Kept {
    result: Option<serde_json::Value>,
    secret: Option<Vec<u8>>,
}

impl Keep {
    pub fn result(&self, result: serde_json::Value) {
        self.0.borrow_mut().result = Some(result);
    }

    pub fn secret(&self, secret: Vec<u8>) {
        self.0.borrow_mut().secret = Some(secret);
    }

    fn take(&self) -> Kept {
        std::mem::take(&mut *self.0.borrow_mut())
    }
}

impl<T> Once<T> {
    /// The form's id (result pages are named by it).
    pub fn id(&self) -> Uuid {
        self.claim.id.unwrap_or_default()
    }

    /// The form as sent (for a page rendered again with its errors).
    pub fn form(&self) -> &T {
        &self.form
    }
}

impl<T: 'static> Once<T> {
    /// Runs `work` unless this form was already acted on; see the module documentation.
    pub async fn run<F, Fut>(self, work: F) -> Result<HttpResponse, WebError>
    where
        F: FnOnce(T, Keep) -> Fut + 'static,
        Fut: Future<Output = Result<HttpResponse, WebError>> + 'static,
    {
        let Once { form, claim } = self;
        let Some(id) = claim.id else {
            return Err(WebError::BadRequest(
                "This page is out of date: reload it, then send the form again.".into(),
            ));
        };
        actix_web::rt::spawn(claim.decide(id, form, work))
            .await
            .map_err(|e| WebError::Internal(anyhow::anyhow!("a form's work ended early: {e}")))?
    }
}

impl Claim {
    /// The advisory lock key of (person, form id).
    fn lock_key(&self, id: Uuid) -> i64 {
        let digest = Sha256::new()
            .chain_update(b"hubdesk form\0")
            .chain_update(self.user_id.to_be_bytes())
            .chain_update(id.as_bytes())
            .finalize();
        i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    async fn decide<T, F, Fut>(self, id: Uuid, form: T, work: F) -> Result<HttpResponse, WebError>
    where
        F: FnOnce(T, Keep) -> Fut,
        Fut: Future<Output = Result<HttpResponse, WebError>>,
    {
        let waited = std::time::Instant::now();
        let mut tx = loop {
            let mut tx = self.pool.begin().await?;
            if db::once::try_lock(&mut tx, self.lock_key(id)).await? {
                break tx;
            }
            drop(tx);
            if waited.elapsed() > WAIT {
                return Err(WebError::Conflict(
                    "This form is still being sent from another tab: wait a moment, then \
                     reload that tab to see what it did."
                        .into(),
                ));
            }
            tokio::time::sleep(POLL).await;
        };
        if let Some(url) = db::once::spent_url(&mut tx, self.user_id, id).await? {
            tracing::info!(form_id = %id, %url, "form sent again: sent to its first result");
            return Ok(see_other(&url));
        }
        let keep = Keep::default();
        let response = work(form, keep.clone()).await?;
        let Some(url) = done_at(&response) else {
            // Not done (the form comes back with its errors): nothing recorded, the lock goes.
            return Ok(response);
        };
        let kept = keep.take();
        let sealed = match (kept.secret, &self.session) {
            (Some(secret), Some(session)) => Some(seal::seal(session, &id.to_string(), &secret)),
            _ => None,
        };
        let recorded = db::once::record(
            &mut tx,
            self.user_id,
            id,
            &url,
            kept.result.as_ref(),
            sealed.as_deref(),
        )
        .await;
        match recorded {
            Ok(()) => tx.commit().await?,
            // The work is done: its answer still goes out, but a resubmission would do it again.
            Err(e) => tracing::error!(form_id = %id, error = %e, "a spent form was not recorded"),
        }
        Ok(response)
    }
}

/// The result page a finished piece of work redirects to (303 See Other), if it finished.
fn done_at(response: &HttpResponse) -> Option<String> {
    (response.status() == StatusCode::SEE_OTHER)
        .then(|| response.headers().get("location")?.to_str().ok())
        .flatten()
        .map(str::to_string)
}

impl<T: DeserializeOwned + 'static> FromRequest for Once<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let pairs = form_pairs(&req, &mut payload).await?;
            let id = pairs
                .iter()
                .find(|(k, _)| k == FIELD)
                .and_then(|(_, v)| Uuid::parse_str(v.trim()).ok());
            let (token, form) = split_token::<T>(pairs)?;
            let user = load(req.clone())
                .await?
                .ok_or(WebError::LoginRequired { next: "/".into() })?;
            if !csrf::verify_user(&user, &token) {
                return Err(WebError::Csrf.into());
            }
            let claim = claim(&req, &user, id)?;
            Ok(Once { form, claim })
        })
    }
}

fn claim(req: &HttpRequest, user: &CurrentUser, id: Option<Uuid>) -> Result<Claim, WebError> {
    let pool = handle::<PgPool>(req)?;
    let config = handle::<Config>(req)?;
    Ok(Claim {
        pool: pool.get_ref().clone(),
        user_id: user.id,
        id,
        session: session_secret(&config, req),
    })
}

fn session_secret(config: &Config, req: &HttpRequest) -> Option<String> {
    req.cookie(config.session_cookie_name())
        .map(|c| c.value().to_string())
}

/// A spent form as its result page shows it.
pub struct Spent {
    pub result: Option<serde_json::Value>,
    /// The secret kept for the first view: `Some` only on that view, in the browser that sent
    /// the form.
    pub secret: Option<Vec<u8>>,
    pub at: time::OffsetDateTime,
}

/// The result of `user`'s form `id`, taking its secret (shown once) when this browser's session
/// opens it; another session of the same person sees the result without the secret and leaves
/// it for the browser that sent the form. `None`: no such form.
pub async fn take(
    pool: &PgPool,
    config: &Config,
    req: &HttpRequest,
    user: &CurrentUser,
    id: Uuid,
) -> Result<Option<Spent>, WebError> {
    let mut tx = pool.begin().await?;
    let Some(row) = db::once::find_for_update(&mut tx, user.id, id).await? else {
        return Ok(None);
    };
    let secret = match (row.sealed, session_secret(config, req)) {
        (Some(sealed), Some(session)) => seal::open(&session, &id.to_string(), &sealed),
        _ => None,
    };
    if secret.is_some() {
        db::once::clear_sealed(&mut tx, user.id, id).await?;
    }
    tx.commit().await?;
    Ok(Some(Spent {
        result: row.result,
        secret,
        at: row.created_at,
    }))
}

/// Whether `user` already sent form `id` (a preview whose confirmation was sent), and where it
/// went.
pub async fn spent_url(
    pool: &PgPool,
    user: &CurrentUser,
    id: Uuid,
) -> Result<Option<String>, WebError> {
    let mut conn = pool.acquire().await?;
    Ok(db::once::spent_url(&mut conn, user.id, id).await?)
}
