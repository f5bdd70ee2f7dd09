//! The load generator's HTTP/1.1 client: one keep-alive connection per
//! client task, driven inside that task (no connection task, no pool, no
//! cross-task wake-ups per request).
//!
//! hyper's low-level `client::conn::http1` is used directly; reqwest is kept
//! as a second choice (`--http-client reqwest`) so the two can be compared.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::ValueEnum;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use ringkv_client::tls::ClusterCa;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

/// The context header of the ringkv API (lower case, as on the wire).
pub(super) static CONTEXT: HeaderName = HeaderName::from_static("x-ringkv-context");

/// Which HTTP client library sends the requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum HttpClient {
    /// hyper's HTTP/1.1 connection API, one connection per client, driven
    /// in the client's task.
    Hyper,
    /// reqwest (hyper plus a connection pool and a task per connection).
    Reqwest,
}

/// One endpoint, resolved.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    /// `http://host:port` or `https://host:port` as given (normalized).
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header.
    pub host: HeaderValue,
    /// For `https://`: the TLS configuration (trusting `--ca`) and the
    /// name sent as SNI.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    /// `Bearer <--token>`, sent with every request.
    pub auth: Option<HeaderValue>,
}

/// How the generator reaches the nodes: `--ca` and `--token`, read.
#[derive(Clone, Debug, Default)]
pub(super) struct Access {
    /// The cluster CA, for `https://` endpoints.
    pub ca: Option<ClusterCa>,
    /// `Bearer <token>`, marked sensitive.
    pub auth: Option<HeaderValue>,
}

/// Parses `http://host:port` or `https://host:port` (the scheme may be
/// left out: http) and resolves it. `https://` needs `access.ca`.
pub(super) async fn resolve(raw: &str, access: &Access) -> anyhow::Result<Endpoint> {
    let trimmed = raw.trim();
    let (https, rest) = match trimmed.split_once("://") {
        Some(("http", rest)) => (false, rest),
        Some(("https", rest)) => (true, rest),
        Some((scheme, _)) => anyhow::bail!(
            "endpoint {trimmed:?}: use http:// or https:// (with --ca), not {scheme}://"
        ),
        None => (false, trimmed),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        anyhow::bail!(
            "endpoint {trimmed:?} must be http://host:port, without a path (e.g. http://127.0.0.1:8080)"
        );
    }
    let tls = match (https, &access.ca) {
        (false, _) => None,
        (true, None) => anyhow::bail!(
            "endpoint {trimmed:?}: https:// needs the cluster's CA certificate to check the \
             node's: pass --ca FILE (or RINGKV_CA), e.g. the ca.crt of `ringkv cert init`"
        ),
        (true, Some(ca)) => Some((
            Arc::new(ringkv_client::tls::rustls_config(Some(ca))),
            server_name(authority)
                .ok_or_else(|| anyhow::anyhow!("endpoint {trimmed:?}: no valid host name"))?,
        )),
    };
    let default_port = if https { 443 } else { 80 };
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
    {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let addr = tokio::net::lookup_host(with_port.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("endpoint {trimmed:?}: cannot resolve {with_port}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("endpoint {trimmed:?}: {with_port} has no address"))?;
    let host = HeaderValue::from_str(authority)
        .map_err(|_| anyhow::anyhow!("endpoint {trimmed:?}: the host is not a valid header"))?;
    Ok(Endpoint {
        url: format!("{}://{authority}", if https { "https" } else { "http" }),
        addr,
        host,
        tls,
        auth: access.auth.clone(),
    })
}

/// The host of `authority` (`host:port`, `[v6]:port`, `host`) as a TLS name.
fn server_name(authority: &str) -> Option<ServerName<'static>> {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    ServerName::try_from(host.to_string()).ok()
}

/// The parts of an answer the generator looks at.
#[derive(Debug)]
pub(super) struct Answer {
    /// HTTP status.
    pub status: u16,
    /// `X-Ringkv-Context`, when present.
    pub context: Option<HeaderValue>,
}

/// Why a request got no answer. `kind` is a short, stable label for the
/// report ("timeout", "connect refused", ...).
#[derive(Debug)]
pub(super) struct Failure {
    /// The label.
    pub kind: String,
    /// Whether the connection must be replaced before the next request.
    pub broken: bool,
}

impl Failure {
    fn broken(kind: impl Into<String>) -> Self {
        Failure {
            kind: kind.into(),
            broken: true,
        }
    }
}

/// A connection's bytes: plain TCP, or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

type Driver = Pin<Box<Connection<TokioIo<Box<dyn Io>>, Full<Bytes>>>>;

/// A hyper HTTP/1.1 connection and the future that does its I/O.
pub(super) struct HyperConn {
    sender: SendRequest<Full<Bytes>>,
    driver: Driver,
    /// The driver finished (the connection is closed); the sender then only
    /// returns errors.
    driver_done: bool,
}

impl HyperConn {
    /// Runs `fut` while also driving the connection's I/O.
    async fn drive<F: Future>(driver: &mut Driver, driver_done: &mut bool, fut: F) -> F::Output {
        if *driver_done {
            return fut.await;
        }
        let mut fut = std::pin::pin!(fut);
        tokio::select! {
            biased;
            out = &mut fut => out,
            _ = driver.as_mut() => {
                *driver_done = true;
                fut.await
            }
        }
    }
}

/// One client's way to the server: a connection of its own (hyper), or a
/// shared pooled client (reqwest).
pub(super) enum Transport {
    /// See [`HttpClient::Hyper`].
    Hyper {
        /// Where to connect (again, after a failure).
        endpoint: Endpoint,
        /// The connection, once made.
        conn: Option<HyperConn>,
    },
    /// See [`HttpClient::Reqwest`].
    Reqwest {
        /// Where to send.
        endpoint: Endpoint,
        /// The pooled client.
        client: reqwest::Client,
    },
}

/// Opens a connection to `endpoint`.
async fn connect_hyper(endpoint: &Endpoint, timeout: Duration) -> Result<HyperConn, Failure> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(endpoint.addr)).await {
        Err(_) => return Err(Failure::broken("connect timeout")),
        Ok(Err(e)) => return Err(Failure::broken(connect_kind(&e))),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    let io: Box<dyn Io> = match &endpoint.tls {
        None => Box::new(stream),
        Some((config, name)) => {
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            match tokio::time::timeout(timeout, connector.connect(name.clone(), stream)).await {
                Err(_) => return Err(Failure::broken("tls handshake timeout")),
                Ok(Err(e)) => return Err(Failure::broken(format!("tls: {e}"))),
                Ok(Ok(s)) => Box::new(s),
            }
        }
    };
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| Failure::broken(format!("handshake: {}", hyper_kind(&e))))?;
    Ok(HyperConn {
        sender,
        driver: Box::pin(conn),
        driver_done: false,
    })
}

