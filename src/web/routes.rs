//! The route table's kit: every page and endpoint is registered through a [`Table`] with who
//! may call it ([`Access`]). The table is the authorization policy, applied before the handler
//! (the handlers' own extractors check again):
//!
//! - the caller is refused unless their role meets the route's access (a page redirects to the
//!   login form, the API answers 401/403);
//! - on a route whose path names a student (`{username}`), a counselor assigned to cohorts is
//!   refused (403, with the reason) when the student is not in one of them.
//!
//! Every registration is also recorded ([`registered`]): the authorization matrix test walks
//! that list, so a new route cannot be missed, and a source check keeps routes from being
//! registered any other way.
use std::{
    collections::BTreeMap,
    sync::{Mutex, OnceLock},
};

use actix_web::{
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    guard,
    http::Method,
    middleware::{self, Next},
    web, FromRequest, Handler, Responder,
};

use super::{api::ApiClient, api::ApiError, extract, WebError};
use crate::{
    db,
    domain::{Reach, Role},
};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Anyone (health, assets, login, the identity provider's endpoints).
    Public,
    /// Any logged-in person (their own pages).
    User,
    /// Counselors and admins.
    Counselor,
    /// Admins.
    Admin,
    /// Any API token: the command line's, a counselor's or an admin's.
    Token,
    /// An API token of an admin (or the command line's).
    AdminToken,
}

impl Access {
    /// The role a session needs (pages) or a token's owner needs (API).
    fn role(self) -> Option<Role> {
        match self {
            Self::Public => None,
            Self::User => Some(Role::Student),
            Self::Counselor | Self::Token => Some(Role::Counselor),
            Self::Admin | Self::AdminToken => Some(Role::Admin),
        }
    }

    pub fn is_api(self) -> bool {
        matches!(self, Self::Token | Self::AdminToken)
    }
}

/// One registered route, as the matrix test reads it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub method: String,
    /// The full path pattern, scope prefix included (`/api/v1/students/{username}/disable`).
    pub path: String,
    pub access: Access,
}

impl Route {
    /// Whether the path names a student or a cohort (the reach check applies).
    pub fn names_target(&self) -> bool {
        names_target(&self.path)
    }
}

fn seen() -> &'static Mutex<BTreeMap<(String, String), Access>> {
    static SEEN: OnceLock<Mutex<BTreeMap<(String, String), Access>>> = OnceLock::new();
    SEEN.get_or_init(Default::default)
}

/// Every route registered in this process so far (the app registers all of them each time it
/// is built), sorted by path and method.
pub fn registered() -> Vec<Route> {
    let seen = seen().lock().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<Route> = seen
        .iter()
        .map(|((path, method), access)| Route {
            method: method.clone(),
            path: path.clone(),
            access: *access,
        })
        .collect();
    all.sort();
    all
}

/// Registers routes under a scope prefix ("" for the root, "/api/v1" inside the API scope).
pub struct Table<'a> {
    cfg: &'a mut web::ServiceConfig,
    prefix: &'static str,
}

impl<'a> Table<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig, prefix: &'static str) -> Self {
        Self { cfg, prefix }
    }

    /// Data for every route registered after this (e.g. a payload limit).
    pub fn app_data<U: 'static>(&mut self, data: U) -> &mut Self {
        self.cfg.app_data(data);
        self
    }

    /// The configuration underneath, for what is not a route (scopes, default services).
    pub fn config(&mut self) -> &mut web::ServiceConfig {
        self.cfg
    }

    pub fn get<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::GET, path, access, handler, None)
    }

    pub fn post<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, access, handler, None)
    }

    pub fn put<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::PUT, path, access, handler, None)
    }

    pub fn delete<F, Args>(&mut self, path: &str, access: Access, handler: F) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::DELETE, path, access, handler, None)
    }

    /// A POST whose form may be larger than the app's limit (`form_bytes`).
    pub fn post_large<F, Args>(
        &mut self,
        path: &str,
        access: Access,
        form_bytes: usize,
        handler: F,
    ) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add(Method::POST, path, access, handler, Some(form_bytes))
    }

    fn add<F, Args>(
        &mut self,
        method: Method,
        path: &str,
        access: Access,
        handler: F,
        form_bytes: Option<usize>,
    ) -> &mut Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        seen().lock().unwrap_or_else(|e| e.into_inner()).insert(
            (format!("{}{path}", self.prefix), method.to_string()),
            access,
        );
        let mut resource = web::resource(path)
            .guard(guard::Method(method.clone()))
            .route(web::method(method).to(handler));
        if let Some(bytes) = form_bytes {
            resource = resource.app_data(super::form_config(bytes));
        }
        let target = names_target(path);
        if access == Access::Public {
            self.cfg.service(resource);
        } else {
            self.cfg
                .service(resource.wrap(middleware::from_fn(move |req, next| {
                    check(access, target, req, next)
                })));
        }
        self
    }
}

