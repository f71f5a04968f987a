//! Resetting the passwords of many students at once (selected ones, or a cohort) and printing
//! their login cards: one confirmation, one job, one page of cards.
//!
//! - **Once per confirmation.** The confirmation page's address carries a random form id (a
//!   selection without one is redirected to an address with a fresh one, so Back, reload and a
//!   second tab all show the same id), and so does its form; the batch row
//!   (`card_batches.form_id`, unique) is written in the transaction that queues the job, so a
//!   second submission of the same confirmation (Back, reload, a double click, two tabs)
//!   queues nothing and is sent to the first one's cards.
//! - **Once per student.** The job seals each new password into `card_secrets` in the same
//!   transaction that changes the hash; the row's key (job, student) makes a resumed or
//!   duplicated run skip a student already done instead of resetting her twice.
//! - **Secrets.** A new password exists in memory while it is hashed and sealed, then only
//!   sealed to the asking browser's key (`auth::sealed`): never in the job's payload or
//!   result, the audit log or the server log. The cards can be read for [`CARDS_WINDOW`];
//!   then the sealed rows are deleted (`purge_expired`, every minute) and the browser's key
//!   cookie expires.
//! - Every reset ends the student's sessions and hub grants (`auth::access::end`), and is one
//!   audit line (`student.reset_password`), besides the batch's own (`students.reset_passwords`).
use std::{collections::HashSet, sync::Arc, time::Duration};

use futures_util::{stream, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{generate, Credential, Roster, RosterError};
use crate::{
    auth::{
        access,
        sealed::{OpeningKey, SealingKey},
    },
    db::{self, users::UserRow},
    domain::{Actor, Reach, Role, Username},
    jobs::{BoxFuture, JobContext, JobError, JobHandler, JobRow, JobState},
};

pub const KIND: &str = "roster.reset_passwords";
/// How long the cards of a batch can be read (and its key cookie lives).
pub const CARDS_WINDOW: Duration = Duration::from_secs(3600);
/// A job that would start resetting with less of the window left refuses: cards nobody can
/// print in time would lock the class out.
const MIN_WINDOW_LEFT: time::Duration = time::Duration::minutes(5);
/// One batch holds at most this many students (a camp's cohort is far smaller).
pub const MAX_STUDENTS: usize = 500;
const MAX_ATTEMPTS: i32 = 3;

/// The job's payload: the confirmation form's id and the students it named, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetManyJob {
    pub form: Uuid,
    pub usernames: Vec<String>,
}

/// What confirming did.
#[derive(Debug)]
pub enum ResetMany {
    /// Queued: the browser gets `key` (only it can read the cards) until `until`.
    Started {
        job: Uuid,
        key: OpeningKey,
        until: OffsetDateTime,
    },
    /// This form was submitted before: its job, nothing new queued.
    Already { job: Uuid },
}

/// A batch's cards as its page shows them.
pub struct Cards {
    pub job: Uuid,
    pub state: JobState,
    /// Students in the batch, and how many have their new password so far.
    pub total: usize,
    pub done: usize,
    pub error: Option<String>,
    pub until: OffsetDateTime,
    pub read: CardsRead,
}

pub enum CardsRead {
    /// Opened with the browser's key, in the selection's order.
    Open(Vec<Credential>),
    /// The window has ended: the sealed passwords are deleted.
    Expired,
    /// This browser holds no key for the batch (another browser asked), or the wrong one.
    NoKey,
}

