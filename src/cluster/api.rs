//! The cluster in the JSON API:
//! `GET /api/v1/cluster` → `{swarm: {state, manager}, nodes: [...], instances: [...], capacity}`;
//! `POST /api/v1/cluster/workers {"count": N, "over_budget"?: bool}` → `202 {job}`, `409` when
//! the launch would pass the week's budget and `over_budget` is not set;
//! `DELETE /api/v1/cluster/workers/{instance_id}` → `202 {job}`, `403` for an instance without
//! hubdesk's tag (no terminate call).
use crate::web::routes::{Access, Table};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{Budget, Cluster, ClusterError, FleetError};
use crate::web::api::{ApiClient, ApiError};

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Fleet(FleetError::NotOurs(_)) => Self::Forbidden(e.to_string()),
            ClusterError::Fleet(FleetError::NoSuchInstance(_)) => Self::NotFound(e.to_string()),
            ClusterError::Fleet(FleetError::Template(_)) | ClusterError::BadRequest(_) => {
                Self::BadRequest(e.to_string())
            }
            ClusterError::OverBudget(o) => {
                Self::Conflict(format!("{o}; send \"over_budget\": true to launch anyway"))
            }
            ClusterError::Db(d) => d.into(),
            other => Self::Upstream(other.to_string()),
        }
    }
}

fn desk(cluster: Option<web::Data<Cluster>>) -> Result<web::Data<Cluster>, ApiError> {
    cluster.ok_or_else(|| {
        ApiError::NotFound("the cluster desk is off ([cluster] enabled = false)".into())
    })
}

async fn overview(
    cluster: Option<web::Data<Cluster>>,
    _: ApiClient,
) -> Result<HttpResponse, ApiError> {
    let o = desk(cluster)?.overview().await;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(o))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LaunchIn {
    count: u32,
    /// Launch even though it passes the week's budget (audited).
    #[serde(default)]
    over_budget: bool,
}

async fn launch(
    cluster: Option<web::Data<Cluster>>,
    budget: web::Data<dyn Budget>,
    client: ApiClient,
    body: web::Json<LaunchIn>,
) -> Result<HttpResponse, ApiError> {
    let id = desk(cluster)?
        .launch_by_hand(&client.0, body.count, budget.get_ref(), body.over_budget)
        .await?;
    Ok(HttpResponse::Accepted().json(json!({"job": id})))
}

async fn remove(
    cluster: Option<web::Data<Cluster>>,
    client: ApiClient,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = desk(cluster)?.remove(&client.0, &path).await?;
    Ok(HttpResponse::Accepted().json(json!({"job": id})))
}

pub fn routes(t: &mut Table) {
    t.get("/cluster", Access::AdminToken, overview)
        .post("/cluster/workers", Access::AdminToken, launch)
        .delete("/cluster/workers/{instance_id}", Access::AdminToken, remove);
}
