//! Changing one's own password (the current one was checked through `auth::gate`).
use sqlx::PgPool;

use crate::{
    auth::{access, CurrentUser, Hasher, TokenCache},
    db,
    domain::{Actor, NewPassword},
};

/// Stores the new password; the person's other sessions end and the hub's tokens are revoked
/// (a stolen refresh token dies here). This browser stays logged in, so the hub signs it in
/// again without a password.
pub async fn change(
    pool: &PgPool,
    hasher: &Hasher,
    tokens: &TokenCache,
    user: &CurrentUser,
    new: &NewPassword,
) -> anyhow::Result<()> {
    let hash = hasher.hash(new.expose()).await?;
    let mut tx = pool.begin().await?;
    db::users::set_password_hash(&mut tx, user.id, &hash).await?;
    let ended = access::end(
        &mut tx,
        user.id,
        access::Sessions::AllBut(&user.session_hash),
    )
    .await?;
    let detail = ended.detail("other ");
    let actor = Actor::User(user.username.clone());
    let me = Some(user.username.as_str());
    db::audit::record(
        &mut tx,
        &actor,
        "account.change_password",
        me,
        Some(&detail),
    )
    .await?;
    ended.commit(tx, tokens).await?;
    Ok(())
}
