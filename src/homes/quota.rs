//! Storage limits: each home's limit (the configured default, or the student's own set by a
//! counselor), how full it is, and the list the NFS node applies.
//!
//! The path to the node: hubdesk writes the complete list — every student's limit in bytes,
//! the default and the archive's limit — to [`QUOTA_LIST`] in the homes root (temp file +
//! rename, so the node reads a whole list or the previous one), after every change of a
//! limit and after every usage sweep. On the NFS node, `deploy/hubdesk-quota.sh` (a systemd
//! `.path` unit on that file, and a timer every minute) parses it strictly and makes each home
//! an XFS project with that hard limit. A notebook mounts only `<export>/<user>`, so no student
//! sees the list; the node treats it as untrusted input anyway.
//!
//! The format (version 1), one record a line, `#` comments:
//! ```text
//! default 5368709120
//! archive .archive 0
//! home ana 5368709120
//! home bob 10737418240
//! end 2
//! ```
//! Bytes are decimal; `0` is no limit. `archive NAME` names the archive directory in the root
//! (absent when the archive is not a dot-directory of the root: the node then leaves it alone).
//! `end N` counts the `home` lines: a list without it, or with another count, is refused whole.
//! A home on disk that is not listed (a student created since) gets the default.
use std::os::fd::AsFd;

use serde::Serialize;
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;

use super::{fs::io_err, Homes, HomesError};
use crate::{
    config::{iec_bytes, StorageLimit},
    db::{self, users::UserRow},
    domain::{Actor, Username},
};

/// The list's name in the homes root (a dot-name: never a home).
pub const QUOTA_LIST: &str = ".hubdesk-quotas";

/// At this share of the limit a home is "nearly full".
pub const NEARLY_FULL_PERCENT: u64 = 90;

/// The limits of one homes root, from `[homes]`.
#[derive(Debug, Clone)]
pub(super) struct QuotaSettings {
    pub default: StorageLimit,
    pub archive: StorageLimit,
    /// The archive's name in the root when it is a dot-directory there (the node's view).
    pub archive_name: Option<String>,
}

/// How full a home is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// Not measured yet.
    Unmeasured,
    /// Measured, and there was no home.
    NoHome,
    /// No limit to be full against.
    Unlimited,
    Ok,
    /// At least [`NEARLY_FULL_PERCENT`] of the limit.
    NearlyFull,
    /// At or past the limit: the student cannot write (on the node, EDQUOT).
    Full,
}

impl Fill {
    pub fn of(used: u64, limit: StorageLimit) -> Self {
        match limit.bytes() {
            None => Self::Unlimited,
            Some(l) if used >= l => Self::Full,
            Some(l)
                if u128::from(used) * 100 >= u128::from(l) * u128::from(NEARLY_FULL_PERCENT) =>
            {
                Self::NearlyFull
            }
            Some(_) => Self::Ok,
        }
    }

    /// The badge a list shows, if any.
    pub fn badge(self) -> Option<&'static str> {
        match self {
            Self::NearlyFull => Some("nearly full"),
            Self::Full => Some("full"),
            _ => None,
        }
    }

    /// A CSS class name (`fill-nearly-full`).
    pub fn class(self) -> &'static str {
        match self {
            Self::Unmeasured => "fill-unmeasured",
            Self::NoHome => "fill-no-home",
            Self::Unlimited => "fill-unlimited",
            Self::Ok => "fill-ok",
            Self::NearlyFull => "fill-nearly-full",
            Self::Full => "fill-full",
        }
    }
}

/// A home's use against its limit, as pages and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HomeQuota {
    /// Allocated bytes at the last measurement (`None`: not measured, or no home).
    pub used_bytes: Option<u64>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub measured_at: Option<OffsetDateTime>,
    /// The limit in force, in bytes (`None`: no limit).
    pub limit_bytes: Option<u64>,
    /// Whether it is the student's own limit rather than the default.
    pub own_limit: bool,
    pub default_bytes: Option<u64>,
    pub fill: Fill,
    #[serde(skip)]
    pub limit: StorageLimit,
    #[serde(skip)]
    pub default: StorageLimit,
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(
            &t.format(&time::format_description::well_known::Rfc3339)
                .map_err(serde::ser::Error::custom)?,
        ),
        None => s.serialize_none(),
    }
}

