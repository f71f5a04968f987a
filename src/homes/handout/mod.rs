//! Hand out (issue 19): a course folder from `[homes] courses` copied into the homes of a
//! cohort's students (or of one student who joined late) as `~/<folder>/`. A student's file is
//! never overwritten ([`tree`]: theirs stays, the course's goes beside it and the conflict is
//! listed on their page); running servers see the files at once (the homes are the servers'
//! own directories). One job (`homes.hand_out`) with a step per home, under each home's lock;
//! a resumed job does the unfinished homes again, which writes nothing twice.
mod tree;

use std::{os::fd::AsFd, sync::Arc};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use tree::{beside_name, Conflict, HangAt, Placed};

use super::{
    fs::{self, io_err},
    jobs::{job_error, MAX_ATTEMPTS},
    Homes, HomesError,
};
use crate::{
    db,
    domain::{reach::OutOfReach, Actor, Reach, Username},
    jobs::{BoxFuture, JobContext, JobError, JobHandler},
};

pub const KIND: &str = "homes.hand_out";

/// A course folder's name: one path component, as it appears in `[homes] courses` and then
/// in each home (`week1`, `Project 2`). Not a dot-name, no `/`, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseFolder(String);

impl CourseFolder {
    pub fn parse(raw: &str) -> Result<Self, HandOutError> {
        let name = raw.trim();
        let bad = name.is_empty()
            || name.len() > 100
            || name.starts_with('.')
            || name.contains('/')
            || name.chars().any(char::is_control);
        if bad {
            return Err(HandOutError::Folder(format!(
                "{name:?} is not a course folder's name"
            )));
        }
        Ok(Self(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who gets it.
#[derive(Debug, Clone)]
pub enum Recipients {
    Cohort(String),
    Student(Username),
}

#[derive(Debug, thiserror::Error)]
pub enum HandOutError {
    /// No such course folder, or not a folder's name (the form's `folder` field).
    #[error("{0}")]
    Folder(String),
    /// Nobody to give it to (the form's `to` field).
    #[error("{0}")]
    NoStudents(String),
    #[error(transparent)]
    OutOfReach(#[from] OutOfReach),
    #[error(transparent)]
    Homes(#[from] HomesError),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Payload of `homes.hand_out`: the students fixed when it was asked (a student who joins
/// the cohort later gets it by a hand-out of their own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandOutJob {
    pub folder: String,
    pub usernames: Vec<String>,
}

impl Homes {
    /// The course folders there are to hand out: the directories of `[homes] courses`, by
    /// name (none when it does not exist yet).
    pub async fn course_folders(&self) -> Result<Vec<String>, HomesError> {
        self.blocking(|t| {
            let dir = match fs::open_path(&t.courses) {
                Ok(d) => d,
                Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
                Err(e) => return Err(io_err(format!("opening {}", t.courses.display()))(e)),
            };
            let mut out = Vec::new();
            for name in fs::read_names(dir.as_fd()).map_err(io_err("reading the courses"))? {
                let Ok(name) = name.into_string() else {
                    continue;
                };
                if CourseFolder::parse(&name).is_ok()
                    && fs::kind(dir.as_fd(), name.as_str()) == Ok(fs::Kind::Dir)
                {
                    out.push(name);
                }
            }
            out.sort();
            Ok(out)
        })
        .await
    }

    /// Queues the hand-out of `folder` to `to` (audited `home.hand_out`); the job's id. A
    /// counselor hands out only to their cohorts' students.
    pub async fn queue_hand_out(
        &self,
        actor: &Actor,
        reach: &Reach,
        folder: &str,
        to: &Recipients,
    ) -> Result<Uuid, HandOutError> {
        let folder = CourseFolder::parse(folder)?;
        if !self
            .course_folders()
            .await?
            .iter()
            .any(|f| f == folder.as_str())
        {
            return Err(HandOutError::Folder(format!(
                "There is no course folder named {:?} (put it in {}).",
                folder.as_str(),
                self.tree.courses.display()
            )));
        }
        let mut tx = self.pool.begin().await?;
        let (usernames, target) = match to {
            Recipients::Cohort(c) => {
                reach.check_cohort(Some(c))?;
                let users = db::users::cohort_usernames(&mut tx, c).await?;
                (users, format!("cohort:{c}"))
            }
            Recipients::Student(u) => {
                let row = db::users::find_by_username(&mut tx, u)
                    .await?
                    .filter(|r| r.role == crate::domain::Role::Student)
                    .ok_or_else(|| HandOutError::NoStudents(format!("There is no student {u}.")))?;
                reach.check_student(u.as_str(), row.cohort.as_deref())?;
                (vec![u.clone()], u.to_string())
            }
        };
        if usernames.is_empty() {
            return Err(HandOutError::NoStudents(
                "That cohort has no students yet.".into(),
            ));
        }
        let job = HandOutJob {
            folder: folder.as_str().to_string(),
            usernames: usernames.iter().map(ToString::to_string).collect(),
        };
        let payload = serde_json::to_value(&job).map_err(|e| sqlx::Error::Encode(e.into()))?;
        let id = db::jobs::enqueue(&mut tx, KIND, &payload, &actor.label(), MAX_ATTEMPTS).await?;
        let detail = format!("{} to {} home(s)", folder.as_str(), usernames.len());
        db::audit::record(
            &mut tx,
            actor,
            "home.hand_out",
            Some(&target),
            Some(&detail),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Hands `folder` out into one home, under the home's lock.
    pub async fn hand_out_home(
        &self,
        u: &Username,
        folder: &CourseFolder,
    ) -> Result<Placed, HomesError> {
        let lock = self.lock_home(u).await?;
        let (uu, name) = (u.clone(), folder.as_str().to_string());
        let hang = self.hand_out_hang();
        let result = self
            .blocking(move |t| {
                let src = fs::open_path(&t.courses.join(&name))
                    .map_err(io_err(format!("opening the course folder {name}")))?;
                let home = t.open_home(&uu)?;
                // A staging directory of hubdesk's own on the homes filesystem (the root,
                // where no student writes): what a killed hand-out left there goes first.
                let staging = format!("{}handout-{uu}", super::TEMP_PREFIX);
                fs::remove_tree(t.root.as_fd(), &staging, &staging)?;
                let stage = fs::ensure_dir(t.root.as_fd(), &staging, 0o700)
                    .map_err(io_err(format!("creating {staging}")))?;
                let placed = tree::hand_out(
                    src.as_fd(),
                    home.as_fd(),
                    &name,
                    stage.as_fd(),
                    t.owner,
                    hang,
                )?;
                drop(stage);
                fs::remove_tree(t.root.as_fd(), &staging, &staging)?;
                Ok(placed)
            })
            .await;
        lock.release().await;
        result
    }

    /// A test's failpoint `handout:<n>` with [`super::FailAction::Hang`]: the next hand-out
    /// hangs after `n` files (see [`HangAt`]).
    fn hand_out_hang(&self) -> Option<HangAt> {
        let mut fp = self
            .failpoint
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let files = fp.as_ref()?.step.strip_prefix("handout:")?.parse().ok()?;
        match fp.take()?.action {
            super::FailAction::Hang(marker) => Some(HangAt { files, marker }),
            _ => None,
        }
    }

    /// Where the course folders are (`[homes] courses`).
    pub fn courses_dir(&self) -> &std::path::Path {
        &self.tree.courses
    }

    /// Every cohort's name (the form narrows them to the person's reach).
    pub async fn cohort_names(&self) -> Result<Vec<String>, HomesError> {
        let mut conn = self.pool.acquire().await?;
        Ok(db::users::cohorts(&mut conn).await?)
    }

    /// A student's latest hand-outs for their page, newest first.
    pub async fn hand_outs_of(
        &self,
        u: &Username,
    ) -> Result<Vec<db::handouts::HandoutHome>, HomesError> {
        let mut conn = self.pool.acquire().await?;
        Ok(db::handouts::of_student(&mut conn, u, 10).await?)
    }
}

/// The job: each home in turn, recorded as the step `handed out <username>` and its row in
/// `handout_homes`; a resumed job skips the homes already done.
pub struct HandOutHandler(pub Homes);

impl HandOutHandler {
    pub fn handler(homes: Homes) -> Arc<dyn JobHandler> {
        Arc::new(Self(homes))
    }
}

impl JobHandler for HandOutHandler {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        Box::pin(async move {
            let p: HandOutJob = ctx.payload_as()?;
            let folder = CourseFolder::parse(&p.folder).map_err(JobError::fatal)?;
            let (mut written, mut conflicts, mut missing) = (0u64, 0usize, Vec::new());
            for raw in &p.usernames {
                let step = format!("handed out {raw}");
                if ctx.is_done(&step) {
                    continue;
                }
                let u = Username::parse(raw)
                    .map_err(|e| JobError::Fatal(format!("username {raw:?}: {e}")))?;
                let placed = match self.0.hand_out_home(&u, &folder).await {
                    Ok(p) => p,
                    // A student with no home (never created, or removed): said, not fatal.
                    Err(HomesError::NotFound(_)) => {
                        missing.push(raw.clone());
                        ctx.step(&format!("no home {raw}")).await?;
                        continue;
                    }
                    Err(e) => return Err(job_error(e)),
                };
                written += placed.written;
                conflicts += placed.conflicts.len();
                let list = serde_json::to_value(&placed.conflicts).map_err(JobError::fatal)?;
                let mut conn = self.0.pool.acquire().await.map_err(JobError::retry)?;
                db::handouts::record(
                    &mut conn,
                    ctx.id(),
                    &u,
                    folder.as_str(),
                    placed.written,
                    placed.unchanged,
                    &list,
                )
                .await
                .map_err(JobError::retry)?;
                ctx.step(&step).await?;
            }
            Ok(serde_json::json!({
                "folder": folder.as_str(),
                "homes": p.usernames.len() - missing.len(),
                "written": written,
                "conflicts": conflicts,
                "no_home": missing,
            }))
        })
    }
}
