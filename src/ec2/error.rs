//! One error for every EC2 call, classified by the service's error code or the SDK error's
//! type, never by message text. Each capability turns it into its own error (`From`).
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The AWS error codes that mean "these credentials may not do that" (or are not valid at all).
pub const ACCESS_DENIED_CODES: &[&str] = &[
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ec2Error {
    /// The credential chain gave nothing (no request was sent).
    #[error("no AWS credentials ({0})")]
    NoCredentials(String),
    /// One of [`ACCESS_DENIED_CODES`].
    #[error("AWS refused ({code}): {message}")]
    AccessDenied { code: String, message: String },
    /// Any other error code EC2 answered with (`InvalidAMIID.NotFound`, `DryRunOperation`, …).
    #[error("EC2 error {code}: {message}")]
    Service { code: String, message: String },
    /// No answer from EC2: the network, a timeout, a response that is not EC2's.
    #[error("cannot reach EC2: {0}")]
    Unreachable(String),
}

impl Ec2Error {
    /// The service's error code, when EC2 answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::AccessDenied { code, .. } | Self::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl<E, R> From<SdkError<E, R>> for Ec2Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    fn from(e: SdkError<E, R>) -> Self {
        if let SdkError::ServiceError(se) = &e {
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let message = se.err().message().unwrap_or_default().to_string();
            return if ACCESS_DENIED_CODES.contains(&code.as_str()) {
                Self::AccessDenied { code, message }
            } else {
                Self::Service { code, message }
            };
        }
        let text = first_line(&DisplayErrorContext(&e).to_string());
        if no_credentials(std::error::Error::source(&e)) {
            Self::NoCredentials(text)
        } else {
            Self::Unreachable(text)
        }
    }
}

/// The credential chain's own error somewhere in the causes (the SDK reports it as a dispatch
/// failure: identity is resolved just before the request would go out).
fn no_credentials(mut cause: Option<&(dyn std::error::Error + 'static)>) -> bool {
    while let Some(c) = cause {
        if c.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(400)
        .collect()
}
