//! The counselor's student pages.
use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    cards, desk,
    form::{self, CsrfForm, FieldErrors},
    html, html_status, see_other, Page,
};
use crate::{
    auth::{csrf, throttle, RequireCounselor},
    db::{
        self,
        audit::{AuditFilter, AuditRow},
        users::{SortKey, StudentFilter, UserRow},
    },
    domain::{Cohort, DisplayName, Username},
    error::{urlencode, WebError},
    roster::{self, import::PlannedStudent, ops::Desk, Actor},
    state::AppState,
};

pub const PAGE_SIZE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    q: Option<String>,
    cohort: Option<String>,
    status: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    page: Option<i64>,
    notice: Option<String>,
}

pub struct SortHeader {
    pub label: &'static str,
    pub href: String,
    pub aria_sort: &'static str,
    pub arrow: &'static str,
}

#[derive(Template)]
#[template(path = "students.html")]
pub struct StudentsPage {
    pub page: Page,
    pub rows: Vec<UserRow>,
    pub total: i64,
    pub q: String,
    pub cohort: String,
    pub status: String,
    pub cohorts: Vec<String>,
    pub headers: Vec<SortHeader>,
    pub page_no: i64,
    pub pages: i64,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    pub filtered: bool,
    /// Addresses whose logins are locked (a whole classroom shares one).
    pub address_locks: Vec<AddressLockView>,
}

pub struct AddressLockView {
    pub address: String,
    pub failures: i32,
    pub until: String,
}

fn list_href(q: &str, cohort: &str, status: &str, sort: &str, dir: &str, page: i64) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("q", q),
        ("cohort", cohort),
        ("status", status),
        ("sort", sort),
        ("dir", dir),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={}", urlencode(v)));
        }
    }
    if page > 1 {
        parts.push(format!("page={page}"));
    }
    if parts.is_empty() {
        "/students".into()
    } else {
        format!("/students?{}", parts.join("&"))
    }
}

pub async fn list(
    state: web::Data<AppState>,
    user: RequireCounselor,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, WebError> {
    let q = query.q.clone().unwrap_or_default().trim().to_string();
    let cohort = query.cohort.clone().unwrap_or_default();
    let status = match query.status.as_deref() {
        Some(s @ ("active" | "disabled")) => s.to_string(),
        _ => String::new(),
    };
    let sort = SortKey::parse(query.sort.as_deref().unwrap_or(""));
    let descending = query.dir.as_deref() == Some("desc");
    let page_no = query.page.unwrap_or(1).max(1);
    let filter = StudentFilter {
        query: (!q.is_empty()).then(|| q.clone()),
        cohort: (!cohort.is_empty()).then(|| cohort.clone()),
        disabled: match status.as_str() {
            "active" => Some(false),
            "disabled" => Some(true),
            _ => None,
        },
        sort,
        descending,
        limit: PAGE_SIZE,
        offset: (page_no - 1).saturating_mul(PAGE_SIZE),
    };
    let mut conn = state.pool.acquire().await?;
    let (rows, total) = db::users::list_students(&mut conn, &filter).await?;
    let cohorts = db::users::cohorts(&mut conn).await?;
    let address_locks = db::throttle::address_locks(&mut conn)
        .await?
        .into_iter()
        .map(|l| AddressLockView {
            address: l.address,
            failures: l.failures,
            until: clock_time(l.locked_until),
        })
        .collect();
    drop(conn);
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let dir_str = if descending { "desc" } else { "asc" };
    let headers = [
        ("Username", SortKey::Username),
        ("Name", SortKey::DisplayName),
        ("Cohort", SortKey::Cohort),
        ("Created", SortKey::Created),
    ]
    .into_iter()
    .map(|(label, key)| {
        let active = key == sort;
        let next_dir = if active && !descending { "desc" } else { "asc" };
        SortHeader {
            label,
            href: list_href(&q, &cohort, &status, key.as_str(), next_dir, 1),
            aria_sort: match (active, descending) {
                (false, _) => "none",
                (true, false) => "ascending",
                (true, true) => "descending",
            },
            arrow: match (active, descending) {
                (false, _) => "",
                (true, false) => "▲",
                (true, true) => "▼",
            },
        }
    })
    .collect();
    let href = |p| list_href(&q, &cohort, &status, sort.as_str(), dir_str, p);
    let notice = match query.notice.as_deref() {
        Some("disabled") => Some("Student disabled."),
        Some("address-unlocked") => Some("Logins from that address work again."),
        _ => None,
    };
    let page = StudentsPage {
        page: Page::for_user(&state, &user, "Students").with_notice(notice),
        prev_href: (page_no > 1).then(|| href(page_no - 1)),
        next_href: (page_no < pages).then(|| href(page_no + 1)),
        filtered: filter.query.is_some() || filter.cohort.is_some() || filter.disabled.is_some(),
        rows,
        total,
        q,
        cohort,
        status,
        cohorts,
        headers,
        page_no,
        pages,
        address_locks,
    };
    html(&page)
}

/// `HH:MM` UTC, for "locked until".
fn clock_time(t: time::OffsetDateTime) -> String {
    format!("{:02}:{:02} UTC", t.hour(), t.minute())
}

#[derive(Deserialize)]
pub struct AddressForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    csrf_token: String,
}

