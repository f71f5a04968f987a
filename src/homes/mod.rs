//! Homes: the students' home directories on the homes root (the NFS export on the hub node).
//! Create from the template, reset (whole home, or only its environment), restore from the
//! archive, usage, and a purge of old archives — journalled, symlink-safe, O(1) in home size.
//!
//! Safety, by construction:
//! - Every path comes from a parsed [`Username`] or [`ArchiveId`] (one safe path component),
//!   never from request text, and is resolved relative to directory handles opened once at
//!   [`Homes::open`], one component at a time with `O_NOFOLLOW` ([`fs`]): a symlink a student
//!   plants (`~/x -> /etc`, `~/x -> ../other`) or a home replaced by a symlink is moved, counted
//!   or refused as the link itself, never followed. Ownership is only set on files hubdesk
//!   creates (by handle), never by walking a student's tree.
//! - A reset is `rename` into `<archive>/<username>/<id>` (nothing copied, so O(1) and no file
//!   can be lost); a fresh copy of the template is prepared under a temporary name in the root
//!   first and renamed into place. The archive must be on the root's filesystem (checked at
//!   open, by `st_dev` and by a real rename).
//! - One operation per home at a time, across instances: a PostgreSQL advisory lock held by the
//!   operation's connection (a crashed process's lock goes with its connection). The loser gets
//!   [`HomesError::Busy`].
//! - Every multi-step operation is journalled in `home_ops` before the filesystem is touched and
//!   after each step; [`Homes::recover`] (at start, and before any new operation on the same
//!   home) finishes or rolls back whatever a crash interrupted, from the journal's plan and what
//!   it finds on disk. Archive metadata (who, why, when, size) lives in `home_archives`.
//! - Nothing here deletes a student's file except [`Homes::purge_archives_older_than`].
//!
//! This is a service: it imports no `web` or `state`. Long operations also run as jobs
//! ([`jobs`]).
pub mod api;
pub mod download;
mod export;
mod fs;
mod guard;
pub mod handout;
pub mod jobs;
mod lock;
mod ops;
pub mod pages;
pub mod quota;
pub mod requests;
pub mod section;
pub mod usage;

