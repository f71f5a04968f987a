//! Class import: paste or upload → `POST /students/import` keeps the submission as a draft and
//! redirects to its preview, `GET /students/import/{draft}` (nothing written; the rows matched
//! against the roster) → confirm, a single-use form named by the draft's id → the login cards,
//! `GET /credentials/{draft}`. Back, reload, a double click or a second tab on any of these
//! pages creates nobody twice: the preview of a confirmed draft leads to what it created.
use std::collections::HashMap;

use actix_multipart::Multipart;
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde::Deserialize;
use uuid::Uuid;

use super::shown::{self, Made, Skipped};
use crate::{
    auth::csrf,
    config::Config,
    db,
    domain::Actor,
    roster::{
        self,
        import::{
            decode::{self, ReadAs},
            existing::{self, MatchedBy, PreviewRow},
            RowError, MAX_BYTES,
        },
        Roster, RosterError,
    },
    web::{html, html_status, once, see_other, Keep, Once, Page, RequireCounselor, WebError},
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
    pub draft: String,
    pub rows: Vec<PreviewRow>,
    pub csv: String,
    pub generated: usize,
    /// Rows that match a student already on the roster.
    pub matched: usize,
    /// How the file was read, when that is worth saying (not plain UTF-8 text).
    pub read_as: Option<String>,
}

impl PreviewPage {
    /// The radio group's name for a matched row (its planned username is unique in the plan).
    pub fn choice(&self, row: &PreviewRow) -> String {
        format!("row-{}", row.planned.username)
    }
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

/// What was submitted: the CSRF token, the pasted text, and the uploaded file (if any).
struct Submission {
    token: String,
    text: String,
    file: Option<Vec<u8>>,
}

/// Reads the submission from a multipart upload (a non-empty `file` wins over `text`) or a
/// plain form.
async fn read_submission(req: &HttpRequest, payload: web::Payload) -> Result<Submission, WebError> {
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
        Ok(Submission {
            token,
            // A browser sends the text box as UTF-8; anything else is not what was typed.
            text: String::from_utf8(text).unwrap_or_default(),
            file: file
                .iter()
                .any(|b| !b.is_ascii_whitespace())
                .then_some(file),
        })
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
        Ok(Submission {
            token: form.csrf_token,
            text: form.text,
            file: None,
        })
    }
}

/// Parses and plans `text` against the roster; the inner error lists every bad line (a
/// cohort outside the counselor's `reach` is one).
async fn parse_and_plan(
    roster: &Roster,
    reach: &crate::domain::Reach,
    text: &str,
) -> Result<Result<Vec<PreviewRow>, Vec<RowError>>, WebError> {
    let rows = match roster::import::parse(text.as_bytes()) {
        Ok(rows) => rows,
        Err(errors) => return Ok(Err(errors)),
    };
    if let Err(not_yours) = roster::import::out_of_reach(&rows, reach) {
        return Ok(Err(not_yours));
    }
    let mut conn = roster.pool.acquire().await?;
    Ok(existing::plan_against_roster(&mut conn, rows).await)
}

/// The import form again, with the errors and with what was submitted (when it is clean text),
/// so nothing is lost: the counselor fixes it in place.
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

