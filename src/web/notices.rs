//! Setup notices: configuration problems only an admin can fix. The frame (`base.html`) shows
//! them to admins, never to counselors (who can do nothing about them), until each admin
//! dismisses them (`db::notices`, one row per admin and notice).
use crate::config::Config;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupNotice {
    /// No `[hub] api_token`: server state is unknown and servers cannot be stopped or started.
    HubNotConfigured,
}

impl SetupNotice {
    pub const ALL: &'static [SetupNotice] = &[SetupNotice::HubNotConfigured];

    /// The key a dismissal is stored under (`POST /notices/{key}/dismiss`).
    pub fn key(self) -> &'static str {
        match self {
            Self::HubNotConfigured => "hub-not-configured",
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|n| n.key() == key)
    }

    pub fn headline(self) -> &'static str {
        match self {
            Self::HubNotConfigured => "hubdesk is not connected to the hub.",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Self::HubNotConfigured => {
                "Without [hub] api_token (or HUBDESK_HUB_API_TOKEN) hubdesk cannot show, start \
                 or stop notebook servers: the student list shows “?” for them. Counselors do \
                 not see this notice. deploy/README.md says how to connect the hub."
            }
        }
    }

    /// The notices the configuration calls for.
    pub fn active(config: &Config) -> Vec<Self> {
        Self::ALL
            .iter()
            .copied()
            .filter(|n| match n {
                Self::HubNotConfigured => !hub_configured(config),
            })
            .collect()
    }
}

/// A hub API token is configured (the app then talks to the hub: `state.rs` builds `RestHub`
/// from exactly this).
pub fn hub_configured(config: &Config) -> bool {
    config.hub.api_token.is_some() || config.hub.api_token_file.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_notice_follows_the_token() {
        let mut config = Config::default();
        assert_eq!(
            SetupNotice::active(&config),
            vec![SetupNotice::HubNotConfigured]
        );
        config.hub.api_token = Some(secrecy::SecretString::new("t".into()));
        assert!(SetupNotice::active(&config).is_empty());
        for n in SetupNotice::ALL {
            assert_eq!(SetupNotice::parse(n.key()), Some(*n));
        }
        assert_eq!(SetupNotice::parse("nope"), None);
    }
}
