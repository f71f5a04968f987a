//! Giving a student a one-time reset code: instead of printing a new card, a counselor reads
//! out (or shows) a short code with which the student sets their own password at `/reset`
//! (`account::reset_code`). One code per student (a new one replaces the last), valid
//! [`VALID_FOR`], used once, stored as an argon2 hash like a password.
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{generate, Roster, RosterError, Scope};
use crate::{db, domain::Actor};

/// How long a code works.
pub const VALID_FOR: time::Duration = time::Duration::minutes(15);

/// A code as shown once to the counselor who asked for it. `Debug` leaves the code out.
#[derive(Clone, Serialize, Deserialize)]
pub struct ResetCode {
    pub username: String,
    pub display_name: String,
    pub code: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for ResetCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetCode")
            .field("username", &self.username)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Roster {
    /// A new code for a student (audited `student.reset_code`); their password and sessions
    /// stay as they are until the code is used.
    pub async fn issue_reset_code(
        &self,
        actor: &Actor,
        username: &str,
    ) -> Result<ResetCode, RosterError> {
        let user = self.find_account(Scope::Students, username).await?;
        let code = generate::reset_code();
        let hash = self.hasher.hash(&generate::normalise_code(&code)).await?;
        let expires_at = OffsetDateTime::now_utc() + VALID_FOR;
        let mut tx = self.pool.begin().await?;
        db::reset_codes::put(&mut tx, user.id, &hash, expires_at, &actor.label()).await?;
        db::audit::record(
            &mut tx,
            actor,
            "student.reset_code",
            Some(user.username.as_str()),
            Some("valid 15 min"),
        )
        .await?;
        tx.commit().await?;
        Ok(ResetCode {
            username: user.username.to_string(),
            display_name: user.display_name,
            code,
            expires_at,
        })
    }
}