/// Lifts a lock on a client address (shown on the student list while one is in force).
pub async fn unlock_address(
    state: web::Data<AppState>,
    user: RequireCounselor,
    form: web::Form<AddressForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify_user(&user, &form.csrf_token) {
        return Err(WebError::Csrf);
    }
    let address = form
        .address
        .trim()
        .parse::<std::net::IpAddr>()
        .map_err(|_| WebError::BadRequest("That is not an IP address.".into()))?;
    let actor = Actor::User(user.username.clone());
    roster::ops::unlock_address(&state, &actor, &address).await?;
    Ok(see_other("/students?notice=address-unlocked"))
}

#[derive(Template)]
#[template(path = "student_new.html")]
pub struct NewStudentPage {
    pub page: Page,
    pub display_name: String,
    pub username: String,
    pub cohort: String,
    pub cohorts: Vec<String>,
    pub errors: FieldErrors,
}

impl NewStudentPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }
}

pub async fn new_form(
    state: web::Data<AppState>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    let mut conn = state.pool.acquire().await?;
    let cohorts = db::users::cohorts(&mut conn).await?;
    html(&NewStudentPage {
        page: Page::for_user(&state, &user, "Add a student"),
        display_name: String::new(),
        username: String::new(),
        cohort: String::new(),
        cohorts,
        errors: FieldErrors::default(),
    })
}

#[derive(Deserialize)]
pub struct NewStudentForm {
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    cohort: String,
    #[serde(default)]
    csrf_token: String,
}