impl HomeQuota {
    /// From a student's row (the stored measurement) and the configured default.
    pub fn of_row(row: &UserRow, default: StorageLimit) -> Self {
        let own = row.home_quota_bytes.and_then(|b| u64::try_from(b).ok());
        let used = row.home_bytes.and_then(|b| u64::try_from(b).ok());
        Self::new(used, row.home_measured_at, own, default)
    }

    /// `used`: bytes measured at `measured_at` (`None` with a time: there was no home).
    pub fn new(
        used: Option<u64>,
        measured_at: Option<OffsetDateTime>,
        own: Option<u64>,
        default: StorageLimit,
    ) -> Self {
        let limit = own
            .and_then(|b| StorageLimit::from_bytes(b).ok())
            .unwrap_or(default);
        let fill = match (used, measured_at) {
            (Some(u), _) => Fill::of(u, limit),
            (None, Some(_)) => Fill::NoHome,
            (None, None) => Fill::Unmeasured,
        };
        Self {
            used_bytes: used,
            measured_at,
            limit_bytes: limit.bytes(),
            own_limit: own.is_some(),
            default_bytes: default.bytes(),
            fill,
            limit,
            default,
        }
    }

    /// "1.2 GiB of 5 GiB (24 %)", "1.2 GiB (no limit)", "not measured yet", "no home".
    pub fn summary(&self) -> String {
        match (self.used_bytes, self.fill) {
            (None, Fill::NoHome) => "no home yet".into(),
            (None, _) => "not measured yet".into(),
            (Some(used), _) => match self.limit.bytes() {
                None => format!("{} (no limit)", iec_bytes(used)),
                Some(_) => match self.percent().unwrap_or(0) {
                    0 if used > 0 => format!("{} of {} (< 1 %)", iec_bytes(used), self.limit),
                    p => format!("{} of {} ({p} %)", iec_bytes(used), self.limit),
                },
            },
        }
    }

    /// "1.2 GiB / 5 GiB" for a table cell.
    pub fn short(&self) -> String {
        match self.used_bytes {
            None => String::new(),
            Some(used) => match self.limit.bytes() {
                None => iec_bytes(used),
                Some(_) => format!("{} / {}", iec_bytes(used), self.limit),
            },
        }
    }

    /// Used as a share of the limit, rounded down (`None` without a measure or a limit).
    pub fn percent(&self) -> Option<u64> {
        let (used, limit) = (self.used_bytes?, self.limit.bytes()?);
        Some(u64::try_from(u128::from(used) * 100 / u128::from(limit)).unwrap_or(u64::MAX))
    }

    pub fn limit_text(&self) -> String {
        self.limit.to_string()
    }

    pub fn default_text(&self) -> String {
        self.default.to_string()
    }

    pub fn measured_text(&self) -> String {
        self.measured_at
            .and_then(|t| {
                t.format(time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute] UTC"
                ))
                .ok()
            })
            .unwrap_or_default()
    }
}

/// Reads a per-student limit from a form or the API: empty is "back to the default"; anything
/// else must be a limit of at least 1 MiB (no "no limit" for one student: give a large one).
pub fn parse_own_limit(raw: &str) -> Result<Option<StorageLimit>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    let limit = StorageLimit::parse(raw).map_err(|e| e.to_string())?;
    if limit < StorageLimit::MIN {
        return Err(format!(
            "{:?} is too small: a limit is at least {} (leave the field empty for the default)",
            raw.trim(),
            StorageLimit::MIN
        ));
    }
    Ok(Some(limit))
}

