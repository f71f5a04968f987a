//! Posting an announcement: the message, who sees it (everyone, or one cohort's students) and
//! when (typed in the camp's zone as a form's `datetime-local` sends it; empty start: now,
//! empty end: two hours after the start).
use jiff::{civil::DateTime, SignedDuration, Timestamp};

use super::{cohort_target, AnnounceError, Announcements, MAX_MESSAGE};
use crate::{
    calendar::clock::to_offset,
    db::{self, announcements::NewAnnouncement},
    domain::Actor,
};

/// The form as typed.
#[derive(Debug, Clone, Default)]
pub struct AnnouncementInput {
    pub message: String,
    /// Empty: everyone; else a cohort's name.
    pub cohort: String,
    /// `2026-07-06T09:00` in the camp's zone; empty: now.
    pub starts: String,
    /// Empty: two hours after the start.
    pub ends: String,
}

/// How long an announcement lasts when no end is given.
pub const DEFAULT_LENGTH: SignedDuration = SignedDuration::from_hours(2);

fn parse_local(raw: &str, zone: &jiff::tz::TimeZone) -> Option<Timestamp> {
    let raw = raw.trim();
    let dt = DateTime::strptime("%Y-%m-%dT%H:%M", raw)
        .or_else(|_| DateTime::strptime("%Y-%m-%dT%H:%M:%S", raw))
        .or_else(|_| DateTime::strptime("%Y-%m-%d %H:%M", raw))
        .ok()?;
    dt.to_zoned_datetime(zone.clone())
        .ok()
        .map(|z| z.timestamp())
}

impl Announcements {
    /// Posts it (audited `announcement.post`); its id.
    pub async fn post(
        &self,
        actor: &Actor,
        reach: &crate::domain::Reach,
        input: &AnnouncementInput,
    ) -> Result<i64, AnnounceError> {
        let mut errors: Vec<(&'static str, String)> = Vec::new();
        let message = input.message.trim();
        if message.is_empty() {
            errors.push(("message", "Write the message.".into()));
        } else if message.chars().count() > MAX_MESSAGE {
            errors.push((
                "message",
                format!("Keep it under {MAX_MESSAGE} characters."),
            ));
        }
        let now = self.clock.now();
        let starts = if input.starts.trim().is_empty() {
            Some(now)
        } else {
            let t = parse_local(&input.starts, &self.zone);
            if t.is_none() {
                errors.push(("starts", "Give the start as a date and a time.".into()));
            }
            t
        };
        let ends = match (input.ends.trim().is_empty(), starts) {
            (true, Some(s)) => s.checked_add(DEFAULT_LENGTH).ok(),
            (true, None) => None,
            (false, _) => {
                let t = parse_local(&input.ends, &self.zone);
                if t.is_none() {
                    errors.push(("ends", "Give the end as a date and a time.".into()));
                }
                t
            }
        };
        if let (Some(s), Some(e)) = (starts, ends) {
            if e <= s {
                errors.push(("ends", "The end must come after the start.".into()));
            } else if e <= now {
                errors.push((
                    "ends",
                    "The end is in the past: nobody would see it.".into(),
                ));
            }
        }
        let cohort = input.cohort.trim();
        let mut tx = self.pool.begin().await?;
        if !cohort.is_empty()
            && !db::users::cohorts(&mut tx)
                .await?
                .iter()
                .any(|c| c == cohort)
        {
            errors.push(("cohort", format!("There is no cohort named '{cohort}'.")));
        } else if let Err(e) = reach.check_cohort((!cohort.is_empty()).then_some(cohort)) {
            errors.push(("cohort", crate::domain::sentence(&e.0)));
        }
        let (Some(starts), Some(ends), true) = (starts, ends, errors.is_empty()) else {
            return Err(AnnounceError::Invalid(errors));
        };
        let cohort = (!cohort.is_empty()).then_some(cohort);
        let id = db::announcements::insert(
            &mut tx,
            &NewAnnouncement {
                message,
                cohort,
                starts_at: to_offset(starts),
                ends_at: to_offset(ends),
                created_by: &actor.label(),
            },
        )
        .await?;
        db::audit::record(
            &mut tx,
            actor,
            "announcement.post",
            cohort.map(cohort_target).as_deref(),
            Some(message),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }
}
