//! First run: while no admin exists, a one-time URL printed at start creates the first admin.
use sqlx::PgPool;

use crate::{
    auth::{secret, Hasher},
    db,
    domain::{Actor, NewAccount, Role},
    roster::{ops::insert_staff, RosterError},
};

/// Setup tokens live a day.
const TOKEN_TTL_SECS: i64 = 24 * 3600;

/// Creates a setup token when there is no admin yet; returns the URL to print.
pub async fn first_run_url(pool: &PgPool, public_url: &str) -> anyhow::Result<Option<String>> {
    let mut conn = pool.acquire().await?;
    if db::users::count_role(&mut conn, Role::Admin).await? > 0 {
        db::setup_tokens::clear(&mut conn).await?;
        return Ok(None);
    }
    let token = secret::random_token();
    db::setup_tokens::insert(&mut conn, &secret::hash_token(&token), TOKEN_TTL_SECS).await?;
    Ok(Some(format!("{public_url}/setup?token={token}")))
}

pub async fn token_is_valid(pool: &PgPool, token: &str) -> sqlx::Result<bool> {
    let mut conn = pool.acquire().await?;
    db::setup_tokens::is_valid(&mut conn, &secret::hash_token(token)).await
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("This setup link was just used.")]
    TokenSpent,
    #[error(transparent)]
    Roster(#[from] RosterError),
}

impl From<sqlx::Error> for SetupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Roster(e.into())
    }
}

/// Creates the first admin and spends the setup token, in one transaction (two tabs cannot
/// both succeed). Returns the new admin's id, to log them in.
pub async fn create_first_admin(
    pool: &PgPool,
    hasher: &Hasher,
    token: &str,
    account: &NewAccount,
) -> Result<i64, SetupError> {
    let hash = hasher
        .hash(account.password.expose())
        .await
        .map_err(RosterError::from)?;
    let mut tx = pool.begin().await?;
    if !db::setup_tokens::consume(&mut tx, &secret::hash_token(token)).await? {
        return Err(SetupError::TokenSpent);
    }
    let user = insert_staff(
        &mut tx,
        &Actor::Setup,
        account,
        Role::Admin,
        &hash,
        "first admin",
    )
    .await?;
    db::setup_tokens::clear(&mut tx).await?;
    tx.commit().await?;
    Ok(user.id)
}
