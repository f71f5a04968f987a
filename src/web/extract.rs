//! Authorization and CSRF checks live in handler signatures:
//! `async fn reset(user: RequireCounselor, form: Csrf<ResetForm>, …)`.
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use sqlx::PgPool;

use super::WebError;
use crate::{
    auth::{csrf, session, CurrentUser},
    config::Config,
    domain::Role,
};

/// A handle the app registered with `app_data`; its absence is a wiring bug, not the user's.
pub fn handle<T: 'static>(req: &HttpRequest) -> Result<web::Data<T>, WebError> {
    req.app_data::<web::Data<T>>().cloned().ok_or_else(|| {
        WebError::Internal(anyhow::anyhow!(
            "{} not registered with the app",
            std::any::type_name::<T>()
        ))
    })
}

/// The session's user, if any (cached per request).
pub struct MaybeUser(pub Option<CurrentUser>);

#[derive(Clone)]
struct Loaded(Option<CurrentUser>);

pub(super) async fn load(req: HttpRequest) -> Result<Option<CurrentUser>, WebError> {
    if let Some(Loaded(u)) = req.extensions().get::<Loaded>().cloned() {
        return Ok(u);
    }
    let pool = handle::<PgPool>(&req)?;
    let config = handle::<Config>(&req)?;
    let user = session::load(&pool, &config, &req).await?;
    req.extensions_mut().insert(Loaded(user.clone()));
    Ok(user)
}

/// The session's user if this request already looked them up (no database call): for the
/// request log and for an error page during a database outage.
pub fn cached_user(req: &HttpRequest) -> Option<CurrentUser> {
    req.extensions().get::<Loaded>().and_then(|l| l.0.clone())
}

pub(super) fn next_of(req: &HttpRequest) -> String {
    if req.method() == actix_web::http::Method::GET {
        req.uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into())
    } else {
        "/".into()
    }
}

impl FromRequest for MaybeUser {
    type Error = WebError;
    type Future = LocalBoxFuture<'static, Result<Self, WebError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(MaybeUser(load(req).await?)) })
    }
}

macro_rules! require {
    ($name:ident, $doc:literal, $min:expr) => {
        #[doc = $doc]
        pub struct $name(pub CurrentUser);

        impl std::ops::Deref for $name {
            type Target = CurrentUser;
            fn deref(&self) -> &CurrentUser {
                &self.0
            }
        }

        impl FromRequest for $name {
            type Error = WebError;
            type Future = LocalBoxFuture<'static, Result<Self, WebError>>;
            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let req = req.clone();
                Box::pin(async move {
                    match load(req.clone()).await? {
                        None => Err(WebError::LoginRequired {
                            next: next_of(&req),
                        }),
                        Some(u) if u.role >= $min => Ok($name(u)),
                        Some(_) => Err(WebError::Forbidden),
                    }
                })
            }
        }
    };
}

require!(RequireUser, "Any logged-in person.", Role::Student);
require!(
    RequireCounselor,
    "A counselor or an admin.",
    Role::Counselor
);
require!(RequireAdmin, "An admin.", Role::Admin);

/// The form's fields as sent, read with the form limit and error page that the app (or the
/// route) configured.
pub(super) async fn form_pairs(
    req: &HttpRequest,
    payload: &mut Payload,
) -> Result<Vec<(String, String)>, actix_web::Error> {
    let pairs = web::Form::<Vec<(String, String)>>::from_request(req, payload).await?;
    Ok(pairs.into_inner())
}

/// Splits off `csrf_token` and reads the rest as `T` (unknown fields, like a single-use form's
/// `form_id`, are ignored by `T`'s own rules).
pub(super) fn split_token<T: DeserializeOwned>(
    pairs: Vec<(String, String)>,
) -> Result<(String, T), WebError> {
    let token = pairs
        .iter()
        .find(|(k, _)| k == "csrf_token")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let encoded = serde_urlencoded::to_string(&pairs)
        .map_err(|e| WebError::Internal(anyhow::anyhow!("re-encoding a form: {e}")))?;
    let form = serde_urlencoded::from_str::<T>(&encoded)
        .map_err(|e| WebError::BadRequest(format!("The form could not be read: {e}")))?;
    Ok((token, form))
}

/// A state-changing form of a logged-in person: its `csrf_token` must be the session's, or the
/// request is refused before the handler runs. Without a session there is nothing to forge
/// (the handler's own `Require*` extractor decides what that means).
pub struct Csrf<T>(pub T);

impl<T> std::ops::Deref for Csrf<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Csrf<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let pairs = form_pairs(&req, &mut payload).await?;
            let (token, form) = split_token::<T>(pairs)?;
            match load(req).await? {
                Some(user) if !csrf::verify_user(&user, &token) => Err(WebError::Csrf.into()),
                _ => Ok(Csrf(form)),
            }
        })
    }
}

/// A form filled in before anyone is logged in (login, first-run setup), protected by the
/// double-submit cookie. The handler gets the form only through [`AnonCsrf::checked`], so it
/// cannot forget the check; a failed check still hands back what was typed, to re-render it.
pub struct AnonCsrf<T> {
    form: T,
    valid: bool,
}

/// A form whose CSRF token did not match: what was typed, for re-rendering.
pub struct Expired<T>(pub T);

impl<T> AnonCsrf<T> {
    pub fn checked(self) -> Result<T, Expired<T>> {
        if self.valid {
            Ok(self.form)
        } else {
            Err(Expired(self.form))
        }
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for AnonCsrf<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let pairs = form_pairs(&req, &mut payload).await?;
            let (token, form) = split_token::<T>(pairs)?;
            let config = handle::<Config>(&req)?;
            let valid = csrf::verify_anon(&config, &req, &token);
            Ok(AnonCsrf { form, valid })
        })
    }
}
