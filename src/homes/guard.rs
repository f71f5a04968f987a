//! hubdesk's own guard: no operation of hubdesk grows a home past its storage limit. A restore
//! whose archive is larger than the student's limit, or a home laid from a template that is,
//! is refused before anything moves ([`HomesError::OverQuota`]). The node's XFS quota would not
//! stop it: a rename is not a write, so an archived tree renamed back would simply put the
//! student over their limit, unable to save anything.
//!
//! "Grows" is meant: an operation that leaves a home smaller than it is now passes even when
//! the result is still over the limit (a limit lowered below a home's size must not lock its
//! reset away). Sizes are allocated bytes, as `du` counts them and the node's quota charges.
use std::os::fd::{AsFd, BorrowedFd};

use sqlx::PgConnection;

use super::{
    fs::{self, io_err, Kind},
    quota::over_limit,
    ArchiveId, Homes, HomesError, ResetScope, Tree, ENVIRONMENT,
};
use crate::{db, domain::Username};

impl Homes {
    /// A home laid from the template (a new one, or a reset of the whole home) must fit the
    /// student's limit, unless it is smaller than the home it replaces.
    pub(super) async fn guard_template(
        &self,
        conn: &mut PgConnection,
        u: &Username,
        what: &str,
    ) -> Result<(), HomesError> {
        let limit = self.limit_for(conn, u).await?;
        let Some(l) = limit.bytes() else {
            return Ok(());
        };
        let after = self.blocking(|t| t.template_usage()).await?;
        if after <= l {
            return Ok(());
        }
        let uu = u.clone();
        let before = self.blocking(move |t| t.home_usage_or_zero(&uu)).await?;
        over_limit(u, what, after, before, limit).map_or(Ok(()), Err)
    }

    /// A restore of `from` must not make the home larger than the student's limit (unless it
    /// makes it smaller). A whole-home archive becomes the home; an environment archive's items
    /// replace `out`, the environment items in the home now. `cached`: the archive's size as
    /// `home_archives` knows it.
    pub(super) async fn guard_restore(
        &self,
        conn: &mut PgConnection,
        u: &Username,
        from: &ArchiveId,
        scope: ResetScope,
        out: &[String],
        cached: Option<u64>,
    ) -> Result<(), HomesError> {
        let limit = self.limit_for(conn, u).await?;
        let Some(l) = limit.bytes() else {
            return Ok(());
        };
        let (uu, ff, out) = (u.clone(), from.clone(), out.to_vec());
        let sizes = self
            .blocking(move |t| {
                let entry = match (scope, cached) {
                    (ResetScope::All, Some(b)) => b,
                    _ => t.entry_usage(&uu, &ff)?,
                };
                if scope == ResetScope::All && entry <= l {
                    return Ok(None); // fits whatever the home holds now
                }
                let before = t.home_usage_or_zero(&uu)?;
                let after = match scope {
                    ResetScope::All => entry,
                    ResetScope::Environment => {
                        let leaving = match t.home_kind(&uu)? {
                            Kind::Dir => {
                                let home = t.open_home(&uu)?;
                                t.items_usage(home.as_fd(), &out, &format!("home of {uu}"))?
                            }
                            _ => 0,
                        };
                        before.saturating_sub(leaving).saturating_add(entry)
                    }
                };
                Ok(Some((after, before)))
            })
            .await?;
        let Some((after, before)) = sizes else {
            return Ok(());
        };
        let what = format!("Restoring archive {from}");
        over_limit(u, &what, after, before, limit).map_or(Ok(()), Err)
    }

    /// The guard of a reset, before its job is queued (the job checks again before it moves
    /// anything): a clear refusal on the page instead of a failed job.
    pub(super) async fn preflight_reset(
        &self,
        u: &Username,
        scope: ResetScope,
    ) -> Result<(), HomesError> {
        if scope == ResetScope::Environment {
            return Ok(()); // only moves things out
        }
        let mut conn = self.pool.acquire().await?;
        self.guard_template(&mut conn, u, "Resetting to the template")
            .await
    }

    /// The guard of a restore, before its job is queued.
    pub(super) async fn preflight_restore(
        &self,
        u: &Username,
        from: &ArchiveId,
    ) -> Result<(), HomesError> {
        let mut conn = self.pool.acquire().await?;
        let (scope, cached) = archive_scope_and_bytes(&mut conn, u, from).await?;
        let out = if scope == ResetScope::Environment {
            let uu = u.clone();
            self.blocking(move |t| match t.home_kind(&uu)? {
                Kind::Dir => {
                    let home = t.open_home(&uu)?;
                    t.present(home.as_fd(), ENVIRONMENT.iter().copied(), &uu)
                }
                _ => Ok(Vec::new()),
            })
            .await?
        } else {
            Vec::new()
        };
        self.guard_restore(&mut conn, u, from, scope, &out, cached)
            .await
    }
}

/// An archive's scope (what its reset moved) and its size as last measured, from its journal
/// row; a row that is gone reads as a whole-home archive of unknown size.
pub(super) async fn archive_scope_and_bytes(
    conn: &mut sqlx::PgConnection,
    u: &Username,
    from: &ArchiveId,
) -> Result<(ResetScope, Option<u64>), HomesError> {
    let row = db::homes::archives_of(conn, u.as_str())
        .await?
        .into_iter()
        .find(|r| r.id == from.as_str());
    let scope = row
        .as_ref()
        .and_then(|r| ResetScope::parse(&r.scope))
        .unwrap_or(ResetScope::All);
    let bytes = row
        .and_then(|r| r.bytes)
        .and_then(|b| u64::try_from(b).ok());
    Ok((scope, bytes))
}

impl Tree {
    /// What a fresh copy of the template occupies (the template as it is on its own disk: the
    /// copy's blocks may differ by a few KiB).
    fn template_usage(&self) -> Result<u64, HomesError> {
        let Some(template) = &self.template else {
            return Ok(0);
        };
        let what = format!("the homes template {}", template.display());
        let dir = fs::open_path(template).map_err(io_err(what.clone()))?;
        fs::usage(dir.as_fd(), ".", &what)
    }

    fn home_usage_or_zero(&self, u: &Username) -> Result<u64, HomesError> {
        match self.home_kind(u)? {
            Kind::Missing => Ok(0),
            _ => fs::usage(self.root.as_fd(), u.as_str(), &format!("home of {u}")),
        }
    }

    fn entry_usage(&self, u: &Username, id: &ArchiveId) -> Result<u64, HomesError> {
        let dir = self
            .archive_user_dir(u, false)?
            .ok_or_else(|| HomesError::NotFound(format!("no archive {id} for {u}")))?;
        fs::usage(dir.as_fd(), id.as_str(), &format!("archive {id} of {u}"))
    }

    /// Allocated bytes of the relative items (`.local`, `.config/pip`) present in `top`.
    fn items_usage(
        &self,
        top: BorrowedFd<'_>,
        items: &[String],
        label: &str,
    ) -> Result<u64, HomesError> {
        let mut total = 0u64;
        for item in items {
            let what = format!("{label}: {item}");
            let Some((parent, leaf)) = fs::open_parent(top, item).map_err(io_err(what.clone()))?
            else {
                continue;
            };
            match fs::usage(parent.as_fd(), leaf, &what) {
                Ok(b) => total = total.saturating_add(b),
                Err(HomesError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }
}
