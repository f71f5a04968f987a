//! Registered relying parties, from configuration. Secrets are kept as SHA-256 digests and
//! compared in constant time.
use std::collections::HashMap;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::keys::Alg;
use crate::config::OidcClientConfig;

#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub id: String,
    secret_digest: [u8; 32],
    pub redirect_uris: Vec<String>,
    pub require_pkce: bool,
    pub id_token_alg: Alg,
    pub post_logout_redirect_uris: Vec<String>,
    /// Empty: everyone may log in to this client.
    pub allowed_groups: Vec<String>,
}

impl RegisteredClient {
    pub fn secret_matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&self.secret_digest))
    }

    /// Exact string match, as RFC 9700 requires: no prefix, no normalisation.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }

    /// Exact match against the registered post-logout redirect URIs.
    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|r| r == uri)
    }

    /// Whether a person in `groups` may log in to this client.
    pub fn admits(&self, groups: &[String]) -> bool {
        self.allowed_groups.is_empty() || groups.iter().any(|g| self.allowed_groups.contains(g))
    }
}

#[derive(Debug, Clone, Default)]
pub struct ClientRegistry {
    clients: HashMap<String, RegisteredClient>,
}

impl ClientRegistry {
    pub fn from_config(clients: &[OidcClientConfig]) -> Self {
        let clients = clients
            .iter()
            .map(|c| {
                let secret = c
                    .secret
                    .as_ref()
                    .map(|s| s.expose_secret().as_str())
                    .unwrap_or_default();
                (
                    c.id.clone(),
                    RegisteredClient {
                        id: c.id.clone(),
                        secret_digest: Sha256::digest(secret.as_bytes()).into(),
                        redirect_uris: c.redirect_uris.clone(),
                        require_pkce: c.require_pkce,
                        // Checked when the configuration was read.
                        id_token_alg: Alg::parse(&c.id_token_signed_response_alg)
                            .unwrap_or(Alg::RS256),
                        post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
                        allowed_groups: c.allowed_groups.clone(),
                    },
                )
            })
            .collect();
        Self { clients }
    }

    pub fn get(&self, id: &str) -> Option<&RegisteredClient> {
        self.clients.get(id)
    }

    /// The client, if `secret` is its secret. Unknown clients cost the same digest.
    pub fn authenticate(&self, id: &str, secret: &str) -> Option<&RegisteredClient> {
        match self.clients.get(id) {
            Some(c) if c.secret_matches(secret) => Some(c),
            Some(_) => None,
            None => {
                let _ = Sha256::digest(secret.as_bytes());
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Whether `origin` (scheme://host[:port]) is the origin of a registered redirect URI.
    pub fn knows_origin(&self, origin: &str) -> bool {
        self.clients
            .values()
            .flat_map(|c| &c.redirect_uris)
            .filter_map(|u| url::Url::parse(u).ok())
            .any(|u| u.origin().ascii_serialization() == origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ClientRegistry {
        ClientRegistry::from_config(&[OidcClientConfig {
            id: "hub".into(),
            secret: Some(secrecy::SecretString::new("s".repeat(40))),
            secret_file: None,
            redirect_uris: vec!["https://hub.example/hub/oauth_callback".into()],
            require_pkce: true,
            id_token_signed_response_alg: "ES256".into(),
            post_logout_redirect_uris: Vec::new(),
            allowed_groups: Vec::new(),
        }])
    }

    #[test]
    fn authenticates_only_with_the_right_secret() {
        let r = registry();
        assert!(r.authenticate("hub", &"s".repeat(40)).is_some());
        assert!(r.authenticate("hub", &"s".repeat(39)).is_none());
        assert!(r.authenticate("other", &"s".repeat(40)).is_none());
    }

    #[test]
    fn redirect_uris_match_exactly() {
        let r = registry();
        let c = r.get("hub").unwrap();
        assert!(c.has_redirect_uri("https://hub.example/hub/oauth_callback"));
        for bad in [
            "https://hub.example/hub/oauth_callback/",
            "https://hub.example/hub/oauth_callback?x=1",
            "https://HUB.example/hub/oauth_callback",
            "http://hub.example/hub/oauth_callback",
            "https://hub.example/hub/oauth_callbac",
            "https://hub.example.evil/hub/oauth_callback",
        ] {
            assert!(!c.has_redirect_uri(bad), "{bad}");
        }
    }
}
