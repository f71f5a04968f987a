//! The cluster page (admins): the swarm's nodes with the students on each, the EC2 workers
//! hubdesk launched, problems and capacity; "Launch N workers" and the DryRun check; removing a
//! worker after a confirmation that names the students who run there.
use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    service::{bytes, InstanceRow, NodeRow, MAX_LAUNCH},
    Budget, Cluster, ClusterError, Overview,
};
use crate::{
    config::Config,
    domain::Actor,
    web::{html, html_status, see_other, Csrf, Once, Page, RequireAdmin, WebError},
};

#[derive(Template)]
#[template(path = "cluster/cluster.html")]
pub struct ClusterPage {
    pub page: Page,
    /// `None`: the cluster desk is off.
    pub overview: Option<Overview>,
    pub instance_type: String,
    pub max_launch: u32,
    /// What the last button did not manage, in plain words.
    pub error: String,
    /// The launch form's count as typed (after a refused launch), else "2".
    pub count: String,
    /// The launch was refused for the week's budget: offer "launch anyway".
    pub over_budget: bool,
}

impl ClusterPage {
    pub fn mem(&self, n: &i64) -> String {
        bytes((*n).max(0) as u64)
    }

    pub fn gib(&self, n: &u64) -> String {
        bytes(*n)
    }

    pub fn cpus(&self, n: &NodeRow) -> String {
        format!("{:.0}", n.node.cpus)
    }

    pub fn cost(&self, i: &InstanceRow) -> String {
        format!("${:.4}", i.hourly_cost)
    }

    pub fn node_name(&self, i: &InstanceRow) -> String {
        let o = self.overview.as_ref();
        i.node_id
            .as_deref()
            .and_then(|id| o.and_then(|o| o.node(id)))
            .map(|n| n.node.hostname.clone())
            .unwrap_or_default()
    }

