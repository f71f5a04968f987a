//! The JSON API for scripts (e.g. syncing from a registration system).
//! `Authorization: Bearer TOKEN`, tokens made by `hubdesk token create NAME`, stored hashed.
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    db::{self, users::StudentFilter},
    roster::{
        self,
        import::{RowError, MAX_BYTES},
        ops::{Scope, StudentFields},
        Roster, RosterError,
    },
    web::api::{ApiClient, ApiError},
    web::routes::{Access, Table},
};

impl From<RosterError> for ApiError {
    fn from(e: RosterError) -> Self {
        match e {
            RosterError::NotFound(_) => Self::NotFound(e.to_string()),
            RosterError::Invalid(_) => Self::BadRequest(e.to_string()),
            RosterError::Duplicate(_) | RosterError::OwnAccount | RosterError::Conflict(_) => {
                Self::Conflict(e.to_string())
            }
            RosterError::NotYours(why) => Self::Forbidden(why),
            RosterError::Db(e) => e.into(),
            RosterError::Internal(e) => Self::Internal(e),
        }
    }
}

/// Every bad line of an import, as `[{line, message}]`.
fn rows_error(rows: Vec<RowError>) -> ApiError {
    ApiError::Rows(rows.iter().map(|r| json!(r)).collect())
}

#[derive(Serialize)]
struct StudentOut {
    username: String,
    display_name: String,
    cohort: Option<String>,
    status: &'static str,
}

async fn list(roster: web::Data<Roster>, client: ApiClient) -> Result<HttpResponse, ApiError> {
    let mut conn = roster.pool.acquire().await?;
    let filter = StudentFilter {
        reach: client.reach().cohorts().map(<[String]>::to_vec),
        ..StudentFilter::default()
    };
    let (rows, _) = db::users::list_students(&mut conn, &filter).await?;
    let out: Vec<StudentOut> = rows
        .into_iter()
        .map(|r| StudentOut {
            status: r.status(),
            username: r.username.to_string(),
            display_name: r.display_name,
            cohort: r.cohort,
        })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    display_name: String,
    username: Option<String>,
    cohort: Option<String>,
}

async fn create(
    roster: web::Data<Roster>,
    client: ApiClient,
    body: web::Json<CreateIn>,
) -> Result<HttpResponse, ApiError> {
    let fields = StudentFields {
        display_name: &body.display_name,
        username: body.username.as_deref().unwrap_or(""),
        cohort: body.cohort.as_deref().unwrap_or(""),
    };
    let c = roster
        .add_student(&client.0, client.reach(), fields, "api")
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"username": c.username, "password": c.password})))
}

async fn import(
    roster: web::Data<Roster>,
    client: ApiClient,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    // Files as people have them (Windows-1252, UTF-16, a spreadsheet), as on the import page.
    let decoded = roster::import::decode::decode(&body).map_err(|e| {
        rows_error(vec![RowError {
            line: 0,
            message: e.to_string(),
        }])
    })?;
    let rows = roster::import::parse(decoded.text.as_bytes()).map_err(rows_error)?;
    roster::import::out_of_reach(&rows, client.reach()).map_err(rows_error)?;
    let mut conn = roster.pool.acquire().await?;
    let planned = roster::import::plan(&mut conn, rows)
        .await
        .map_err(rows_error)?;
    drop(conn);
    let creds = roster
        .create_students(&client.0, client.reach(), &planned, "api")
        .await?;
    let created: Vec<_> = creds
        .into_iter()
        .map(|c| json!({"username": c.username, "password": c.password}))
        .collect();
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "created": created })))
}

async fn reset_password(
    roster: web::Data<Roster>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cred = roster
        .reset_password(&client.0, Scope::Students, &path)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({"password": cred.password})))
}

async fn disable(
    roster: web::Data<Roster>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    roster
        .set_disabled(&client.0, Scope::Students, &path, true)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn enable(
    roster: web::Data<Roster>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    roster
        .set_disabled(&client.0, Scope::Students, &path, false)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The roster's API routes (mounted under `/api/v1` by `app.rs`). The import body may be as
/// large as a CSV import.
pub fn routes(t: &mut Table) {
    t.app_data(web::PayloadConfig::new(MAX_BYTES + 1))
        .get("/students", Access::Token, list)
        .post("/students", Access::Token, create)
        .post("/students/import", Access::Token, import)
        .post(
            "/students/{username}/reset-password",
            Access::Token,
            reset_password,
        )
        .post("/students/{username}/disable", Access::Token, disable)
        .post("/students/{username}/enable", Access::Token, enable);
}
