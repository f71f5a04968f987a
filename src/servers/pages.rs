//! The servers buttons: stop one student's server, start a cohort's before class, pause and
//! resume the camp. Each calls its use case (`stop`, `start`, `pause`) and translates.
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;

use super::{
    pause::PauseError,
    start::StartError,
    stop::{StopError, Stopped},
    unstick::UnstickError,
    Servers,
};
use crate::{
    domain::{Actor, Username},
    jobs::Waker,
    web::{see_other, Once, RequireAdmin, RequireCounselor, RequireUser, WebError},
};

#[derive(Deserialize)]
pub struct Button {}

/// `POST /students/{username}/server/stop`.
pub async fn stop(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    waker: web::Data<Waker>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    form.run(move |_, _| async move {
        let name = Username::parse(&path).map_err(|_| WebError::NotFound)?;
        let actor = Actor::User(user.username.clone());
        match servers.stop_for(&pool, &actor, &name).await {
            Ok(Stopped::Now) => Ok(see_other(&format!(
                "/students/{name}?notice=server-stopped"
            ))),
            Ok(Stopped::Queued(job)) => {
                waker.wake();
                Ok(see_other(&format!("/jobs/{job}")))
            }
            Err(StopError::Db(e)) => Err(e.into()),
            Err(e @ StopError::Hub(_)) => {
                Err(WebError::Conflict(crate::domain::sentence(&e.to_string())))
            }
        }
    })
    .await
}

/// `POST /account/server/stop`: anyone stops their own server (audited as themselves).
pub async fn stop_own(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    waker: web::Data<Waker>,
    user: RequireUser,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    form.run(move |_, _| async move {
        let actor = Actor::User(user.username.clone());
        match servers.stop_for(&pool, &actor, &user.username).await {
            Ok(Stopped::Now) => Ok(see_other("/?server=stopped")),
            Ok(Stopped::Queued(_)) => {
                waker.wake();
                Ok(see_other("/?server=stopping"))
            }
            Err(StopError::Db(e)) => Err(e.into()),
            Err(e @ StopError::Hub(_)) => {
                Err(WebError::Conflict(crate::domain::sentence(&e.to_string())))
            }
        }
    })
    .await
}

/// `POST /account/server/unstick`: "My notebook is stuck" (a student's own; queued as a job).
pub async fn unstick_own(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    waker: web::Data<Waker>,
    config: web::Data<crate::config::Config>,
    user: RequireUser,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    form.run(move |_, _| async move {
        let actor = Actor::User(user.username.clone());
        match servers.unstick(&pool, &actor, &user.username).await {
            Ok(_) => {
                waker.wake();
                Ok(see_other("/?server=restarting"))
            }
            Err(UnstickError::Db(e)) => Err(e.into()),
            Err(UnstickError::TooOften(at)) => {
                let at = crate::web::clock::Clock::new(&config).time_of_day(at).short;
                Err(WebError::TooOften(format!(
                    "You have restarted your notebook {} times in the last hour. Ask a \
                     counselor for help, or try again at {at}.",
                    super::unstick::PER_HOUR
                )))
            }
            Err(e @ UnstickError::Paused) => {
                Err(WebError::Paused(crate::domain::sentence(&e.to_string())))
            }
            Err(e @ UnstickError::NoHub) => {
                Err(WebError::Conflict(crate::domain::sentence(&e.to_string())))
            }
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct CohortForm {
    #[serde(default)]
    cohort: String,
}

/// `POST /students/servers/start` (cohort) → the job's page.
pub async fn start_cohort(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    waker: web::Data<Waker>,
    user: RequireCounselor,
    form: Once<CohortForm>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move {
        let actor = Actor::User(user.username.clone());
        match servers
            .start_cohort(&pool, &actor, &user.reach, &form.cohort)
            .await
        {
            Ok(job) => {
                waker.wake();
                Ok(see_other(&format!("/jobs/{job}")))
            }
            Err(StartError::Db(e)) => Err(e.into()),
            Err(StartError::NotYours(why)) => {
                Err(WebError::NotYours(crate::domain::sentence(&why.0)))
            }
            Err(e @ StartError::NoStudents(_)) => Err(WebError::BadRequest(
                crate::domain::sentence(&e.to_string()),
            )),
            Err(e) => Err(WebError::Conflict(crate::domain::sentence(&e.to_string()))),
        }
    })
    .await
}

#[derive(Deserialize)]
pub struct PauseForm {
    #[serde(default)]
    message: String,
}

/// `POST /camp/pause`: students cannot log in or start notebooks; their servers stop.
pub async fn pause(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    waker: web::Data<Waker>,
    user: RequireAdmin,
    form: Once<PauseForm>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move {
        let actor = Actor::User(user.username.clone());
        match servers.pause_camp(&pool, &actor, &form.message).await {
            Ok(_) => {
                waker.wake();
                Ok(see_other("/students?notice=camp-paused"))
            }
            Err(PauseError::Db(e)) => Err(e.into()),
            Err(e @ PauseError::TooLong) => Err(WebError::BadRequest(crate::domain::sentence(
                &e.to_string(),
            ))),
        }
    })
    .await
}

/// `POST /camp/resume`.
pub async fn resume(
    pool: web::Data<PgPool>,
    servers: web::Data<Servers>,
    user: RequireAdmin,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    form.run(move |_, _| async move {
        servers
            .resume_camp(&pool, &Actor::User(user.username.clone()))
            .await?;
        Ok(see_other("/students?notice=camp-resumed"))
    })
    .await
}