    pub fn total_cost(&self) -> String {
        format!(
            "${:.2}",
            self.overview.as_ref().map(|o| o.hourly_cost).unwrap_or(0.0)
        )
    }
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub struct Button {}

#[derive(Deserialize)]
pub struct ClusterQuery {
    dry_run: Option<String>,
}

async fn render(
    cluster: Option<&Cluster>,
    config: &Config,
    user: &RequireAdmin,
    status: StatusCode,
    notice: Option<&str>,
    error: String,
) -> Result<HttpResponse, WebError> {
    let overview = match cluster {
        Some(c) => Some(c.overview().await),
        None => None,
    };
    html_status(
        status,
        &ClusterPage {
            page: Page::for_user(config, user, "Cluster").with_notice(notice),
            overview,
            instance_type: config.cluster.worker.instance_type.clone(),
            max_launch: MAX_LAUNCH,
            error,
            count: "2".into(),
            over_budget: false,
        },
    )
}

pub async fn show(
    cluster: Option<web::Data<Cluster>>,
    config: web::Data<Config>,
    user: RequireAdmin,
    q: web::Query<ClusterQuery>,
) -> Result<HttpResponse, WebError> {
    // Only a fixed sentence is echoed from the query string.
    let notice = (q.dry_run.as_deref() == Some("ok"))
        .then_some("Dry run passed: EC2 would launch a worker from this template.");
    render(
        cluster.as_ref().map(|c| c.get_ref()),
        &config,
        &user,
        StatusCode::OK,
        notice,
        String::new(),
    )
    .await
}

fn status_of(e: &ClusterError) -> StatusCode {
    match e {
        ClusterError::BadRequest(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ClusterError::OverBudget(_) => StatusCode::CONFLICT,
        ClusterError::Fleet(super::FleetError::NotOurs(_)) => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn desk(cluster: &Option<web::Data<Cluster>>) -> Result<&Cluster, WebError> {
    cluster
        .as_ref()
        .map(|c| c.get_ref())
        .ok_or(WebError::NotFound)
}

#[derive(Deserialize)]
pub struct LaunchForm {
    #[serde(default)]
    count: String,
    /// "Launch anyway, over the week's budget" (offered after a launch refused for it).
    #[serde(default)]
    over_budget: Option<String>,
}

pub async fn launch(
    cluster: Option<web::Data<Cluster>>,
    budget: web::Data<dyn Budget>,
    config: web::Data<Config>,
    user: RequireAdmin,
    form: Once<LaunchForm>,
) -> Result<HttpResponse, WebError> {
    // Once: a double click or a reload launches one batch, not two.
    form.run(move |form, _| async move {
        let c = desk(&cluster)?;
        let actor = Actor::User(user.username.clone());
        let anyway = form.over_budget.is_some();
        let result = match form.count.trim().parse::<u32>() {
            Ok(n) => c.launch_by_hand(&actor, n, budget.get_ref(), anyway).await,
            Err(_) => Err(ClusterError::BadRequest(format!(
                "How many workers? A number from 1 to {MAX_LAUNCH}."
            ))),
        };
        match result {
            Ok(id) => Ok(see_other(&format!("/jobs/{id}"))),
            Err(ClusterError::Db(e)) => Err(e.into()),
            Err(e) => {
                let overview = c.overview().await;
                let over_budget = matches!(e, ClusterError::OverBudget(_));
                let error = if over_budget {
                    format!(
                        "{} Launch anyway only if the camp can pay for it.",
                        crate::domain::sentence(&e.to_string())
                    )
                } else {
                    e.to_string()
                };
                html_status(
                    status_of(&e),
                    &ClusterPage {
                        page: Page::for_user(&config, &user, "Cluster"),
                        overview: Some(overview),
                        instance_type: config.cluster.worker.instance_type.clone(),
                        max_launch: MAX_LAUNCH,
                        error,
                        count: form.count.trim().to_string(),
                        over_budget,
                    },
                )
            }
        }
    })
    .await
}

pub async fn dry_run(
    cluster: Option<web::Data<Cluster>>,
    config: web::Data<Config>,
    user: RequireAdmin,
    _: Csrf<Button>,
) -> Result<HttpResponse, WebError> {
    let c = desk(&cluster)?;
    match c.dry_run().await {
        Ok(()) => Ok(see_other("/cluster?dry_run=ok")),
        Err(e) => {
            render(
                Some(c),
                &config,
                &user,
                status_of(&e),
                None,
                format!("Dry run failed: {e}"),
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "cluster/remove.html")]
pub struct RemovePage {
    pub page: Page,
    pub instance: InstanceRow,
    pub node: String,
    pub students: Vec<String>,
}

/// The confirmation: which node the worker is and who runs there.
pub async fn confirm_remove(
    cluster: Option<web::Data<Cluster>>,
    config: web::Data<Config>,
    user: RequireAdmin,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let c = desk(&cluster)?;
    let o = c.overview().await;
    let instance = o.instance(&path).cloned().ok_or(WebError::NotFound)?;
    let node = instance.node_id.as_deref().and_then(|id| o.node(id));
    html(&RemovePage {
        page: Page::for_user(&config, &user, "Remove a worker"),
        node: node.map(|n| n.node.hostname.clone()).unwrap_or_default(),
        students: node.map(|n| n.students.clone()).unwrap_or_default(),
        instance,
    })
}

pub async fn remove(
    cluster: Option<web::Data<Cluster>>,
    config: web::Data<Config>,
    user: RequireAdmin,
    path: web::Path<String>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    form.run(move |_, _| async move {
        let c = desk(&cluster)?;
        match c.remove(&Actor::User(user.username.clone()), &path).await {
            Ok(id) => Ok(see_other(&format!("/jobs/{id}"))),
            Err(ClusterError::Db(e)) => Err(e.into()),
            Err(e) => render(Some(c), &config, &user, status_of(&e), None, e.to_string()).await,
        }
    })
    .await
}