impl Roster {
    /// The students a selection names: ticked usernames, or everyone in a cohort (by
    /// username). Any name that is no student is an error naming them all; so is any student
    /// outside `reach`.
    pub async fn select_students(
        &self,
        reach: &Reach,
        usernames: &[String],
        cohort: Option<&str>,
    ) -> Result<Vec<UserRow>, RosterError> {
        if let Some(c) = cohort.filter(|c| !c.is_empty()) {
            reach
                .check_cohort(Some(c))
                .map_err(|e| RosterError::NotYours(e.0))?;
        }
        let mut conn = self.pool.acquire().await?;
        let mut names: Vec<String> = Vec::new();
        if let Some(c) = cohort.filter(|c| !c.is_empty()) {
            let of_cohort = db::users::cohort_usernames(&mut conn, c).await?;
            if of_cohort.is_empty() {
                return Err(RosterError::NotFound(format!("no student in cohort '{c}'")));
            }
            names.extend(of_cohort.into_iter().map(|u| u.to_string()));
        }
        for n in usernames {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        if names.is_empty() {
            return Err(RosterError::Invalid(vec![(
                "student",
                "choose at least one student".into(),
            )]));
        }
        if names.len() > MAX_STUDENTS {
            return Err(RosterError::Invalid(vec![(
                "student",
                format!("at most {MAX_STUDENTS} students at once"),
            )]));
        }
        let mut found = Vec::with_capacity(names.len());
        let (mut missing, mut garbled) = (Vec::new(), 0);
        for n in &names {
            let Ok(u) = Username::parse(n) else {
                // Shown back on a page: only a name that parses is echoed.
                garbled += 1;
                continue;
            };
            match db::users::find_by_username(&mut conn, &u).await? {
                Some(r) if r.role == Role::Student => found.push(r),
                _ => missing.push(u.to_string()),
            }
        }
        if !missing.is_empty() || garbled > 0 {
            let mut parts = Vec::new();
            if !missing.is_empty() {
                parts.push(format!("no student named {}", missing.join(", ")));
            }
            if garbled > 0 {
                parts.push(format!("{garbled} name(s) that are not usernames"));
            }
            return Err(RosterError::NotFound(parts.join("; ")));
        }
        let theirs: Vec<&str> = found
            .iter()
            .filter(|r| !reach.admits(r.cohort.as_deref()))
            .map(|r| r.username.as_str())
            .collect();
        if !theirs.is_empty() {
            return Err(RosterError::NotYours(format!(
                "not in one of your cohorts ({}): {}",
                reach.describe(),
                theirs.join(", ")
            )));
        }
        Ok(found)
    }

    /// Queues the reset of `students`' passwords for the confirmation form `form`; a second
    /// call with the same form queues nothing and returns the first one's job.
    pub async fn reset_many(
        &self,
        actor: &Actor,
        form: Uuid,
        students: &[UserRow],
        cohort: Option<&str>,
    ) -> Result<ResetMany, RosterError> {
        let key = OpeningKey::generate();
        let until = OffsetDateTime::now_utc() + CARDS_WINDOW;
        let payload = ResetManyJob {
            form,
            usernames: students.iter().map(|s| s.username.to_string()).collect(),
        };
        let json = serde_json::to_value(&payload).map_err(|e| RosterError::Internal(e.into()))?;
        let mut tx = self.pool.begin().await?;
        let job = db::jobs::enqueue(&mut tx, KIND, &json, &actor.label(), MAX_ATTEMPTS).await?;
        let count = i32::try_from(students.len()).unwrap_or(i32::MAX);
        let sealing = key.sealing_key().to_bytes();
        if let Err(earlier) =
            db::cards::insert_batch(&mut tx, job, form, &sealing, count, until).await?
        {
            tx.rollback().await?;
            return Ok(ResetMany::Already { job: earlier });
        }
        let detail = format!(
            "{} student{}: {} (job {job})",
            students.len(),
            if students.len() == 1 { "" } else { "s" },
            name_list(students)
        );
        db::audit::record(
            &mut tx,
            actor,
            "students.reset_passwords",
            cohort.filter(|c| !c.is_empty()),
            Some(&detail),
        )
        .await?;
        tx.commit().await?;
        self.jobs.wake();
        Ok(ResetMany::Started { job, key, until })
    }

    /// The job a confirmation form already started, if any (Back to a confirmation that was
    /// sent says so instead of offering it again).
    pub async fn job_of_form(&self, form: Uuid) -> Result<Option<Uuid>, RosterError> {
        let mut conn = self.pool.acquire().await?;
        Ok(db::cards::job_of_form(&mut conn, form).await?)
    }

    /// The batch of job `job` with its cards, opened with `key` (the browser's) when given.
    /// `None`: no such batch.
    pub async fn cards(
        &self,
        job: Uuid,
        key: Option<&OpeningKey>,
    ) -> Result<Option<Cards>, RosterError> {
        let mut conn = self.pool.acquire().await?;
        let Some(batch) = db::cards::batch(&mut conn, job).await? else {
            return Ok(None);
        };
        let Some(row): Option<JobRow> = db::jobs::get(&mut conn, job).await? else {
            return Ok(None);
        };
        let expired = batch.expires_at <= OffsetDateTime::now_utc();
        if expired {
            // Do not wait for the purge: nothing of a batch outlives its window for long.
            db::cards::purge_expired(&mut conn).await?;
        }
        let done = db::cards::count(&mut conn, job).await?;
        let read = match key {
            _ if expired => CardsRead::Expired,
            None => CardsRead::NoKey,
            Some(key) if key.sealing_key().to_bytes() != batch.sealing_key => CardsRead::NoKey,
            Some(key) => {
                let sealed = db::cards::sealed_cards(&mut conn, job).await?;
                let mut creds = Vec::with_capacity(sealed.len());
                for c in sealed {
                    let plain = key
                        .open(&context(job, c.user_id), &c.sealed)
                        .and_then(|p| String::from_utf8(p).ok())
                        .ok_or_else(|| {
                            RosterError::Internal(anyhow::anyhow!(
                                "a sealed card of job {job} does not open with its batch's key"
                            ))
                        })?;
                    creds.push(Credential {
                        username: c.username,
                        display_name: c.display_name,
                        cohort: c.cohort,
                        password: plain,
                    });
                }
                CardsRead::Open(creds)
            }
        };
        Ok(Some(Cards {
            job,
            state: row.state,
            total: usize::try_from(batch.students).unwrap_or(0),
            done: usize::try_from(done).unwrap_or(0),
            error: row.error,
            until: batch.expires_at,
            read,
        }))
    }
}

/// What a sealed password is bound to: its batch and its student.
fn context(job: Uuid, user_id: i64) -> Vec<u8> {
    format!("{KIND}/{job}/{user_id}").into_bytes()
}

/// "ada, bob, cyd and 9 more" for the batch's audit line.
fn name_list(students: &[UserRow]) -> String {
    const SHOWN: usize = 10;
    let names: Vec<&str> = students
        .iter()
        .take(SHOWN)
        .map(|s| s.username.as_str())
        .collect();
    match students.len().saturating_sub(SHOWN) {
        0 => names.join(", "),
        more => format!("{} and {more} more", names.join(", ")),
    }
}

/// The `roster.reset_passwords` handler, for the app's runner.
pub fn handler(roster: Roster) -> Arc<dyn JobHandler> {
    Arc::new(ResetManyHandler(roster))
}

struct ResetManyHandler(Roster);

impl JobHandler for ResetManyHandler {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn run<'a>(
        &'a self,
        ctx: &'a JobContext,
    ) -> BoxFuture<'a, Result<serde_json::Value, JobError>> {
        Box::pin(async move { self.reset_all(ctx).await })
    }
}

