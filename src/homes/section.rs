//! What a student's page shows about their home: its size against its limit, its archives, an
//! operation under way, or why it could not be read. Built here (no web), shown by the roster's
//! student page.
use sqlx::PgPool;

use super::{quota::HomeQuota, ArchiveInfo, Homes, HomesError, ResetScope};
use crate::domain::Username;

/// A student's home as their page shows it.
pub struct HomeSection {
    pub exists: bool,
    pub size: String,
    /// The home (measured now) against its storage limit.
    pub quota: HomeQuota,
    pub archives: Vec<ArchiveLine>,
    /// A home operation queued or running, to link to instead of offering buttons.
    pub active_job: Option<String>,
    /// Why the home could not be read (shown in one line; the page still works).
    pub problem: Option<String>,
    /// The latest hand-outs into this home, newest first.
    pub handouts: Vec<HandoutLine>,
}

/// A course folder handed out into the home, with what could not take its own name.
pub struct HandoutLine {
    pub folder: String,
    pub at: time::OffsetDateTime,
    pub written: i64,
    pub unchanged: i64,
    pub conflicts: Vec<super::handout::Conflict>,
}

/// The home's hand-outs as its pages show them (none when they cannot be read).
pub async fn handouts(homes: &Homes, username: &Username) -> Vec<HandoutLine> {
    homes
        .hand_outs_of(username)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|h| HandoutLine {
            folder: h.folder,
            at: h.at,
            written: h.written,
            unchanged: h.unchanged,
            conflicts: serde_json::from_value(h.conflicts).unwrap_or_default(),
        })
        .collect()
}

pub struct ArchiveLine {
    pub id: String,
    /// When the archive entry was made (pages show it on the camp's clock).
    pub at: time::OffsetDateTime,
    pub reason: String,
    pub actor: String,
    pub size: String,
    pub environment_only: bool,
}

/// "1.2 GiB", "340 KiB": binary units, the ones storage limits are written in (and
/// `xfs_quota` and `du -h` show), so a size and its limit read alike.
pub fn human_bytes(bytes: u64) -> String {
    crate::config::iec_bytes(bytes)
}

fn line(a: ArchiveInfo) -> ArchiveLine {
    ArchiveLine {
        id: a.id.as_str().to_string(),
        at: a.created_at,
        reason: a.reason,
        actor: a.actor,
        size: human_bytes(a.bytes),
        environment_only: a.scope == ResetScope::Environment,
    }
}

/// What the student page shows about `username`'s home.
pub async fn section(pool: &PgPool, homes: &Homes, username: &Username) -> HomeSection {
    let active_job = match pool.acquire().await {
        Ok(mut conn) => crate::db::homes::active_job(&mut conn, username.as_str())
            .await
            .ok()
            .flatten()
            .map(|id| id.to_string()),
        Err(_) => None,
    };
    let own = match pool.acquire().await {
        Ok(mut conn) => crate::db::users::home_quota_of(&mut conn, username)
            .await
            .ok()
            .flatten()
            .and_then(|b| u64::try_from(b).ok()),
        Err(_) => None,
    };
    let quota =
        |used: Option<u64>, measured| HomeQuota::new(used, measured, own, homes.default_quota());
    let read = async {
        let exists = homes.exists(username).await?;
        let bytes = if exists {
            homes.usage(username).await?
        } else {
            0
        };
        let archives = homes.archives(username).await?;
        Ok::<_, HomesError>((exists, bytes, archives))
    };
    let now = Some(time::OffsetDateTime::now_utc());
    let handouts = handouts(homes, username).await;
    match read.await {
        Ok((exists, bytes, archives)) => HomeSection {
            exists,
            size: human_bytes(bytes),
            quota: quota(exists.then_some(bytes), now),
            archives: archives.into_iter().map(line).collect(),
            active_job,
            problem: None,
            handouts,
        },
        Err(e) => HomeSection {
            exists: false,
            size: String::new(),
            quota: quota(None, None),
            archives: Vec::new(),
            active_job,
            problem: Some(e.to_string()),
            handouts,
        },
    }
}
