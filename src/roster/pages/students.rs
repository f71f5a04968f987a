//! The counselor's student pages.
use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::{
    actions::{self, Button},
    cards,
};
use crate::{
    auth::throttle,
    config::Config,
    db::{
        self,
        audit::{AuditFilter, AuditRow},
        users::{SortKey, StudentFilter, UserRow},
    },
    domain::{Actor, Cohort},
    homes::{self, Homes},
    roster::{
        import::PlannedStudent,
        ops::{Scope, StudentFields},
        Roster, RosterError,
    },
    servers::{ServerLine, Servers},
    web::{
        error::urlencode,
        form::{self, FieldErrors},
        html, html_status, see_other, Csrf, Page, RequireCounselor, WebError,
    },
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
#[template(path = "roster/students.html")]
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
    /// Running notebook servers by username (one call to the hub per page view).
    pub servers: std::collections::HashMap<String, ServerLine>,
    /// Why server state is unknown (no hub configured, or the hub unreachable).
    pub hub_problem: Option<String>,
}

impl StudentsPage {
    /// The home size measured in the background, for the list.
    pub fn size(&self, row: &UserRow) -> String {
        let bytes = row.home_bytes.unwrap_or(0).max(0) as u64;
        homes::pages::human_bytes(bytes)
    }
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
    roster: web::Data<Roster>,
    servers: web::Data<Servers>,
    config: web::Data<Config>,
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
    let mut conn = roster.pool.acquire().await?;
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
        ("Home size", SortKey::Usage),
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
    let (servers, hub_problem) = match servers.running().await {
        Ok(running) => (
            running
                .iter()
                .map(|(name, s)| (name.clone(), ServerLine::of(s)))
                .collect(),
            None,
        ),
        Err(e) => (
            Default::default(),
            Some(crate::servers::problem(&servers, &e)),
        ),
    };
    let page = StudentsPage {
        servers,
        hub_problem,
        page: Page::for_user(&config, &user, "Students").with_notice(notice),
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
}

/// Lifts a lock on a client address (shown on the student list while one is in force).
pub async fn unlock_address(
    roster: web::Data<Roster>,
    user: RequireCounselor,
    form: Csrf<AddressForm>,
) -> Result<HttpResponse, WebError> {
    let address = form
        .address
        .trim()
        .parse::<std::net::IpAddr>()
        .map_err(|_| WebError::BadRequest("That is not an IP address.".into()))?;
    let actor = Actor::User(user.username.clone());
    roster.unlock_address(&actor, &address).await?;
    Ok(see_other("/students?notice=address-unlocked"))
}

#[derive(Template)]
#[template(path = "roster/student_new.html")]
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
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    let mut conn = roster.pool.acquire().await?;
    let cohorts = db::users::cohorts(&mut conn).await?;
    html(&NewStudentPage {
        page: Page::for_user(&config, &user, "Add a student"),
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
}

pub async fn new_submit(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    form: Csrf<NewStudentForm>,
) -> Result<HttpResponse, WebError> {
    let fields = StudentFields {
        display_name: &form.display_name,
        username: &form.username,
        cohort: &form.cohort,
    };
    let actor = Actor::User(user.username.clone());
    let mut errors = FieldErrors::default();
    match roster.add_student(&actor, fields, "form").await {
        Ok(cred) => {
            let heading = format!("Created {}", cred.username);
            let page = Page::for_user(&config, &user, "New student");
            return cards::render(&config, page, heading, vec![cred]);
        }
        Err(RosterError::Invalid(problems)) => {
            for (field, message) in problems {
                errors.add(field, form::sentence(&message));
            }
        }
        Err(RosterError::Conflict(message)) => errors.add("username", form::sentence(&message)),
        Err(RosterError::Duplicate(name)) => {
            errors.add("username", format!("Username '{name}' already exists."))
        }
        Err(e) => return Err(e.into()),
    }
    let mut conn = roster.pool.acquire().await?;
    let cohorts = db::users::cohorts(&mut conn).await?;
    let page = NewStudentPage {
        page: Page::for_user(&config, &user, "Add a student"),
        display_name: form.display_name.clone(),
        username: form.username.clone(),
        cohort: form.cohort.clone(),
        cohorts,
        errors,
    };
    html_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

#[derive(Template)]
#[template(path = "roster/student.html")]
pub struct StudentPage {
    pub page: Page,
    pub student: UserRow,
    pub locked: bool,
    pub history: Vec<AuditRow>,
    pub home: homes::pages::HomeSection,
    pub server: Option<ServerLine>,
    pub hub_problem: Option<String>,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn detail(
    roster: web::Data<Roster>,
    homes: web::Data<Homes>,
    servers: web::Data<Servers>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> Result<HttpResponse, WebError> {
    let student = roster.find_student(&path).await?;
    let mut conn = roster.pool.acquire().await?;
    let locked = throttle::account_locked(&mut conn, &student.username).await?;
    let history = db::audit::list(
        &mut conn,
        &AuditFilter {
            target: Some(student.username.to_string()),
            limit: 20,
            ..Default::default()
        },
    )
    .await?;
    let notice = match q.notice.as_deref() {
        Some("disabled") => Some("Account disabled; the student's sessions have ended."),
        Some("enabled") => Some("Account enabled again."),
        Some("unlocked") => Some("Login lock lifted."),
        Some("server-stopped") => Some("Notebook server stopped."),
        _ => None,
    };
    drop(conn);
    let home = homes::pages::section(&roster.pool, &homes, &student.username).await;
    let (server, hub_problem) = match servers.of(&student.username).await {
        Ok(s) => (s.as_ref().map(ServerLine::of), None),
        Err(e) => (None, Some(crate::servers::problem(&servers, &e))),
    };
    html(&StudentPage {
        page: Page::for_user(&config, &user, student.display_name.clone()).with_notice(notice),
        student,
        locked,
        history,
        home,
        server,
        hub_problem,
    })
}

pub async fn reset_password(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
    _: Csrf<Button>,
) -> Result<HttpResponse, WebError> {
    actions::reset_password(&roster, &config, &user, Scope::Students, &path).await
}

/// Disable, enable or unlock (`POST /students/{username}/{action}`).
pub async fn account_action(
    roster: web::Data<Roster>,
    user: RequireCounselor,
    path: web::Path<(String, String)>,
    _: Csrf<Button>,
) -> Result<HttpResponse, WebError> {
    let (name, action) =
        actions::account_action(&roster, &user, Scope::Students, path.into_inner()).await?;
    Ok(see_other(&format!(
        "/students/{name}?notice={}",
        action.done()
    )))
}

pub async fn export(
    roster: web::Data<Roster>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    let body = roster
        .export_csv(&Actor::User(user.username.clone()))
        .await?;
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
