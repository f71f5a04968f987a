//! The usage sweep: every student's home measured in the background (the student list shows
//! and sorts by it, the pages compare it with the limit), one home at a time so a sweep costs
//! the NFS server little; then the NFS node's quota list is rewritten, so a student created
//! since the last change gets a line (the node gives unlisted homes the default meanwhile).
//!
//! Cost: `Homes::usage` is one `lstat` per entry of the home (directories opened once, hard
//! links counted once), so a sweep is O(files in all homes); `bench/homes` measures it.
use serde::Serialize;

use super::{
    quota::{Fill, HomeQuota},
    Homes, HomesError,
};
use crate::db;

/// What a sweep found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Homes measured (a missing home counts: it is measured as none).
    pub measured: usize,
    /// At 90 % of their limit or more, and at or past it.
    pub nearly_full: Vec<String>,
    pub full: Vec<String>,
    /// Homes that could not be measured this time (logged).
    pub failed: usize,
    /// Whether the node's quota list was rewritten.
    pub list_written: bool,
}

/// Measures every student's home, stores the figures, flags the nearly full and full ones and
/// rewrites the quota list.
pub async fn sweep(homes: &Homes) -> Result<SweepReport, HomesError> {
    let students = {
        let mut conn = homes.pool().acquire().await?;
        db::users::all_students(&mut conn).await?
    };
    let mut report = SweepReport::default();
    for u in &students {
        let bytes = match homes.usage(u).await {
            Ok(b) => Some(i64::try_from(b).unwrap_or(i64::MAX)),
            Err(HomesError::NotFound(_)) => None,
            Err(e) => {
                tracing::warn!(username = %u, error = %e, "measuring a home");
                report.failed += 1;
                continue;
            }
        };
        let mut conn = homes.pool().acquire().await?;
        db::users::set_home_bytes(&mut conn, u, bytes).await?;
        let own = db::users::home_quota_of(&mut conn, u).await?;
        let quota = HomeQuota::new(
            bytes.and_then(|b| u64::try_from(b).ok()),
            Some(time::OffsetDateTime::now_utc()),
            own.and_then(|b| u64::try_from(b).ok()),
            homes.default_quota(),
        );
        match quota.fill {
            Fill::Full => report.full.push(u.to_string()),
            Fill::NearlyFull => report.nearly_full.push(u.to_string()),
            _ => {}
        }
        report.measured += 1;
    }
    report.list_written = match homes.write_quota_list().await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "homes: could not write the quota list");
            false
        }
    };
    if !report.full.is_empty() || !report.nearly_full.is_empty() {
        tracing::info!(
            full = ?report.full,
            nearly_full = ?report.nearly_full,
            "homes at or near their storage limit"
        );
    }
    Ok(report)
}

/// Measures every student's home and stores the figures; returns how many were measured.
pub async fn measure_all(homes: &Homes) -> Result<usize, HomesError> {
    Ok(sweep(homes).await?.measured)
}