impl ResetManyHandler {
    async fn reset_all(&self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        let roster = &self.0;
        let job: ResetManyJob = ctx.payload_as()?;
        let id = ctx.id();
        let mut conn = roster.pool.acquire().await?;
        let batch = db::cards::batch(&mut conn, id)
            .await?
            .ok_or_else(|| JobError::fatal("this reset has no batch of cards"))?;
        let sealing = SealingKey::from_bytes(&batch.sealing_key)
            .ok_or_else(|| JobError::fatal("the batch's sealing key does not parse"))?;
        let done: HashSet<i64> = db::cards::done_user_ids(&mut conn, id)
            .await?
            .into_iter()
            .collect();
        drop(conn);
        let actor = Actor::from_label(ctx.actor());
        // A class takes all hashers but one, so logins are not queued behind the whole batch.
        let parallel = roster.hasher.permits().saturating_sub(1).max(1);
        let mut skipped = Vec::new();
        let mut reset = done.len();
        for (chunk_no, chunk) in job.usernames.chunks(parallel).enumerate() {
            if batch.expires_at - OffsetDateTime::now_utc() < MIN_WINDOW_LEFT {
                return Err(JobError::fatal(format!(
                    "the cards' window ends at {}, too soon to print new cards: {reset} of {} \
                     passwords were reset, the others are unchanged",
                    clock(batch.expires_at),
                    job.usernames.len()
                )));
            }
            let mut todo = Vec::new();
            let mut conn = roster.pool.acquire().await?;
            for (i, name) in chunk.iter().enumerate() {
                let position = (chunk_no * parallel + i) as i32;
                let row = match Username::parse(name) {
                    Ok(u) => db::users::find_by_username(&mut conn, &u).await?,
                    Err(_) => None,
                };
                match row {
                    Some(u) if u.role == Role::Student => {
                        if !done.contains(&u.id) {
                            todo.push((position, u));
                        }
                    }
                    _ => skipped.push(name.clone()),
                }
            }
            drop(conn);
            let passwords = generate::passwords(todo.len());
            let hashes: Vec<String> = stream::iter(passwords.clone())
                .map(|p| {
                    let hasher = roster.hasher.clone();
                    async move { hasher.hash(&p).await }
                })
                .buffered(parallel)
                .try_collect()
                .await
                .map_err(JobError::retry)?;
            for (((position, user), password), hash) in todo.into_iter().zip(passwords).zip(hashes)
            {
                let sealed = sealing
                    .seal(&context(id, user.id), password.as_bytes())
                    .map_err(JobError::fatal)?;
                drop(password);
                if reset_one(roster, &actor, id, &user, position, &sealed, &hash).await? {
                    reset += 1;
                }
                ctx.step(&format!("reset {}", user.username)).await?;
            }
        }
        for name in &skipped {
            ctx.step(&format!("skipped {name}: no longer a student"))
                .await?;
        }
        Ok(serde_json::json!({
            "reset": reset,
            "skipped": skipped,
            "cards": format!("/students/cards/{id}"),
            "cards_until": batch
                .expires_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        }))
    }
}

