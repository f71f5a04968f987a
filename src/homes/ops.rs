//! The journalled operations and their recovery.
//!
//! Each operation: take the home's lock (settling what a crash left on that home first), plan
//! (every name it will create or move, fixed before anything is touched), journal the plan,
//! then do the steps, recording each after its filesystem change is durable (the directories
//! are fsync'ed). Recovery ([`Homes::settle`]) reads the plan back and decides from what is on
//! disk, which the steps' renames make unambiguous: an archive entry with the op's unique name
//! exists exactly when the home was moved there.
use std::{collections::HashSet, os::fd::AsFd};

use serde::{Deserialize, Serialize};
use sqlx::Connection;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    fs::{self, io_err, Kind},
    lock::OpLock,
    ArchiveId, FailAction, FailWhen, Homes, HomesError, PurgeReport, PurgedArchive, RecoveryReport,
    ResetOutcome, ResetScope, RestoreOutcome, Tree, ENVIRONMENT, TEMP_PREFIX, TRASH,
};
use crate::{
    db::{
        self,
        homes::{NewArchive, NewOp, OpRow},
    },
    domain::{Actor, Username},
};

/// The youngest archive a purge may delete.
pub const PURGE_MIN_AGE: time::Duration = time::Duration::days(1);

/// Every name an operation touches, journalled before it touches any (the `paths` column).
/// Names are relative: `temp` to the root, archive ids to `<archive>/<username>`, `trash` to
/// `<archive>/.trash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Plan {
    Create {
        temp: String,
    },
    Reset {
        temp: String,
        archive: ArchiveId,
    },
    ResetEnvironment {
        archive: ArchiveId,
        items: Vec<String>,
    },
    Restore {
        from: ArchiveId,
        before: Option<ArchiveId>,
    },
    RestoreEnvironment {
        from: ArchiveId,
        before: Option<ArchiveId>,
        /// Environment items in the home, moved to `before` first.
        out: Vec<String>,
        /// Items in `from`, moved back into the home after.
        back: Vec<String>,
    },
    Purge {
        trash: String,
        entries: Vec<ArchiveId>,
    },
}

impl Plan {
    fn kind(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Reset { .. } => "reset",
            Self::ResetEnvironment { .. } => "reset_environment",
            Self::Restore { .. } => "restore",
            Self::RestoreEnvironment { .. } => "restore_environment",
            Self::Purge { .. } => "purge",
        }
    }

    fn audit_action(&self) -> &'static str {
        match self {
            Self::Create { .. } => "home.create",
            Self::Reset { .. } => "home.reset",
            Self::ResetEnvironment { .. } => "home.reset_environment",
            Self::Restore { .. } | Self::RestoreEnvironment { .. } => "home.restore",
            Self::Purge { .. } => "home.purge",
        }
    }

    /// The operation's result, as a finished op (or a resumed job) reports it.
    fn outcome(&self, u: &Username) -> serde_json::Value {
        let username = u.to_string();
        match self {
            Self::Create { .. } => serde_json::json!({"username": username, "created": true}),
            Self::Reset { archive, .. } => serde_json::to_value(ResetOutcome {
                username,
                scope: ResetScope::All,
                archive: Some(archive.clone()),
            })
            .unwrap_or_default(),
            Self::ResetEnvironment { archive, .. } => serde_json::to_value(ResetOutcome {
                username,
                scope: ResetScope::Environment,
                archive: Some(archive.clone()),
            })
            .unwrap_or_default(),
            Self::Restore { from, before } | Self::RestoreEnvironment { from, before, .. } => {
                serde_json::to_value(RestoreOutcome {
                    username,
                    restored: from.clone(),
                    archive: before.clone(),
                })
                .unwrap_or_default()
            }
            Self::Purge { entries, .. } => {
                serde_json::json!({"username": username, "purged": entries})
            }
        }
    }
}

/// The audit actor for a journalled label (a job's `actor`, a recovered op's).
pub(super) fn actor_from_label(label: &str) -> Actor {
    match label {
        "cli" => Actor::Cli,
        "setup" => Actor::Setup,
        "system" => Actor::System,
        l => match l.strip_prefix("token:") {
            Some(name) => Actor::Token(name.to_string()),
            None => Username::parse(l).map_or(Actor::System, Actor::User),
        },
    }
}

/// A journalled operation in progress.
struct Op {
    lock: OpLock,
    id: Uuid,
    user: Username,
    actor: Actor,
    reason: String,
    plan: Plan,
}

/// An archive row to insert with a step.
struct Archived {
    id: ArchiveId,
    scope: ResetScope,
    reason: String,
}

enum Planned<T> {
    /// Nothing to do (or a resumed job's op already finished): this is the answer.
    Done(T),
    Go(Uuid, Plan),
}

/// How recovery left an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    Done,
    RolledBack,
    Failed,
}

fn temp_name(id: Uuid) -> String {
    format!("{TEMP_PREFIX}{}", id.simple())
}

impl Homes {
    /// Lays a new home from the template, owned by the configured uid:gid, prepared under a
    /// temporary name and renamed into place. An existing home is left alone: `Ok(false)`.
    pub async fn create(&self, username: &Username, actor: &Actor) -> Result<bool, HomesError> {
        self.create_for(username, actor, None).await
    }

