//! [`HubApi`] over the hub's REST API.
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::{
    header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION},
    Method, StatusCode,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{
    error::{HubError, HubResult},
    model::{self, HubInfo, HubUser, StartOutcome, StopOutcome},
    BoxFuture, HubApi,
};
use crate::{config::HubConfig, domain::Username};

/// Asks the hub for `items` + `_pagination` instead of a bare list capped at 200.
const PAGINATION: &str = "application/jupyterhub-pagination+json";

/// The hub holds a start or stop request up to its `slow_spawn_timeout` / `slow_stop_timeout`
/// (10 s by default) before it answers 202: those two calls get this much on top of
/// `hub.timeout_secs`, or a slow spawn would look like an unreachable hub.
pub const SLOW_ANSWER: Duration = Duration::from_secs(15);

/// The hub's REST API with the `hubdesk` service's token.
#[derive(Clone)]
pub struct RestHub {
    client: reqwest::Client,
    /// Ends with `/`: every call is a path below it.
    api: Url,
    timeout: Duration,
}

/// Never the token: the header value is also marked sensitive inside the client.
impl std::fmt::Debug for RestHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestHub")
            .field("api", &self.api.as_str())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RestHub {
    /// `None` without a token: hubdesk then runs without the hub (pages say so).
    pub fn from_config(config: &HubConfig) -> anyhow::Result<Option<Self>> {
        match config.api_token() {
            None => Ok(None),
            Some(token) => Self::new(&config.api_url, token, config.timeout()).map(Some),
        }
    }

    pub fn new(api_url: &str, token: &SecretString, timeout: Duration) -> anyhow::Result<Self> {
        let mut api = Url::parse(api_url).with_context(|| format!("hub API URL {api_url:?}"))?;
        if !api.path().ends_with('/') {
            api.set_path(&format!("{}/", api.path()));
        }
        anyhow::ensure!(
            !api.cannot_be_a_base(),
            "hub API URL {api_url:?} cannot hold paths"
        );
        let mut auth = HeaderValue::from_str(&format!("token {}", token.expose_secret()))
            // The error would not show the value, but say which setting is wrong.
            .map_err(|_| anyhow::anyhow!("hub.api_token holds characters a header cannot carry"))?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(timeout)
            .user_agent(concat!("hubdesk/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the token to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the hub API client")?;
        Ok(Self {
            client,
            api,
            timeout,
        })
    }

    pub fn api_url(&self) -> &str {
        self.api.as_str()
    }

    /// `{api}/a/b/c`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        url.path_segments_mut()
            .expect("checked in new: the API URL can be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    fn unreachable(&self, e: &reqwest::Error, timeout: Duration) -> HubError {
        let refused = std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        let reason = if refused {
            "connection refused".to_string()
        } else if e.is_timeout() {
            format!("no answer within {} s", timeout.as_secs())
        } else if e.is_connect() {
            "cannot connect".to_string()
        } else {
            "the connection failed".to_string()
        };
        HubError::Unreachable {
            url: self.api.to_string(),
            reason,
        }
    }

    /// One call: the status and the whole body. `what` (`GET users`) is for messages and logs.
    async fn call(
        &self,
        method: Method,
        url: Url,
        accept: &'static str,
        what: &str,
    ) -> HubResult<(StatusCode, String)> {
        let timeout = if method == Method::GET {
            self.timeout
        } else {
            self.timeout + SLOW_ANSWER
        };
        let started = Instant::now();
        let response = self
            .client
            .request(method, url)
            .header(ACCEPT, accept)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.unreachable(&e, timeout))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| self.unreachable(&e, timeout))?;
        tracing::debug!(
            call = what,
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "hub API"
        );
        Ok((status, body))
    }

    /// Every page of `GET users` (with `state` when given), in the hub's order (by id).
    async fn list(&self, state: Option<&str>) -> HubResult<Vec<HubUser>> {
        let what = match state {
            Some(state) => format!("GET users?state={state}"),
            None => "GET users".to_string(),
        };
        let mut users: Vec<HubUser> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut page: Option<model::WireNext> = None;
        loop {
            let mut url = self.url(&["users"]);
            {
                let mut query = url.query_pairs_mut();
                if let Some(state) = state {
                    query.append_pair("state", state);
                }
                if let Some(next) = page {
                    query.append_pair("offset", &next.offset.to_string());
                    query.append_pair("limit", &next.limit.to_string());
                }
            }
            if url.query() == Some("") {
                url.set_query(None);
            }
            let (status, body) = self.call(Method::GET, url, PAGINATION, &what).await?;
            if !status.is_success() {
                return Err(HubError::from_status(&what, status.as_u16(), &body, None));
            }
            let (items, next) = model::parse_user_page(&what, &body)?;
            // Offsets shift when users are added between pages: never list one twice.
            users.extend(items.into_iter().filter(|u| seen.insert(u.name.clone())));
            match next {
                Some(next) => page = Some(next),
                None => return Ok(users),
            }
        }
    }
}

/// The message of the first `failed` event of a progress stream (server-sent events: `data:`
/// lines of JSON).
pub fn failed_event(stream: &str) -> Option<String> {
    stream
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
        .find(|e| e.get("failed").and_then(serde_json::Value::as_bool) == Some(true))
        .and_then(|e| e.get("message")?.as_str().map(str::to_string))
}

/// How long the timeline waits for a progress stream's first event.
const PROGRESS_WAIT: Duration = Duration::from_secs(3);

