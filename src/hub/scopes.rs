//! The scopes hubdesk's calls need, and what a token's scopes (`GET /hub/api/user`) lack or hold
//! beyond them. `deploy/jupyterhub_config.py` grants exactly [`SCOPES`] to the `hubdesk`
//! service; `hubdesk doctor` compares a live token with them.

/// Each scope hubdesk uses (JupyterHub 6.x), with what needs it.
pub const SCOPES: &[(&str, &str)] = &[
    ("list:users", "GET users: the student list"),
    (
        "read:users",
        "the user model: name, admin, last_activity, pending",
    ),
    (
        "read:servers",
        "the user model's servers: started, last activity, ready",
    ),
    (
        "start:servers",
        "POST users/{name}/server: start a cohort before class",
    ),
    (
        "delete:servers",
        "DELETE users/{name}/server: stop before a reset, at disable",
    ),
];

/// A token's scopes against [`SCOPES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeReport {
    /// Needed and not granted (not even filtered).
    pub missing: Vec<&'static str>,
    /// Needed and granted only for some users (`start:servers!group=students`).
    pub filtered: Vec<String>,
    /// Granted and not needed (more than hubdesk should hold).
    pub extra: Vec<String>,
}

impl ScopeReport {
    /// `granted` as the hub lists it: expanded, so `read:users` comes with its sub-scopes
    /// (`read:users:name`, `read:users:activity` …), which count as part of it.
    pub fn of(granted: &[String]) -> Self {
        let needed = |s: &str| SCOPES.iter().any(|(n, _)| *n == s);
        let mut report = ScopeReport::default();
        for (scope, _) in SCOPES {
            if granted.iter().any(|g| g == scope) {
                continue;
            }
            let partial: Vec<String> = granted
                .iter()
                .filter(|g| g.split_once('!').is_some_and(|(base, _)| base == *scope))
                .cloned()
                .collect();
            if partial.is_empty() {
                report.missing.push(scope);
            } else {
                report.filtered.extend(partial);
            }
        }
        for g in granted {
            let base = g.split_once('!').map_or(g.as_str(), |(b, _)| b);
            let covered = needed(base)
                || SCOPES
                    .iter()
                    .any(|(n, _)| base.strip_prefix(n).is_some_and(|r| r.starts_with(':')));
            if !covered {
                report.extra.push(g.clone());
            }
        }
        report
    }

    /// What a missing scope is needed for.
    pub fn why(scope: &str) -> &'static str {
        SCOPES
            .iter()
            .find(|(n, _)| *n == scope)
            .map_or("", |(_, why)| why)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(s: &[&str]) -> ScopeReport {
        ScopeReport::of(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_shipped_role_expanded_is_exactly_enough() {
        // What JupyterHub 6.1.1 lists for the shipped role (fixtures/self_service.json).
        let me: serde_json::Value =
            serde_json::from_str(include_str!("fixtures/self_service.json")).unwrap();
        let granted: Vec<String> = me["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(ScopeReport::of(&granted), ScopeReport::default());
    }

    #[test]
    fn a_missing_scope_is_named_and_extras_are_listed() {
        let r = of(&[
            "list:users",
            "read:users",
            "read:users:name",
            "read:servers",
            "delete:servers",
            "admin:users",
            "access:servers",
        ]);
        assert_eq!(r.missing, ["start:servers"]);
        assert_eq!(r.extra, ["admin:users", "access:servers"]);
        assert!(ScopeReport::why("start:servers").contains("POST"));
    }

    #[test]
    fn a_filtered_scope_is_not_missing_but_limited() {
        let r = of(&[
            "list:users",
            "read:users",
            "read:servers",
            "start:servers!group=students",
            "delete:servers",
        ]);
        assert!(r.missing.is_empty());
        assert_eq!(r.filtered, ["start:servers!group=students"]);
        assert!(r.extra.is_empty());
        // Not a sub-scope: a scope that merely starts with the same letters.
        assert_eq!(of(&["read:users_x"]).extra, ["read:users_x"]);
    }
}