fn connect_kind(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connect refused".into(),
        TimedOut => "connect timeout".into(),
        AddrNotAvailable => "connect: no local port free".into(),
        _ => format!("connect: {e}"),
    }
}

fn hyper_kind(e: &hyper::Error) -> &'static str {
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        "connection closed"
    } else if e.is_parse() || e.is_parse_status() {
        "bad response"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "i/o error"
    }
}

impl Transport {
    /// A transport for one client. With hyper it connects now, so that an
    /// unreachable endpoint is reported before the measurement starts.
    pub(super) async fn open(
        kind: HttpClient,
        endpoint: Endpoint,
        shared: Option<&reqwest::Client>,
        timeout: Duration,
        ca: Option<&ClusterCa>,
    ) -> anyhow::Result<Self> {
        match kind {
            HttpClient::Hyper => {
                let conn = connect_hyper(&endpoint, timeout).await.map_err(|f| {
                    let hint = if f.kind.contains("certificate") {
                        " (give --ca the cluster's ca.crt, from `ringkv cert init`)"
                    } else {
                        ""
                    };
                    anyhow::anyhow!("cannot connect to {}: {}{hint}", endpoint.url, f.kind)
                })?;
                Ok(Transport::Hyper {
                    endpoint,
                    conn: Some(conn),
                })
            }
            HttpClient::Reqwest => {
                let client = match shared {
                    Some(c) => c.clone(),
                    None => reqwest_client(timeout, ca)?,
                };
                Ok(Transport::Reqwest { endpoint, client })
            }
        }
    }