/// A path naming a student (`{username}`) or a cohort (`{cohort}`, a name; `{slug}`).
fn names_target(path: &str) -> bool {
    ["{username}", "{cohort}", "{slug}"]
        .iter()
        .any(|p| path.contains(p))
}

/// The route's access, then the student's or cohort's reach, before the handler runs.
async fn check(
    access: Access,
    target: bool,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    match refusal(access, target, &req).await {
        // An answer, not an error passed up: the error frame and the default headers (no-store)
        // apply to it as to a handler's.
        Err(e) => Ok(req.error_response(e)),
        Ok(()) => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// Why the caller may not go on (the error its answer is made from), if they may not.
async fn refusal(
    access: Access,
    target: bool,
    req: &ServiceRequest,
) -> Result<(), actix_web::Error> {
    let need = access.role().unwrap_or(Role::Student);
    let reach = if access.is_api() {
        let client = ApiClient::authenticate(req.request()).await?;
        if client.1.role < need {
            return Err(ApiError::Forbidden("this endpoint is for admins".into()).into());
        }
        client.1.reach
    } else {
        let user = extract::load(req.request().clone()).await?;
        match user {
            None => {
                return Err(WebError::LoginRequired {
                    next: extract::next_of(req.request()),
                }
                .into())
            }
            Some(u) if u.role < need => return Err(WebError::Forbidden.into()),
            Some(u) => u.reach,
        }
    };
    if target && need >= Role::Counselor && !reach.is_all() {
        if let Err(why) = target_in_reach(req, &reach).await? {
            return Err(if access.is_api() {
                ApiError::Forbidden(why).into()
            } else {
                WebError::NotYours(crate::domain::sentence(&why)).into()
            });
        }
    }
    Ok(())
}

/// `Ok(Err(why))` when the path's student or cohort is outside `reach`. An unknown name or a
/// staff account passes: the handler answers those as it always has (404, or refusing staff).
async fn target_in_reach(
    req: &ServiceRequest,
    reach: &Reach,
) -> Result<Result<(), String>, actix_web::Error> {
    let pool = extract::handle::<sqlx::PgPool>(req.request())?;
    let mut conn = pool.acquire().await.map_err(WebError::from)?;
    let info = req.match_info();
    if let Some(name) = info.get("username") {
        let Ok(username) = crate::domain::Username::parse(name) else {
            return Ok(Ok(()));
        };
        let found = db::users::find_by_username(&mut conn, &username)
            .await
            .map_err(WebError::from)?;
        return Ok(match found {
            Some(u) if u.role == Role::Student => reach
                .check_student(u.username.as_str(), u.cohort.as_deref())
                .map_err(|e| e.0),
            _ => Ok(()),
        });
    }
    let cohort = match (info.get("cohort"), info.get("slug")) {
        (Some(name), _) => Some(name.to_string()),
        (None, Some(slug)) => {
            let mut names = db::cohorts::names(&mut conn)
                .await
                .map_err(WebError::from)?;
            names.extend(
                db::users::cohorts(&mut conn)
                    .await
                    .map_err(WebError::from)?,
            );
            names
                .into_iter()
                .find(|n| crate::domain::cohort::slug(n) == slug)
        }
        (None, None) => None,
    };
    Ok(match cohort {
        Some(c) => reach.check_cohort(Some(&c)).map_err(|e| e.0),
        None => Ok(()),
    })
}
