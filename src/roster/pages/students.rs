//! The counselor's student pages.
use std::collections::HashMap;

use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    actions::{self, Button},
    shown::{self, Made},
};
use crate::{
    config::{Config, StorageLimit},
    db::{
        self,
        audit::{AuditFilter, AuditRow},
        users::{SortKey, StudentFilter, UserRow},
    },
    domain::{Actor, Cohort, Username},
    homes::{self, quota::HomeQuota, Homes},
    roster::{
        import::PlannedStudent,
        ops::{Scope, StudentFields},
        Roster, RosterError,
    },
    servers::{ServerLine, Servers},
    web::{
        error::urlencode,
        form::{self, FieldErrors},
        html, html_status, see_other, Once, Page, RequireCounselor, WebError,
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
    /// Who was just unlocked (with `notice=unlocked`).
    student: Option<String>,
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
    /// `[homes] quota_default`: a row without its own limit is held to it.
    pub default_quota: StorageLimit,
    /// Login locks in force on this page's students, by username.
    pub locks: HashMap<String, LockView>,
    /// Students locked out now, on any page (the banner).
    pub locked_count: i64,
    /// Where an Unlock pressed in the list comes back to: `locked` (the filter) or `list`.
    pub back: &'static str,
}

impl StudentsPage {
    /// The home measured in the background against its limit, for the list.
    pub fn quota(&self, row: &UserRow) -> HomeQuota {
        HomeQuota::of_row(row, self.default_quota)
    }

    pub fn lock(&self, row: &UserRow) -> Option<&LockView> {
        self.locks.get(row.username.as_str())
    }
}

/// A login lock in words: "until 10:42 UTC", "in 14 min".
pub struct LockView {
    pub until: String,
    pub left: String,
    pub failures: i32,
}

impl LockView {
    pub fn of(until: OffsetDateTime, failures: i32) -> Self {
        let secs = (until - OffsetDateTime::now_utc()).whole_seconds().max(1);
        let left = if secs < 60 {
            format!("in {secs} s")
        } else {
            format!("in {} min", (secs + 59) / 60)
        };
        Self {
            until: clock_time(until),
            left,
            failures,
        }
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
        Some(s @ ("active" | "disabled" | "locked")) => s.to_string(),
        _ => String::new(),
    };
    let sort = SortKey::parse(query.sort.as_deref().unwrap_or(""));
    let descending = query.dir.as_deref() == Some("desc");
    let page_no = query.page.unwrap_or(1).max(1);
    let filter = StudentFilter {
        query: (!q.is_empty()).then(|| q.clone()),
        cohort: (!cohort.is_empty()).then(|| cohort.clone()),
        // "Active" is what the badge says: enabled and able to log in.
        disabled: match status.as_str() {
            "active" => Some(false),
            "disabled" => Some(true),
            _ => None,
        },
        locked: match status.as_str() {
            "active" => Some(false),
            "locked" => Some(true),
            _ => None,
        },
        sort,
        descending,
        limit: PAGE_SIZE,
        offset: (page_no - 1).saturating_mul(PAGE_SIZE),
        reach: user.reach.cohorts().map(<[String]>::to_vec),
    };
    let mut conn = roster.pool.acquire().await?;
    let (rows, total) = db::users::list_students(&mut conn, &filter).await?;
    let mut cohorts = db::users::cohorts(&mut conn).await?;
    cohorts.retain(|c| user.reach.admits(Some(c)));
    let address_locks = db::throttle::address_locks(&mut conn)
        .await?
        .into_iter()
        .map(|l| AddressLockView {
            address: l.address,
            failures: l.failures,
            until: clock_time(l.locked_until),
        })
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r.username.as_str()).collect();
    let locks = db::throttle::account_locks(&mut conn, &names)
        .await?
        .into_iter()
        .map(|l| (l.username, LockView::of(l.locked_until, l.failures)))
        .collect();
    let locked_count = db::throttle::locked_students(&mut conn).await?;
    drop(conn);
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let dir_str = if descending { "desc" } else { "asc" };
    let headers = [
        ("Username", SortKey::Username),
        ("Name", SortKey::DisplayName),
        ("Cohort", SortKey::Cohort),
        ("Created", SortKey::Created),
        ("Home", SortKey::Usage),
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
    // Only a real username is echoed: a crafted link cannot put words on the page.
    let unlocked = query
        .student
        .as_deref()
        .and_then(|u| Username::parse(u).ok());
    let notice = match (query.notice.as_deref(), unlocked) {
        (Some("disabled"), _) => Some("Student disabled.".to_string()),
        (Some("address-unlocked"), _) => Some("Logins from that address work again.".into()),
        (Some("camp-paused"), _) => {
            Some("The camp is paused: student servers are stopping.".into())
        }
        (Some("camp-resumed"), _) => Some("The camp is running again: students can log in.".into()),
        (Some("unlocked"), Some(u)) => Some(format!("{u} can log in again.")),
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
        default_quota: config.homes.quota_default,
        page: Page::for_user(&config, &user, "Students").with_notice(notice.as_deref()),
        locks,
        locked_count,
        back: if status == "locked" { "locked" } else { "list" },
        prev_href: (page_no > 1).then(|| href(page_no - 1)),
        next_href: (page_no < pages).then(|| href(page_no + 1)),
        filtered: filter.query.is_some()
            || filter.cohort.is_some()
            || filter.disabled.is_some()
            || filter.locked.is_some(),
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
    form: Once<AddressForm>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move {
        let address = form
            .address
            .trim()
            .parse::<std::net::IpAddr>()
            .map_err(|_| WebError::BadRequest("That is not an IP address.".into()))?;
        let actor = Actor::User(user.username.clone());
        roster.unlock_address(&actor, &address).await?;
        Ok(see_other("/students?notice=address-unlocked"))
    })
    .await
}

#[derive(Template)]
#[template(path = "roster/student_new.html")]
pub struct NewStudentPage {
    pub page: Page,
    /// The single-use form's id: a fresh one, or the one sent when the form comes back.
    pub form_id: String,
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
    let mut cohorts = db::users::cohorts(&mut conn).await?;
    cohorts.retain(|c| user.reach.admits(Some(c)));
    let page = Page::for_user(&config, &user, "Add a student");
    html(&NewStudentPage {
        form_id: page.new_form_id(),
        page,
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

/// Creates the student once (`Once`), then sends the browser to the card (`GET /credentials/…`).
pub async fn new_submit(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireCounselor,
    form: Once<NewStudentForm>,
) -> Result<HttpResponse, WebError> {
    let form_id = form.id();
    form.run(move |form, keep| async move {
        add_student(&roster, &config, &user, form_id, &form, &keep).await
    })
    .await
}

async fn add_student(
    roster: &Roster,
    config: &Config,
    user: &RequireCounselor,
    form_id: uuid::Uuid,
    form: &NewStudentForm,
    keep: &crate::web::Keep,
) -> Result<HttpResponse, WebError> {
    let fields = StudentFields {
        display_name: &form.display_name,
        username: &form.username,
        cohort: &form.cohort,
    };
    let actor = Actor::User(user.username.clone());
    let mut errors = FieldErrors::default();
    match roster
        .add_student(&actor, &user.reach, fields, "form")
        .await
    {
        Ok(cred) => return shown::keep(keep, form_id, Made::Student, &[cred], false, vec![]),
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
    let mut cohorts = db::users::cohorts(&mut conn).await?;
    cohorts.retain(|c| user.reach.admits(Some(c)));
    let page = NewStudentPage {
        page: Page::for_user(config, user, "Add a student"),
        form_id: form_id.to_string(),
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
    /// The login lock in force, if any.
    pub lock: Option<LockView>,
    pub history: Vec<AuditRow>,
    pub home: homes::section::HomeSection,
    pub server: Option<ServerLine>,
    pub hub_problem: Option<String>,
    /// The last 20 starts of the student's server (the spawn timeline).
    pub starts: Vec<crate::board::starts::StartView>,
    /// The storage limit form: what was typed, the error beside it, a confirmation to give.
    pub quota_form: QuotaForm,
}

/// The student's storage limit form as the page shows it.
#[derive(Default)]
pub struct QuotaForm {
    /// The field's value: what was typed, else the student's own limit (empty: the default).
    pub value: String,
    pub error: String,
    /// Set when the new limit is below what the home holds: the page asks before saving.
    pub confirm: Option<QuotaConfirm>,
}

pub struct QuotaConfirm {
    /// The limit to save (as typed, sent again with `confirm=yes`), and how it reads.
    pub value: String,
    pub limit: String,
    pub holds: String,
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
    let notice = match q.notice.as_deref() {
        Some("disabled") => Some("Account disabled; the student's sessions have ended."),
        Some("enabled") => Some("Account enabled again."),
        Some("unlocked") => Some("Login lock lifted."),
        Some("server-stopped") => Some("Notebook server stopped."),
        Some("quota") => Some("Storage limit saved."),
        Some("quota-later") => Some(
            "Storage limit saved. The NFS node could not be told yet: it gets the limit at the \
             next usage sweep.",
        ),
        _ => None,
    };
    let page = student_page(&roster, &homes, &servers, &config, &user, &path, notice).await?;
    html(&page)
}

/// The student's page, for the detail view and for the forms that render it again.
async fn student_page(
    roster: &Roster,
    homes: &Homes,
    servers: &Servers,
    config: &Config,
    user: &RequireCounselor,
    name: &str,
    notice: Option<&str>,
) -> Result<StudentPage, WebError> {
    let student = roster.find_student(name).await?;
    let mut conn = roster.pool.acquire().await?;
    let lock = db::throttle::account_locks(&mut conn, &[student.username.as_str()])
        .await?
        .into_iter()
        .next()
        .map(|l| LockView::of(l.locked_until, l.failures));
    let history = db::audit::list(
        &mut conn,
        &AuditFilter {
            target: Some(student.username.to_string()),
            limit: 20,
            ..Default::default()
        },
    )
    .await?;
    drop(conn);
    let home = homes::section::section(&roster.pool, homes, &student.username).await;
    let (server, hub_problem) = match servers.of(&student.username).await {
        Ok(s) => (s.as_ref().map(ServerLine::of), None),
        Err(e) => (None, Some(crate::servers::problem(servers, &e))),
    };
    let starts = crate::board::starts::starts_of(&roster.pool, &student.username).await?;
    let own = student
        .home_quota_bytes
        .and_then(|b| u64::try_from(b).ok())
        .and_then(|b| StorageLimit::from_bytes(b).ok());
    Ok(StudentPage {
        page: Page::for_user(config, user, student.display_name.clone()).with_notice(notice),
        quota_form: QuotaForm {
            value: own.map(|l| l.to_string()).unwrap_or_default(),
            ..QuotaForm::default()
        },
        student,
        lock,
        history,
        home,
        server,
        hub_problem,
        starts,
    })
}

#[derive(Deserialize)]
pub struct QuotaFormIn {
    #[serde(default)]
    limit: String,
    /// `yes` once the counselor has seen that the limit is below what the home holds.
    #[serde(default)]
    confirm: String,
}

/// `POST /students/{username}/home/quota` (field `limit`: `10GiB`, `500MiB`…; empty: back to
/// the default). A bad value comes back beside the field (422); a limit below what the home
/// holds now is asked about first (the page again, with a confirmation); then saved, audited,
/// and sent to the NFS node.
pub async fn home_quota(
    roster: web::Data<Roster>,
    homes: web::Data<Homes>,
    servers: web::Data<Servers>,
    config: web::Data<Config>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: Once<QuotaFormIn>,
) -> Result<HttpResponse, WebError> {
    form.run(move |form, _| async move {
        save_quota(&roster, &homes, &servers, &config, &user, &path, &form).await
    })
    .await
}

async fn save_quota(
    roster: &Roster,
    homes: &Homes,
    servers: &Servers,
    config: &Config,
    user: &RequireCounselor,
    path: &str,
    form: &QuotaFormIn,
) -> Result<HttpResponse, WebError> {
    let student = roster.find_student(path).await?;
    let again = |quota_form: QuotaForm| async move {
        let mut page = student_page(roster, homes, servers, config, user, path, None).await?;
        page.quota_form = quota_form;
        Ok::<_, WebError>(page)
    };
    let own = match homes::quota::parse_own_limit(&form.limit) {
        Ok(own) => own,
        Err(message) => {
            let page = again(QuotaForm {
                value: form.limit.clone(),
                error: form::sentence(&message),
                confirm: None,
            })
            .await?;
            return html_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
    };
    let limit = own.unwrap_or(config.homes.quota_default);
    if form.confirm != "yes" {
        if let Some(l) = limit.bytes() {
            let holds = match homes.exists(&student.username).await {
                Ok(true) => homes.usage(&student.username).await.ok(),
                _ => None,
            };
            if let Some(holds) = holds.filter(|h| *h > l) {
                let page = again(QuotaForm {
                    value: form.limit.clone(),
                    error: String::new(),
                    confirm: Some(QuotaConfirm {
                        value: form.limit.trim().to_string(),
                        limit: limit.to_string(),
                        holds: homes::section::human_bytes(holds),
                    }),
                })
                .await?;
                return html(&page);
            }
        }
    }
    let actor = Actor::User(user.username.clone());
    let change = homes.set_quota(&actor, &student.username, own).await?;
    let notice = if change.list_written {
        "quota"
    } else {
        "quota-later"
    };
    Ok(see_other(&format!(
        "/students/{}?notice={notice}#home",
        student.username
    )))
}

pub async fn reset_password(
    roster: web::Data<Roster>,
    user: RequireCounselor,
    path: web::Path<String>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    let form_id = form.id();
    form.run(move |_, keep| async move {
        actions::reset_password(&roster, &user, Scope::Students, &path, form_id, &keep).await
    })
    .await
}

#[derive(Deserialize)]
pub struct ActionForm {
    /// `list` or `locked`: the button was pressed in the student list (its locked filter);
    /// go back there rather than to the student's page.
    #[serde(default)]
    back: String,
}

/// Disable, enable or unlock (`POST /students/{username}/{action}`).
pub async fn account_action(
    roster: web::Data<Roster>,
    user: RequireCounselor,
    path: web::Path<(String, String)>,
    form: Once<ActionForm>,
) -> Result<HttpResponse, WebError> {
    let back = form.form().back.clone();
    form.run(move |_, _| async move {
        let (name, action) =
            actions::account_action(&roster, &user, Scope::Students, path.into_inner()).await?;
        let done = action.done();
        Ok(see_other(&match back.as_str() {
            "list" => format!("/students?notice={done}&student={name}"),
            "locked" => format!("/students?status=locked&notice={done}&student={name}"),
            _ => format!("/students/{name}?notice={done}"),
        }))
    })
    .await
}

pub async fn export(
    roster: web::Data<Roster>,
    user: RequireCounselor,
) -> Result<HttpResponse, WebError> {
    let body = roster
        .export_csv(&Actor::User(user.username.clone()), &user.reach)
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
