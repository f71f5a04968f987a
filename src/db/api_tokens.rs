use sqlx::PgConnection;
use time::OffsetDateTime;

use crate::domain::{Role, Username};

/// Stores a token; `false` when its owner (or the command line, `None`) has one of that name.
pub async fn insert(
    conn: &mut PgConnection,
    owner_id: Option<i64>,
    name: &str,
    token_hash: &[u8],
) -> sqlx::Result<bool> {
    let r = sqlx::query(
        "INSERT INTO api_tokens (owner_id, name, token_hash) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(owner_id)
    .bind(name)
    .bind(token_hash)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The person a token acts for: their role and reach as they are now.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Owner {
    pub username: Username,
    pub role: Role,
    /// `users.cohorts` of a counselor, NULL for an admin (`domain::Reach::from_column`).
    pub reach: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Authenticated {
    pub name: String,
    /// `None`: a command-line token.
    pub owner: Option<Owner>,
}

#[derive(sqlx::FromRow)]
struct AuthRow {
    name: String,
    owner_id: Option<i64>,
    username: Option<Username>,
    role: Option<Role>,
    reach: Option<Vec<String>>,
}

/// The token's name and owner, if the hash is known and its owner is staff and not disabled;
/// marks it used.
pub async fn authenticate(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> sqlx::Result<Option<Authenticated>> {
    let row: Option<AuthRow> = sqlx::query_as(
        "WITH t AS (
            UPDATE api_tokens t SET last_used_at = now()
             WHERE token_hash = $1
               AND (owner_id IS NULL OR EXISTS (
                    SELECT 1 FROM users u WHERE u.id = t.owner_id AND NOT u.disabled
                       AND u.role IN ('counselor', 'admin')))
            RETURNING name, owner_id)
         SELECT t.name, t.owner_id, u.username, u.role,
                CASE WHEN u.role = 'counselor' THEN u.cohorts END AS reach
           FROM t LEFT JOIN users u ON u.id = t.owner_id",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Authenticated {
        name: r.name,
        owner: match (r.owner_id, r.username, r.role) {
            (Some(_), Some(username), Some(role)) => Some(Owner {
                username,
                role,
                reach: r.reach,
            }),
            _ => None,
        },
    }))
}

/// A person's own token as their account page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

pub async fn list_owned(conn: &mut PgConnection, owner_id: i64) -> sqlx::Result<Vec<TokenRow>> {
    sqlx::query_as(
        "SELECT id, name, created_at, last_used_at FROM api_tokens
          WHERE owner_id = $1 ORDER BY created_at, id",
    )
    .bind(owner_id)
    .fetch_all(conn)
    .await
}

/// Deletes one of the owner's tokens; its name, if it was theirs.
pub async fn delete_owned(
    conn: &mut PgConnection,
    owner_id: i64,
    id: i64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("DELETE FROM api_tokens WHERE owner_id = $1 AND id = $2 RETURNING name")
        .bind(owner_id)
        .bind(id)
        .fetch_optional(conn)
        .await
}
