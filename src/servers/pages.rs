//! The servers buttons: stop one student's server, start a cohort's before class.
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;

use super::{jobs::StartJob, jobs::StopJob, Servers};
use crate::{
    domain::{Actor, Username},
    hub::StopOutcome,
    jobs::Waker,
    web::{see_other, Once, RequireCounselor, WebError},
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
    form.run(move |_, _| async move { stop_server(&pool, &servers, &waker, &user, &path).await })
        .await
}

async fn stop_server(
    pool: &PgPool,
    servers: &Servers,
    waker: &Waker,
    user: &RequireCounselor,
    path: &str,
) -> Result<HttpResponse, WebError> {
    let name = Username::parse(path).map_err(|_| WebError::NotFound)?;
    let actor = Actor::User(user.username.clone());
    match servers.stop(&name).await {
        Ok(StopOutcome::Stopped) => {
            let mut conn = pool.acquire().await?;
            crate::db::audit::record(&mut conn, &actor, "server.stop", Some(name.as_str()), None)
                .await?;
            Ok(see_other(&format!(
                "/students/{name}?notice=server-stopped"
            )))
        }
        Ok(StopOutcome::Pending) => {
            let mut tx = pool.begin().await?;
            crate::db::audit::record(&mut tx, &actor, "server.stop", Some(name.as_str()), None)
                .await?;
            let job = StopJob {
                username: name.to_string(),
            }
            .enqueue(&mut tx, &actor)
            .await?;
            tx.commit().await?;
            waker.wake();
            Ok(see_other(&format!("/jobs/{job}")))
        }
        Err(e) => Err(WebError::Conflict(format!(
            "The hub could not stop the server: {e}"
        ))),
    }
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
        start_servers(&pool, &servers, &waker, &user, &form.cohort).await
    })
    .await
}

async fn start_servers(
    pool: &PgPool,
    servers: &Servers,
    waker: &Waker,
    user: &RequireCounselor,
    cohort: &str,
) -> Result<HttpResponse, WebError> {
    if !servers.configured() {
        return Err(WebError::Conflict(
            "No hub is configured ([hub] api_token): servers cannot be started from here.".into(),
        ));
    }
    let cohort = cohort.trim();
    let students = {
        let mut conn = pool.acquire().await?;
        crate::db::users::cohort_usernames(&mut conn, cohort).await?
    };
    if students.is_empty() {
        return Err(WebError::BadRequest(format!(
            "No students in cohort '{cohort}'."
        )));
    }
    let actor = Actor::User(user.username.clone());
    let job = enqueue_start(pool, &actor, cohort, students).await?;
    waker.wake();
    Ok(see_other(&format!("/jobs/{job}")))
}

/// Queues the start of `students`' servers, audited.
pub async fn enqueue_start(
    pool: &PgPool,
    actor: &Actor,
    cohort: &str,
    students: Vec<Username>,
) -> Result<uuid::Uuid, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let detail = format!("{} servers", students.len());
    let target = format!("cohort:{cohort}");
    crate::db::audit::record(
        &mut tx,
        actor,
        "servers.start",
        Some(&target),
        Some(&detail),
    )
    .await?;
    let job = StartJob {
        label: format!("cohort {cohort}"),
        usernames: students.iter().map(|u| u.to_string()).collect(),
    }
    .enqueue(&mut tx, actor)
    .await?;
    tx.commit().await?;
    Ok(job)
}
