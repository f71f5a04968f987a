//! The IAM instance profile a launch names: by name (`camp-worker`) or by ARN
//! (`arn:aws:iam::123456789012:instance-profile/camps/camp-worker`).
use std::fmt;

use aws_sdk_ec2::types::IamInstanceProfileSpecification;

/// An instance profile name or ARN, checked against IAM's rules for names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceProfile(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an instance profile: give its name (letters, digits and +=,.@_-, at most \
     128) or its ARN (arn:aws:iam::ACCOUNT:instance-profile/NAME)"
)]
pub struct BadProfile(pub String);

fn name_ok(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

impl InstanceProfile {
    /// `None` for an empty value (no profile).
    pub fn parse(s: &str) -> Result<Option<Self>, BadProfile> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(None);
        }
        let bad = || BadProfile(s.to_string());
        if let Some(rest) = s.strip_prefix("arn:") {
            // arn:PARTITION:iam::ACCOUNT:instance-profile/PATH/NAME
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let [partition, "iam", "", account, resource] = parts[..] else {
                return Err(bad());
            };
            let path = resource.strip_prefix("instance-profile/").ok_or_else(bad)?;
            let ok = partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && path.split('/').all(name_ok);
            return ok.then(|| Some(Self(s.to_string()))).ok_or_else(bad);
        }
        if name_ok(s) {
            Ok(Some(Self(s.to_string())))
        } else {
            Err(bad())
        }
    }

    /// The profile's name: the value itself, or the last part of its ARN.
    pub fn name(&self) -> &str {
        if self.0.starts_with("arn:") {
            self.0.rsplit('/').next().unwrap_or_default()
        } else {
            &self.0
        }
    }

    /// The same profile as far as one account can tell: IAM names are unique regardless of
    /// case (`Camp-Hub` and `camp-hub` cannot both exist), so names compare without it.
    pub fn same_as(&self, other: &InstanceProfile) -> bool {
        self.name().eq_ignore_ascii_case(other.name())
    }

    /// As `RunInstances` takes it.
    pub fn spec(&self) -> IamInstanceProfileSpecification {
        let p = IamInstanceProfileSpecification::builder();
        if self.0.starts_with("arn:") {
            p.arn(&self.0)
        } else {
            p.name(&self.0)
        }
        .build()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> InstanceProfile {
        InstanceProfile::parse(s).unwrap().unwrap()
    }

    #[test]
    fn ec2_profile_names_and_arns_parse_and_compare_as_iam_does() {
        assert_eq!(InstanceProfile::parse("  ").unwrap(), None);
        assert_eq!(p("camp-hub").name(), "camp-hub");
        let arn = p("arn:aws:iam::123456789012:instance-profile/camps/Camp-Hub");
        assert_eq!(arn.name(), "Camp-Hub");
        assert!(arn.same_as(&p("camp-hub")), "case-insensitive, ARN tail");
        assert!(p("CAMP-HUB").same_as(&p("camp-hub")));
        assert!(!p("camp-worker").same_as(&p("camp-hub")));
        assert!(!p("arn:aws:iam::123456789012:instance-profile/camp-hub-2").same_as(&p("camp-hub")));
        for bad in [
            "camp hub",
            "camp/hub",
            "arn:aws:iam::123:instance-profile/x",
            "arn:aws:iam::123456789012:role/camp-hub",
            "arn:aws:ec2::123456789012:instance-profile/x",
            &"x".repeat(129),
        ] {
            assert!(InstanceProfile::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ec2_profile_spec_names_by_name_or_by_arn() {
        let by_name = p("camp-worker").spec();
        assert_eq!(by_name.name(), Some("camp-worker"));
        assert_eq!(by_name.arn(), None);
        let arn = "arn:aws:iam::123456789012:instance-profile/camp-worker";
        let by_arn = p(arn).spec();
        assert_eq!(by_arn.arn(), Some(arn));
        assert_eq!(by_arn.name(), None);
    }
}