/// What a change of a student's limit did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QuotaChange {
    pub username: String,
    /// The student's own limit before and after (`None`: the default).
    pub previous_bytes: Option<u64>,
    pub own_bytes: Option<u64>,
    /// The limit in force now, and the home's use at the last measurement.
    pub quota: HomeQuota,
    /// Whether the new limit is below the home's measured use (the student cannot write).
    pub below_use: bool,
    /// Whether the NFS node's list was rewritten (else the next sweep does it).
    pub list_written: bool,
}

/// The list file's text (see the module's documentation).
pub(super) fn render_list(settings: &QuotaSettings, homes: &[(Username, Option<i64>)]) -> String {
    let mut out = String::with_capacity(64 + homes.len() * 32);
    out.push_str("# hubdesk quota list, version 1: written by hubdesk, applied on the NFS node\n");
    out.push_str("# by hubdesk-quota.sh. Bytes; 0 = no limit. Unlisted homes get the default.\n");
    let default = settings.default.bytes().unwrap_or(0);
    out.push_str(&format!("default {default}\n"));
    if let Some(name) = &settings.archive_name {
        out.push_str(&format!(
            "archive {name} {}\n",
            settings.archive.bytes().unwrap_or(0)
        ));
    }
    for (u, own) in homes {
        let bytes = own
            .and_then(|b| u64::try_from(b).ok())
            .filter(|b| *b > 0)
            .unwrap_or(default);
        out.push_str(&format!("home {u} {bytes}\n"));
    }
    out.push_str(&format!("end {}\n", homes.len()));
    out
}

impl Homes {
    /// The configured default limit.
    pub fn default_quota(&self) -> StorageLimit {
        self.quota.default
    }

    /// The limit `u`'s home is held to: their own, else the default.
    pub(super) async fn limit_for(
        &self,
        conn: &mut PgConnection,
        u: &Username,
    ) -> Result<StorageLimit, HomesError> {
        let own = db::users::home_quota_of(conn, u).await?;
        Ok(own
            .and_then(|b| u64::try_from(b).ok())
            .and_then(|b| StorageLimit::from_bytes(b).ok())
            .unwrap_or(self.quota.default))
    }

    /// A student's use against their limit, from the last measurement.
    pub async fn quota_of(&self, u: &Username) -> Result<HomeQuota, HomesError> {
        let mut conn = self.pool.acquire().await?;
        let row = db::users::find_by_username(&mut conn, u)
            .await?
            .filter(|r| r.role == crate::domain::Role::Student)
            .ok_or_else(|| HomesError::NotFound(format!("no student named '{u}'")))?;
        Ok(HomeQuota::of_row(&row, self.quota.default))
    }

    /// Sets a student's own limit (`None`: back to the default), with its audit entry in the
    /// same transaction, then rewrites the node's list. A limit below the home's measured use
    /// is allowed (the caller warns first): the student then cannot write until they free space.
    pub async fn set_quota(
        &self,
        actor: &Actor,
        u: &Username,
        own: Option<StorageLimit>,
    ) -> Result<QuotaChange, HomesError> {
        let bytes = own.and_then(StorageLimit::bytes);
        let mut tx = self.pool.begin().await?;
        let previous = match db::users::set_home_quota(&mut tx, u, bytes.map(|b| b as i64)).await {
            Ok(p) => p.and_then(|b| u64::try_from(b).ok()),
            Err(sqlx::Error::RowNotFound) => {
                return Err(HomesError::NotFound(format!("no student named '{u}'")))
            }
            Err(e) => return Err(e.into()),
        };
        let text = |b: Option<u64>| match b {
            Some(b) => {
                StorageLimit::from_bytes(b).map_or_else(|_| format!("{b} bytes"), |l| l.to_string())
            }
            None => format!("the default ({})", self.quota.default),
        };
        db::audit::record(
            &mut tx,
            actor,
            "home.quota",
            Some(u.as_str()),
            Some(&format!(
                "storage limit {} (was {})",
                text(bytes),
                text(previous)
            )),
        )
        .await?;
        let row = db::users::find_by_username(&mut tx, u)
            .await?
            .ok_or_else(|| HomesError::NotFound(format!("no student named '{u}'")))?;
        tx.commit().await?;
        let quota = HomeQuota::of_row(&row, self.quota.default);
        let list_written = match self.write_quota_list().await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "homes: could not rewrite the quota list; the next usage sweep will");
                false
            }
        };
        Ok(QuotaChange {
            username: u.to_string(),
            previous_bytes: previous,
            own_bytes: bytes,
            below_use: matches!(quota.fill, Fill::Full),
            quota,
            list_written,
        })
    }

    /// Writes the complete list for the NFS node ([`QUOTA_LIST`] in the root): a temporary
    /// file, fsync, rename over the old one. Instances take turns (a transaction-level
    /// advisory lock), so the last list written is from the last look at the database.
    /// Returns the number of homes listed.
    pub async fn write_quota_list(&self) -> Result<usize, HomesError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        db::homes::lock_quota_list(&mut tx).await?;
        let homes = db::users::home_quotas(&mut tx).await?;
        let text = render_list(&self.quota, &homes);
        self.blocking(move |t| t.replace_root_file(QUOTA_LIST, text.as_bytes()))
            .await?;
        tx.commit().await?;
        Ok(homes.len())
    }
}

