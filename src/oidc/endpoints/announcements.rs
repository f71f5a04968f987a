//! `GET /oauth/announcements`: the announcements on now, for a relying party to show on its own
//! pages (the shipped hub configuration shows them on the hub's, `deploy/hub/hubdesk_spawner.py`
//! `HubdeskAnnouncements`). Each says whom it is for — `group`: null (everyone) or the
//! `cohort-<slug>` group of the `groups` claim — and who dismissed it. The client authenticates
//! as at the token endpoint, by HTTP Basic.
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::{client_auth, error::OAuthError, params::Params};
use crate::{db, domain::cohort::slug, oidc::Oidc};

pub async fn announcements(
    oidc: web::Data<Oidc>,
    req: HttpRequest,
) -> Result<HttpResponse, OAuthError> {
    client_auth::authenticate(&oidc, &req, &Params::default())?;
    let rows = {
        let mut conn = oidc.pool.acquire().await?;
        db::announcements::current_with_dismissals(&mut conn, oidc.config.calendar.now()).await?
    };
    let list: Vec<_> = rows
        .into_iter()
        .map(|(a, dismissed_by)| {
            json!({
                "id": a.id,
                "message": a.message,
                "group": a.cohort.as_deref().map(|c| format!("cohort-{}", slug(c))),
                "ends_at": a.ends_at.format(&Rfc3339).unwrap_or_default(),
                "dismissed_by": dismissed_by,
            })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "announcements": list })))
}
