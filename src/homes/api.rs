//! The homes API: `GET /api/v1/students/{u}/home`, `POST …/home/reset` `{"scope"}`,
//! `POST …/home/restore` `{"archive"}` → `202 {job}`; a second operation while one runs → 409,
//! one that would grow the home past its storage limit → 409 too. `PUT …/home/quota`
//! `{"limit"}` sets the student's own storage limit.
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;

use super::{
    download::{Download, DownloadError},
    handout::{HandOutError, Recipients},
    requests::{self, Request},
    ArchiveId, Homes, HomesError, ResetScope,
};
use crate::{
    domain::Username,
    jobs::Waker,
    web::api::{ApiClient, ApiError},
    web::routes::{Access, Table},
};

impl From<HomesError> for ApiError {
    fn from(e: HomesError) -> Self {
        match e.status_code() {
            404 => Self::NotFound(e.to_string()),
            409 => Self::Conflict(e.to_string()),
            400 => Self::BadRequest(e.to_string()),
            503 => Self::Unavailable,
            _ => Self::Internal(e.into()),
        }
    }
}

fn student(path: &str) -> Result<Username, ApiError> {
    Username::parse(path).map_err(|_| ApiError::NotFound(format!("no student named '{path}'")))
}

async fn home(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    servers: web::Data<crate::servers::Servers>,
    _: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let username = student(&path)?;
    let mut conn = pool.acquire().await?;
    if !crate::db::users::is_student(&mut conn, &username).await? {
        return Err(ApiError::NotFound(format!("no student named '{username}'")));
    }
    drop(conn);
    let exists = homes.exists(&username).await?;
    let bytes = if exists {
        homes.usage(&username).await?
    } else {
        0
    };
    let archives = homes.archives(&username).await?;
    let quota = homes.quota_of(&username).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({
            "exists": exists,
            "bytes": bytes,
            // The last background measurement against the limit in force.
            "quota": quota,
        // null when it is not running, or when the hub cannot tell (no hub, hub down).
        "server": servers.of(&username).await.ok().flatten().map(|s| json!({
            "running": s.running(),
            "started": s.started.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            "last_activity": s.last_activity.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        })),
            "archives": archives,
        })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetIn {
    scope: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreIn {
    archive: String,
}

async fn accepted(job: uuid::Uuid) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/api/v1/jobs/{job}")))
        .json(json!({ "job": job }))
}

async fn reset(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    waker: web::Data<Waker>,
    client: ApiClient,
    path: web::Path<String>,
    body: web::Json<ResetIn>,
) -> Result<HttpResponse, ApiError> {
    let username = student(&path)?;
    let scope = ResetScope::parse(&body.scope)
        .ok_or_else(|| ApiError::BadRequest("scope must be \"all\" or \"environment\"".into()))?;
    let reason = body.reason.clone().filter(|r| !r.trim().is_empty());
    let job = requests::enqueue(
        &pool,
        &homes,
        &client.0,
        &username,
        Request::Reset { scope, reason },
    )
    .await?;
    waker.wake();
    Ok(accepted(job).await)
}

async fn restore(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    waker: web::Data<Waker>,
    client: ApiClient,
    path: web::Path<String>,
    body: web::Json<RestoreIn>,
) -> Result<HttpResponse, ApiError> {
    let username = student(&path)?;
    let archive = ArchiveId::parse(&body.archive)?;
    let job = requests::enqueue(
        &pool,
        &homes,
        &client.0,
        &username,
        Request::Restore(archive),
    )
    .await?;
    waker.wake();
    Ok(accepted(job).await)
}

fn download_error(e: DownloadError) -> ApiError {
    match e {
        DownloadError::Db(d) => d.into(),
        DownloadError::NotYours(why) => ApiError::Forbidden(why.0),
        DownloadError::NoCohort => ApiError::BadRequest(e.to_string()),
        other => ApiError::NotFound(other.to_string()),
    }
}

async fn home_zip(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let zip = homes
        .download(
            &pool,
            &client.0,
            client.reach(),
            Download::Student(student(&path)?),
        )
        .await
        .map_err(download_error)?;
    Ok(crate::web::zip_download(&zip.filename, zip.body))
}

async fn cohort_zip(
    pool: web::Data<PgPool>,
    homes: web::Data<Homes>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let zip = homes
        .download(
            &pool,
            &client.0,
            client.reach(),
            Download::Cohort(path.into_inner()),
        )
        .await
        .map_err(download_error)?;
    Ok(crate::web::zip_download(&zip.filename, zip.body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaIn {
    /// `"10GiB"`, `10737418240`, or `null` / `""` for the default.
    limit: serde_json::Value,
}

/// `PUT /api/v1/students/{u}/home/quota` `{"limit": "10GiB" | 10737418240 | null}` → 200 with
/// the limit now in force; audited; the NFS node's list is rewritten. A limit below what the
/// home holds is set (`"below_use": true` says so): a script has no one to ask.
async fn set_quota(
    homes: web::Data<Homes>,
    client: ApiClient,
    path: web::Path<String>,
    body: web::Json<QuotaIn>,
) -> Result<HttpResponse, ApiError> {
    let username = student(&path)?;
    let own = match &body.limit {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => {
            super::quota::parse_own_limit(text).map_err(ApiError::BadRequest)?
        }
        serde_json::Value::Number(n) => {
            let text = n.as_u64().map(|b| b.to_string()).ok_or_else(|| {
                ApiError::BadRequest("limit must be a whole number of bytes".into())
            })?;
            super::quota::parse_own_limit(&text).map_err(ApiError::BadRequest)?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "limit must be a size (\"10GiB\"), a number of bytes, or null for the default"
                    .into(),
            ))
        }
    };
    let change = homes.set_quota(&client.0, &username, own).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(change))
}

impl From<HandOutError> for ApiError {
    fn from(e: HandOutError) -> Self {
        match e {
            HandOutError::Folder(m) => Self::Fields(vec![("folder", m)]),
            HandOutError::NoStudents(m) => Self::Fields(vec![("to", m)]),
            HandOutError::OutOfReach(r) => Self::Forbidden(r.0),
            HandOutError::Homes(e) => e.into(),
            HandOutError::Db(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandOutIn {
    folder: String,
    #[serde(default)]
    cohort: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

/// `GET /api/v1/coursework/folders` → `{"folders": ["week1", …]}`.
async fn course_folders(homes: web::Data<Homes>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({ "folders": homes.course_folders().await? })))
}

/// `POST /api/v1/coursework/handouts` `{"folder", "cohort"}` or `{"folder", "username"}` →
/// `202 {job}`; the same service as the page (audited, reach checked).
async fn hand_out(
    homes: web::Data<Homes>,
    waker: web::Data<Waker>,
    client: ApiClient,
    body: web::Json<HandOutIn>,
) -> Result<HttpResponse, ApiError> {
    let to = match (body.username.as_deref(), body.cohort.as_deref()) {
        (Some(u), None) => Recipients::Student(Username::parse(u).map_err(|_| {
            ApiError::Fields(vec![("username", format!("{u:?} is not a username"))])
        })?),
        (None, Some(c)) => Recipients::Cohort(c.to_string()),
        _ => {
            return Err(ApiError::Fields(vec![(
                "to",
                "give exactly one of cohort and username".into(),
            )]))
        }
    };
    let job = homes
        .queue_hand_out(&client.0, client.reach(), &body.folder, &to)
        .await?;
    waker.wake();
    Ok(accepted(job).await)
}

pub fn routes(t: &mut Table) {
    t.get("/coursework/folders", Access::Token, course_folders)
        .post("/coursework/handouts", Access::Token, hand_out);
    t.get("/students/{username}/home.zip", Access::Token, home_zip)
        .get("/cohorts/{cohort}/homes.zip", Access::Token, cohort_zip)
        .get("/students/{username}/home", Access::Token, home)
        .post("/students/{username}/home/reset", Access::Token, reset)
        .post("/students/{username}/home/restore", Access::Token, restore)
        .put("/students/{username}/home/quota", Access::Token, set_quota);
}
