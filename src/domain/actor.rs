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
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Self::User(u) => u.to_string(),
            Self::Token(name) => format!("token:{name}"),
            Self::Cli => "cli".into(),
            Self::Setup => "setup".into(),
            Self::System => "system".into(),
        }
    }

    /// Whether this actor is the person named `username` (nobody resets their own account).
    pub fn is(&self, username: &super::Username) -> bool {
        matches!(self, Self::User(me) if me == username)
    }
}
