//! The result page of the forms that make passwords (add a student, import a class, reset a
//! password): `GET /credentials/{form id}`. Its first view, in the browser that sent the form,
//! shows the login cards; every later view (a reload, Back, a second tab, the same form sent
//! again) shows what was done, says the passwords were shown once, and links to each person.
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::cards;
use crate::{
    config::Config,
    roster::Credential,
    web::{html, once, see_other, Keep, Page, RequireCounselor, WebError},
};

/// Which form made the passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Made {
    Import,
    Student,
    Reset,
}

/// What the form did, as kept with the spent form (no password).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shown {
    pub made: Made,
    pub people: Vec<Person>,
    /// Import rows left out because the person is already on the roster.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Person {
    pub username: String,
    pub display_name: String,
    pub cohort: Option<String>,
    /// Staff accounts are reached from the staff page, students from their own.
    pub staff: bool,
}

impl Person {
    pub fn href(&self) -> String {
        if self.staff {
            "/staff".into()
        } else {
            format!("/students/{}", self.username)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub line: u64,
    pub display_name: String,
    /// The account already on the roster.
    pub existing: String,
    pub existing_display_name: String,
}

pub fn url(form_id: Uuid) -> String {
    format!("/credentials/{form_id}")
}

/// Keeps `creds` (sealed, for the first view) and what was done; answers the redirect to the
/// result page.
pub fn keep(
    keep: &Keep,
    form_id: Uuid,
    made: Made,
    creds: &[Credential],
    staff: bool,
    skipped: Vec<Skipped>,
) -> Result<HttpResponse, WebError> {
    let people = creds
        .iter()
        .map(|c| Person {
            username: c.username.clone(),
            display_name: c.display_name.clone(),
            cohort: c.cohort.clone(),
            staff,
        })
        .collect();
    let shown = Shown {
        made,
        people,
        skipped,
    };
    let internal = |e: serde_json::Error| WebError::Internal(e.into());
    keep.result(serde_json::to_value(&shown).map_err(internal)?);
    keep.secret(serde_json::to_vec(creds).map_err(internal)?);
    Ok(see_other(&url(form_id)))
}

#[derive(Template)]
#[template(path = "roster/shown.html")]
pub struct ShownPage {
    pub page: Page,
    pub heading: String,
    pub shown: Shown,
    /// "10:32 UTC": when the passwords were shown.
    pub at: String,
}

/// `GET /credentials/{form id}`.
pub async fn show(
    pool: web::Data<PgPool>,
    config: web::Data<Config>,
    user: RequireCounselor,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = Uuid::parse_str(&path).map_err(|_| WebError::NotFound)?;
    let spent = once::take(&pool, &config, &req, &user, id)
        .await?
        .ok_or(WebError::NotFound)?;
    let shown: Shown = spent
        .result
        .and_then(|r| serde_json::from_value(r).ok())
        .ok_or(WebError::NotFound)?;
    let creds: Vec<Credential> = spent
        .secret
        .and_then(|s| serde_json::from_slice(&s).ok())
        .unwrap_or_default();
    if !creds.is_empty() {
        let (title, heading) = match shown.made {
            Made::Import => ("Login cards", format!("{} students created", creds.len())),
            Made::Student => ("New student", format!("Created {}", creds[0].username)),
            Made::Reset => (
                "New password",
                format!("New password for {}", creds[0].username),
            ),
        };
        let notice = first_view_notice(&shown);
        let page = Page::for_user(&config, &user, title).with_notice(Some(&notice));
        return cards::render(&config, page, heading, creds);
    }
    let n = shown.people.len();
    let (title, heading) = match (shown.made, shown.people.first()) {
        (Made::Import, _) if n == 0 => (
            "Import",
            "Nothing was imported: every row is already on the roster".to_string(),
        ),
        (Made::Import, _) => (
            "Login cards",
            format!(
                "This class was already imported: {n} student{}",
                if n == 1 { "" } else { "s" }
            ),
        ),
        (Made::Student, Some(p)) => ("New student", format!("{} was already created", p.username)),
        (Made::Reset, Some(p)) => (
            "New password",
            format!("{} already got a new password", p.username),
        ),
        _ => ("Done", "This form was already sent".to_string()),
    };
    let at = spent
        .at
        .format(time::macros::format_description!("[hour]:[minute] UTC"))
        .unwrap_or_default();
    html(&ShownPage {
        page: Page::for_user(&config, &user, title),
        heading,
        shown,
        at,
    })
}

/// Said above the cards: what was left out, and what to do when a card is lost later.
fn first_view_notice(shown: &Shown) -> String {
    let mut notice = String::new();
    if !shown.skipped.is_empty() {
        let names: Vec<String> = shown
            .skipped
            .iter()
            .map(|s| format!("{} (already {})", s.display_name, s.existing))
            .collect();
        notice.push_str(&format!(
            "{} row{} skipped, already on the roster: {}. ",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        ));
    }
    notice.push_str(
        "This page shows the passwords once: reloading it shows no password. If a card is lost \
         later, give that person a new password from their page.",
    );
    notice
}