    /// Sends one request and reads the whole answer. `path` is the origin
    /// form (`/v1/kv/b/k?w=2`). At most `timeout` for the whole exchange.
    pub(super) async fn call(
        &mut self,
        method: Method,
        path: &str,
        context: Option<&HeaderValue>,
        body: Option<&Bytes>,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let result = tokio::time::timeout(timeout, self.exchange(method, path, context, body))
            .await
            .unwrap_or_else(|_| Err(Failure::broken("timeout")));
        if let Err(f) = &result
            && f.broken
            && let Transport::Hyper { conn, .. } = self
        {
            // The connection is in an unknown state: the next call makes a new one.
            *conn = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        context: Option<&HeaderValue>,
        body: Option<&Bytes>,
    ) -> Result<Answer, Failure> {
        match self {
            Transport::Hyper { endpoint, conn } => {
                // A connection the server closed is replaced before it is used.
                if conn
                    .as_ref()
                    .is_some_and(|c| c.driver_done || c.sender.is_closed())
                {
                    *conn = None;
                }
                if conn.is_none() {
                    *conn = Some(connect_hyper(endpoint, Duration::from_secs(5)).await?);
                }
                let Some(slot) = conn.as_mut() else {
                    return Err(Failure::broken("no connection"));
                };
                let HyperConn {
                    sender,
                    driver,
                    driver_done,
                } = slot;
                let uri: Uri = path
                    .parse()
                    .map_err(|_| Failure::broken(format!("bad request path {path:?}")))?;
                let mut req = Request::new(Full::new(body.cloned().unwrap_or_default()));
                *req.method_mut() = method;
                *req.uri_mut() = uri;
                let headers = req.headers_mut();
                headers.insert(HOST, endpoint.host.clone());
                if let Some(ctx) = context {
                    headers.insert(CONTEXT.clone(), ctx.clone());
                }
                if let Some(auth) = &endpoint.auth {
                    headers.insert(AUTHORIZATION, auth.clone());
                }
                if let Some(b) = body
                    && b.is_empty()
                {
                    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
                }
                HyperConn::drive(driver, driver_done, sender.ready())
                    .await
                    .map_err(|e| Failure::broken(hyper_kind(&e)))?;
                let resp = HyperConn::drive(driver, driver_done, sender.send_request(req))
                    .await
                    .map_err(|e| Failure::broken(hyper_kind(&e)))?;
                let status = resp.status().as_u16();
                let context = resp.headers().get(&CONTEXT).cloned();
                let mut body = resp.into_body();
                drain(driver, driver_done, &mut body).await?;
                Ok(Answer { status, context })
            }
            Transport::Reqwest { endpoint, client } => {
                let mut req = client.request(method, format!("{}{path}", endpoint.url));
                if let Some(ctx) = context {
                    req = req.header(CONTEXT.clone(), ctx.clone());
                }
                if let Some(auth) = &endpoint.auth {
                    req = req.header(AUTHORIZATION, auth.clone());
                }
                if let Some(b) = body {
                    req = req.body(b.clone());
                }
                let resp = req.send().await.map_err(|e| reqwest_failure(&e))?;
                let status = resp.status().as_u16();
                let context = resp.headers().get(&CONTEXT).cloned();
                resp.bytes().await.map_err(|e| reqwest_failure(&e))?;
                Ok(Answer { status, context })
            }
        }
    }
}

/// Reads a body to its end without collecting it.
async fn drain(
    driver: &mut Driver,
    driver_done: &mut bool,
    body: &mut Incoming,
) -> Result<(), Failure> {
    loop {
        match HyperConn::drive(driver, driver_done, body.frame()).await {
            None => return Ok(()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Failure::broken(hyper_kind(&e))),
        }
    }
}

/// The reqwest client of `--http-client reqwest` (HTTP/1.1, no proxy; TLS
/// trusting `ca`).
pub(super) fn reqwest_client(
    timeout: Duration,
    ca: Option<&ClusterCa>,
) -> anyhow::Result<reqwest::Client> {
    ringkv_client::tls::reqwest_builder(ca)
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the reqwest client: {e}"))
}

fn reqwest_failure(e: &reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timeout".to_string()
    } else if e.is_connect() {
        "connect failed".to_string()
    } else if e.is_body() || e.is_decode() {
        "connection closed".to_string()
    } else {
        "i/o error".to_string()
    };
    Failure::broken(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_are_parsed() {
        let none = Access::default();
        let resolve = |raw: &'static str| resolve(raw, &none);
        let e = resolve("http://127.0.0.1:8080/").await.unwrap();
        assert_eq!(e.url, "http://127.0.0.1:8080");
        assert_eq!(e.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.host, "127.0.0.1:8080");
        let e = resolve("127.0.0.1:9").await.unwrap();
        assert_eq!(e.url, "http://127.0.0.1:9");
        assert_eq!(resolve("127.0.0.1").await.unwrap().addr.port(), 80);
        assert!(resolve("https://127.0.0.1:1").await.is_err());
        assert!(resolve("http://127.0.0.1:1/prefix").await.is_err());
        assert!(resolve("").await.is_err());
        assert!(resolve("http://127.0.0.1:99999").await.is_err());
    }
}
