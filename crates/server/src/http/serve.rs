//! Serving the API on a listener: hyper-util's connection builder (HTTP/1.1
//! and HTTP/2), with the limits a server facing untrusted clients needs.
//!
//! - A header-read timeout (hyper, with `TokioTimer`): a connection that
//!   does not deliver a whole request head in time is closed; this covers a
//!   half-sent request (slowloris) and a connection left idle between
//!   requests.
//! - A limit on requests in flight (tower's `ConcurrencyLimit`): past it a
//!   request waits for a slot (backpressure on its connection).
//! - Per-route limits inside [`super::Api`]: a whole-request timeout and a
//!   small body limit on every route but the key routes, whose body is the
//!   value (bounded by `--value-bytes-max` and a body-read timeout).
//! - Accept errors (say, out of file descriptors) are logged at most once a
//!   second, with the count of those not logged, and the loop backs off
//!   briefly instead of spinning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt as _};
use tracing::{Instrument as _, warn};

use super::Api;

/// Limits of the HTTP server, apart from the per-route ones in [`super::Api`],
/// and its TLS configuration.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// How long a connection may take to deliver a request head (also the
    /// longest a kept-alive connection stays idle).
    pub header_read_timeout: Duration,
    /// Most requests served at once; more wait for a slot.
    pub concurrency_max: usize,
    /// How long a graceful shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Serve HTTPS with this configuration ([`super::tls::server_config`]);
    /// `None`: plain HTTP. A TLS handshake must end within
    /// `header_read_timeout`.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_read_timeout: Duration::from_secs(5),
            concurrency_max: 4096,
            shutdown_grace: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// Logs accept errors at most once per `every`, counting the rest.
struct RateLimitedLog {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    fn new(every: Duration) -> Self {
        RateLimitedLog {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Logs `e` unless one was logged less than `every` ago.
    fn accept_error(&mut self, e: &std::io::Error) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.every)
        {
            self.suppressed += 1;
            return;
        }
        warn!(
            error = %e,
            not_logged = self.suppressed,
            "cannot accept an HTTP connection (out of file descriptors?); retrying"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Serves `api` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (up to `opts.shutdown_grace`).
pub async fn serve(
    listener: TcpListener,
    api: Api,
    opts: &ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    let svc = ServiceBuilder::new()
        .concurrency_limit(opts.concurrency_max)
        .service(api);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let tls = opts.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut log = RateLimitedLog::new(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    log.accept_error(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        let hyper_svc =
            TowerToHyperService::new(tower::service_fn(move |req: hyper::Request<Incoming>| {
                svc.clone().oneshot(req.map(Body::new))
            }));
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let handshake_timeout = opts.header_read_timeout;
        tokio::spawn(
            async move {
                // A client that goes away or times out is not this node's
                // problem: connection errors end the connection only.
                match tls {
                    None => {
                        let conn = builder.serve_connection(TokioIo::new(stream), hyper_svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        let Ok(Ok(stream)) =
                            tokio::time::timeout(handshake_timeout, handshake).await
                        else {
                            return;
                        };
                        let conn = builder.serve_connection(TokioIo::new(stream), hyper_svc);
                        let _ = watcher.watch(conn.into_owned()).await;
                    }
                }
            }
            .in_current_span(),
        );
    }
    drop(listener);
    let _ = tokio::time::timeout(opts.shutdown_grace, graceful.shutdown()).await;
}