impl Homes {
    /// Rewrites the node's list after a reset or restore, so the node re-tags the moved trees
    /// within seconds (its path unit fires on the rename) instead of at the next timer tick.
    /// Best effort: the timer catches up with a failure.
    pub(super) async fn nudge_quota_node(&self) {
        if let Err(e) = self.write_quota_list().await {
            tracing::warn!(error = %e, "homes: could not rewrite the quota list after a move");
        }
    }
}

/// "Restoring archive X would make ana's home 6 GiB, more than its limit of 5 GiB …": `None`
/// when it fits, or when it does not grow the home (a home already over its limit may shrink).
pub(super) fn over_limit(
    u: &Username,
    what: &str,
    after: u64,
    before: u64,
    limit: StorageLimit,
) -> Option<HomesError> {
    let l = limit.bytes()?;
    if after <= l || after <= before {
        return None;
    }
    Some(HomesError::OverQuota(format!(
        "{what} would make {u}'s home {}, more than its storage limit of {limit} (it holds {} \
         now). Nothing was moved: raise {u}'s limit on their page, or free space first.",
        iec_bytes(after),
        iec_bytes(before)
    )))
}

impl super::Tree {
    /// Replaces `name` in the root with `content`: written to a temporary name first (created
    /// anew, never through a link), synced, renamed over the old one, the root synced.
    pub(super) fn replace_root_file(&self, name: &str, content: &[u8]) -> Result<(), HomesError> {
        use rustix::fs::{self as rfs, Mode, OFlags};
        use std::io::Write;
        let temp = format!("{}{}", super::TEMP_PREFIX, uuid::Uuid::new_v4().simple());
        let what = || format!("writing {name} in the homes root");
        let fd = rfs::openat(
            self.root.as_fd(),
            temp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(io_err(what()))?;
        let mut file = std::fs::File::from(fd);
        let written = file
            .write_all(content)
            .and_then(|()| file.sync_all())
            .map_err(|source| HomesError::Io {
                what: what(),
                source,
            });
        drop(file);
        let renamed = written.and_then(|()| {
            rfs::renameat(self.root.as_fd(), temp.as_str(), self.root.as_fd(), name)
                .map_err(io_err(what()))
        });
        if renamed.is_err() {
            let _ = rfs::unlinkat(self.root.as_fd(), temp.as_str(), rfs::AtFlags::empty());
        }
        renamed?;
        super::fs::sync_dir(self.root.as_fd()).map_err(io_err(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    #[test]
    fn homes_fill_is_nearly_full_at_90_percent_and_full_at_the_limit() {
        let limit = StorageLimit::from_bytes(1000).unwrap();
        assert_eq!(Fill::of(0, limit), Fill::Ok);
        assert_eq!(Fill::of(899, limit), Fill::Ok);
        assert_eq!(Fill::of(900, limit), Fill::NearlyFull);
        assert_eq!(Fill::of(999, limit), Fill::NearlyFull);
        assert_eq!(Fill::of(1000, limit), Fill::Full);
        assert_eq!(Fill::of(5000, limit), Fill::Full);
        assert_eq!(Fill::of(u64::MAX, StorageLimit::NONE), Fill::Unlimited);
        assert_eq!(Fill::of(u64::MAX, StorageLimit::MAX), Fill::Full);
    }

    #[test]
    fn homes_quota_reads_the_row_and_says_what_is_not_known() {
        let d = StorageLimit::gib(5);
        let q = HomeQuota::new(None, None, None, d);
        assert_eq!(
            (q.fill, q.summary().as_str()),
            (Fill::Unmeasured, "not measured yet")
        );
        let now = Some(OffsetDateTime::now_utc());
        let q = HomeQuota::new(None, now, None, d);
        assert_eq!(q.fill, Fill::NoHome);
        let q = HomeQuota::new(Some(1 << 30), now, None, d);
        assert_eq!(q.summary(), "1 GiB of 5 GiB (20 %)");
        assert_eq!(
            HomeQuota::new(Some(4096), now, None, d).summary(),
            "4 KiB of 5 GiB (< 1 %)"
        );
        assert_eq!(q.short(), "1 GiB / 5 GiB");
        assert!(!q.own_limit);
        let q = HomeQuota::new(Some(1 << 30), now, Some(1 << 30), d);
        assert_eq!(
            (q.fill, q.own_limit, q.percent()),
            (Fill::Full, true, Some(100))
        );
        let q = HomeQuota::new(Some(3 << 20), now, None, StorageLimit::NONE);
        assert_eq!(q.summary(), "3 MiB (no limit)");
        assert_eq!(q.fill, Fill::Unlimited);
    }

    #[test]
    fn homes_own_limit_is_empty_for_the_default_or_at_least_a_mebibyte() {
        assert_eq!(parse_own_limit("  "), Ok(None));
        assert_eq!(parse_own_limit("2GiB"), Ok(Some(StorageLimit::gib(2))));
        assert!(parse_own_limit("0").unwrap_err().contains("too small"));
        assert!(parse_own_limit("none").unwrap_err().contains("too small"));
        assert!(parse_own_limit("512KiB")
            .unwrap_err()
            .contains("at least 1 MiB"));
        assert!(parse_own_limit("lots").unwrap_err().contains("not a size"));
        assert!(parse_own_limit("20TiB").unwrap_err().contains("16 TiB"));
    }

    #[test]
    fn homes_quota_list_is_complete_and_counted() {
        let settings = QuotaSettings {
            default: StorageLimit::gib(5),
            archive: StorageLimit::NONE,
            archive_name: Some(".archive".into()),
        };
        let text = render_list(&settings, &[(u("ana"), None), (u("bob"), Some(10 << 30))]);
        let records: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            records,
            [
                "default 5368709120",
                "archive .archive 0",
                "home ana 5368709120",
                "home bob 10737418240",
                "end 2"
            ]
        );
        let none = QuotaSettings {
            default: StorageLimit::NONE,
            archive: StorageLimit::gib(1),
            archive_name: None,
        };
        let text = render_list(&none, &[]);
        assert!(text.contains("default 0\n") && text.ends_with("end 0\n"));
        assert!(!text.contains("archive"), "{text}");
    }

    #[test]
    fn homes_over_limit_refuses_only_growth_past_the_limit() {
        let l = StorageLimit::from_bytes(1000).unwrap();
        let ana = u("ana");
        assert!(
            over_limit(&ana, "x", 1000, 0, l).is_none(),
            "exactly the limit fits"
        );
        let e = over_limit(&ana, "Restoring archive 1", 1001, 10, l).unwrap();
        assert!(matches!(e, HomesError::OverQuota(_)));
        assert!(
            e.to_string()
                .contains("more than its storage limit of 1000 B"),
            "{e}"
        );
        assert!(over_limit(&ana, "x", 5000, 6000, l).is_none(), "shrinks");
        assert!(over_limit(&ana, "x", u64::MAX, 0, StorageLimit::NONE).is_none());
    }
}
