//! What can go wrong while provisioning, each with the message an organizer can act on.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// A flag or value that cannot be used (checked before any AWS call).
    #[error("{0}")]
    BadInput(String),
    #[error(
        "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) \
         and AWS_REGION ({0})"
    )]
    NoCredentials(String),
    #[error(
        "AWS refused ({code}): {message}. `hubdesk aws` needs ec2:Describe*, ec2:Create*, \
         ec2:Delete*, ec2:RunInstances, ec2:TerminateInstances, ec2:AttachVolume, \
         ec2:AttachInternetGateway, ec2:DetachInternetGateway, ec2:AssociateRouteTable, \
         ec2:DisassociateRouteTable, ec2:AuthorizeSecurityGroupIngress, \
         ec2:RevokeSecurityGroupIngress, ec2:ModifySubnetAttribute, ec2:ModifyVpcAttribute \
         (and iam:PassRole for the roles of --instance-profile and --worker-instance-profile)"
    )]
    AccessDenied { code: String, message: String },
    #[error("cannot reach EC2: {0}")]
    Unreachable(String),
    /// The account holds something that contradicts the camp (and hubdesk will not guess).
    #[error("{0}")]
    Conflict(String),
    #[error("timed out waiting for {0}")]
    Timeout(String),
    #[error("EC2 error {code}: {message}")]
    Ec2 { code: String, message: String },
}

impl From<crate::ec2::Ec2Error> for ProvisionError {
    fn from(e: crate::ec2::Ec2Error) -> Self {
        use crate::ec2::Ec2Error;
        match e {
            Ec2Error::NoCredentials(m) => Self::NoCredentials(m),
            Ec2Error::AccessDenied { code, message } => Self::AccessDenied { code, message },
            Ec2Error::Unreachable(m) => Self::Unreachable(m),
            Ec2Error::Service { code, message } => Self::Ec2 { code, message },
        }
    }
}
