//! Ending a person's access: their hubdesk sessions, their hub grants (every token hangs off a
//! grant) and this process's cached userinfo answers. Disable, password reset, password change,
//! logout and end-session all go through here, so none of them can forget a piece.
use sqlx::{PgConnection, Postgres, Transaction};

use super::TokenCache;
use crate::db;

/// Which of the person's sessions end.
#[derive(Debug, Clone, Copy)]
pub enum Sessions<'a> {
    /// Every session (disable, reset by a counselor).
    All,
    /// Every session but this one (the person changed their own password here).
    AllBut(&'a [u8]),
    /// Just this one (logging out).
    This(&'a [u8]),
}

/// What ending access did, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "commit with `Ended::commit` so the token cache forgets the person too"]
pub struct Ended {
    user_id: i64,
    pub sessions: u64,
    pub grants: u64,
}

/// Ends the sessions chosen and revokes every hub grant of `user_id`, inside the caller's
/// transaction (so it happens together with the change that caused it).
pub async fn end(
    conn: &mut PgConnection,
    user_id: i64,
    sessions: Sessions<'_>,
) -> sqlx::Result<Ended> {
    let sessions = match sessions {
        Sessions::All => db::sessions::delete_for_user(conn, user_id).await?,
        Sessions::AllBut(keep) => db::sessions::delete_others(conn, user_id, keep).await?,
        Sessions::This(hash) => {
            db::sessions::delete(conn, hash).await?;
            1
        }
    };
    let grants = db::oauth::revoke_user_grants(conn, user_id).await?;
    Ok(Ended {
        user_id,
        sessions,
        grants,
    })
}

impl Ended {
    /// Commits the transaction, then forgets the person's cached tokens (after the commit, so
    /// a concurrent lookup cannot re-cache a token the database still calls valid).
    pub async fn commit(
        self,
        tx: Transaction<'_, Postgres>,
        cache: &TokenCache,
    ) -> sqlx::Result<()> {
        tx.commit().await?;
        cache.forget_user(self.user_id);
        Ok(())
    }

    /// "2 session(s) ended, 1 hub authorization(s) revoked".
    pub fn detail(&self, sessions: &str) -> String {
        format!(
            "{} {sessions}session(s) ended, {} hub authorization(s) revoked",
            self.sessions, self.grants
        )
    }
}
