//! The typed domain: values are parsed once at the edge and trusted afterwards.
pub mod activity;
pub mod actor;
pub mod clock;
pub mod cohort;
pub mod display_name;
pub mod password;
pub mod reach;
pub mod role;
pub mod username;

pub use activity::{Action, JobKind};
pub use actor::Actor;
pub use cohort::{Cohort, CohortError};
pub use display_name::{DisplayName, DisplayNameError};
pub use password::{NewPassword, PasswordError};
pub use reach::{OutOfReach, Reach};

/// A message as a sentence: "username is empty" → "Username is empty." (forms and pages show
/// errors that services word in lower case).
pub fn sentence(s: &str) -> String {
    let mut chars = s.chars();
    let mut out = match chars.next() {
        Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
        None => String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A new counselor or admin: the first admin at setup, one made on the staff page or the CLI.
pub struct NewAccount {
    pub username: Username,
    pub display_name: DisplayName,
    pub password: NewPassword,
}
pub use role::Role;
pub use username::{Username, UsernameError};

/// A text column decoded straight into a parsed domain value: a row that breaks the rule is an
/// error at the database edge, not a string re-parsed (or trusted) further in.
macro_rules! text_column {
    ($ty:ty, $parse:expr) => {
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let raw = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                let parse: fn(&str) -> Result<$ty, String> = $parse;
                Ok(parse(raw)?)
            }
        }
    };
}

text_column!(Username, |s| Username::parse(s).map_err(|e| e.to_string()));
text_column!(Role, |s| Role::parse(s)
    .ok_or_else(|| format!("unknown role {s:?}")));
// Never fails: a code this build has no words for is kept as `Other`.
text_column!(Action, |s| Ok(Action::parse(s)));