    pub(super) async fn create_for(
        &self,
        u: &Username,
        actor: &Actor,
        job: Option<Uuid>,
    ) -> Result<bool, HomesError> {
        let mut lock = self.lock_home(u).await?;
        let planned = async {
            if let Some(done) = self.done_for_job(&mut lock, u, job).await? {
                return Ok(Planned::Done(
                    done.get("created")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(true),
                ));
            }
            let uu = u.clone();
            match self.blocking(move |t| t.home_kind(&uu)).await? {
                Kind::Dir => Ok(Planned::Done(false)),
                Kind::Missing => {
                    self.guard_template(lock.conn(), u, "Laying a new home from the template")
                        .await?;
                    let id = Uuid::new_v4();
                    Ok(Planned::Go(
                        id,
                        Plan::Create {
                            temp: temp_name(id),
                        },
                    ))
                }
                _ => Err(super::not_a_dir(u)),
            }
        }
        .await;
        let (id, plan) = match planned {
            Ok(Planned::Go(id, plan)) => (id, plan),
            Ok(Planned::Done(v)) => {
                lock.release().await;
                return Ok(v);
            }
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let mut op = self.begin(lock, id, u, plan, actor, "create", job).await?;
        let result = self.run_create(&mut op).await;
        self.conclude(op, result.map(|()| true), |_| {
            "home laid from the template".into()
        })
        .await
    }

    async fn run_create(&self, op: &mut Op) -> Result<(), HomesError> {
        let Plan::Create { temp } = op.plan.clone() else {
            unreachable!("run_create runs a create plan")
        };
        let t = temp.clone();
        self.blocking(move |tree| tree.prepare(&t)).await?;
        self.step(op, "prepared", None, None).await?;
        let u = op.user.clone();
        self.blocking(move |tree| tree.install(&temp, &u)).await?;
        self.step(op, "installed", None, None).await
    }

    /// Resets a home. [`ResetScope::All`]: the home is renamed into
    /// `<archive>/<username>/<UTC time>-<reason>` (O(1), nothing copied; a home that is a
    /// symlink is archived as the link) and a fresh template copy, prepared under a temporary
    /// name, is renamed into place. [`ResetScope::Environment`]: only the [`ENVIRONMENT`] items
    /// move into a new archive entry; the work stays.
    ///
    /// The student's notebook server must be stopped first (the job's [`BeforeHomeChange`]
    /// hook): a running server would keep writing into the archived directory.
    ///
    /// [`BeforeHomeChange`]: super::BeforeHomeChange
    pub async fn reset(
        &self,
        username: &Username,
        scope: ResetScope,
        reason: &str,
        actor: &Actor,
    ) -> Result<ResetOutcome, HomesError> {
        self.reset_for(username, scope, reason, actor, None).await
    }

    pub(super) async fn reset_for(
        &self,
        u: &Username,
        scope: ResetScope,
        reason: &str,
        actor: &Actor,
        job: Option<Uuid>,
    ) -> Result<ResetOutcome, HomesError> {
        let mut lock = self.lock_home(u).await?;
        let planned = async {
            if let Some(done) = self.done_for_job(&mut lock, u, job).await? {
                return Ok(Planned::Done(decode(done)?));
            }
            let id = Uuid::new_v4();
            let uu = u.clone();
            match scope {
                ResetScope::All => {
                    if self.blocking(move |t| t.home_kind(&uu)).await? == Kind::Missing {
                        return Err(HomesError::NotFound(format!("no home for {u}")));
                    }
                    self.guard_template(lock.conn(), u, "Resetting to the template")
                        .await?;
                    let archive = self.new_archive_id(&mut lock, u, reason).await?;
                    Ok(Planned::Go(
                        id,
                        Plan::Reset {
                            temp: temp_name(id),
                            archive,
                        },
                    ))
                }
                ResetScope::Environment => {
                    let items = self
                        .blocking(move |t| {
                            let home = t.open_home(&uu)?;
                            t.present(home.as_fd(), ENVIRONMENT.iter().copied(), &uu)
                        })
                        .await?;
                    if items.is_empty() {
                        return Ok(Planned::Done(ResetOutcome {
                            username: u.to_string(),
                            scope,
                            archive: None,
                        }));
                    }
                    let archive = self.new_archive_id(&mut lock, u, reason).await?;
                    Ok(Planned::Go(id, Plan::ResetEnvironment { archive, items }))
                }
            }
        }
        .await;
        let (id, plan) = match planned {
            Ok(Planned::Go(id, plan)) => (id, plan),
            Ok(Planned::Done(v)) => {
                lock.release().await;
                return Ok(v);
            }
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let mut op = self.begin(lock, id, u, plan, actor, reason, job).await?;
        let result = match op.plan.clone() {
            Plan::Reset { temp, archive } => self.run_reset(&mut op, temp, archive).await,
            Plan::ResetEnvironment { archive, items } => {
                self.run_reset_environment(&mut op, archive, items).await
            }
            _ => unreachable!("reset plans"),
        };
        self.conclude(op, result, |o: &ResetOutcome| match &o.archive {
            Some(a) => format!("{} reset; the old one is archive {a}", o.scope.as_str()),
            None => "nothing to reset".into(),
        })
        .await
    }

    async fn run_reset(
        &self,
        op: &mut Op,
        temp: String,
        archive: ArchiveId,
    ) -> Result<ResetOutcome, HomesError> {
        let t = temp.clone();
        self.blocking(move |tree| tree.prepare(&t)).await?;
        self.step(op, "prepared", None, None).await?;
        let (u, a) = (op.user.clone(), archive.clone());
        self.blocking(move |tree| tree.archive_home(&u, &a)).await?;
        let meta = Archived {
            id: archive.clone(),
            scope: ResetScope::All,
            reason: op.reason.clone(),
        };
        self.step(op, "archived", Some(meta), None).await?;
        let u = op.user.clone();
        self.blocking(move |tree| tree.install(&temp, &u)).await?;
        self.step(op, "installed", None, None).await?;
        Ok(ResetOutcome {
            username: op.user.to_string(),
            scope: ResetScope::All,
            archive: Some(archive),
        })
    }

    async fn run_reset_environment(
        &self,
        op: &mut Op,
        archive: ArchiveId,
        items: Vec<String>,
    ) -> Result<ResetOutcome, HomesError> {
        let (u, a) = (op.user.clone(), archive.clone());
        self.blocking(move |tree| tree.make_entry(&u, &a)).await?;
        let meta = Archived {
            id: archive.clone(),
            scope: ResetScope::Environment,
            reason: op.reason.clone(),
        };
        self.step(op, "entry", Some(meta), None).await?;
        for item in items {
            let (u, a, i) = (op.user.clone(), archive.clone(), item.clone());
            self.blocking(move |tree| tree.move_out(&u, &a, &i)).await?;
            self.step(op, &format!("moved {item}"), None, None).await?;
        }
        Ok(ResetOutcome {
            username: op.user.to_string(),
            scope: ResetScope::Environment,
            archive: Some(archive),
        })
    }

    /// Restores an archive entry. The current home is archived first (reason
    /// `before-restore`), then the entry is renamed back into place: the restore can be undone
    /// by restoring that new entry. An environment archive is restored into the current home
    /// the same way: its environment goes to the archive, the archived items come back.
    pub async fn restore(
        &self,
        username: &Username,
        archive_id: &ArchiveId,
        actor: &Actor,
    ) -> Result<RestoreOutcome, HomesError> {
        self.restore_for(username, archive_id, actor, None).await
    }

    pub(super) async fn restore_for(
        &self,
        u: &Username,
        from: &ArchiveId,
        actor: &Actor,
        job: Option<Uuid>,
    ) -> Result<RestoreOutcome, HomesError> {
        const REASON: &str = "before-restore";
        let mut lock = self.lock_home(u).await?;
        let planned = async {
            if let Some(done) = self.done_for_job(&mut lock, u, job).await? {
                return Ok(Planned::Done(decode(done)?));
            }
            let (scope, cached) =
                super::guard::archive_scope_and_bytes(lock.conn(), u, from).await?;
            let (uu, ff) = (u.clone(), from.clone());
            let (from_kind, home_kind, out, back) = self
                .blocking(move |t| {
                    let from_kind = match t.archive_user_dir(&uu, false)? {
                        Some(dir) => fs::kind(dir.as_fd(), ff.as_str())
                            .map_err(io_err(format!("archive {ff} of {uu}")))?,
                        None => Kind::Missing,
                    };
                    let home_kind = t.home_kind(&uu)?;
                    let (mut out, mut back) = (Vec::new(), Vec::new());
                    if scope == ResetScope::Environment && from_kind == Kind::Dir {
                        let home = t.open_home(&uu)?;
                        out = t.present(home.as_fd(), ENVIRONMENT.iter().copied(), &uu)?;
                        let dir = t.archive_user_dir(&uu, false)?.expect("seen above");
                        let entry = fs::open_dir(dir.as_fd(), ff.as_str())
                            .map_err(io_err(format!("archive {ff} of {uu}")))?;
                        back = t.present(entry.as_fd(), ENVIRONMENT.iter().copied(), &uu)?;
                    }
                    Ok((from_kind, home_kind, out, back))
                })
                .await?;
            if from_kind == Kind::Missing {
                return Err(HomesError::NotFound(format!("no archive {from} for {u}")));
            }
            self.guard_restore(lock.conn(), u, from, scope, &out, cached)
                .await?;
            let id = Uuid::new_v4();
            let plan = match scope {
                ResetScope::All => Plan::Restore {
                    from: from.clone(),
                    before: match home_kind {
                        Kind::Missing => None,
                        _ => Some(self.new_archive_id(&mut lock, u, REASON).await?),
                    },
                },
                ResetScope::Environment => Plan::RestoreEnvironment {
                    from: from.clone(),
                    before: if out.is_empty() {
                        None
                    } else {
                        Some(self.new_archive_id(&mut lock, u, REASON).await?)
                    },
                    out,
                    back,
                },
            };
            Ok(Planned::Go(id, plan))
        }
        .await;
        let (id, plan) = match planned {
            Ok(Planned::Go(id, plan)) => (id, plan),
            Ok(Planned::Done(v)) => {
                lock.release().await;
                return Ok(v);
            }
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let mut op = self.begin(lock, id, u, plan, actor, REASON, job).await?;
        let result = match op.plan.clone() {
            Plan::Restore { from, before } => self.run_restore(&mut op, from, before).await,
            Plan::RestoreEnvironment {
                from,
                before,
                out,
                back,
            } => {
                self.run_restore_environment(&mut op, from, before, out, back)
                    .await
            }
            _ => unreachable!("restore plans"),
        };
        self.conclude(op, result, |o: &RestoreOutcome| match &o.archive {
            Some(a) => format!(
                "restored archive {}; the replaced one is archive {a}",
                o.restored
            ),
            None => format!("restored archive {}", o.restored),
        })
        .await
    }

    async fn run_restore(
        &self,
        op: &mut Op,
        from: ArchiveId,
        before: Option<ArchiveId>,
    ) -> Result<RestoreOutcome, HomesError> {
        if let Some(b) = &before {
            let (u, bb) = (op.user.clone(), b.clone());
            self.blocking(move |tree| tree.archive_home(&u, &bb))
                .await?;
            let meta = Archived {
                id: b.clone(),
                scope: ResetScope::All,
                reason: op.reason.clone(),
            };
            self.step(op, "archived-current", Some(meta), None).await?;
        }
        let (u, f) = (op.user.clone(), from.clone());
        self.blocking(move |tree| tree.restore_home(&u, &f)).await?;
        self.step(op, "restored", None, Some(from.clone())).await?;
        Ok(RestoreOutcome {
            username: op.user.to_string(),
            restored: from,
            archive: before,
        })
    }

    async fn run_restore_environment(
        &self,
        op: &mut Op,
        from: ArchiveId,
        before: Option<ArchiveId>,
        out: Vec<String>,
        back: Vec<String>,
    ) -> Result<RestoreOutcome, HomesError> {
        if let Some(b) = &before {
            let (u, bb) = (op.user.clone(), b.clone());
            self.blocking(move |tree| tree.make_entry(&u, &bb)).await?;
            let meta = Archived {
                id: b.clone(),
                scope: ResetScope::Environment,
                reason: op.reason.clone(),
            };
            self.step(op, "entry", Some(meta), None).await?;
            for item in &out {
                let (u, bb, i) = (op.user.clone(), b.clone(), item.clone());
                self.blocking(move |tree| tree.move_out(&u, &bb, &i))
                    .await?;
                self.step(op, &format!("out {item}"), None, None).await?;
            }
        }
        self.step(op, "out-done", None, None).await?;
        for item in &back {
            let (u, f, i) = (op.user.clone(), from.clone(), item.clone());
            self.blocking(move |tree| tree.move_back(&u, &f, &i))
                .await?;
            self.step(op, &format!("back {item}"), None, None).await?;
        }
        let (u, f) = (op.user.clone(), from.clone());
        let emptied = self
            .blocking(move |tree| tree.remove_scaffold(&u, &f, &back))
            .await?;
        self.step(op, "restored", None, emptied.then(|| from.clone()))
            .await?;
        Ok(RestoreOutcome {
            username: op.user.to_string(),
            restored: from,
            archive: before,
        })
    }

    /// Deletes archive entries made before `cutoff`, in every student's archive: the only
    /// operation that deletes student files (admins only; the caller checks). Entries are
    /// first renamed into `<archive>/.trash/<op>` (atomic, journalled), then deleted, so a
    /// crash never leaves a half-deleted entry that looks like an archive. A home with an
    /// operation in progress keeps its archives until the next purge (`busy` in the report).
    /// A cutoff later than [`PURGE_MIN_AGE`] ago is refused, whoever asks: a recent reset may
    /// still need undoing.
    pub async fn purge_archives_older_than(
        &self,
        cutoff: OffsetDateTime,
        actor: &Actor,
    ) -> Result<PurgeReport, HomesError> {
        if cutoff > OffsetDateTime::now_utc() - PURGE_MIN_AGE {
            return Err(HomesError::Invalid(
                "purge only archives older than yesterday: recent resets may still need undoing"
                    .into(),
            ));
        }
        let users = self
            .blocking(|t| {
                Ok(fs::read_names(t.archive.as_fd())
                    .map_err(io_err("reading the homes archive"))?
                    .into_iter()
                    .filter_map(|n| Username::parse(n.to_str().ok()?).ok())
                    .collect::<Vec<_>>())
            })
            .await?;
        let mut report = PurgeReport::default();
        for u in users {
            match self.purge_user(&u, cutoff, actor).await {
                Ok(removed) => {
                    for r in removed {
                        report.bytes += r.bytes;
                        report.removed.push(r);
                    }
                }
                Err(HomesError::Busy(_)) => report.busy.push(u.to_string()),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    async fn purge_user(
        &self,
        u: &Username,
        cutoff: OffsetDateTime,
        actor: &Actor,
    ) -> Result<Vec<PurgedArchive>, HomesError> {
        let mut lock = self.lock_home(u).await?;
        let planned = async {
            let rows = db::homes::archives_of(lock.conn(), u.as_str()).await?;
            let uu = u.clone();
            let found = self
                .blocking(move |t| {
                    let Some(dir) = t.archive_user_dir(&uu, false)? else {
                        return Ok(Vec::new());
                    };
                    let mut out = Vec::new();
                    for id in t.entry_ids(dir.as_fd())? {
                        let at = rows
                            .iter()
                            .find(|r| r.id == id.as_str())
                            .map_or_else(|| id.created_at(), |r| r.created_at);
                        if at < cutoff {
                            let cached = rows
                                .iter()
                                .find(|r| r.id == id.as_str())
                                .and_then(|r| r.bytes)
                                .and_then(|b| u64::try_from(b).ok());
                            let bytes = match cached {
                                Some(b) => b,
                                None => {
                                    fs::usage(dir.as_fd(), id.as_str(), &format!("archive {id}"))?
                                }
                            };
                            out.push((id, bytes));
                        }
                    }
                    Ok(out)
                })
                .await?;
            Ok::<_, HomesError>(found)
        }
        .await;
        let found = match planned {
            Ok(f) if !f.is_empty() => f,
            Ok(_) => {
                lock.release().await;
                return Ok(Vec::new());
            }
            Err(e) => {
                lock.release().await;
                return Err(e);
            }
        };
        let id = Uuid::new_v4();
        let plan = Plan::Purge {
            trash: id.simple().to_string(),
            entries: found.iter().map(|(a, _)| a.clone()).collect(),
        };
        let reason = format!("older than {}", date_label(cutoff));
        let mut op = self.begin(lock, id, u, plan, actor, &reason, None).await?;
        let result = async {
            let Plan::Purge { trash, entries } = op.plan.clone() else {
                unreachable!("a purge plan")
            };
            let (uu, tr, en) = (op.user.clone(), trash.clone(), entries.clone());
            self.blocking(move |t| t.move_to_trash(&uu, &tr, &en))
                .await?;
            self.step_gone(&mut op, "moved", &entries, "purged").await?;
            self.blocking(move |t| t.empty_trash(&trash)).await?;
            self.step(&mut op, "deleted", None, None).await?;
            Ok(found
                .iter()
                .map(|(a, bytes)| PurgedArchive {
                    username: u.to_string(),
                    id: a.clone(),
                    bytes: *bytes,
                })
                .collect::<Vec<_>>())
        }
        .await;
        self.conclude(op, result, |removed: &Vec<PurgedArchive>| {
            let bytes: u64 = removed.iter().map(|r| r.bytes).sum();
            let ids: Vec<&str> = removed.iter().map(|r| r.id.as_str()).collect();
            format!(
                "purged {} archives older than {} ({bytes} bytes): {}",
                removed.len(),
                date_label(cutoff),
                ids.join(", ")
            )
        })
        .await
    }

    /// Finishes or rolls back every operation a crash left unfinished, on every home whose
    /// lock is free (a held lock is a live operation, here or on another instance). Call it
    /// at start; any new operation on a home also settles that home first.
    pub async fn recover(&self) -> Result<RecoveryReport, HomesError> {
        let rows = {
            let mut conn = self.pool.acquire().await?;
            db::homes::running_ops(&mut conn).await?
        };
        let mut report = RecoveryReport::default();
        let mut users = HashSet::new();
        for row in rows {
            if !users.insert(row.username.clone()) {
                continue;
            }
            let Some(mut lock) = OpLock::try_acquire(&self.pool, &row.username).await? else {
                report.busy += 1;
                continue;
            };
            let rows = match db::homes::running_for(lock.conn(), &row.username).await {
                Ok(rows) => rows,
                Err(e) => {
                    lock.release().await;
                    return Err(e.into());
                }
            };
            for row in rows {
                let id = row.id;
                match self.settle(&mut lock, row).await {
                    Ok(Settled::Done) => report.finished += 1,
                    Ok(Settled::RolledBack) => report.rolled_back += 1,
                    Ok(Settled::Failed) => report.failed += 1,
                    Err(e) => {
                        tracing::error!(op = %id, error = %e, "homes: could not recover an operation; it stays in the journal");
                        report.stuck += 1;
                    }
                }
            }
            lock.release().await;
        }
        if report != RecoveryReport::default() {
            tracing::info!(?report, "homes: recovered unfinished operations");
        }
        Ok(report)
    }

    // ---- the machinery -------------------------------------------------------------------

    /// The home's lock, after settling whatever a crash left on it (the lock is ours, so
    /// nobody is still running those operations).
    pub(super) async fn lock_home(&self, u: &Username) -> Result<OpLock, HomesError> {
        let Some(mut lock) = OpLock::try_acquire(&self.pool, u.as_str()).await? else {
            return Err(HomesError::Busy(format!("home of {u}")));
        };
        let settled = async {
            for row in db::homes::running_for(lock.conn(), u.as_str()).await? {
                self.settle(&mut lock, row).await?;
            }
            Ok::<_, HomesError>(())
        }
        .await;
        match settled {
            Ok(()) => Ok(lock),
            Err(e) => {
                lock.release().await;
                Err(e)
            }
        }
    }

    /// The result of the op a (resumed) job already finished on this home, if any (one
    /// `homes.create_many` job runs an op per home).
    async fn done_for_job(
        &self,
        lock: &mut OpLock,
        u: &Username,
        job: Option<Uuid>,
    ) -> Result<Option<serde_json::Value>, HomesError> {
        let Some(job) = job else {
            return Ok(None);
        };
        Ok(db::homes::ops_for_job(lock.conn(), job)
            .await?
            .into_iter()
            .find(|op| op.state == "done" && op.username == u.as_str())
            .map(|op| op.result.unwrap_or_default()))
    }

    /// A fresh archive id: not on disk, not in the table (ids are never reused).
    async fn new_archive_id(
        &self,
        lock: &mut OpLock,
        u: &Username,
        reason: &str,
    ) -> Result<ArchiveId, HomesError> {
        let now = OffsetDateTime::now_utc();
        for n in 1..1000 {
            let id = ArchiveId::new(now, reason, n);
            if db::homes::archive_id_taken(lock.conn(), u.as_str(), id.as_str()).await? {
                continue;
            }
            let (uu, ii) = (u.clone(), id.clone());
            let on_disk = self
                .blocking(move |t| match t.archive_user_dir(&uu, false)? {
                    Some(dir) => Ok(fs::kind(dir.as_fd(), ii.as_str())
                        .map_err(io_err("looking into the archive"))?
                        != Kind::Missing),
                    None => Ok(false),
                })
                .await?;
            if !on_disk {
                return Ok(id);
            }
        }
        Err(HomesError::Busy(format!(
            "archive of {u} (no free archive name this second)"
        )))
    }

    #[allow(clippy::too_many_arguments)]
    async fn begin(
        &self,
        mut lock: OpLock,
        id: Uuid,
        u: &Username,
        plan: Plan,
        actor: &Actor,
        reason: &str,
        job: Option<Uuid>,
    ) -> Result<Op, HomesError> {
        let paths = serde_json::to_value(&plan).map_err(|e| HomesError::Invalid(e.to_string()))?;
        let inserted = db::homes::insert_op(
            lock.conn(),
            &NewOp {
                id,
                username: u.as_str(),
                kind: plan.kind(),
                paths: &paths,
                actor: &actor.label(),
                reason,
                job_id: job,
            },
        )
        .await;
        if let Err(e) = inserted {
            lock.release().await;
            return Err(if db::is_unique_violation(&e) {
                HomesError::Busy(format!("home of {u}"))
            } else {
                e.into()
            });
        }
        let mut op = Op {
            lock,
            id,
            user: u.clone(),
            actor: actor.clone(),
            reason: reason.to_string(),
            plan,
        };
        self.checkpoint(&mut op.lock, "begun", FailWhen::AfterRecord)
            .await?;
        Ok(op)
    }

    /// Records a step (with the archive row it made, or the archive it consumed) in one
    /// transaction, after the step's filesystem change.
    async fn step(
        &self,
        op: &mut Op,
        name: &str,
        archived: Option<Archived>,
        gone: Option<ArchiveId>,
    ) -> Result<(), HomesError> {
        let gone: Vec<ArchiveId> = gone.into_iter().collect();
        self.record(op, name, archived, &gone, "restored").await
    }

    async fn step_gone(
        &self,
        op: &mut Op,
        name: &str,
        gone: &[ArchiveId],
        why: &str,
    ) -> Result<(), HomesError> {
        self.record(op, name, None, gone, why).await
    }

    async fn record(
        &self,
        op: &mut Op,
        name: &str,
        archived: Option<Archived>,
        gone: &[ArchiveId],
        why: &str,
    ) -> Result<(), HomesError> {
        self.checkpoint(&mut op.lock, name, FailWhen::BeforeRecord)
            .await?;
        let actor = op.actor.label();
        let mut tx = op.lock.conn().begin().await?;
        if !db::homes::record_step(&mut tx, op.id, name).await? {
            return Err(HomesError::Interrupted(format!(
                "operation {} on the home of {} was finished by recovery elsewhere",
                op.id, op.user
            )));
        }
        if let Some(a) = archived {
            db::homes::insert_archive(
                &mut tx,
                &NewArchive {
                    username: op.user.as_str(),
                    id: a.id.as_str(),
                    scope: a.scope.as_str(),
                    reason: &a.reason,
                    actor: &actor,
                    op_id: op.id,
                    created_at: a.id.created_at(),
                },
            )
            .await?;
        }
        for g in gone {
            db::homes::mark_archive_gone(&mut tx, op.user.as_str(), g.as_str(), why).await?;
        }
        tx.commit().await?;
        self.checkpoint(&mut op.lock, name, FailWhen::AfterRecord)
            .await
    }

    /// Ends an op: done with its audit entry; on an error, settles it at once from the disk
    /// (rolled back, or finished if it was past the point of no return) and reports the error.
    async fn conclude<T: Serialize>(
        &self,
        mut op: Op,
        outcome: Result<T, HomesError>,
        detail: impl FnOnce(&T) -> String,
    ) -> Result<T, HomesError> {
        match outcome {
            Ok(value) => {
                let result = serde_json::to_value(&value).ok();
                let action = op.plan.audit_action();
                let text = detail(&value);
                let recorded = async {
                    let mut tx = op.lock.conn().begin().await?;
                    if !db::homes::finish_op(&mut tx, op.id, "done", result.as_ref(), None, false)
                        .await?
                    {
                        return Err(HomesError::Interrupted(format!(
                            "operation {} on the home of {} was finished by recovery elsewhere",
                            op.id, op.user
                        )));
                    }
                    db::audit::record(
                        &mut tx,
                        &op.actor,
                        action,
                        Some(op.user.as_str()),
                        Some(&text),
                    )
                    .await?;
                    tx.commit().await?;
                    Ok(())
                }
                .await;
                op.lock.release().await;
                recorded.map(|()| value)
            }
            // The "process" is dead: it writes nothing more.
            Err(HomesError::Crashed(step)) => Err(HomesError::Crashed(step)),
            Err(e) => {
                tracing::warn!(op = %op.id, error = %e, "homes: operation failed; settling it");
                let _ = db::homes::note_error(op.lock.conn(), op.id, &e.to_string()).await;
                match db::homes::get_op(op.lock.conn(), op.id).await {
                    Ok(Some(row)) if row.state == "running" => {
                        if let Err(again) = self.settle(&mut op.lock, row).await {
                            tracing::error!(op = %op.id, error = %again, "homes: could not settle a failed operation; it stays in the journal");
                        }
                    }
                    _ => {}
                }
                op.lock.release().await;
                Err(e)
            }
        }
    }

    async fn checkpoint(
        &self,
        lock: &mut OpLock,
        step: &str,
        when: FailWhen,
    ) -> Result<(), HomesError> {
        let action = {
            let mut fp = self
                .failpoint
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match fp.as_ref() {
                Some(f) if f.step == step && f.when == when => fp.take().map(|f| f.action),
                _ => None,
            }
        };
        match action {
            None => Ok(()),
            Some(FailAction::Crash) => {
                lock.crash().await;
                Err(HomesError::Crashed(step.to_string()))
            }
            Some(FailAction::Hang(marker)) => {
                let _ = std::fs::write(&marker, step);
                std::future::pending::<()>().await;
                Ok(())
            }
            Some(FailAction::Pause { reached, resume }) => {
                reached.notify_one();
                resume.notified().await;
                Ok(())
            }
        }
    }

    /// Recovery of one unfinished op (its lock is ours): finish it or roll it back from the
    /// plan and the disk. Idempotent: a crash during recovery is recovered the same way.
    async fn settle(&self, lock: &mut OpLock, row: OpRow) -> Result<Settled, HomesError> {
        let id = row.id;
        let outcome = self.settle_inner(lock, &row).await;
        match outcome {
            Ok((state, error)) => {
                let u = Username::parse(&row.username).ok();
                let plan: Option<Plan> = serde_json::from_value(row.paths.clone()).ok();
                let result = match (&plan, &u, state) {
                    (Some(p), Some(u), Settled::Done) => Some(p.outcome(u)),
                    _ => None,
                };
                let state_text = match state {
                    Settled::Done => "done",
                    Settled::RolledBack => "rolled_back",
                    Settled::Failed => "failed",
                };
                let mut tx = lock.conn().begin().await?;
                db::homes::finish_op(
                    &mut tx,
                    id,
                    state_text,
                    result.as_ref(),
                    error.as_deref(),
                    true,
                )
                .await?;
                if let (Settled::Done, Some(p)) = (state, &plan) {
                    db::audit::record(
                        &mut tx,
                        &Actor::System,
                        p.audit_action(),
                        Some(&row.username),
                        Some(&format!(
                            "finished after an interruption: operation {id} of {} ({})",
                            row.actor, row.reason
                        )),
                    )
                    .await?;
                }
                tx.commit().await?;
                tracing::info!(op = %id, kind = %row.kind, state = state_text, "homes: settled an unfinished operation");
                Ok(state)
            }
            Err(e) => {
                let _ = db::homes::note_error(lock.conn(), id, &format!("recovery: {e}")).await;
                Err(e)
            }
        }
    }

    async fn settle_inner(
        &self,
        lock: &mut OpLock,
        row: &OpRow,
    ) -> Result<(Settled, Option<String>), HomesError> {
        let failed = |why: String| Ok((Settled::Failed, Some(why)));
        let Ok(u) = Username::parse(&row.username) else {
            return failed(format!("bad username {:?} in the journal", row.username));
        };
        let plan: Plan = match serde_json::from_value(row.paths.clone()) {
            Ok(p) => p,
            Err(e) => return failed(format!("unreadable plan: {e}")),
        };
        let steps: HashSet<String> = row.steps.iter().cloned().collect();
        let archive_row =
            |a: &ArchiveId, scope: ResetScope, reason: &str| (a.clone(), scope, reason.to_string());
        // What the filesystem work decides, and the rows it implies.
        struct Verdict {
            state: Settled,
            error: Option<String>,
            archived: Vec<(ArchiveId, ResetScope, String)>,
            gone: Vec<(ArchiveId, &'static str)>,
        }
        let verdict = |state| Verdict {
            state,
            error: None,
            archived: Vec::new(),
            gone: Vec::new(),
        };
        let reason = row.reason.clone();
        let uu = u.clone();
        let v: Verdict = match plan {
            Plan::Create { temp } => {
                self.blocking(move |t| {
                    let home = t.home_kind(&uu)?;
                    let tk = t.root_kind(&temp)?;
                    if home != Kind::Missing {
                        t.remove_temp(&temp)?;
                        let ours = steps.contains("installed")
                            || (steps.contains("prepared") && tk == Kind::Missing);
                        return Ok(verdict(if ours {
                            Settled::Done
                        } else {
                            Settled::RolledBack
                        }));
                    }
                    if steps.contains("prepared") && tk == Kind::Dir {
                        t.install(&temp, &uu)?;
                        return Ok(verdict(Settled::Done));
                    }
                    t.remove_temp(&temp)?;
                    Ok(verdict(Settled::RolledBack))
                })
                .await?
            }
            Plan::Reset { temp, archive } => {
                let row_of = archive_row(&archive, ResetScope::All, &reason);
                self.blocking(move |t| {
                    let home = t.home_kind(&uu)?;
                    let entry = t.entry_kind(&uu, &archive)?;
                    let tk = t.root_kind(&temp)?;
                    if entry != Kind::Missing {
                        if home == Kind::Missing {
                            if !(steps.contains("prepared") && tk == Kind::Dir) {
                                t.prepare(&temp)?;
                            }
                            t.install(&temp, &uu)?;
                        } else {
                            t.remove_temp(&temp)?;
                        }
                        let mut v = verdict(Settled::Done);
                        v.archived.push(row_of);
                        return Ok(v);
                    }
                    t.remove_temp(&temp)?;
                    if home == Kind::Missing {
                        let mut v = verdict(Settled::Failed);
                        v.error = Some(format!(
                            "the home of {uu} and its archive entry {archive} are both missing"
                        ));
                        return Ok(v);
                    }
                    Ok(verdict(Settled::RolledBack))
                })
                .await?
            }
            Plan::ResetEnvironment { archive, items } => {
                let row_of = archive_row(&archive, ResetScope::Environment, &reason);
                self.blocking(move |t| {
                    if t.entry_kind(&uu, &archive)? == Kind::Missing {
                        return Ok(verdict(Settled::RolledBack));
                    }
                    if t.home_kind(&uu)? == Kind::Dir {
                        for item in &items {
                            t.move_out(&uu, &archive, item)?;
                        }
                    }
                    let mut v = verdict(Settled::Done);
                    v.archived.push(row_of);
                    Ok(v)
                })
                .await?
            }
            Plan::Restore { from, before } => {
                self.blocking(move |t| {
                    let from_kind = t.entry_kind(&uu, &from)?;
                    let home = t.home_kind(&uu)?;
                    let before_kind = match &before {
                        Some(b) => t.entry_kind(&uu, b)?,
                        None => Kind::Missing,
                    };
                    let mut v = verdict(Settled::Done);
                    if let (Some(b), true) = (&before, before_kind != Kind::Missing) {
                        v.archived.push(archive_row(b, ResetScope::All, &reason));
                    }
                    if from_kind == Kind::Missing {
                        if home == Kind::Missing {
                            v.state = Settled::Failed;
                            v.error = Some(format!(
                                "archive {from} of {uu} and the home are both missing"
                            ));
                        } else {
                            v.gone.push((from, "restored"));
                        }
                        return Ok(v);
                    }
                    let archived_current = before.is_none() || before_kind != Kind::Missing;
                    if !archived_current {
                        return Ok(verdict(Settled::RolledBack));
                    }
                    if home != Kind::Missing {
                        if before.is_none() {
                            return Ok(verdict(Settled::RolledBack));
                        }
                        v.state = Settled::Failed;
                        v.error = Some(format!(
                            "a home of {uu} appeared after the old one was archived; archive \
                             {from} was left where it is"
                        ));
                        return Ok(v);
                    }
                    t.restore_home(&uu, &from)?;
                    v.gone.push((from, "restored"));
                    Ok(v)
                })
                .await?
            }
            Plan::RestoreEnvironment {
                from,
                before,
                out,
                back,
            } => {
                self.blocking(move |t| {
                    let mut v = verdict(Settled::Done);
                    if !steps.contains("out-done") {
                        if let Some(b) = &before {
                            if t.entry_kind(&uu, b)? == Kind::Missing {
                                return Ok(verdict(Settled::RolledBack));
                            }
                            for item in &out {
                                t.move_out(&uu, b, item)?;
                            }
                        }
                    }
                    if let Some(b) = &before {
                        if t.entry_kind(&uu, b)? != Kind::Missing {
                            v.archived
                                .push(archive_row(b, ResetScope::Environment, &reason));
                        }
                    }
                    if t.entry_kind(&uu, &from)? == Kind::Dir {
                        for item in &back {
                            t.move_back(&uu, &from, item)?;
                        }
                        if t.remove_scaffold(&uu, &from, &back)? {
                            v.gone.push((from, "restored"));
                        }
                    } else {
                        v.gone.push((from, "restored"));
                    }
                    Ok(v)
                })
                .await?
            }
            Plan::Purge { trash, entries } => {
                let en = entries.clone();
                self.blocking(move |t| {
                    t.move_to_trash(&uu, &trash, &en)?;
                    t.empty_trash(&trash)?;
                    Ok(())
                })
                .await?;
                let mut v = verdict(Settled::Done);
                v.gone = entries.into_iter().map(|a| (a, "purged")).collect();
                v
            }
        };
        let mut tx = lock.conn().begin().await?;
        for (a, scope, reason) in &v.archived {
            db::homes::insert_archive(
                &mut tx,
                &NewArchive {
                    username: u.as_str(),
                    id: a.as_str(),
                    scope: scope.as_str(),
                    reason,
                    actor: &row.actor,
                    op_id: row.id,
                    created_at: a.created_at(),
                },
            )
            .await?;
        }
        for (a, why) in &v.gone {
            db::homes::mark_archive_gone(&mut tx, u.as_str(), a.as_str(), why).await?;
        }
        tx.commit().await?;
        Ok((v.state, v.error))
    }
}

fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, HomesError> {
    serde_json::from_value(v).map_err(|e| HomesError::Invalid(format!("journal result: {e}")))
}

fn date_label(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The blocking steps, each one syscall-sized and safe to repeat where recovery repeats it.
impl Tree {
    fn root_kind(&self, name: &str) -> Result<Kind, HomesError> {
        fs::kind(self.root.as_fd(), name).map_err(io_err(format!("looking at {name} in the root")))
    }

    fn entry_kind(&self, u: &Username, id: &ArchiveId) -> Result<Kind, HomesError> {
        match self.archive_user_dir(u, false)? {
            Some(dir) => fs::kind(dir.as_fd(), id.as_str())
                .map_err(io_err(format!("looking at archive {id} of {u}"))),
            None => Ok(Kind::Missing),
        }
    }

    /// Which of `items` are in the directory `top`.
    pub(super) fn present<'a>(
        &self,
        top: std::os::fd::BorrowedFd<'_>,
        items: impl Iterator<Item = &'a str>,
        u: &Username,
    ) -> Result<Vec<String>, HomesError> {
        let mut out = Vec::new();
        for item in items {
            if fs::item_present(top, item).map_err(io_err(format!("looking at {item} of {u}")))? {
                out.push(item.to_string());
            }
        }
        Ok(out)
    }

    /// Lays a fresh template copy at `temp` in the root (a stale one from a crash is removed
    /// first: it is hubdesk's own copy of the template, never a student's file).
    fn prepare(&self, temp: &str) -> Result<(), HomesError> {
        debug_assert!(temp.starts_with(TEMP_PREFIX));
        self.remove_temp(temp)?;
        let what = || format!("preparing a new home at {temp}");
        rfs_mkdir(self.root.as_fd(), temp, 0o700).map_err(io_err(what()))?;
        let dir = fs::open_dir(self.root.as_fd(), temp).map_err(io_err(what()))?;
        if let Some(template) = &self.template {
            let src = fs::open_path(template).map_err(io_err(format!(
                "opening the homes template {}",
                template.display()
            )))?;
            let copied = fs::copy_tree(src.as_fd(), dir.as_fd(), self.owner, "template")?;
            tracing::debug!(?copied, "homes: template copied");
        }
        let (uid, gid) = (
            Some(rustix::fs::Uid::from_raw(self.owner.uid)),
            Some(rustix::fs::Gid::from_raw(self.owner.gid)),
        );
        rustix::fs::fchown(&dir, uid, gid).map_err(io_err(what()))?;
        rustix::fs::fchmod(&dir, rustix::fs::Mode::from_raw_mode(0o755)).map_err(io_err(what()))?;
        Ok(())
    }

    fn remove_temp(&self, temp: &str) -> Result<(), HomesError> {
        debug_assert!(temp.starts_with(TEMP_PREFIX));
        fs::remove_tree(self.root.as_fd(), temp, temp)
    }

    fn install(&self, temp: &str, u: &Username) -> Result<(), HomesError> {
        fs::rename_noreplace(self.root.as_fd(), temp, self.root.as_fd(), u.as_str())
            .and_then(|()| fs::sync_dir(self.root.as_fd()))
            .map_err(io_err(format!("renaming the new home of {u} into place")))
    }

    /// `<root>/<u>` → `<archive>/<u>/<id>`: the link itself if the home is a symlink.
    fn archive_home(&self, u: &Username, id: &ArchiveId) -> Result<(), HomesError> {
        let dir = self.archive_user_dir(u, true)?.expect("created");
        fs::rename_noreplace(self.root.as_fd(), u.as_str(), dir.as_fd(), id.as_str())
            .and_then(|()| fs::sync_dir(dir.as_fd()))
            .and_then(|()| fs::sync_dir(self.root.as_fd()))
            .map_err(io_err(format!(
                "moving the home of {u} into the archive as {id}"
            )))
    }

    fn restore_home(&self, u: &Username, id: &ArchiveId) -> Result<(), HomesError> {
        let dir = self
            .archive_user_dir(u, false)?
            .ok_or_else(|| HomesError::NotFound(format!("no archive {id} for {u}")))?;
        fs::rename_noreplace(dir.as_fd(), id.as_str(), self.root.as_fd(), u.as_str())
            .and_then(|()| fs::sync_dir(self.root.as_fd()))
            .and_then(|()| fs::sync_dir(dir.as_fd()))
            .map_err(io_err(format!(
                "moving archive {id} back as the home of {u}"
            )))
    }

    /// An empty archive entry for environment items (root's, 0700).
    fn make_entry(&self, u: &Username, id: &ArchiveId) -> Result<(), HomesError> {
        let dir = self.archive_user_dir(u, true)?.expect("created");
        fs::ensure_dir(dir.as_fd(), id.as_str(), 0o700)
            .and_then(|_| fs::sync_dir(dir.as_fd()))
            .map(|_| ())
            .map_err(io_err(format!("creating archive {id} of {u}")))
    }

    fn open_entry(&self, u: &Username, id: &ArchiveId) -> Result<std::os::fd::OwnedFd, HomesError> {
        let dir = self
            .archive_user_dir(u, false)?
            .ok_or_else(|| HomesError::NotFound(format!("no archive {id} for {u}")))?;
        fs::open_dir(dir.as_fd(), id.as_str())
            .map_err(io_err(format!("opening archive {id} of {u}")))
    }

    fn move_out(&self, u: &Username, id: &ArchiveId, item: &str) -> Result<bool, HomesError> {
        let home = self.open_home(u)?;
        let entry = self.open_entry(u, id)?;
        fs::move_item(home.as_fd(), entry.as_fd(), item, None)
            .map_err(io_err(format!("moving {item} of {u} into archive {id}")))
    }

    fn move_back(&self, u: &Username, id: &ArchiveId, item: &str) -> Result<bool, HomesError> {
        let home = self.open_home(u)?;
        let entry = self.open_entry(u, id)?;
        fs::move_item(entry.as_fd(), home.as_fd(), item, Some(self.owner)).map_err(io_err(format!(
            "moving {item} of archive {id} back into the home of {u}"
        )))
    }

    /// Removes the now empty holders of restored items (`<entry>/.config`, then the entry).
    /// True when the entry is gone (everything came back).
    fn remove_scaffold(
        &self,
        u: &Username,
        id: &ArchiveId,
        items: &[String],
    ) -> Result<bool, HomesError> {
        let what = || format!("tidying archive {id} of {u}");
        let Some(dir) = self.archive_user_dir(u, false)? else {
            return Ok(true);
        };
        if fs::kind(dir.as_fd(), id.as_str()).map_err(io_err(what()))? == Kind::Missing {
            return Ok(true);
        }
        let entry = self.open_entry(u, id)?;
        let mut parents: Vec<String> = Vec::new();
        for item in items {
            let parts: Vec<&str> = item.split('/').collect();
            for j in (1..parts.len()).rev() {
                parents.push(parts[..j].join("/"));
            }
        }
        parents.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
        parents.dedup();
        for p in parents {
            if let Some((parent, leaf)) =
                fs::open_parent(entry.as_fd(), &p).map_err(io_err(what()))?
            {
                fs::rmdir_if_empty(parent.as_fd(), leaf).map_err(io_err(what()))?;
            }
        }
        fs::rmdir_if_empty(dir.as_fd(), id.as_str()).map_err(io_err(what()))
    }

    fn trash_dir(&self, trash: &str) -> Result<std::os::fd::OwnedFd, HomesError> {
        let what = || format!("the archive's {TRASH}/{trash}");
        let all = fs::ensure_dir(self.archive.as_fd(), TRASH, 0o700).map_err(io_err(what()))?;
        fs::ensure_dir(all.as_fd(), trash, 0o700).map_err(io_err(what()))
    }

    /// Renames each entry still in the user's archive into `.trash/<trash>` (repeatable).
    fn move_to_trash(
        &self,
        u: &Username,
        trash: &str,
        entries: &[ArchiveId],
    ) -> Result<(), HomesError> {
        let bin = self.trash_dir(trash)?;
        let Some(dir) = self.archive_user_dir(u, false)? else {
            return Ok(());
        };
        for id in entries {
            let what = || format!("moving archive {id} of {u} to the trash");
            if fs::kind(dir.as_fd(), id.as_str()).map_err(io_err(what()))? == Kind::Missing {
                continue;
            }
            if fs::kind(bin.as_fd(), id.as_str()).map_err(io_err(what()))? != Kind::Missing {
                continue;
            }
            fs::rename_noreplace(dir.as_fd(), id.as_str(), bin.as_fd(), id.as_str())
                .map_err(io_err(what()))?;
        }
        fs::sync_dir(dir.as_fd())
            .and_then(|()| fs::sync_dir(bin.as_fd()))
            .map_err(io_err("syncing the archive"))
    }

    fn empty_trash(&self, trash: &str) -> Result<(), HomesError> {
        let all = fs::ensure_dir(self.archive.as_fd(), TRASH, 0o700)
            .map_err(io_err(format!("the archive's {TRASH}")))?;
        fs::remove_tree(all.as_fd(), trash, &format!("{TRASH}/{trash}"))
    }
}

fn rfs_mkdir(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &str,
    mode: u32,
) -> Result<(), rustix::io::Errno> {
    rustix::fs::mkdirat(dir, name, rustix::fs::Mode::from_raw_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_plan_round_trips_through_the_journal() {
        let id = ArchiveId::parse("20250102T030405Z-reset").unwrap();
        let plans = [
            Plan::Create {
                temp: ".hubdesk-tmp-x".into(),
            },
            Plan::Reset {
                temp: ".hubdesk-tmp-x".into(),
                archive: id.clone(),
            },
            Plan::ResetEnvironment {
                archive: id.clone(),
                items: vec![".local".into(), ".config/pip".into()],
            },
            Plan::Restore {
                from: id.clone(),
                before: None,
            },
            Plan::RestoreEnvironment {
                from: id.clone(),
                before: Some(id.clone()),
                out: vec![".cache".into()],
                back: vec![".local".into()],
            },
            Plan::Purge {
                trash: "abc".into(),
                entries: vec![id.clone()],
            },
        ];
        for plan in plans {
            let json = serde_json::to_value(&plan).unwrap();
            assert_eq!(json["op"], plan.kind());
            assert_eq!(serde_json::from_value::<Plan>(json).unwrap(), plan);
        }
        let forged = serde_json::json!({"op": "reset", "temp": "x", "archive": "../../etc"});
        assert!(serde_json::from_value::<Plan>(forged).is_err());
    }

    #[test]
    fn homes_actor_labels_come_back() {
        for actor in [
            Actor::Cli,
            Actor::Setup,
            Actor::System,
            Actor::Token("sync".into()),
            Actor::User(Username::parse("connie").unwrap()),
        ] {
            assert_eq!(actor_from_label(&actor.label()), actor);
        }
    }
}
