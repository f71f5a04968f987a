//! Role checks live in handler signatures: `async fn reset(user: RequireCounselor, …)`.
use actix_web::{dev::Payload, web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use super::session;
pub use super::session::CurrentUser;
use crate::{domain::Role, error::WebError, state::AppState};

/// The session's user, if any (cached per request).
pub struct MaybeUser(pub Option<CurrentUser>);

#[derive(Clone)]
struct Loaded(Option<CurrentUser>);

async fn load(req: HttpRequest) -> Result<Option<CurrentUser>, WebError> {
    if let Some(Loaded(u)) = req.extensions().get::<Loaded>().cloned() {
        return Ok(u);
    }
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| WebError::Internal(anyhow::anyhow!("AppState missing")))?
        .clone();
    let user = session::load(&state, &req).await?;
    req.extensions_mut().insert(Loaded(user.clone()));
    Ok(user)
}

fn next_of(req: &HttpRequest) -> String {
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
