use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Cohort, DisplayName, Role, Username};

/// An account as pages and lists show it: typed, and without the password hash.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub subject: Uuid,
    pub username: Username,
    pub display_name: String,
    pub role: Role,
    pub cohort: Option<String>,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    /// The home's disk usage at the last background measurement (students only).
    pub home_bytes: Option<i64>,
    /// When it was measured (`None`: not yet; with `home_bytes` `None`: there was no home).
    pub home_measured_at: Option<OffsetDateTime>,
    /// The student's own storage limit in bytes; `None`: the configured default.
    pub home_quota_bytes: Option<i64>,
}

/// An account with its password hash, for the few places that check a password.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LoginRow {
    #[sqlx(flatten)]
    pub user: UserRow,
    pub password_hash: String,
}

impl UserRow {
    pub fn created_date(&self) -> String {
        self.created_at
            .format(time::macros::format_description!("[year]-[month]-[day]"))
            .unwrap_or_default()
    }
    pub fn status(&self) -> &'static str {
        if self.disabled {
            "disabled"
        } else {
            "active"
        }
    }
}

pub struct NewUser<'a> {
    pub username: &'a Username,
    pub display_name: &'a DisplayName,
    pub role: Role,
    pub cohort: Option<&'a Cohort>,
    pub password_hash: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    #[error("username already exists")]
    Duplicate,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const COLUMNS: &str = "id, subject, username, display_name, role, cohort, disabled, created_at, \
                       home_bytes, home_measured_at, home_quota_bytes";

pub async fn insert(conn: &mut PgConnection, new: NewUser<'_>) -> Result<UserRow, InsertUserError> {
    sqlx::query_as::<_, UserRow>(&format!(
        "INSERT INTO users (subject, username, display_name, role, cohort, password_hash)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(new.username.as_str())
    .bind(new.display_name.as_str())
    .bind(new.role.as_str())
    .bind(new.cohort.map(Cohort::as_str))
    .bind(new.password_hash)
    .fetch_one(conn)
    .await
    .map_err(|e| {
        if super::is_unique_violation(&e) {
            InsertUserError::Duplicate
        } else {
            InsertUserError::Db(e)
        }
    })
}

pub async fn find_by_username(
    conn: &mut PgConnection,
    username: &Username,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
        .bind(username.as_str())
        .fetch_optional(conn)
        .await
}

pub async fn find_by_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The account and its password hash, for a login.
pub async fn find_login(
    conn: &mut PgConnection,
    username: &Username,
) -> sqlx::Result<Option<LoginRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS}, password_hash FROM users WHERE username = $1"
    ))
    .bind(username.as_str())
    .fetch_optional(conn)
    .await
}

