//! Disk usage of every student's home, measured in the background (the student list shows and
//! sorts by it): one home at a time, so a sweep of 200 homes costs the NFS server little.
use super::{Homes, HomesError};
use crate::db;

/// Measures every student's home and stores the figures; returns how many were measured.
pub async fn measure_all(homes: &Homes) -> Result<usize, HomesError> {
    let students = {
        let mut conn = homes.pool().acquire().await?;
        db::users::all_students(&mut conn).await?
    };
    let mut measured = 0;
    for u in &students {
        let bytes = match homes.usage(u).await {
            Ok(b) => Some(i64::try_from(b).unwrap_or(i64::MAX)),
            Err(HomesError::NotFound(_)) => None,
            Err(e) => {
                tracing::warn!(username = %u, error = %e, "measuring a home");
                continue;
            }
        };
        let mut conn = homes.pool().acquire().await?;
        db::users::set_home_bytes(&mut conn, u, bytes).await?;
        measured += 1;
    }
    Ok(measured)
}
