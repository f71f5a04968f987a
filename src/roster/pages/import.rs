//! Class import: paste or upload → preview (nothing written) → confirm → cards.
use actix_multipart::Multipart;
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde::Deserialize;

use super::cards;
use crate::{
    auth::csrf,
    config::Config,
    domain::Actor,
    roster::{
        self,
        import::{PlannedStudent, RowError, MAX_BYTES},
        Roster, RosterError,
    },
    web::{html, html_status, Csrf, Page, RequireCounselor, WebError},
};

#[derive(Template)]
#[template(path = "roster/import.html")]
pub struct ImportPage {
    pub page: Page,
    pub text: String,
    pub errors: Vec<RowError>,
}

#[derive(Template)]
#[template(path = "roster/import_preview.html")]
pub struct PreviewPage {
    pub page: Page,
    pub rows: Vec<PlannedStudent>,
    pub csv: String,
    pub generated: usize,
}

pub async fn form(
    config: web::Data<Config>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    html(&ImportPage {
        page: Page::for_user(&config, &user, "Import a class"),
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
        let mut total = 0usize;
        while let Some(field) = multipart.next().await {
            let mut field = field.map_err(|e| WebError::BadRequest(format!("upload: {e}")))?;
            let name = field.name().unwrap_or("").to_string();
            let mut buf = Vec::new();
            while let Some(chunk) = field.next().await {
                let chunk = chunk.map_err(|e| WebError::BadRequest(format!("upload: {e}")))?;
                total += chunk.len();
                if buf.len() + chunk.len() > MAX_BYTES + 4096 || total > 2 * MAX_BYTES + 65536 {
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

/// Parses and plans a submission; the inner error lists every bad line.
async fn parse_and_plan(
    roster: &Roster,
    bytes: &[u8],
) -> Result<Result<Vec<PlannedStudent>, Vec<RowError>>, WebError> {
    let rows = match roster::import::parse(bytes) {
        Ok(rows) => rows,
        Err(errors) => return Ok(Err(errors)),
    };
    let mut conn = roster.pool.acquire().await?;
    Ok(roster::import::plan(&mut conn, rows).await)
}

/// The import form again, with the errors and with what was submitted, so nothing is lost:
/// the counselor fixes it in place.
fn rejected(
    config: &Config,
    user: &RequireCounselor,
    text: String,
    errors: Vec<RowError>,
    status: StatusCode,
) -> Result<HttpResponse, WebError> {
    let page = ImportPage {
        page: Page::for_user(config, user, "Import a class"),
        text,
        errors,
    };
    html_status(status, &page)
}

pub async fn preview(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    // Multipart is no url-encoded form, so the `Csrf` extractor does not apply: checked here.
    let (token, bytes) = read_submission(&req, payload).await?;
    if !csrf::verify_user(&user, &token) {
        return Err(WebError::Csrf);
    }
    match parse_and_plan(&roster, &bytes).await? {
        Ok(rows) => {
            let generated = rows.iter().filter(|r| r.generated_username).count();
            let csv = roster::import::to_csv(&rows);
            html(&PreviewPage {
                page: Page::for_user(&config, &user, "Check the import"),
                rows,
                csv,
                generated,
            })
        }
        Err(errors) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            rejected(
                &config,
                &user,
                text,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    }
}

#[derive(Deserialize)]
pub struct CommitForm {
    #[serde(default)]
    csv: String,
}

/// Creates the previewed class. Everything is checked again: the database may have changed
/// since the preview (another counselor, the API).
pub async fn commit(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    form: Csrf<CommitForm>,
) -> Result<HttpResponse, WebError> {
    let planned = match parse_and_plan(&roster, form.csv.as_bytes()).await? {
        Ok(planned) => planned,
        Err(errors) => {
            return rejected(
                &config,
                &user,
                form.csv.clone(),
                errors,
                StatusCode::CONFLICT,
            )
        }
    };
    let actor = Actor::User(user.username.clone());
    let creds = match roster.create_students(&actor, &planned, "import").await {
        Ok(creds) => creds,
        Err(RosterError::Duplicate(name)) => {
            let message = format!("username '{name}' was taken meanwhile");
            let errors = vec![RowError { line: 0, message }];
            return rejected(
                &config,
                &user,
                form.csv.clone(),
                errors,
                StatusCode::CONFLICT,
            );
        }
        Err(e) => return Err(e.into()),
    };
    let heading = format!("{} students created", creds.len());
    cards::render(
        &config,
        Page::for_user(&config, &user, "Login cards"),
        heading,
        creds,
    )
}
