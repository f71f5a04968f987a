//! Class import: paste or upload → preview (nothing written) → confirm → cards.
use actix_multipart::Multipart;
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde::Deserialize;

use super::{cards, html, html_status, Page};
use crate::{
    auth::{csrf, RequireCounselor},
    error::WebError,
    roster::{
        self,
        import::{PlannedStudent, RowError, MAX_BYTES},
        Actor,
    },
    state::AppState,
};

#[derive(Template)]
#[template(path = "import.html")]
pub struct ImportPage {
    pub page: Page,
    pub text: String,
    pub errors: Vec<RowError>,
}

#[derive(Template)]
#[template(path = "import_preview.html")]
pub struct PreviewPage {
    pub page: Page,
    pub rows: Vec<PlannedStudent>,
    pub csv: String,
    pub generated: usize,
}

pub async fn form(
    state: web::Data<AppState>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    html(&ImportPage {
        page: Page::for_user(&state, &user, "Import a class"),
        text: String::new(),
        errors: Vec::new(),
    })
}

#[derive(Deserialize)]
pub struct TextForm {
    #[serde(default)]
    text: String,
    #[serde(default)]
    csrf_token: String,
}

/// Reads the submitted CSV from a multipart upload (`file` wins over `text` when both are
/// given) or a plain form. Returns (csrf token, bytes).
async fn read_submission(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(String, Vec<u8>), WebError> {
    let content_type = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("multipart/form-data") {
        let mut multipart = Multipart::new(req.headers(), payload);
        let (mut token, mut file, mut text) = (String::new(), Vec::new(), Vec::new());
        while let Some(field) = multipart.next().await {
            let mut field = field.map_err(|e| WebError::BadRequest(format!("upload: {e}")))?;
            let name = field.name().unwrap_or("").to_string();
            let mut buf = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| WebError::BadRequest(format!("upload: {e}")))?;
                if buf.len() + chunk.len() > MAX_BYTES + 4096 {
                    return Err(WebError::BadRequest(format!(
                        "the upload is larger than {} KiB",
                        MAX_BYTES / 1024
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
            match name.as_str() {
                "csrf_token" => token = String::from_utf8_lossy(&buf).into_owned(),
                "file" => file = buf,
                "text" => text = buf,
                _ => {}
            }
        }
        Ok((
            token,
            if file.iter().any(|b| !b.is_ascii_whitespace()) {
                file
            } else {
                text
            },
        ))
    } else {
        let bytes = payload
            .to_bytes_limited(MAX_BYTES * 4)
            .await
            .map_err(|_| {
                WebError::BadRequest(format!(
                    "the import is larger than {} KiB",
                    MAX_BYTES / 1024
                ))
            })?
            .map_err(|e| WebError::BadRequest(format!("reading form: {e}")))?;
        let form: TextForm = serde_urlencoded::from_bytes(&bytes)
            .map_err(|e| WebError::BadRequest(format!("form: {e}")))?;
        Ok((form.csrf_token, form.text.into_bytes()))
    }
}

pub async fn preview(
    state: web::Data<AppState>,
    user: RequireCounselor,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    let (token, bytes) = read_submission(&req, payload).await?;
    if !csrf::verify_user(&user, &token) {
        return Err(WebError::Csrf);
    }
    let parsed = roster::import::parse(&bytes);
    let planned = match parsed {
        Ok(rows) => {
            let mut conn = state.pool.acquire().await?;
            roster::import::plan(&mut conn, rows).await
        }
        Err(e) => Err(e),
    };
    match planned {
        Ok(rows) => {
            let generated = rows.iter().filter(|r| r.generated_username).count();
            let csv = roster::import::to_csv(&rows);
            html(&PreviewPage {
                page: Page::for_user(&state, &user, "Check the import"),
                rows,
                csv,
                generated,
            })
        }
        Err(errors) => {
            // Keep what was submitted so nothing is lost: the counselor fixes it in place.
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let page = ImportPage {
                page: Page::for_user(&state, &user, "Import a class"),
                text,
                errors,
            };
            html_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

#[derive(Deserialize)]
pub struct CommitForm {
    #[serde(default)]
    csv: String,
    #[serde(default)]
    csrf_token: String,
}

pub async fn commit(
    state: web::Data<AppState>,
    user: RequireCounselor,
    form: web::Form<CommitForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify_user(&user, &form.csrf_token) {
        return Err(WebError::Csrf);
    }
    let planned = match roster::import::parse(form.csv.as_bytes()) {
        Ok(rows) => {
            let mut conn = state.pool.acquire().await?;
            roster::import::plan(&mut conn, rows).await
        }
        Err(e) => Err(e),
    };
    let result = match planned {
        Ok(rows) => roster::ops::create_students(
            &state,
            &Actor::User(user.username.clone()),
            &rows,
            "import",
        )
        .await
        .map_err(|e| match e {
            roster::RosterError::Duplicate(name) => Ok(vec![RowError {
                line: 0,
                message: format!("username '{name}' was taken meanwhile"),
            }]),
            other => Err(other),
        }),
        Err(errors) => Err(Ok(errors)),
    };
    match result {
        Ok(creds) => {
            let heading = format!("{} students created", creds.len());
            cards::render(
                &state,
                Page::for_user(&state, &user, "Login cards"),
                heading,
                creds,
            )
        }
        Err(Ok(errors)) => {
            let page = ImportPage {
                page: Page::for_user(&state, &user, "Import a class"),
                text: form.csv.clone(),
                errors,
            };
            html_status(StatusCode::CONFLICT, &page)
        }
        Err(Err(e)) => Err(e.into()),
    }
}