/// One student: the sealed card, the new hash, the end of their access and the audit line,
/// in one transaction. False (and nothing changed) when this batch already reset them.
async fn reset_one(
    roster: &Roster,
    actor: &Actor,
    job: Uuid,
    user: &UserRow,
    position: i32,
    sealed: &[u8],
    hash: &str,
) -> Result<bool, JobError> {
    let mut tx = roster.pool.begin().await?;
    if !db::cards::insert_secret(&mut tx, job, user.id, position, sealed).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    db::users::set_password_hash(&mut tx, user.id, hash).await?;
    let ended = access::end(&mut tx, user.id, access::Sessions::All).await?;
    let detail = format!("in a bulk reset (job {job}): {}", ended.detail(""));
    let target = Some(user.username.as_str());
    db::audit::record(
        &mut tx,
        actor,
        "student.reset_password",
        target,
        Some(&detail),
    )
    .await?;
    ended.commit(tx, &roster.tokens).await?;
    Ok(true)
}

/// `HH:MM UTC`.
pub fn clock(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:02}:{:02} UTC", t.hour(), t.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_carries_no_password() {
        let job = ResetManyJob {
            form: Uuid::nil(),
            usernames: vec!["ada".into()],
        };
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"form": "00000000-0000-0000-0000-000000000000", "usernames": ["ada"]})
        );
        assert!(serde_json::from_value::<ResetManyJob>(
            serde_json::json!({"form": Uuid::nil(), "usernames": [], "password": "x"})
        )
        .is_err());
    }
}
