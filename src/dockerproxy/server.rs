//! The proxy's HTTP side: a unix socket for hubdesk, one upstream request per admitted request
//! (plus one read of the current spec for the two inspected writes), answers streamed back
//! unless they are stripped, bodies read only where they are inspected and then bounded.
use std::{
    convert::Infallible,
    io,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::{
    body::Incoming,
    header::{self, HeaderMap, HeaderValue},
    service::service_fn,
    Method, Request, Response, StatusCode,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpStream, UnixListener, UnixStream},
    sync::Semaphore,
};

use super::{
    inspect::{self, Refusal},
    rules::{self, Allowed, Call},
};

type Body = BoxBody<Bytes, hyper::Error>;

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 64;
/// How long the engine may take to start answering (hubdesk's own calls give up after 30 s).
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Unix(PathBuf),
    /// `host:port`, plain HTTP.
    Tcp(String),
}

impl std::str::FromStr for Upstream {
    type Err = String;

    /// `unix:///var/run/docker.sock`, `tcp://10.0.0.5:2375` (or `http://…`).
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            if path.starts_with('/') {
                return Ok(Self::Unix(path.into()));
            }
        }
        for scheme in ["tcp://", "http://"] {
            if let Some(addr) = s.strip_prefix(scheme) {
                let addr = addr.trim_end_matches('/');
                if addr.rsplit_once(':').is_some_and(|(h, p)| {
                    !h.is_empty() && !addr.contains('/') && p.parse::<u16>().is_ok()
                }) {
                    return Ok(Self::Tcp(addr.into()));
                }
            }
        }
        Err(format!(
            "{s:?} is not unix:///path/to/docker.sock or tcp://host:port"
        ))
    }
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Binds the proxy's socket at `path` with `mode` and, when given, group `gid`, atomically: the
/// socket is made under a temporary name, given its mode and group, then renamed over `path`
/// (replacing a stale socket), so nobody can connect before the permissions hold.
pub fn bind(path: &Path, mode: u32, gid: Option<u32>) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    let placed = (|| {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&tmp, None, Some(gid))?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = placed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// A group name or number as a gid (names from `/etc/group`).
pub fn resolve_group(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let text = std::fs::read_to_string("/etc/group")?;
    text.lines()
        .find_map(|l| {
            let mut parts = l.split(':');
            (parts.next() == Some(group))
                .then(|| parts.nth(1).and_then(|g| g.parse().ok()))
                .flatten()
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no group {group:?}")))
}

/// Serves the allow-list on `listener` until the task is dropped or aborted.
pub async fn serve(listener: UnixListener, upstream: Upstream) -> io::Result<()> {
    let upstream = Arc::new(upstream);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, _) = listener.accept().await?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let upstream = upstream.clone();
                async move { Ok::<_, Infallible>(handle(&upstream, req).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "docker-proxy connection ended");
            }
            drop(permit);
        });
    }
}

/// The engine's error shape, so clients (bollard, the docker CLI) show the reason.
fn message(status: u16, text: &str) -> Response<Body> {
    let body =
        serde_json::to_vec(&serde_json::json!({ "message": text })).expect("JSON serialises");
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(body))
        .expect("a valid response")
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

async fn handle(upstream: &Upstream, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let allowed = match rules::classify(method.as_str(), &target) {
        Ok(a) => a,
        Err(reason) => {
            tracing::warn!(%method, %path, %reason, "docker-proxy refused");
            return message(
                403,
                &format!("hubdesk docker-proxy: {method} {path} is not allowed"),
            );
        }
    };
    match forward(upstream, &method, &allowed, req).await {
        Ok(resp) => resp,
        Err(Failure::Refused(r)) => {
            tracing::warn!(%method, %path, reason = %r, "docker-proxy refused");
            message(r.status(), &format!("hubdesk docker-proxy: {r}"))
        }
        Err(Failure::Upstream(e)) => {
            tracing::warn!(%method, %path, error = %e, "docker-proxy: the engine did not answer");
            message(
                502,
                &format!("hubdesk docker-proxy: the engine at {upstream}: {e}"),
            )
        }
        Err(Failure::TooLarge(what)) => {
            tracing::warn!(%method, %path, what, "docker-proxy: body too large");
            message(
                if what == "request" { 413 } else { 502 },
                &format!("hubdesk docker-proxy: the {what} body is too large"),
            )
        }
    }
}

enum Failure {
    Refused(Refusal),
    Upstream(String),
    TooLarge(&'static str),
}

async fn forward(
    upstream: &Upstream,
    method: &Method,
    allowed: &Allowed,
    req: Request<Incoming>,
) -> Result<Response<Body>, Failure> {
    let agent = req.headers().get(header::USER_AGENT).cloned();
    let body = match &allowed.call {
        Call::UpdateNode { id, version } => {
            let asked = read_request(req).await?;
            let inspected =
                match inspect_json(upstream, &format!("{}/nodes/{id}", allowed.prefix)).await? {
                    Ok(v) => v,
                    Err(engine_says) => return Ok(engine_says),
                };
            Some(inspect::node_update(&inspected, *version, &asked).map_err(Failure::Refused)?)
        }
        Call::RotateWorkerToken { version } => {
            let asked = read_request(req).await?;
            let inspected =
                match inspect_json(upstream, &format!("{}/swarm", allowed.prefix)).await? {
                    Ok(v) => v,
                    Err(engine_says) => return Ok(engine_says),
                };
            Some(inspect::swarm_update(&inspected, *version, &asked).map_err(Failure::Refused)?)
        }
        // No other admitted call has a body: whatever the client sent stays here.
        _ => None,
    };
    let resp = send(upstream, method.clone(), &allowed.target, agent, body).await?;
    if !allowed.call.filters_answer() || resp.status() != StatusCode::OK {
        return Ok(pass_on(resp));
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = Limited::new(body, inspect::MAX_FILTERED_ANSWER)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Failure::TooLarge("answer")
            } else {
                Failure::Upstream(e.to_string())
            }
        })?
        .to_bytes();
    let stripped = match allowed.call {
        Call::Services => inspect::services_answer(&bytes),
        Call::Tasks => inspect::tasks_answer(&bytes),
        _ => inspect::swarm_answer(&bytes),
    }
    .map_err(|e| Failure::Upstream(format!("an answer the proxy cannot read: {e}")))?;
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(stripped.len()));
    Ok(Response::from_parts(parts, full(stripped)))
}

