//! A counselor's or admin's own API tokens: made on their account page, acting with their role
//! and reach (read at each request), listed and revoked there. The token is shown once and
//! stored hashed, like the command line's (`hubdesk token create`).
use sqlx::PgPool;

use crate::{
    auth::secret,
    db::{self, api_tokens::TokenRow},
    domain::{Actor, Username},
};

/// At most this many tokens per person.
pub const MAX_TOKENS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The name, said for the field.
    #[error("{0}")]
    Name(String),
    #[error("no token {0} of yours")]
    NotFound(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The person's tokens, oldest first.
pub async fn list(pool: &PgPool, owner_id: i64) -> Result<Vec<TokenRow>, TokenError> {
    let mut conn = pool.acquire().await?;
    Ok(db::api_tokens::list_owned(&mut conn, owner_id).await?)
}

/// A new token named `name` for `owner`; the token (shown once). Audited as `token.create`.
pub async fn create(
    pool: &PgPool,
    owner_id: i64,
    owner: &Username,
    name: &str,
) -> Result<String, TokenError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(TokenError::Name(
            "Give the token a name of 1 to 64 characters (what it is for).".into(),
        ));
    }
    let mut tx = pool.begin().await?;
    if db::api_tokens::list_owned(&mut tx, owner_id).await?.len() >= MAX_TOKENS {
        return Err(TokenError::Name(format!(
            "You have {MAX_TOKENS} tokens: revoke one you no longer use first."
        )));
    }
    let token = secret::random_token();
    if !db::api_tokens::insert(&mut tx, Some(owner_id), name, &secret::hash_token(&token)).await? {
        return Err(TokenError::Name(format!(
            "You have a token named \"{name}\" already."
        )));
    }
    let actor = Actor::User(owner.clone());
    let target = format!("{owner}/{name}");
    db::audit::record(&mut tx, &actor, "token.create", Some(&target), None).await?;
    tx.commit().await?;
    Ok(token)
}

/// Revokes one of the person's tokens (it stops working at once). Audited as `token.revoke`.
pub async fn revoke(
    pool: &PgPool,
    owner_id: i64,
    owner: &Username,
    id: i64,
) -> Result<String, TokenError> {
    let mut tx = pool.begin().await?;
    let name = db::api_tokens::delete_owned(&mut tx, owner_id, id)
        .await?
        .ok_or(TokenError::NotFound(id))?;
    let actor = Actor::User(owner.clone());
    let target = format!("{owner}/{name}");
    db::audit::record(&mut tx, &actor, "token.revoke", Some(&target), None).await?;
    tx.commit().await?;
    Ok(name)
}
