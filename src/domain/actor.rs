/// Who performs an operation, as written to the audit log and to jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A logged-in counselor or admin.
    User(super::Username),
    /// A script with an API token (`hubdesk token create NAME`).
    Token(String),
    /// The command line on the server.
    Cli,
    /// The first-run setup page.
    Setup,
    /// hubdesk itself (tests, periodic work).
    System,
    /// The camp calendar acting on its plan (`calendar::runner`); its label has a colon, which
    /// no username has.
    Calendar,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Self::User(u) => u.to_string(),
            Self::Token(name) => format!("token:{name}"),
            Self::Cli => "cli".into(),
            Self::Setup => "setup".into(),
            Self::System => "system".into(),
            Self::Calendar => "system:calendar".into(),
        }
    }

    /// The actor a stored label names (a job's `actor`): the inverse of [`Actor::label`]. A
    /// label that names nobody known reads as `System`.
    pub fn from_label(label: &str) -> Self {
        match label {
            "cli" => Self::Cli,
            "setup" => Self::Setup,
            "system" => Self::System,
            "system:calendar" => Self::Calendar,
            l => match l.strip_prefix("token:") {
                Some(name) => Self::Token(name.to_string()),
                None => super::Username::parse(l).map_or(Self::System, Self::User),
            },
        }
    }

    /// Whether this actor is the person named `username` (nobody resets their own account).
    pub fn is(&self, username: &super::Username) -> bool {
        matches!(self, Self::User(me) if me == username)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_back_as_their_actor() {
        let ada = crate::domain::Username::parse("ada").unwrap();
        for a in [
            Actor::User(ada),
            Actor::Token("sync".into()),
            Actor::Cli,
            Actor::Setup,
            Actor::System,
            Actor::Calendar,
        ] {
            assert_eq!(Actor::from_label(&a.label()), a);
        }
        assert_eq!(Actor::from_label("Not A Name"), Actor::System);
    }
}