/// The password hash of account `id` (the current-password check).
pub async fn password_hash(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Which of `names` are taken already.
pub async fn existing_usernames(
    conn: &mut PgConnection,
    names: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT username FROM users WHERE username = ANY($1)")
        .bind(names)
        .fetch_all(conn)
        .await
}

/// Usernames starting with `prefix` (to pick a free generated name).
pub async fn usernames_with_prefix(
    conn: &mut PgConnection,
    prefix: &str,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT username FROM users WHERE starts_with(username, $1)")
        .bind(prefix)
        .fetch_all(conn)
        .await
}

pub async fn set_password_hash(conn: &mut PgConnection, id: i64, hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_disabled(conn: &mut PgConnection, id: i64, disabled: bool) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET disabled = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(disabled)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn count_role(conn: &mut PgConnection, role: Role) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE role = $1")
        .bind(role.as_str())
        .fetch_one(conn)
        .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Username,
    DisplayName,
    Cohort,
    Created,
    Usage,
}

impl SortKey {
    pub fn parse(raw: &str) -> Self {
        match raw {
            "display_name" => Self::DisplayName,
            "cohort" => Self::Cohort,
            "created" => Self::Created,
            "usage" => Self::Usage,
            _ => Self::Username,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::DisplayName => "display_name",
            Self::Cohort => "cohort",
            Self::Created => "created",
            Self::Usage => "usage",
        }
    }
    /// Column expression; fixed strings only, never user input.
    fn column(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::DisplayName => "lower(display_name)",
            Self::Cohort => "cohort",
            Self::Created => "created_at",
            Self::Usage => "home_bytes",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StudentFilter {
    pub query: Option<String>,
    pub cohort: Option<String>,
    pub disabled: Option<bool>,
    /// Only students whose login is locked after failed attempts (`Some(true)`), or not.
    pub locked: Option<bool>,
    pub sort: SortKey,
    pub descending: bool,
    pub limit: i64,
    pub offset: i64,
    /// Only these cohorts' students (a counselor's reach); `None`: every student.
    pub reach: Option<Vec<String>>,
}

impl Default for StudentFilter {
    fn default() -> Self {
        Self {
            query: None,
            cohort: None,
            disabled: None,
            locked: None,
            sort: SortKey::Username,
            descending: false,
            limit: i64::MAX,
            offset: 0,
            reach: None,
        }
    }
}

/// Students matching the filter, one page of them, and the total count.
pub async fn list_students(
    conn: &mut PgConnection,
    f: &StudentFilter,
) -> sqlx::Result<(Vec<UserRow>, i64)> {
    let pattern = f
        .query
        .as_ref()
        .map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
    let dir = if f.descending { "DESC" } else { "ASC" };
    let sql = format!(
        "SELECT {COLUMNS}, count(*) OVER () AS total FROM users
         WHERE role = 'student'
           AND ($1::text IS NULL OR username LIKE $1 OR lower(display_name) LIKE $1)
           AND ($2::text IS NULL OR cohort = $2)
           AND ($3::bool IS NULL OR disabled = $3)
           AND ($6::bool IS NULL OR EXISTS (
                SELECT 1 FROM login_throttle t
                 WHERE t.key = $7 || users.username AND t.locked_until > now()) = $6)
           AND ($8::text[] IS NULL OR cohort = ANY($8))
         ORDER BY {} {dir} NULLS LAST, username ASC
         LIMIT $4 OFFSET $5",
        f.sort.column()
    );
    let rows = sqlx::query_as::<_, UserRowWithTotal>(&sql)
        .bind(pattern)
        .bind(f.cohort.as_deref())
        .bind(f.disabled)
        .bind(f.limit)
        .bind(f.offset)
        .bind(f.locked)
        .bind(super::throttle::ACCOUNT_PREFIX)
        .bind(f.reach.as_deref())
        .fetch_all(&mut *conn)
        .await?;
    let total = match rows.first() {
        Some(r) => r.total,
        None if f.offset > 0 => {
            // Past the last page: still report how many match.
            let mut all = f.clone();
            all.offset = 0;
            all.limit = 1;
            return Box::pin(list_students(conn, &all))
                .await
                .map(|(_, t)| (Vec::new(), t));
        }
        None => 0,
    };
    Ok((rows.into_iter().map(|r| r.user).collect(), total))
}

#[derive(sqlx::FromRow)]
struct UserRowWithTotal {
    #[sqlx(flatten)]
    user: UserRow,
    total: i64,
}

fn escape_like(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

pub async fn cohorts(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT cohort FROM users WHERE role = 'student' AND cohort IS NOT NULL ORDER BY cohort",
    )
    .fetch_all(conn)
    .await
}

pub async fn list_staff(conn: &mut PgConnection) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE role IN ('counselor', 'admin') ORDER BY role, username"
    ))
    .fetch_all(conn)
    .await
}

/// Every enabled student with their cohort.
pub async fn cohorts_of(conn: &mut PgConnection) -> sqlx::Result<Vec<(Username, Option<String>)>> {
    sqlx::query_as(
        "SELECT username, cohort FROM users WHERE role = 'student' AND NOT disabled ORDER BY username",
    )
    .fetch_all(conn)
    .await
}

/// The usernames of a cohort's students.
pub async fn cohort_usernames(
    conn: &mut PgConnection,
    cohort: &str,
) -> sqlx::Result<Vec<Username>> {
    sqlx::query_scalar(
        "SELECT username FROM users WHERE role = 'student' AND cohort = $1 ORDER BY username",
    )
    .bind(cohort)
    .fetch_all(conn)
    .await
}

/// Every student's username, for the background usage measurement.
pub async fn all_students(conn: &mut PgConnection) -> sqlx::Result<Vec<Username>> {
    sqlx::query_scalar("SELECT username FROM users WHERE role = 'student' ORDER BY username")
        .fetch_all(conn)
        .await
}

