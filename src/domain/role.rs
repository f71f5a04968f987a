use std::fmt;

/// What a person may do. Ordered: an admin can do everything a counselor can.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Counselor,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "student" => Some(Self::Student),
            "counselor" => Some(Self::Counselor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Student => "student",
            Self::Counselor => "counselor",
            Self::Admin => "admin",
        }
    }
    pub fn is_staff(self) -> bool {
        self >= Self::Counselor
    }
    pub fn is_admin(self) -> bool {
        self == Self::Admin
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn roundtrip_and_order() {
        for r in [Role::Student, Role::Counselor, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(Role::Admin.is_staff() && Role::Counselor.is_staff() && !Role::Student.is_staff());
        assert_eq!(Role::parse("Admin"), None);
    }
}
