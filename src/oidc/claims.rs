//! What hubdesk says about a person: userinfo and the id_token.
use serde::Serialize;

use crate::{db::oauth::GrantUser, domain::Role};

/// Hub groups: one per role (admins are counselors too), plus `cohort-<name>` for a student's
/// cohort and `cohort-<name>-staff` for each cohort a counselor was given (the shipped hub
/// config turns those into a role over that cohort's servers). The prefix keeps a cohort
/// called "admins" from making anyone a hub admin.
pub fn groups(role: Role, cohort: Option<&str>, looks_after: Option<&[String]>) -> Vec<String> {
    let mut g: Vec<String> = match role {
        Role::Student => vec!["students".into()],
        Role::Counselor => vec!["counselors".into()],
        Role::Admin => vec!["admins".into(), "counselors".into()],
    };
    if let (Role::Student, Some(c)) = (role, cohort) {
        g.push(format!("cohort-{}", slug(c)));
    }
    if let (Role::Counselor, Some(cs)) = (role, looks_after) {
        g.extend(cs.iter().map(|c| format!("cohort-{}-staff", slug(c))));
    }
    g
}

/// `at_hash` for an access token signed with a SHA-256 algorithm (RS256, ES256).
pub fn at_hash(access_token: &str) -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16])
}

pub use crate::domain::cohort::slug;

#[derive(Debug, Serialize)]
pub struct UserInfo {
    pub sub: String,
    pub preferred_username: String,
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    pub fn of(g: &GrantUser) -> Self {
        Self {
            sub: g.subject.to_string(),
            preferred_username: g.username.clone(),
            name: g.display_name.clone(),
            groups: groups(
                Role::parse(&g.role).unwrap_or(Role::Student),
                g.cohort.as_deref(),
                g.looks_after.as_deref(),
            ),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct IdToken<'a> {
    pub iss: &'a str,
    pub sub: String,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    /// OpenID Connect Core §3.1.3.6: the left half of SHA-256 of the access token.
    pub at_hash: String,
    pub preferred_username: &'a str,
    pub name: &'a str,
    pub groups: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn role_and_cohort_groups() {
        assert_eq!(
            groups(Role::Student, Some("blue"), None),
            vec!["students", "cohort-blue"]
        );
        assert_eq!(
            groups(Role::Student, Some("admins"), None),
            vec!["students", "cohort-admins"]
        );
        assert_eq!(groups(Role::Counselor, None, None), vec!["counselors"]);
        assert_eq!(
            groups(Role::Student, Some("Class 9B"), None),
            vec!["students", "cohort-class-9b"]
        );
        assert_eq!(slug("Équipe  Rouge_2"), "equipe-rouge-2");
        assert_eq!(
            groups(Role::Admin, Some("x"), None),
            vec!["admins", "counselors"]
        );
    }

    #[test]
    fn a_counselor_given_cohorts_is_their_staff() {
        let cs = vec!["Morning".to_string(), "Class 9B".to_string()];
        assert_eq!(
            groups(Role::Counselor, None, Some(&cs)),
            vec![
                "counselors",
                "cohort-morning-staff",
                "cohort-class-9b-staff"
            ]
        );
        // Only counselors: a student's or an admin's stored reach says nothing.
        assert_eq!(
            groups(Role::Student, Some("blue"), Some(&cs)),
            vec!["students", "cohort-blue"]
        );
        assert_eq!(
            groups(Role::Admin, None, Some(&cs)),
            vec!["admins", "counselors"]
        );
    }
}
