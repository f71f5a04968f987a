//! Admins manage counselors and other admins.
use actix_web::{http::StatusCode, web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::actions::{self, Button};
use crate::{
    auth::throttle,
    config::Config,
    db::{self, users::UserRow},
    domain::{Actor, Reach, Role, Username},
    roster::{
        ops::{self, Scope},
        Roster, RosterError,
    },
    web::{
        form::{self, FieldErrors},
        html, html_status, see_other, Csrf, Once, Page, RequireAdmin, WebError,
    },
};

#[derive(Template)]
#[template(path = "roster/staff.html")]
pub struct StaffPage {
    pub page: Page,
    /// The add-account form's single-use id (kept when the form comes back with errors).
    pub form_id: String,
    pub staff: Vec<UserRow>,
    /// Usernames whose login is locked after failed attempts.
    pub locked: Vec<String>,
    pub username: String,
    pub display_name: String,
    pub role: String,
    /// The initial password as typed, kept when the error is elsewhere (see `create`).
    pub password: String,
    pub errors: FieldErrors,
    pub min_length: usize,
    /// Every cohort a counselor can be given.
    pub cohorts: Vec<String>,
    /// Each counselor's reach, by username.
    pub reaches: std::collections::HashMap<String, Reach>,
}

impl StaffPage {
    pub fn error(&self, field: &str) -> String {
        self.errors.get(field)
    }

    pub fn is_locked(&self, username: &Username) -> bool {
        self.locked.iter().any(|u| u == username.as_str())
    }

    /// A counselor's reach in words ("every cohort", "Morning, Evening").
    pub fn reach_words(&self, username: &Username) -> String {
        self.reaches
            .get(username.as_str())
            .map_or_else(|| "every cohort".into(), Reach::describe)
    }

    pub fn reaches_all(&self, username: &Username) -> bool {
        self.reaches
            .get(username.as_str())
            .is_none_or(Reach::is_all)
    }

    pub fn looks_after(&self, username: &Username, cohort: &str) -> bool {
        self.reaches
            .get(username.as_str())
            .is_some_and(|r| !r.is_all() && r.admits(Some(cohort)))
    }

    /// The admin looking at the page gets no buttons on their own row.
    pub fn is_me(&self, username: &Username) -> bool {
        self.page
            .user
            .as_ref()
            .is_some_and(|u| u.username == username.as_str())
    }
}

#[derive(Deserialize)]
pub struct StaffQuery {
    created: Option<String>,
    disabled: Option<String>,
    enabled: Option<String>,
    unlocked: Option<String>,
    cohorts: Option<String>,
}

/// The staff accounts, which of them are locked out, the cohorts and the counselors' reach.
struct Staff {
    staff: Vec<UserRow>,
    locked: Vec<String>,
    cohorts: Vec<String>,
    reaches: std::collections::HashMap<String, Reach>,
}

async fn staff_and_locks(roster: &Roster) -> Result<Staff, WebError> {
    let mut conn = roster.pool.acquire().await?;
    let staff = db::users::list_staff(&mut conn).await?;
    let names: Vec<&str> = staff.iter().map(|s| s.username.as_str()).collect();
    let locked = throttle::locked_accounts(&mut conn, &names).await?;
    let mut cohorts = db::users::cohorts(&mut conn).await?;
    cohorts.extend(db::cohorts::names(&mut conn).await?);
    cohorts.sort();
    cohorts.dedup();
    let reaches = db::users::counselor_cohorts(&mut conn)
        .await?
        .into_iter()
        .map(|(u, c)| (u.to_string(), Reach::from_column(c)))
        .collect();
    Ok(Staff {
        staff,
        locked,
        cohorts,
        reaches,
    })
}

impl StaffQuery {
    /// The confirmation after a redirect; only a real username is echoed (a crafted link
    /// cannot put words on the page).
    fn notice(&self) -> Option<String> {
        let account = |u: &Option<String>, what: &str| {
            let name = Username::parse(u.as_deref()?).ok()?;
            Some(format!("Account {name} {what}."))
        };
        account(&self.created, "created")
            .or_else(|| account(&self.disabled, "disabled: logged out everywhere"))
            .or_else(|| account(&self.enabled, "enabled again"))
            .or_else(|| account(&self.unlocked, "unlocked: they can log in again"))
            .or_else(|| {
                account(
                    &self.cohorts,
                    "looks after new cohorts from their next click",
                )
            })
    }
}

pub async fn list(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireAdmin,
    q: web::Query<StaffQuery>,
) -> Result<HttpResponse, WebError> {
    let Staff {
        staff,
        locked,
        cohorts,
        reaches,
    } = staff_and_locks(&roster).await?;
    let page = Page::for_user(&config, &user, "Staff").with_notice(q.notice().as_deref());
    html(&StaffPage {
        form_id: page.new_form_id(),
        page,
        staff,
        locked,
        cohorts,
        reaches,
        username: String::new(),
        display_name: String::new(),
        role: "counselor".into(),
        password: String::new(),
        errors: FieldErrors::default(),
        min_length: config.password.min_length,
    })
}

#[derive(Deserialize)]
pub struct StaffForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

pub async fn create(
    roster: web::Data<Roster>,
    config: web::Data<Config>,
    user: RequireAdmin,
    form: Once<StaffForm>,
) -> Result<HttpResponse, WebError> {
    let form_id = form.id().to_string();
    form.run(
        move |form, _| async move { create_account(&roster, &config, &user, form_id, &form).await },
    )
    .await
}

async fn create_account(
    roster: &Roster,
    config: &Config,
    user: &RequireAdmin,
    form_id: String,
    form: &StaffForm,
) -> Result<HttpResponse, WebError> {
    let mut errors = FieldErrors::default();
    let account = form::new_account(
        &mut errors,
        &form.username,
        &form.display_name,
        &form.password,
        config.password.min_length,
    );
    // Say "taken" now, with the other messages, rather than after they are fixed; a reserved
    // name comes with free ones to try.
    let mut conn = roster.pool.acquire().await?;
    if let Ok(name) = Username::parse(&form.username.trim().to_ascii_lowercase()) {
        if db::users::find_by_username(&mut conn, &name)
            .await?
            .is_some()
        {
            errors.add("username", "This username is taken.");
        }
    } else if let Some(hint) =
        ops::reserved_hint_for(&mut conn, &form.username, &form.display_name).await?
    {
        errors.add("username", hint);
    }
    drop(conn);
    let role = match Role::parse(&form.role) {
        Some(r @ (Role::Counselor | Role::Admin)) => Some(r),
        _ => {
            errors.add("role", "Choose counselor or admin.");
            None
        }
    };
    if let (Some(a), Some(role), true) = (&account, role, errors.is_empty()) {
        let actor = Actor::User(user.username.clone());
        match roster.create_staff(&actor, a, role).await {
            Ok(_) => return Ok(see_other(&format!("/staff?created={}", a.username))),
            Err(RosterError::Duplicate(_)) => errors.add("username", "This username is taken."),
            Err(e) => return Err(e.into()),
        }
    }
    let Staff {
        staff,
        locked,
        cohorts,
        reaches,
    } = staff_and_locks(roster).await?;
    let page = StaffPage {
        page: Page::for_user(config, user, "Staff"),
        form_id,
        staff,
        locked,
        cohorts,
        reaches,
        username: form.username.clone(),
        display_name: form.display_name.clone(),
        role: form.role.clone(),
        // The admin typed this password a moment ago for someone else's new account: when
        // the error is in another field it is kept (the page is no-store, over the same
        // connection it came by), so fixing a username does not mean retyping it. A refused
        // password is not echoed: it must be replaced anyway.
        password: if errors.get("password").is_empty() {
            form.password.clone()
        } else {
            String::new()
        },
        errors,
        min_length: config.password.min_length,
    };
    html_status(StatusCode::UNPROCESSABLE_ENTITY, &page)
}

/// A new generated password for a counselor or admin, shown once on a login card.
pub async fn reset_password(
    roster: web::Data<Roster>,
    user: RequireAdmin,
    path: web::Path<String>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    let form_id = form.id();
    form.run(move |_, keep| async move {
        actions::reset_password(&roster, &user, Scope::Staff, &path, form_id, &keep).await
    })
    .await
}

/// Disable, enable or unlock a counselor or admin (`POST /staff/{username}/{action}`).
pub async fn account_action(
    roster: web::Data<Roster>,
    user: RequireAdmin,
    path: web::Path<(String, String)>,
    form: Once<Button>,
) -> Result<HttpResponse, WebError> {
    form.run(move |_, _| async move {
        let (name, action) =
            actions::account_action(&roster, &user, Scope::Staff, path.into_inner()).await?;
        Ok(see_other(&format!("/staff?{}={name}", action.done())))
    })
    .await
}

/// Which cohorts a counselor looks after (`POST /staff/{username}/cohorts`): `reach=all`, or
/// `reach=some` with `cohort` repeated (none ticked: no student at all until one is).
pub async fn set_cohorts(
    roster: web::Data<Roster>,
    user: RequireAdmin,
    path: web::Path<String>,
    form: Csrf<Vec<(String, String)>>,
) -> Result<HttpResponse, WebError> {
    let values = |k: &'static str| {
        form.iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect::<Vec<String>>()
    };
    let reach = match values("reach").first().map(String::as_str) {
        Some("all") => Reach::All,
        Some("some") => Reach::Cohorts(values("cohort")),
        _ => return Err(WebError::BadRequest("Choose every cohort or some.".into())),
    };
    let actor = Actor::User(user.username.clone());
    match roster.set_reach(&actor, &path, reach).await {
        Ok(_) => Ok(see_other(&format!("/staff?cohorts={}", path.as_str()))),
        Err(RosterError::Invalid(problems)) => Err(WebError::BadRequest(
            problems
                .into_iter()
                .map(|(_, m)| form::sentence(&m))
                .collect::<Vec<_>>()
                .join(" "),
        )),
        Err(e) => Err(e.into()),
    }
}