impl HubApi for RestHub {
    fn spawn_failure<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<Option<String>>> {
        Box::pin(async move {
            let url = self.url(&["users", name.as_str(), "server", "progress"]);
            let mut response = self
                .client
                .get(url)
                .header(ACCEPT, "text/event-stream")
                .timeout(PROGRESS_WAIT)
                .send()
                .await
                .map_err(|e| self.unreachable(&e, PROGRESS_WAIT))?;
            if !response.status().is_success() {
                return Ok(None); // 400 "not starting": nothing failed
            }
            // A failed start's stream is one event and the end; a pending one goes on (the
            // timeout ends it, and what came is read).
            let mut body = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                body.push_str(&String::from_utf8_lossy(&chunk));
                if body.contains("\n\n") || body.len() > 64 * 1024 {
                    break;
                }
            }
            Ok(failed_event(&body))
        })
    }

    fn check(&self) -> BoxFuture<'_, HubResult<HubInfo>> {
        Box::pin(async move {
            let (status, root) = self
                .call(Method::GET, self.api.clone(), "application/json", "GET /")
                .await?;
            if !status.is_success() {
                return Err(HubError::from_status("GET /", status.as_u16(), &root, None));
            }
            let (status, me) = self
                .call(
                    Method::GET,
                    self.url(&["user"]),
                    "application/json",
                    "GET user",
                )
                .await?;
            if !status.is_success() {
                return Err(HubError::from_status(
                    "GET user",
                    status.as_u16(),
                    &me,
                    None,
                ));
            }
            model::parse_info(&root, &me)
        })
    }

    fn users(&self) -> BoxFuture<'_, HubResult<Vec<HubUser>>> {
        Box::pin(self.list(None))
    }

    fn active_servers(&self) -> BoxFuture<'_, HubResult<Vec<HubUser>>> {
        Box::pin(self.list(Some("active")))
    }

    fn user<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<Option<HubUser>>> {
        Box::pin(async move {
            let what = format!("GET users/{name}");
            let url = self.url(&["users", name.as_str()]);
            let (status, body) = self
                .call(Method::GET, url, "application/json", &what)
                .await?;
            match status {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => model::parse_user(&what, &body).map(Some),
                s => Err(HubError::from_status(
                    &what,
                    s.as_u16(),
                    &body,
                    Some(name.as_str()),
                )),
            }
        })
    }

    fn start_server<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<StartOutcome>> {
        Box::pin(async move {
            let what = format!("POST users/{name}/server");
            let url = self.url(&["users", name.as_str(), "server"]);
            let (status, body) = self
                .call(Method::POST, url, "application/json", &what)
                .await?;
            match status {
                StatusCode::CREATED => Ok(StartOutcome::Started),
                StatusCode::ACCEPTED => Ok(StartOutcome::Pending),
                StatusCode::BAD_REQUEST
                    if super::error::hub_message(&body).contains("is already running") =>
                {
                    Ok(StartOutcome::Started)
                }
                s => Err(HubError::from_status(
                    &what,
                    s.as_u16(),
                    &body,
                    Some(name.as_str()),
                )),
            }
        })
    }

    fn stop_server<'a>(&'a self, name: &'a Username) -> BoxFuture<'a, HubResult<StopOutcome>> {
        Box::pin(async move {
            let what = format!("DELETE users/{name}/server");
            let url = self.url(&["users", name.as_str(), "server"]);
            let (status, body) = self
                .call(Method::DELETE, url, "application/json", &what)
                .await?;
            match status {
                StatusCode::NO_CONTENT | StatusCode::OK => Ok(StopOutcome::Stopped),
                StatusCode::ACCEPTED => Ok(StopOutcome::Pending),
                // No such hub user (never logged in to the hub): nothing of theirs runs.
                StatusCode::NOT_FOUND => Ok(StopOutcome::Stopped),
                // Older hubs refuse to stop what does not run; 6.x answers 204.
                StatusCode::BAD_REQUEST
                    if super::error::hub_message(&body).contains("not running") =>
                {
                    Ok(StopOutcome::Stopped)
                }
                s => Err(HubError::from_status(
                    &what,
                    s.as_u16(),
                    &body,
                    Some(name.as_str()),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_failed_progress_event_gives_its_message() {
        let stream =
            "data: {\"progress\": 100, \"failed\": true, \"message\": \"Spawn failed: boom\"}\n\n";
        assert_eq!(
            super::failed_event(stream).as_deref(),
            Some("Spawn failed: boom")
        );
        let pending = "data: {\"progress\": 50, \"message\": \"pulling\"}\n\n";
        assert_eq!(super::failed_event(pending), None);
        assert_eq!(super::failed_event("data: {\"ready\": true}\n\n"), None);
    }

    use super::*;

    fn hub(api: &str) -> RestHub {
        RestHub::new(
            api,
            &SecretString::new("hunter2-token".into()),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn paths_are_below_the_api_url_and_percent_encoded() {
        let h = hub("http://h:8081/hub/api");
        assert_eq!(h.api_url(), "http://h:8081/hub/api/");
        assert_eq!(
            h.url(&["users", "ada", "server"]).as_str(),
            "http://h:8081/hub/api/users/ada/server"
        );
        // Usernames cannot hold these, but the client does not rely on it.
        assert_eq!(
            h.url(&["users", "a/b?c#d e"]).as_str(),
            "http://h:8081/hub/api/users/a%2Fb%3Fc%23d%20e"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let printed = format!("{:?}", hub("http://h/hub/api/"));
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("http://h/hub/api/"));
    }

    #[test]
    fn a_token_that_cannot_be_a_header_is_refused_without_showing_it() {
        let err = RestHub::new(
            "http://h/hub/api/",
            &SecretString::new("hunter2\nx".into()),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"));
    }

    #[test]
    fn no_token_means_no_client() {
        let mut config = crate::config::Config::default();
        config.hub.api_url = "http://h/hub/api/".into();
        config.hub.api_token = None;
        assert!(RestHub::from_config(&config.hub).unwrap().is_none());
    }
}