/// The client's body for an inspected write, up to its bound.
async fn read_request(req: Request<Incoming>) -> Result<Vec<u8>, Failure> {
    Limited::new(req.into_body(), inspect::MAX_REQUEST_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                Failure::TooLarge("request")
            } else {
                Failure::Upstream(format!("reading the request: {e}"))
            }
        })
}

/// `GET target` upstream as JSON; an answer other than 200 is handed back to the client as is.
async fn inspect_json(
    upstream: &Upstream,
    target: &str,
) -> Result<Result<serde_json::Value, Response<Body>>, Failure> {
    let resp = send(upstream, Method::GET, target, None, None).await?;
    if resp.status() != StatusCode::OK {
        return Ok(Err(pass_on(resp)));
    }
    let bytes = Limited::new(resp.into_body(), inspect::MAX_REQUEST_BODY)
        .collect()
        .await
        .map_err(|e| Failure::Upstream(format!("reading {target}: {e}")))?
        .to_bytes();
    serde_json::from_slice(&bytes)
        .map(Ok)
        .map_err(|e| Failure::Upstream(format!("{target} is not JSON: {e}")))
}

/// The engine's answer, streamed back with its own headers (hop-by-hop ones aside).
fn pass_on(resp: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, body.boxed())
}

fn strip_hop_by_hop(h: &mut HeaderMap) {
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::TE,
        header::TRAILER,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ] {
        h.remove(name);
    }
    h.remove("keep-alive");
}

/// One request on a fresh connection to the engine. Only the method, the rebuilt target, a
/// user agent and, with a body, `Content-Type: application/json` go up: no client header can
/// reach the engine (no registry auth, no form encoding that Go would read as parameters).
async fn send(
    upstream: &Upstream,
    method: Method,
    target: &str,
    agent: Option<HeaderValue>,
    body: Option<Vec<u8>>,
) -> Result<Response<Incoming>, Failure> {
    let mut req = Request::builder()
        .method(method)
        .uri(target)
        .header(header::HOST, "docker");
    if let Some(agent) = agent {
        req = req.header(header::USER_AGENT, agent);
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| Failure::Upstream(e.to_string()))?;
    let answer = async {
        match upstream {
            Upstream::Unix(path) => exchange(UnixStream::connect(path).await?, req).await,
            Upstream::Tcp(addr) => exchange(TcpStream::connect(addr.as_str()).await?, req).await,
        }
    };
    match tokio::time::timeout(UPSTREAM_TIMEOUT, answer).await {
        Ok(r) => r.map_err(|e| Failure::Upstream(e.to_string())),
        Err(_) => Err(Failure::Upstream(format!(
            "no answer within {} s",
            UPSTREAM_TIMEOUT.as_secs()
        ))),
    }
}

async fn exchange<S>(stream: S, req: Request<Full<Bytes>>) -> io::Result<Response<Incoming>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    // Drives the connection until the answer's body is read (or dropped).
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "docker-proxy upstream connection");
        }
    });
    sender.send_request(req).await.map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerproxy_upstream_parses_the_engine_addresses() {
        assert_eq!(
            "unix:///var/run/docker.sock".parse(),
            Ok(Upstream::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            "tcp://10.213.0.10:2375".parse(),
            Ok(Upstream::Tcp("10.213.0.10:2375".into()))
        );
        assert_eq!(
            "http://localhost:2375/".parse(),
            Ok(Upstream::Tcp("localhost:2375".into()))
        );
        for bad in [
            "unix://docker.sock",
            "tcp://host",
            "ssh://x",
            "tcp://h:1/x",
            "",
        ] {
            assert!(bad.parse::<Upstream>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dockerproxy_socket_is_placed_with_its_mode() {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = std::env::temp_dir().join(format!("hubdesk-proxy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("docker.sock");
        std::fs::write(&path, "stale").unwrap();
        let gid = std::fs::metadata(&dir)
            .map(|m| std::os::unix::fs::MetadataExt::gid(&m))
            .unwrap();
        rt.block_on(async {
            let _l = bind(&path, 0o660, Some(gid)).unwrap();
            let meta = std::fs::metadata(&path).unwrap();
            assert!(meta.file_type().is_socket());
            assert_eq!(meta.permissions().mode() & 0o777, 0o660);
            assert_eq!(std::os::unix::fs::MetadataExt::gid(&meta), gid);
            assert_eq!(
                std::fs::read_dir(&dir).unwrap().count(),
                1,
                "no temporary left"
            );
        });
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(resolve_group("0").unwrap(), 0);
        assert_eq!(resolve_group("root").unwrap(), 0);
        assert!(resolve_group("no-such-group-here").is_err());
    }
}
