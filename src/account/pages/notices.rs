//! `POST /notices/{key}/dismiss`: an admin has read a setup notice; it stays away for them
//! (every admin dismisses it for themselves) and they land back on the page they were on.
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;

use crate::{
    db,
    web::{safe_next, see_other, Csrf, RequireAdmin, SetupNotice, WebError},
};

#[derive(Deserialize)]
pub struct DismissForm {}

pub async fn dismiss(
    pool: web::Data<PgPool>,
    user: RequireAdmin,
    path: web::Path<String>,
    req: HttpRequest,
    _: Csrf<DismissForm>,
) -> Result<HttpResponse, WebError> {
    let notice = SetupNotice::parse(&path)
        .ok_or_else(|| WebError::Missing(format!("no notice named '{}'", path.as_str())))?;
    let mut conn = pool.acquire().await?;
    db::notices::dismiss(&mut conn, user.id, notice.key()).await?;
    Ok(see_other(&back_to(&req)))
}

/// The page the form was on (the Referer, which `Referrer-Policy: same-origin` sends to us),
/// reduced to a local path: whatever it names, the redirect stays on hubdesk.
fn back_to(req: &HttpRequest) -> String {
    let referer = req
        .headers()
        .get(actix_web::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        });
    safe_next(referer.as_deref())
}
