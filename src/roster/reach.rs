//! Which cohorts a counselor looks after (an admin's choice on the staff page): every cohort,
//! the default, or some. The reach is read at each request (`auth::session`, the API token's
//! owner), so a change takes effect on the counselor's next request; the hub learns it at the
//! counselor's next hub login (the `groups` claim).
use super::{ops::Scope, Roster, RosterError};
use crate::{
    db,
    domain::{Actor, Reach, Role},
};

impl Roster {
    /// Sets `username`'s reach; audited as `staff.cohorts`. Only counselors have one (an admin
    /// reaches every student); every named cohort must exist.
    pub async fn set_reach(
        &self,
        actor: &Actor,
        username: &str,
        reach: Reach,
    ) -> Result<Reach, RosterError> {
        let account = self.find_account(Scope::Staff, username).await?;
        if account.role != Role::Counselor {
            return Err(RosterError::Conflict(format!(
                "{} is an admin: admins look after every cohort",
                account.username
            )));
        }
        let mut tx = self.pool.begin().await?;
        let mut known = db::users::cohorts(&mut tx).await?;
        known.extend(db::cohorts::names(&mut tx).await?);
        let reach = match reach {
            Reach::All => Reach::All,
            Reach::Cohorts(mut chosen) => {
                chosen.sort();
                chosen.dedup();
                let unknown: Vec<&str> = chosen
                    .iter()
                    .filter(|c| !known.contains(c))
                    .map(String::as_str)
                    .collect();
                if !unknown.is_empty() {
                    return Err(RosterError::Invalid(vec![(
                        "cohort",
                        format!("no cohort named {}", unknown.join(", ")),
                    )]));
                }
                Reach::Cohorts(chosen)
            }
        };
        db::users::set_cohorts(&mut tx, account.id, reach.cohorts()).await?;
        db::audit::record(
            &mut tx,
            actor,
            "staff.cohorts",
            Some(account.username.as_str()),
            Some(&reach.describe()),
        )
        .await?;
        tx.commit().await?;
        Ok(reach)
    }
}