/// Stores a measured home size (`None`: no home).
pub async fn set_home_bytes(
    conn: &mut PgConnection,
    username: &Username,
    bytes: Option<i64>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET home_bytes = $2, home_measured_at = now() WHERE username = $1")
        .bind(username.as_str())
        .bind(bytes)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets (`Some`) or clears (`None`: back to the default) a student's storage limit; returns
/// the previous value, or `Err(RowNotFound)` when `username` is not a student.
pub async fn set_home_quota(
    conn: &mut PgConnection,
    username: &Username,
    bytes: Option<i64>,
) -> sqlx::Result<Option<i64>> {
    let previous: Option<Option<i64>> = sqlx::query_scalar(
        "SELECT home_quota_bytes FROM users WHERE username = $1 AND role = 'student' FOR UPDATE",
    )
    .bind(username.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(previous) = previous else {
        return Err(sqlx::Error::RowNotFound);
    };
    sqlx::query("UPDATE users SET home_quota_bytes = $2, updated_at = now() WHERE username = $1")
        .bind(username.as_str())
        .bind(bytes)
        .execute(conn)
        .await?;
    Ok(previous)
}

/// A student's own storage limit in bytes (`None`: the default, or no such student).
pub async fn home_quota_of(
    conn: &mut PgConnection,
    username: &Username,
) -> sqlx::Result<Option<i64>> {
    Ok(sqlx::query_scalar::<_, Option<i64>>(
        "SELECT home_quota_bytes FROM users WHERE username = $1 AND role = 'student'",
    )
    .bind(username.as_str())
    .fetch_optional(conn)
    .await?
    .flatten())
}

/// Every student with their own storage limit (`None`: the default), by username: the list
/// the NFS node applies.
pub async fn home_quotas(conn: &mut PgConnection) -> sqlx::Result<Vec<(Username, Option<i64>)>> {
    sqlx::query_as(
        "SELECT username, home_quota_bytes FROM users WHERE role = 'student' ORDER BY username",
    )
    .fetch_all(conn)
    .await
}

/// Whether `username` is a student's account (homes and servers are students' only).
pub async fn is_student(conn: &mut PgConnection, username: &Username) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE username = $1 AND role = 'student')",
    )
    .bind(username.as_str())
    .fetch_one(conn)
    .await
}

/// Display names and roles of the accounts among `usernames` (any text: labels that are not
/// usernames simply match nothing), for pages that name people ("Reset Ada Lovelace's home").
pub async fn names(
    conn: &mut PgConnection,
    usernames: &[String],
) -> sqlx::Result<Vec<(String, String, Role)>> {
    sqlx::query_as("SELECT username, display_name, role FROM users WHERE username = ANY($1)")
        .bind(usernames)
        .fetch_all(conn)
        .await
}

/// A student as the import matches names against: username, name, cohort.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RosterName {
    pub username: Username,
    pub display_name: String,
    pub cohort: Option<String>,
}

/// Every student's name (one query per import preview: a camp's roster is a few thousand rows
/// at most, and names are compared without accents, which SQL here cannot do).
pub async fn student_names(conn: &mut PgConnection) -> sqlx::Result<Vec<RosterName>> {
    sqlx::query_as(
        "SELECT username, display_name, cohort FROM users WHERE role = 'student' ORDER BY username",
    )
    .fetch_all(conn)
    .await
}

/// Sets a counselor's reach (`None`: every cohort); `false` when no counselor has that id.
pub async fn set_cohorts(
    conn: &mut PgConnection,
    id: i64,
    cohorts: Option<&[String]>,
) -> sqlx::Result<bool> {
    let r = sqlx::query("UPDATE users SET cohorts = $2 WHERE id = $1 AND role = 'counselor'")
        .bind(id)
        .bind(cohorts)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Each counselor's reach as stored (`None`: every cohort), by username.
pub async fn counselor_cohorts(
    conn: &mut PgConnection,
) -> sqlx::Result<Vec<(Username, Option<Vec<String>>)>> {
    sqlx::query_as("SELECT username, cohorts FROM users WHERE role = 'counselor' ORDER BY username")
        .fetch_all(conn)
        .await
}
