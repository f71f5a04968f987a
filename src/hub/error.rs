/// What went wrong talking to the hub. `Display` is one line a page can show as it is; no
/// variant ever holds the token (the hub's own error bodies do not echo it either).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// Connection refused, DNS, TLS, or no answer within `hub.timeout_secs`.
    #[error("the hub at {url} cannot be reached ({reason})")]
    Unreachable { url: String, reason: String },
    /// 401/403, or a model missing what the role should let hubdesk read. `hub_message` is the
    /// hub's own words (`Missing or invalid credentials.`, `… requires any of [start:servers]`),
    /// for logs and `doctor`.
    #[error(
        "the hub refused hubdesk's API token (is the hubdesk service configured with a role?)"
    )]
    Unauthorized { hub_message: String },
    /// The hub has no such user (a student who never logged in to the hub).
    #[error("the hub has no user {0}")]
    NotFound(String),
    /// A stop the hub accepted (202) was still pending after `hub.stop_wait_secs`.
    #[error("the hub did not stop {user}'s server within {secs} s")]
    StopTimeout { user: String, secs: u64 },
    /// After a stop, the server is ready (or starting) again.
    #[error("{user}'s server is running again after the hub stopped it")]
    StillRunning { user: String },
    /// Any other answer: status and the start of the body (the hub's `message` when JSON).
    #[error("the hub answered {status} to {what}: {body}")]
    Unexpected {
        what: String,
        status: u16,
        body: String,
    },
}

pub type HubResult<T> = Result<T, HubError>;

impl HubError {
    /// The hub could not be asked at all (as opposed to answering something we did not like).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HubError::Unreachable { .. })
    }

    /// From a non-success answer. `what` names the call (`GET users`), never with a token.
    pub(crate) fn from_status(what: &str, status: u16, body: &str, user: Option<&str>) -> Self {
        let message = hub_message(body);
        match status {
            401 | 403 => HubError::Unauthorized {
                hub_message: message,
            },
            404 => HubError::NotFound(user.unwrap_or("(unknown)").to_string()),
            _ => HubError::Unexpected {
                what: what.to_string(),
                status,
                body: message,
            },
        }
    }
}

/// The hub's errors are `{"status": N, "message": "…"}`; anything else is cut to a short,
/// single-line excerpt.
pub(crate) fn hub_message(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(v)) if v.contains_key("message") => match &v["message"] {
            serde_json::Value::String(m) => m.clone(),
            // `GET user` with a wrong token: {"status": 403, "message": null}.
            _ => "(the hub gave no reason)".to_string(),
        },
        _ => body.to_string(),
    };
    excerpt(&text)
}

const EXCERPT_CHARS: usize = 200;

pub(crate) fn excerpt(text: &str) -> String {
    let one_line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if one_line.chars().count() > EXCERPT_CHARS {
        let cut: String = one_line.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BAD_TOKEN: &str = include_str!("fixtures/error_bad_token.json");
    const MISSING_SCOPE: &str = include_str!("fixtures/error_missing_scope.json");
    const NOT_FOUND: &str = include_str!("fixtures/error_not_found.json");

    #[test]
    fn a_wrong_token_is_unauthorized_with_the_hubs_words() {
        let e = HubError::from_status("GET users", 403, BAD_TOKEN, None);
        assert_eq!(
            e,
            HubError::Unauthorized {
                hub_message: "Missing or invalid credentials.".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "the hub refused hubdesk's API token (is the hubdesk service configured with a role?)"
        );
    }

    #[test]
    fn a_missing_scope_is_unauthorized_and_names_the_scope() {
        let HubError::Unauthorized { hub_message } =
            HubError::from_status("POST users/ada/server", 403, MISSING_SCOPE, Some("ada"))
        else {
            panic!("not Unauthorized")
        };
        assert!(hub_message.contains("start:servers"), "{hub_message}");
    }

    #[test]
    fn a_refusal_without_a_message_says_so() {
        // What `GET user` answers to a wrong token.
        let e = HubError::from_status("GET user", 403, r#"{"status": 403, "message": null}"#, None);
        assert_eq!(
            e,
            HubError::Unauthorized {
                hub_message: "(the hub gave no reason)".into()
            }
        );
    }

    #[test]
    fn not_found_names_the_user() {
        let e = HubError::from_status("GET users/zed", 404, NOT_FOUND, Some("zed"));
        assert_eq!(e, HubError::NotFound("zed".into()));
        assert_eq!(e.to_string(), "the hub has no user zed");
    }

    #[test]
    fn other_answers_keep_a_short_single_line_excerpt() {
        let html = format!("<html>\n<body>{}</body></html>", "x".repeat(1000));
        let e = HubError::from_status("GET users", 502, &html, None);
        let HubError::Unexpected { status, body, .. } = &e else {
            panic!("not Unexpected")
        };
        assert_eq!(*status, 502);
        assert!(body.chars().count() <= EXCERPT_CHARS + 1, "{body}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn unreachable_is_one_line() {
        let e = HubError::Unreachable {
            url: "http://127.0.0.1:9/hub/api/".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "the hub at http://127.0.0.1:9/hub/api/ cannot be reached (connection refused)"
        );
        assert!(e.is_unreachable());
    }
}