use std::{
    os::fd::{AsFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use rustix::{fs as rfs, io::Errno};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::{config::HomesConfig, db, domain::Username};
use fs::{io_err, Kind, Owner};
pub use jobs::{
    BeforeHomeChange, CreateManyJob, ResetJob, RestoreJob, CREATE_MANY_KIND, RESET_KIND,
    RESTORE_KIND,
};

/// What a reset of scope [`ResetScope::Environment`] moves into the archive, relative to the
/// home. These are where a notebook environment breaks (and where nobody keeps their work):
/// `.local` (pip `--user` packages that shadow the image's, Jupyter kernels and lab settings
/// under `.local/share/jupyter`), `.jupyter` (server and lab config), `.ipython` (profiles,
/// startup scripts), `.cache` (pip, matplotlib, … caches, sometimes corrupt), `.config/pip` and
/// `.pip` and `.pydistutils.cfg` (index URLs, `user = true`), `.config/matplotlib`, `.condarc`
/// and `.conda` (environments and channels), `.npm` (lab extension builds). Shell dotfiles and
/// history stay: they are the student's own, and the notebook server starts without them.
pub const ENVIRONMENT: &[&str] = &[
    ".local",
    ".jupyter",
    ".ipython",
    ".cache",
    ".config/pip",
    ".config/matplotlib",
    ".pip",
    ".pydistutils.cfg",
    ".condarc",
    ".conda",
    ".npm",
];

/// Prefix of the temporary names hubdesk uses in the root. A username starts with a letter,
/// so no dot-name is ever a home.
const TEMP_PREFIX: &str = ".hubdesk-tmp-";
/// Where a purge moves archives before it deletes them (inside the archive).
const TRASH: &str = ".trash";

#[derive(Debug, thiserror::Error)]
pub enum HomesError {
    /// The message names what was looked for: "no home for ana".
    #[error("{0}")]
    NotFound(String),
    /// Another operation on this home runs (here or on another instance).
    #[error("{0}: another operation on this home is already in progress")]
    Busy(String),
    #[error(
        "the homes archive {} is not on the same filesystem as the homes root {}: a reset \
         renames a home into the archive, which only works within one filesystem (and one \
         mount); put the archive under the root, e.g. {}/.archive",
        archive.display(), root.display(), root.display()
    )]
    NotSameFilesystem { root: PathBuf, archive: PathBuf },
    /// Refused because following or touching it could reach outside a home.
    #[error("refused: {0}")]
    UnsafePath(String),
    /// Bad input (an archive id that is not one).
    #[error("{0}")]
    Invalid(String),
    /// The operation would grow a home past its storage limit; nothing was moved.
    #[error("{0}")]
    OverQuota(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The journal row was finished by someone else mid-operation (our database session, and
    /// with it the lock, was lost, and another instance recovered the operation).
    #[error("{0}")]
    Interrupted(String),
    /// A test failpoint stopped the operation as a crash would (see [`Failpoint`]).
    #[doc(hidden)]
    #[error("simulated crash at step {0}")]
    Crashed(String),
}

impl HomesError {
    /// The HTTP status this error means, for the pages and the API (which map it to their own
    /// response types).
    pub fn status_code(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Busy(_) | Self::UnsafePath(_) | Self::Interrupted(_) | Self::OverQuota(_) => 409,
            Self::Invalid(_) => 400,
            Self::Db(e) if db::is_unavailable(e) => 503,
            _ => 500,
        }
    }
}

/// Which part of a home a reset replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetScope {
    /// The whole home goes to the archive; a fresh template copy takes its place.
    All,
    /// Only the [`ENVIRONMENT`] items go to the archive; the work stays.
    Environment,
}

impl ResetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Environment => "environment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "all" => Some(Self::All),
            "environment" => Some(Self::Environment),
            _ => None,
        }
    }
}

/// The name of one archive entry, `<UTC yyyymmddThhmmssZ>-<reason slug>`, e.g.
/// `20250102T030405Z-reset`: one path component by construction (`[0-9A-Za-z-]`, starts with a
/// digit), so an id from a request can never name anything but an entry of that user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArchiveId(String);

const SLUG_MAX: usize = 40;

impl ArchiveId {
    pub fn parse(raw: &str) -> Result<Self, HomesError> {
        let bad = || HomesError::Invalid(format!("{raw:?} is not an archive id"));
        let (stamp, slug) = raw.split_at_checked(16).ok_or_else(bad)?;
        let slug = slug.strip_prefix('-').ok_or_else(bad)?;
        let b = stamp.as_bytes();
        let stamp_ok = b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'T'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'Z';
        let slug_ok = (1..=64).contains(&slug.len())
            && slug
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !(stamp_ok && slug_ok) {
            return Err(bad());
        }
        let id = Self(raw.to_string());
        id.try_created_at().ok_or_else(bad)?;
        Ok(id)
    }

    /// A new id for `at` and a free-text reason; `n > 1` adds `-n` (two archives in a second).
    fn new(at: OffsetDateTime, reason: &str, n: u32) -> Self {
        let at = at.to_offset(time::UtcOffset::UTC);
        let stamp = at
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second]Z"
            ))
            .unwrap_or_else(|_| "19700101T000000Z".into());
        let mut id = format!("{stamp}-{}", slug(reason));
        if n > 1 {
            id.push_str(&format!("-{n}"));
        }
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The time in the name (second precision, UTC).
    pub fn created_at(&self) -> OffsetDateTime {
        self.try_created_at().unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn try_created_at(&self) -> Option<OffsetDateTime> {
        let s = &self.0;
        let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
        let month = time::Month::try_from(u8::try_from(n(4..6)?).ok()?).ok()?;
        let date = time::Date::from_calendar_date(
            i32::try_from(n(0..4)?).ok()?,
            month,
            u8::try_from(n(6..8)?).ok()?,
        )
        .ok()?;
        let t = time::Time::from_hms(
            u8::try_from(n(9..11)?).ok()?,
            u8::try_from(n(11..13)?).ok()?,
            u8::try_from(n(13..15)?).ok()?,
        )
        .ok()?;
        Some(time::PrimitiveDateTime::new(date, t).assume_utc())
    }

    /// The reason part of the name (what a listing shows when no metadata row exists).
    pub fn slug(&self) -> &str {
        self.0.get(17..).unwrap_or_default()
    }
}

