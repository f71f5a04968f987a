//! Logging to stderr, for people by default and for collectors on request.
//!
//! - `HUBDESK_LOG_FORMAT=text` (default): one line per event; colours only when stderr is a
//!   terminal (and `NO_COLOR` is unset), so a log file or the journal holds no escape codes.
//! - `HUBDESK_LOG_FORMAT=json`: one JSON object per line (`timestamp`, `level`, `target`,
//!   `fields`, and the request span's `id` for lines written while serving a request).
//!
//! Every request ends in one line (`request`): method, path (query values left out: they may
//! be codes or tokens), status, milliseconds, request id and the logged-in user, if any.
//! Health and metrics probes that succeed are logged at `debug` (`RUST_LOG=debug` shows them).
//! `RUST_LOG` overrides the default filter. Read before the configuration, so every command
//! logs the same way.
use std::{
    io::IsTerminal,
    sync::OnceLock,
    time::{Duration, Instant},
};

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    Error, HttpMessage,
};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw.map(str::trim).map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("text") => Ok(Self::Text),
            Some("json") => Ok(Self::Json),
            Some(other) => Err(format!(
                "HUBDESK_LOG_FORMAT={other:?}: use `text` (the default) or `json`"
            )),
        }
    }
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or(LogFormat::Text)
}

pub fn init() {
    let (format, problem) =
        match LogFormat::parse(std::env::var("HUBDESK_LOG_FORMAT").ok().as_deref()) {
            Ok(f) => (f, None),
            Err(e) => (LogFormat::Text, Some(e)),
        };
    let _ = FORMAT.set(format);
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(colour).try_init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if let Some(problem) = problem {
        tracing::warn!("{problem}");
    }
}

/// The request span: only the request id (every line a handler writes while serving the
/// request carries it, and nothing else), and one `request` line when the response is ready.
pub struct RequestSpan;

/// When the request came in, for the `ms` of its line.
#[derive(Clone, Copy)]
struct Started(Instant);

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request.extensions_mut().insert(Started(Instant::now()));
        let id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!("request", id = %short_id(&id))
    }

    fn on_request_end<B: MessageBody>(_span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let Ok(res) = outcome else {
            return;
        };
        let req = res.request();
        let elapsed = req
            .extensions()
            .get::<Started>()
            .map(|s| s.0.elapsed())
            .unwrap_or(Duration::ZERO);
        let id = req
            .extensions()
            .get::<RequestId>()
            .map(|id| short_id(&id.to_string()))
            .unwrap_or_default();
        // The user the page kit looked up while serving the request (no extra query).
        let user = crate::web::extract::cached_user(req).map(|u| u.username.to_string());
        let line = RequestLine {
            method: req.method().as_str(),
            path: &loggable_path(req.path(), req.query_string()),
            status: res.status().as_u16(),
            ms: elapsed.as_secs_f64() * 1000.0,
            id: &id,
            user: user.as_deref(),
        };
        line.emit(format());
    }
}

/// The first 8 hex digits of the request id: unique enough to find a request's lines in a
/// day's log, short enough not to crowd them.
fn short_id(id: &str) -> String {
    id.chars().filter(|c| *c != '-').take(8).collect()
}

/// The path and the query's keys, never its values (`/oauth/authorize?client_id&state&…`):
/// values may be authorization codes, tokens or passwords in a mistyped form.
pub fn loggable_path(path: &str, query: &str) -> String {
    if query.is_empty() {
        return path.to_string();
    }
    let keys: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| {
            k.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                .take(40)
                .collect()
        })
        .collect();
    format!("{path}?{}", keys.join("&"))
}

struct RequestLine<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    ms: f64,
    id: &'a str,
    user: Option<&'a str>,
}

impl RequestLine<'_> {
    /// Probes that answer well (`/healthz`, `/readyz`, `/metrics` every few seconds from a
    /// monitor) are `debug`: at `info` they would be most of a day's log.
    fn is_quiet_probe(&self) -> bool {
        matches!(self.path, "/healthz" | "/readyz" | "/metrics") && self.status < 400
    }

    /// Written outside the request span (`parent: None`), so the line is the line and carries
    /// no span context; the text form reads as a sentence, the JSON form has fields.
    fn emit(&self, format: LogFormat) {
        let ms = (self.ms * 10.0).round() / 10.0;
        let quiet = self.is_quiet_probe();
        match format {
            LogFormat::Text => {
                let user = self.user.map(|u| format!(" user={u}")).unwrap_or_default();
                let line = format!(
                    "{} {} {} {ms}ms id={}{user}",
                    self.method, self.path, self.status, self.id
                );
                if quiet {
                    tracing::debug!(target: "request", parent: None, "{line}");
                } else {
                    tracing::info!(target: "request", parent: None, "{line}");
                }
            }
            LogFormat::Json => {
                macro_rules! json_line {
                    ($level:ident) => {
                        tracing::$level!(
                            target: "request",
                            parent: None,
                            method = self.method,
                            path = self.path,
                            status = self.status,
                            ms,
                            request_id = self.id,
                            user = self.user,
                            "request"
                        )
                    };
                }
                if quiet {
                    json_line!(debug);
                } else {
                    json_line!(info);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_stay_out_of_the_log() {
        assert_eq!(loggable_path("/students", ""), "/students");
        assert_eq!(
            loggable_path(
                "/oauth/authorize",
                "client_id=hub&code_challenge=abc&state=x%3D"
            ),
            "/oauth/authorize?client_id&code_challenge&state"
        );
        // A key cannot smuggle a value or a line break in.
        assert_eq!(loggable_path("/x", "a%0Ab=1&c%3Dd"), "/x?ab&cd");
    }

    #[test]
    fn the_format_is_text_unless_json_is_asked_for() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("JSON ")), Ok(LogFormat::Json));
        assert!(LogFormat::parse(Some("xml")).is_err());
        assert_eq!(short_id("67e55044-10b1-426f-9247-bb680e5fe0c8"), "67e55044");
    }
}
