//! `GET /api/v1/board?cohort=…` → the roll board as JSON: `{at, rows: [{username,
//! display_name, cohort, state, …}], counts: [[key, n]…], hub_problem, swarm_problem}`;
//! `GET /api/v1/students/{u}/starts` → the student's last 20 starts with their steps.
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::Board;
use crate::{
    db,
    domain::Username,
    web::api::{ApiClient, ApiError},
    web::routes::{Access, Table},
};

#[derive(Deserialize)]
struct BoardQuery {
    #[serde(default)]
    cohort: String,
}

async fn board(
    board: web::Data<Board>,
    client: ApiClient,
    q: web::Query<BoardQuery>,
) -> Result<HttpResponse, ApiError> {
    let cohort = (!q.cohort.is_empty()).then_some(q.cohort.as_str());
    let look = board
        .look(client.reach(), cohort)
        .await
        .map_err(|e| match e {
            super::BoardError::NotYours(why) => ApiError::Forbidden(why.0),
            super::BoardError::Db(e) => ApiError::from(e),
        })?;
    Ok(HttpResponse::Ok().json(look))
}

async fn starts(
    board: web::Data<Board>,
    _client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = Username::parse(&path)
        .map_err(|_| ApiError::NotFound(format!("no student named '{}'", path.as_str())))?;
    let mut conn = board.pool.acquire().await?;
    if !db::users::is_student(&mut conn, &name).await? {
        return Err(ApiError::NotFound(format!("no student named '{name}'")));
    }
    let attempts = db::board::attempts_of(&mut conn, &name).await?;
    let starts: Vec<_> = attempts
        .into_iter()
        .map(|a| {
            json!({
                "started_at": a.started_at.format(&time::format_description::well_known::Rfc3339).ok(),
                "ended_at": a.ended_at.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                "outcome": a.outcome,
                "reason": a.reason,
                "steps": a.steps.0,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "username": name, "starts": starts })))
}

pub fn routes(t: &mut Table) {
    t.get("/board", Access::Token, board)
        .get("/students/{username}/starts", Access::Token, starts);
}
