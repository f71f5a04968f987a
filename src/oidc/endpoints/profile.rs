//! `GET /oauth/profile/{username}`: the notebook profile of a person (their cohort's memory
//! guarantee and limit, CPU limit and idle timeout), for a relying party's spawner: the shipped
//! hub configuration asks it before each start (`deploy/hub/hubdesk_spawner.py`), so a profile
//! changed on the cohort page applies at the next start. The client authenticates as at the
//! token endpoint, by HTTP Basic only (a GET has no body to carry a secret), and learns only
//! about people it may log in. While the camp is paused a student's answer is `423 Locked`
//! with what they are told: the spawner refuses the start with it.
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::{client_auth, error::OAuthError, params::Params};
use crate::{
    calendar::cohorts::{CalendarError, Cohorts},
    domain::Username,
    oidc::{claims, Oidc},
};

impl From<CalendarError> for OAuthError {
    fn from(e: CalendarError) -> Self {
        match e {
            CalendarError::Db(e) => e.into(),
            other => OAuthError::from(anyhow::anyhow!(other)),
        }
    }
}

pub async fn profile(
    oidc: web::Data<Oidc>,
    cohorts: web::Data<Cohorts>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, OAuthError> {
    let client = client_auth::authenticate(&oidc, &req, &Params::default())?;
    let not_found = || {
        HttpResponse::NotFound().json(json!({
            "error": "not_found",
            "error_description": "no such person for this client",
        }))
    };
    let Ok(name) = Username::parse(&path.to_ascii_lowercase()) else {
        return Ok(not_found());
    };
    let Some((user, p)) = cohorts.profile_of(&name).await? else {
        return Ok(not_found());
    };
    if user.disabled || !client.admits(&claims::groups(user.role, user.cohort.as_deref(), None)) {
        return Ok(not_found());
    }
    // While the camp is paused the spawner is told no for students (423, what they are told).
    if user.role == crate::domain::Role::Student {
        let pause = {
            let mut conn = oidc.pool.acquire().await?;
            crate::db::camp::pause(&mut conn).await?
        };
        if let Some(p) = pause {
            return Ok(HttpResponse::build(actix_web::http::StatusCode::LOCKED)
                .insert_header(("Cache-Control", "no-store"))
                .json(json!({
                    "error": "camp_paused",
                    "error_description": crate::web::paused_sentence(&p.message),
                })));
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({
            "username": user.username.as_str(),
            "cohort": user.cohort,
            "mem_guarantee": p.memory_guarantee_bytes(),
            "mem_limit": p.memory_limit_bytes(),
            "cpu_limit": f64::from(p.cpu_limit_millis) / 1000.0,
            "idle_timeout_secs": u64::from(p.idle_timeout_mins) * 60,
        })))
}
