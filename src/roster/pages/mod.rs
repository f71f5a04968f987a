//! The people desk's pages: students, staff, import, login cards (and the page that shows
//! them once), bulk password resets, audit log.
pub mod actions;
pub mod audit;
pub mod cards;
pub mod import;
pub mod reset_code;
pub mod reset_many;
pub mod shown;
pub mod staff;
pub mod students;

use super::RosterError;
use crate::web::WebError;

impl From<RosterError> for WebError {
    fn from(e: RosterError) -> Self {
        match e {
            RosterError::NotFound(what) => Self::Missing(what),
            RosterError::Duplicate(_) | RosterError::Invalid(_) => Self::BadRequest(e.to_string()),
            RosterError::OwnAccount | RosterError::Conflict(_) => Self::Conflict(e.to_string()),
            RosterError::NotYours(why) => Self::NotYours(why),
            RosterError::Db(e) => e.into(),
            RosterError::Internal(e) => Self::Internal(e),
        }
    }
}