impl TryFrom<String> for ArchiveId {
    type Error = HomesError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ArchiveId> for String {
    fn from(id: ArchiveId) -> Self {
        id.0
    }
}

impl std::fmt::Display for ArchiveId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reason as a name component: lowercase letters, digits and single dashes.
fn slug(reason: &str) -> String {
    let mut out = String::new();
    for c in reason.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= SLUG_MAX {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "reset".into()
    } else {
        out
    }
}

/// One entry of a student's archive, as the pages and the API list it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArchiveInfo {
    pub id: ArchiveId,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    pub reason: String,
    /// Who made it (an audit label: a username, `token:NAME`, `cli`, `system`); `unknown` for
    /// an entry without a metadata row (made by hand).
    pub actor: String,
    /// Allocated bytes (blocks on disk, `du` without `--apparent-size`), hard links once,
    /// symlinks as themselves.
    pub bytes: u64,
    pub scope: ResetScope,
}

fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let text = t
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(serde::ser::Error::custom)?;
    s.serialize_str(&text)
}

/// What a reset did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetOutcome {
    pub username: String,
    pub scope: ResetScope,
    /// The archive entry the old home (or environment) went to; `None` for an environment
    /// reset that found nothing to move.
    pub archive: Option<ArchiveId>,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOutcome {
    pub username: String,
    pub restored: ArchiveId,
    /// Where the replaced home (or environment) went: restore this one to undo. `None` when
    /// there was nothing to replace.
    pub archive: Option<ArchiveId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgedArchive {
    pub username: String,
    pub id: ArchiveId,
    pub bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    pub removed: Vec<PurgedArchive>,
    pub bytes: u64,
    /// Homes with an operation in progress: their archives were left for the next purge.
    pub busy: Vec<String>,
}

/// What [`Homes::recover`] did with the unfinished operations it found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Finished (rolled forward).
    pub finished: u32,
    /// Rolled back: the home is as it was before the operation.
    pub rolled_back: u32,
    /// Settled as `failed`: the disk was not in any state the operation leads to (someone
    /// moved things by hand); the journal row says what was found.
    pub failed: u32,
    /// Could not be settled now (an I/O error): the row stays running, with the error, and is
    /// tried again at the next start or operation on that home.
    pub stuck: u32,
    /// Held by a live operation (here or on another instance): left alone.
    pub busy: u32,
}

/// Test failpoints: stop an operation at a step as a crash would. Not for production use.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Failpoint {
    /// A step name (`prepared`, `archived`, `installed`, …) or `begun` (journalled, nothing
    /// touched yet).
    pub step: String,
    pub when: FailWhen,
    pub action: FailAction,
}

#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailWhen {
    /// The step's filesystem change is done but not yet in the journal.
    BeforeRecord,
    /// The step is in the journal; the next step has not started.
    AfterRecord,
}

#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum FailAction {
    /// Return [`HomesError::Crashed`], writing nothing more (the lock goes as with a dead
    /// session).
    Crash,
    /// Create the marker file, then hang forever (for a test to `kill -9` the process).
    Hang(PathBuf),
    /// Notify `reached`, then wait for `resume`.
    Pause {
        reached: Arc<tokio::sync::Notify>,
        resume: Arc<tokio::sync::Notify>,
    },
}