pub async fn new_submit(
    state: web::Data<AppState>,
    user: RequireCounselor,
    form: web::Form<NewStudentForm>,
) -> Result<HttpResponse, WebError> {
    if !csrf::verify_user(&user, &form.csrf_token) {
        return Err(WebError::Csrf);
    }
    let mut errors = FieldErrors::default();
    let display_name = errors.check("display_name", DisplayName::parse(&form.display_name));
    let username = match form.username.trim() {
        "" => None,
        raw => errors.check("username", Username::parse(&raw.to_ascii_lowercase())),
    };
    let cohort = errors
        .check("cohort", Cohort::parse_optional(&form.cohort))
        .flatten();
    let planned = match (display_name, errors.is_empty()) {
        (Some(display_name), true) => {
            let row = roster::import::ImportRow {
                line: 1,
                display_name,
                username,
                cohort,
            };
            let mut conn = state.pool.acquire().await?;
            match roster::import::plan(&mut conn, vec![row]).await {
                Ok(p) => Some(p),
                Err(e) => {
                    let messages: Vec<String> =
                        e.into_iter().map(|e| form::sentence(&e.message)).collect();
                    errors.add("username", messages.join(" "));
                    None
                }
            }
        }
        _ => None,
    };
    let created = match planned {
        Some(p) => match roster::ops::create_students(
            &state,
            &Actor::User(user.username.clone()),
            &p,
            "form",
        )
        .await
        {
            Ok(c) => Some(c),
            Err(roster::RosterError::Duplicate(name)) => {
                errors.add("username", format!("Username '{name}' already exists."));
                None
            }
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    match created {
        Some(creds) => {
            let heading = format!("Created {}", creds[0].username);
            cards::render(
                &state,
                Page::for_user(&state, &user, "New student"),
                heading,
                creds,
            )
        }
        None => {
            let mut conn = state.pool.acquire().await?;
            let cohorts = db::users::cohorts(&mut conn).await?;
            let page = NewStudentPage {
                page: Page::for_user(&state, &user, "Add a student"),
                display_name: form.display_name.clone(),
                username: form.username.clone(),
                cohort: form.cohort.clone(),
                cohorts,
                errors,
            };
            html_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
    }
}

#[derive(Template)]
#[template(path = "student.html")]
pub struct StudentPage {
    pub page: Page,
    pub student: UserRow,
    pub locked: bool,
    pub history: Vec<AuditRow>,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn detail(
    state: web::Data<AppState>,
    user: RequireCounselor,
    path: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> Result<HttpResponse, WebError> {
    let student = roster::ops::find_student(&state, &path).await?;
    let name = Username::parse(&student.username).map_err(|e| WebError::Internal(e.into()))?;
    let mut conn = state.pool.acquire().await?;
    let locked = throttle::account_locked(&mut conn, &name).await?;
    let history = db::audit::list(
        &mut conn,
        &AuditFilter {
            target: Some(student.username.clone()),
            limit: 20,
            ..Default::default()
        },
    )
    .await?;
    let notice = match q.notice.as_deref() {
        Some("disabled") => Some("Account disabled; the student's sessions have ended."),
        Some("enabled") => Some("Account enabled again."),
        Some("unlocked") => Some("Login lock lifted."),
        _ => None,
    };
    html(&StudentPage {
        page: Page::for_user(&state, &user, student.display_name.clone()).with_notice(notice),
        student,
        locked,
        history,
    })
}

pub async fn reset_password(
    state: web::Data<AppState>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    desk::reset_password(&state, &user, &form, Desk::Students, &path).await
}

/// Disable, enable or unlock (`POST /students/{username}/{action}`).
pub async fn account_action(
    state: web::Data<AppState>,
    user: RequireCounselor,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, WebError> {
    let (name, action) =
        desk::account_action(&state, &user, &form, Desk::Students, path.into_inner()).await?;
    Ok(see_other(&format!(
        "/students/{name}?notice={}",
        action.done()
    )))
}

/// A spreadsheet treats a cell starting with = + - @ (or tab/CR) as a formula: prefix a quote.
pub fn neutralise(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

pub async fn export(
    state: web::Data<AppState>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    let mut conn = state.pool.acquire().await?;
    let (rows, _) = db::users::list_students(&mut conn, &StudentFilter::default()).await?;
    db::audit::record(
        &mut conn,
        db::audit::Entry {
            actor: user.username.as_str(),
            action: "roster.export",
            target: None,
            detail: Some(&format!("{} students", rows.len())),
        },
    )
    .await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let header_ok = w
        .write_record(["username", "display_name", "cohort", "status", "created_at"])
        .is_ok();
    debug_assert!(header_ok);
    for r in &rows {
        let created = r
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        w.write_record([
            neutralise(&r.username),
            neutralise(&r.display_name),
            neutralise(r.cohort.as_deref().unwrap_or("")),
            r.status().to_string(),
            created,
        ])
        .map_err(|e| WebError::Internal(e.into()))?;
    }
    let body = w
        .into_inner()
        .map_err(|e| WebError::Internal(anyhow::anyhow!("csv: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", "attachment; filename=\"roster.csv\""))
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
}

/// Shown on the import preview.
pub fn cohort_of(p: &PlannedStudent) -> &str {
    p.cohort.as_ref().map(Cohort::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn formula_cells_are_neutralised() {
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(neutralise(bad).starts_with('\''), "{bad:?}");
        }
        assert_eq!(neutralise("Ada"), "Ada");
    }
}
