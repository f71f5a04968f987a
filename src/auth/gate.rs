//! The gated password check, shared by the login form and the current-password check on the
//! change-password form: both count failures against the same throttle, so an unattended
//! session is no better a password oracle than the login page.
//!
//! The protocol: refuse at once while a lock is in force; wait (bounded) for a hasher; check
//! the lock again holding it (parallel guesses queued behind the first failures meet the lock
//! those failures set); verify; on a wrong password record the failure *before* releasing the
//! hasher. So at most one guess per hasher is ever between its check and its recorded failure.
use sqlx::PgPool;
use time::OffsetDateTime;

use super::{password::Gated, throttle, Hasher, Verified};
use crate::{config::ThrottleConfig, domain::Username};

/// What a gated check found.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// The password is right; store `rehashed` if the stored hash used old parameters.
    Right { rehashed: Option<String> },
    /// Wrong password (or unknown account); the failure is recorded.
    Wrong,
    /// Refused without checking: too many failures, until then.
    Locked(OffsetDateTime),
    /// No hasher became free in time.
    Busy,
}

/// The handles a gated check needs.
#[derive(Clone, Copy)]
pub struct Gate<'a> {
    pub pool: &'a PgPool,
    pub hasher: &'a Hasher,
    pub throttle: &'a ThrottleConfig,
}

impl Gate<'_> {
    /// Checks `password` against `stored` (`None`: unknown account, a dummy hash is verified
    /// so timing tells nothing) for `username` from client address `addr`.
    pub async fn check(
        &self,
        username: Option<&Username>,
        addr: &str,
        stored: Option<&str>,
        password: &str,
    ) -> anyhow::Result<Checked> {
        let lock = || async {
            let mut conn = self.pool.acquire().await?;
            Ok(throttle::locked_until(&mut conn, username, addr).await?)
        };
        if let Some(until) = lock().await? {
            tracing::info!(
                user = username.map(Username::as_str).unwrap_or("(not a username)"),
                addr,
                "password not checked: locked"
            );
            return Ok(Checked::Locked(until));
        }
        match self.hasher.verify_gated(stored, password, lock).await? {
            Gated::Busy => Ok(Checked::Busy),
            Gated::Refused(until) => Ok(Checked::Locked(until)),
            Gated::Verified(Verified::Yes, _) => Ok(Checked::Right { rehashed: None }),
            Gated::Verified(Verified::YesRehashed(hash), _) => Ok(Checked::Right {
                rehashed: Some(hash),
            }),
            Gated::Verified(Verified::No, held) => {
                // The failure and the audit line of a lock it begins commit together.
                let mut tx = self.pool.begin().await?;
                let failure = throttle::Failure {
                    username,
                    known: stored.is_some(),
                    addr,
                };
                throttle::record_failure(&mut tx, self.throttle, failure).await?;
                tx.commit().await?;
                drop(held); // only now may the next attempt check the lock
                Ok(Checked::Wrong)
            }
        }
    }
}