/// The homes handle: the opened root and archive directories, the template path, the owner
/// of new homes, and the pool for the journal. Cheap to clone.
#[derive(Clone)]
pub struct Homes {
    tree: Arc<Tree>,
    pool: PgPool,
    quota: Arc<quota::QuotaSettings>,
    failpoint: Arc<Mutex<Option<Failpoint>>>,
}

/// The directories, opened once. Blocking methods: call them through `Homes::blocking`.
struct Tree {
    root: OwnedFd,
    root_path: PathBuf,
    archive: OwnedFd,
    archive_path: PathBuf,
    /// Opened afresh for each copy, so an administrator can replace it while hubdesk runs.
    template: Option<PathBuf>,
    /// Where the course folders are (opened afresh for each hand-out).
    courses: PathBuf,
    owner: Owner,
}

impl Homes {
    /// Opens the root and the archive (creating the archive, and the root when it is the
    /// default under `data_dir`) and checks that a rename from one to the other works: the
    /// same `st_dev`, and a probe directory really renamed (a bind mount of the same
    /// filesystem has the same `st_dev` and still refuses with EXDEV).
    pub async fn open(config: &HomesConfig, pool: PgPool) -> Result<Self, HomesError> {
        let config = config.clone();
        let quota = quota_settings(&config);
        let tree = tokio::task::spawn_blocking(move || Tree::open(&config))
            .await
            .map_err(join_error)??;
        Ok(Self {
            tree: Arc::new(tree),
            pool,
            quota: Arc::new(quota),
            failpoint: Arc::default(),
        })
    }

    /// The start check alone, for `hubdesk doctor`: the root writable (a probe directory made
    /// and renamed into the archive), the archive on the root's filesystem, the template
    /// readable. Like a start, it creates the archive (and the default root) when missing.
    /// Answers what it saw, in one line.
    pub async fn check(config: &HomesConfig) -> Result<String, HomesError> {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let tree = Tree::open(&config)?;
            let mut seen = format!(
                "{} writable, archive {} on the same filesystem",
                tree.root_path.display(),
                tree.archive_path.display()
            );
            if let Some(template) = &tree.template {
                let entries = std::fs::read_dir(template)
                    .and_then(|d| d.collect::<Result<Vec<_>, _>>())
                    .map_err(io_err_std(format!(
                        "reading the homes template {}",
                        template.display()
                    )))?;
                seen.push_str(&format!(
                    ", template {} readable ({} entries)",
                    template.display(),
                    entries.len()
                ));
            }
            Ok(seen)
        })
        .await
        .map_err(join_error)?
    }

    pub fn root(&self) -> &Path {
        &self.tree.root_path
    }

    pub fn archive_dir(&self) -> &Path {
        &self.tree.archive_path
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the home is there: a directory. A home that is a symlink or a file is refused
    /// ([`HomesError::UnsafePath`]): nothing but a reset of scope all touches it.
    pub async fn exists(&self, username: &Username) -> Result<bool, HomesError> {
        let u = username.clone();
        self.blocking(move |t| match t.home_kind(&u)? {
            Kind::Dir => Ok(true),
            Kind::Missing => Ok(false),
            _ => Err(not_a_dir(&u)),
        })
        .await
    }

    /// Allocated bytes of the home (blocks on disk, like `du`; not the apparent size), walking
    /// without following symlinks (a link counts as itself), hard links once, not crossing into
    /// another filesystem.
    pub async fn usage(&self, username: &Username) -> Result<u64, HomesError> {
        let u = username.clone();
        self.blocking(move |t| match t.home_kind(&u)? {
            Kind::Dir => fs::usage(t.root.as_fd(), u.as_str(), &format!("home of {u}")),
            Kind::Missing => Err(HomesError::NotFound(format!("no home for {u}"))),
            _ => Err(not_a_dir(&u)),
        })
        .await
    }

    /// The student's archive, newest first. Sizes are measured once and kept in
    /// `home_archives` (an archive never changes while it is one).
    pub async fn archives(&self, username: &Username) -> Result<Vec<ArchiveInfo>, HomesError> {
        let mut conn = self.pool.acquire().await?;
        let rows = db::homes::archives_of(&mut conn, username.as_str()).await?;
        let known: std::collections::HashMap<String, Option<u64>> = rows
            .iter()
            .map(|r| (r.id.clone(), r.bytes.and_then(|b| u64::try_from(b).ok())))
            .collect();
        let u = username.clone();
        let entries = self
            .blocking(move |t| {
                let Some(dir) = t.archive_user_dir(&u, false)? else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for id in t.entry_ids(dir.as_fd())? {
                    let bytes = match known.get(id.as_str()).copied().flatten() {
                        Some(b) => (b, false),
                        None => match fs::usage(dir.as_fd(), id.as_str(), &format!("archive {id}"))
                        {
                            Ok(b) => (b, true),
                            Err(HomesError::NotFound(_)) => continue,
                            Err(e) => return Err(e),
                        },
                    };
                    out.push((id, bytes));
                }
                Ok(out)
            })
            .await?;
        let mut list = Vec::new();
        for (id, (bytes, measured)) in entries {
            let row = rows.iter().find(|r| r.id == id.as_str());
            if measured && row.is_some() {
                let b = i64::try_from(bytes).unwrap_or(i64::MAX);
                db::homes::set_archive_bytes(&mut conn, username.as_str(), id.as_str(), b).await?;
            }
            list.push(ArchiveInfo {
                created_at: row.map_or_else(|| id.created_at(), |r| r.created_at),
                reason: row.map_or_else(|| id.slug().to_string(), |r| r.reason.clone()),
                actor: row.map_or_else(|| "unknown".to_string(), |r| r.actor.clone()),
                scope: row
                    .and_then(|r| ResetScope::parse(&r.scope))
                    .unwrap_or(ResetScope::All),
                bytes,
                id,
            });
        }
        list.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(list)
    }

    /// Sets (or clears) a test failpoint on this handle and its clones.
    #[doc(hidden)]
    pub fn set_failpoint(&self, failpoint: Option<Failpoint>) {
        *self
            .failpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = failpoint;
    }

    /// Runs filesystem work on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tree) -> Result<T, HomesError> + Send + 'static,
    ) -> Result<T, HomesError> {
        let tree = self.tree.clone();
        tokio::task::spawn_blocking(move || f(&tree))
            .await
            .map_err(join_error)?
    }
}