/// `POST /students/import`: decodes and checks the submission, keeps it as a draft and sends
/// the browser to its preview (redirect after POST: the preview is a page Back returns to
/// without "Confirm Form Resubmission").
pub async fn preview(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, WebError> {
    // Multipart is no url-encoded form, so the `Csrf` extractor does not apply: checked here.
    let submission = read_submission(&req, payload).await?;
    if !csrf::verify_user(&user, &submission.token) {
        return Err(WebError::Csrf);
    }
    let from_file = submission.file.is_some();
    let bytes = submission
        .file
        .unwrap_or_else(|| submission.text.clone().into_bytes());
    let decoded = match decode::decode(&bytes) {
        Ok(d) => d,
        Err(e) => {
            // Never the damaged text back into the box: what was typed there, if anything, or
            // nothing (a file's bytes are not text to edit).
            let text = if from_file {
                submission.text
            } else {
                String::new()
            };
            let error = RowError {
                line: 0,
                message: e.to_string(),
            };
            return rejected(
                &config,
                &user,
                text,
                vec![error],
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
    };
    if let Err(errors) = parse_and_plan(&roster, &user.reach, &decoded.text).await? {
        return rejected(
            &config,
            &user,
            decoded.text,
            errors,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let read_as = decoded.read_as.to_string();
    let mut conn = roster.pool.acquire().await?;
    let draft = db::import_drafts::insert(&mut conn, user.id, &decoded.text, &read_as).await?;
    Ok(see_other(&format!("/students/import/{draft}")))
}

/// `GET /students/import/{draft}`: the preview, planned again against the roster as it is
/// now. A draft whose confirmation was sent leads to what that created.
pub async fn show_preview(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    if let Some(url) = once::spent_url(&roster.pool, &user, id).await? {
        return Ok(see_other(&url));
    }
    let mut conn = roster.pool.acquire().await?;
    let draft = db::import_drafts::find(&mut conn, user.id, id)
        .await?
        .ok_or(WebError::NotFound)?;
    drop(conn);
    let rows = match parse_and_plan(&roster, &user.reach, &draft.body).await? {
        Ok(rows) => rows,
        Err(errors) => {
            return rejected(
                &config,
                &user,
                draft.body,
                errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
    };
    // The confirmation carries the plan; a row matched by its username carries that username
    // (not the numbered one offered for "create anyway"), so the commit matches it again.
    let planned: Vec<_> = rows
        .iter()
        .map(|r| {
            let mut p = r.planned.clone();
            if let Some(e) = r.existing.as_ref().filter(|e| e.by == MatchedBy::Username) {
                if let Ok(u) = crate::domain::Username::parse(&e.username) {
                    p.username = u;
                }
            }
            p
        })
        .collect();
    let plain = draft.read_as == ReadAs::Utf8.to_string();
    let page = Page::for_user(&config, &user, "Check the import");
    html(&PreviewPage {
        page,
        draft: draft.id.to_string(),
        generated: rows.iter().filter(|r| r.planned.generated_username).count(),
        matched: rows.iter().filter(|r| r.existing.is_some()).count(),
        csv: roster::import::to_csv(&planned),
        read_as: (!plain).then_some(draft.read_as),
        rows,
    })
}

#[derive(Deserialize)]
pub struct CommitForm {
    #[serde(default)]
    csv: String,
    /// `row-<username>`: `skip` (the default) or `create` for a row that matched the roster.
    #[serde(flatten)]
    choices: HashMap<String, String>,
}

/// `POST /students/import/commit` (the draft's id as the form id): creates the previewed class
/// once. Everything is checked again: the database may have changed since the preview
/// (another counselor, the API); a row that now matches the roster is skipped unless it was
/// chosen for creation.
pub async fn commit(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    form: Once<CommitForm>,
) -> Result<HttpResponse, WebError> {
    let form_id = form.id();
    form.run(move |form, keep| async move {
        create_class(&roster, &config, &user, form_id, form, &keep).await
    })
    .await
}

async fn create_class(
    roster: &Roster,
    config: &Config,
    user: &RequireCounselor,
    form_id: Uuid,
    form: CommitForm,
    keep: &Keep,
) -> Result<HttpResponse, WebError> {
    let rows = match parse_and_plan(roster, &user.reach, &form.csv).await? {
        Ok(rows) => rows,
        Err(errors) => return rejected(config, user, form.csv, errors, StatusCode::CONFLICT),
    };
    let mut create = Vec::new();
    let mut skipped = Vec::new();
    for row in rows {
        let chosen = form
            .choices
            .get(&format!("row-{}", row.planned.username))
            .is_some_and(|c| c == "create");
        match row.existing {
            Some(e) if !chosen => skipped.push(Skipped {
                line: row.planned.line,
                display_name: row.planned.display_name.as_str().to_string(),
                existing: e.username,
                existing_display_name: e.display_name,
            }),
            _ => create.push(row.planned),
        }
    }
    let creds = if create.is_empty() {
        Vec::new()
    } else {
        let actor = Actor::User(user.username.clone());
        match roster
            .create_students(&actor, &user.reach, &create, "import")
            .await
        {
            Ok(creds) => creds,
            Err(RosterError::NotYours(message)) => {
                let errors = vec![RowError { line: 0, message }];
                return rejected(config, user, form.csv, errors, StatusCode::FORBIDDEN);
            }
            Err(RosterError::Duplicate(name)) => {
                let message = format!("username '{name}' was taken meanwhile");
                let errors = vec![RowError { line: 0, message }];
                return rejected(config, user, form.csv, errors, StatusCode::CONFLICT);
            }
            Err(e) => return Err(e.into()),
        }
    };
    shown::keep(keep, form_id, Made::Import, &creds, false, skipped)
}