/// The limits of `[homes]`; the archive is named in the node's list only when it is a
/// dot-directory of the root (the node knows the export, not hubdesk's paths).
fn quota_settings(config: &HomesConfig) -> quota::QuotaSettings {
    let archive_name = match (&config.root, &config.archive) {
        (Some(root), Some(archive)) if archive.parent() == Some(root.as_path()) => archive
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.starts_with('.') && n.len() > 1 && *n != "..")
            .map(str::to_string),
        _ => None,
    };
    quota::QuotaSettings {
        default: config.quota_default,
        archive: config.archive_quota,
        archive_name,
    }
}

fn io_err_std(what: String) -> impl FnOnce(std::io::Error) -> HomesError {
    move |source| HomesError::Io { what, source }
}

fn join_error(e: tokio::task::JoinError) -> HomesError {
    HomesError::Io {
        what: "filesystem task".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn not_a_dir(u: &Username) -> HomesError {
    HomesError::UnsafePath(format!(
        "the home of {u} is a symlink or a file, not a directory; it is not followed \
         (a reset of the whole home archives it as it is)"
    ))
}

impl Tree {
    fn open(config: &HomesConfig) -> Result<Self, HomesError> {
        let root_path = config.root.clone().ok_or_else(|| {
            HomesError::Invalid("homes.root is not set (Config::load resolves the default)".into())
        })?;
        let archive_path = config
            .archive
            .clone()
            .unwrap_or_else(|| root_path.join(".archive"));
        if config.create_root {
            std::fs::create_dir_all(&root_path).map_err(|source| HomesError::Io {
                what: format!("creating the homes root {}", root_path.display()),
                source,
            })?;
        }
        let root = fs::open_path(&root_path).map_err(|e| HomesError::Io {
            what: format!(
                "opening the homes root {}{}",
                root_path.display(),
                if e == Errno::NOENT {
                    " (is the export mounted?)"
                } else {
                    ""
                }
            ),
            source: e.into(),
        })?;
        if !archive_path.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&archive_path)
                .map_err(|source| HomesError::Io {
                    what: format!("creating the homes archive {}", archive_path.display()),
                    source,
                })?;
        }
        let archive = fs::open_path(&archive_path).map_err(io_err(format!(
            "opening the homes archive {}",
            archive_path.display()
        )))?;
        let not_same = || HomesError::NotSameFilesystem {
            root: root_path.clone(),
            archive: archive_path.clone(),
        };
        let root_st = rfs::fstat(&root).map_err(io_err(root_path.display().to_string()))?;
        let archive_st =
            rfs::fstat(&archive).map_err(io_err(archive_path.display().to_string()))?;
        if fs::dev_ino(&root_st).0 != fs::dev_ino(&archive_st).0 {
            return Err(not_same());
        }
        let probe = format!(".hubdesk-probe-{}", uuid::Uuid::new_v4().simple());
        rfs::mkdirat(&root, probe.as_str(), rfs::Mode::from_raw_mode(0o700)).map_err(io_err(
            format!(
                "writing a probe into the homes root {}",
                root_path.display()
            ),
        ))?;
        match rfs::renameat(&root, probe.as_str(), &archive, probe.as_str()) {
            Ok(()) => {
                let _ = rfs::unlinkat(&archive, probe.as_str(), rfs::AtFlags::REMOVEDIR);
            }
            Err(e) => {
                let _ = rfs::unlinkat(&root, probe.as_str(), rfs::AtFlags::REMOVEDIR);
                return Err(if e == Errno::XDEV {
                    not_same()
                } else {
                    io_err(format!(
                        "renaming a probe from {} into {}",
                        root_path.display(),
                        archive_path.display()
                    ))(e)
                });
            }
        }
        if let Some(template) = &config.template {
            fs::open_path(template).map_err(io_err(format!(
                "opening the homes template {}",
                template.display()
            )))?;
        }
        let courses = config
            .courses
            .clone()
            .unwrap_or_else(|| root_path.join(".courses"));
        Ok(Self {
            root,
            root_path,
            archive,
            archive_path,
            template: config.template.clone(),
            courses,
            owner: Owner {
                uid: config.uid,
                gid: config.gid,
            },
        })
    }

    fn home_kind(&self, u: &Username) -> Result<Kind, HomesError> {
        fs::kind(self.root.as_fd(), u.as_str()).map_err(io_err(format!("looking at home of {u}")))
    }

    fn open_home(&self, u: &Username) -> Result<OwnedFd, HomesError> {
        match fs::open_dir(self.root.as_fd(), u.as_str()) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) => Err(HomesError::NotFound(format!("no home for {u}"))),
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => Err(not_a_dir(u)),
            Err(e) => Err(io_err(format!("opening home of {u}"))(e)),
        }
    }

    /// `<archive>/<username>`, created (0700, root's) when asked.
    fn archive_user_dir(&self, u: &Username, create: bool) -> Result<Option<OwnedFd>, HomesError> {
        let what = || format!("archive directory of {u}");
        if create {
            return fs::ensure_dir(self.archive.as_fd(), u.as_str(), 0o700)
                .map(Some)
                .map_err(io_err(what()));
        }
        match fs::open_dir(self.archive.as_fd(), u.as_str()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io_err(what())(e)),
        }
    }

    /// The archive ids present in a user's archive directory (other names are ignored).
    fn entry_ids(&self, dir: std::os::fd::BorrowedFd<'_>) -> Result<Vec<ArchiveId>, HomesError> {
        Ok(fs::read_names(dir)
            .map_err(io_err("reading an archive directory"))?
            .into_iter()
            .filter_map(|n| ArchiveId::parse(n.to_str().ok()?).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_archive_id_round_trips_its_time_and_reason() {
        let at = time::macros::datetime!(2025-01-02 03:04:05 UTC);
        let id = ArchiveId::new(at, "Wrong kernel, sorry!", 1);
        assert_eq!(id.as_str(), "20250102T030405Z-wrong-kernel-sorry");
        assert_eq!(ArchiveId::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.created_at(), at);
        assert_eq!(id.slug(), "wrong-kernel-sorry");
        assert_eq!(
            ArchiveId::new(at, "", 2).as_str(),
            "20250102T030405Z-reset-2"
        );
    }

    #[test]
    fn homes_archive_id_is_one_safe_path_component() {
        for bad in [
            "",
            "..",
            "../../etc",
            "20250102T030405Z-../x",
            "20250102T030405Z-a/b",
            "20250102T030405Z-",
            "20250102T030405Z_reset",
            "2025010xT030405Z-reset",
            "20251302T030405Z-reset",
            "20250102T030405Z-Reset",
            ".20250102T030405Z-reset",
            "20250102T030405Z-reset\0",
        ] {
            assert!(ArchiveId::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("20250102T030405Z-{}", "a".repeat(65));
        assert!(ArchiveId::parse(&long).is_err());
    }

    #[test]
    fn homes_slug_is_short_and_never_empty() {
        assert_eq!(slug("before-restore"), "before-restore");
        assert_eq!(slug("  --  "), "reset");
        assert_eq!(slug("ÉTÉ été"), "t-t");
        assert!(slug(&"x".repeat(200)).len() <= SLUG_MAX);
    }

    #[test]
    fn homes_scope_speaks_the_http_contract() {
        assert_eq!(serde_json::to_value(ResetScope::All).unwrap(), "all");
        assert_eq!(
            serde_json::from_value::<ResetScope>("environment".into()).unwrap(),
            ResetScope::Environment
        );
        assert_eq!(ResetScope::parse("everything"), None);
    }

    #[test]
    fn homes_config_defaults_and_refusals() {
        let mut c = HomesConfig::default();
        c.resolve(Path::new("/data")).unwrap();
        assert_eq!(c.root.as_deref(), Some(Path::new("/data/homes")));
        assert_eq!(
            c.archive.as_deref(),
            Some(Path::new("/data/homes/.archive"))
        );
        assert!(c.create_root);
        assert_eq!((c.uid, c.gid), (1000, 100));

        let mut c = HomesConfig {
            root: Some("/srv/homes".into()),
            archive: Some("/srv/homes/ana/archive".into()),
            ..HomesConfig::default()
        };
        assert!(
            c.resolve(Path::new("/data")).is_err(),
            "archive inside a home"
        );
        let mut c = HomesConfig {
            root: Some("/srv/homes".into()),
            archive: Some("/srv/homes".into()),
            ..HomesConfig::default()
        };
        assert!(
            c.resolve(Path::new("/data")).is_err(),
            "archive is the root"
        );
        let mut c = HomesConfig {
            root: Some("/srv/homes".into()),
            template: Some("/srv/homes/template".into()),
            ..HomesConfig::default()
        };
        assert!(
            c.resolve(Path::new("/data")).is_err(),
            "template where a home could be"
        );
        let mut c = HomesConfig {
            root: Some("/srv/homes".into()),
            uid: 0,
            ..HomesConfig::default()
        };
        assert!(c.resolve(Path::new("/data")).is_err(), "uid 0");
        let mut c = HomesConfig {
            root: Some("/srv/homes".into()),
            archive: Some("/srv/archive".into()),
            template: Some("/srv/homes/.template".into()),
            ..HomesConfig::default()
        };
        c.resolve(Path::new("/data")).unwrap();
        assert!(!c.create_root);
    }
}
