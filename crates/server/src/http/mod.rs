//! The HTTP API v1 (see README.md, "HTTP API v1"): key-value requests, bucket
//! properties, cluster and ring pages, health and metrics. Every error is JSON
//! `{"error": code, "message": text}` with a fitting status; a refused
//! request changes nothing. The JSON bodies are the types of
//! [`ringkv_core::api`], which the client reads.
//!
//! # Layout
//! - this module: the shared state, the router, the [`Api`] service that
//!   takes key requests past the router, and the path and body helpers the
//!   handlers share.
//! - `kv`: `GET`/`PUT`/`DELETE /v1/kv/{bucket}/{key}`, contexts and siblings.
//! - `list`: `GET /v1/kv/{bucket}`, a page of the bucket's keys.
//! - `cluster`: `/health`, `/metrics`, `/v1/cluster`, `/v1/groups`, `/v1/ring`.
//! - `buckets`: `/v1/buckets`, bucket properties.
//! - `staleness`: `/v1/buckets/{bucket}/staleness`, predicted staleness (PBS).
//! - `faults`: `/v1/admin/faults`, test-only fault injection (routed only
//!   when the node was started with `--fault-injection`).
//! - `error`: the error type and its status and JSON body.
//! - [`mod@serve`]: the server loop with its timeouts and limits.
//! - [`tls`]: the optional TLS configuration of the API.
//!
//! # Limits
//! Every route but the key routes takes a body of at most
//! [`SMALL_BODY_MAX`] bytes and must be answered within [`REQUEST_TIMEOUT`];
//! a key request's body is its value (up to `--value-bytes-max`) and must
//! arrive within [`REQUEST_TIMEOUT`], and the node answers it by the
//! request's own `timeout_ms`. With a token file ([`crate::auth`]) every
//! request but `/health` needs a bearer token with the right permission,
//! checked before anything else.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use axum::routing::{get, put};
use bytes::Bytes;
use futures::future::{BoxFuture, Either, FutureExt};
use percent_encoding::percent_decode_str;
use ringkv_core::{ContextKeys, NodeId};
use ringkv_node::Node;
use serde::Serialize;

use crate::auth::{Denied, Need, Tokens};
use crate::faults::Faults;
use crate::metrics::Metrics;
use crate::runtime::{NodeHandle, Tracked};
use crate::transport::PeerInfo;
use error::ApiError;

mod buckets;
mod cluster;
mod error;
mod faults;
mod kv;
mod layout;
mod list;
mod repair;
pub mod serve;
mod staleness;
pub mod tls;

pub use kv::CONTEXT_HEADER;
pub use serve::{ServeOptions, serve};

/// Largest body of a request to any route but the key routes, in bytes.
pub const SMALL_BODY_MAX: usize = 64 * 1024;
/// Longest time a request to any route but the key routes may take, and
/// the longest a key request's body may take to arrive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The node loop.
    pub node: NodeHandle,
    /// This node's id.
    pub me: NodeId,
    /// This node's HTTP address.
    pub http_addr: String,
    /// Largest accepted value, in bytes.
    pub value_bytes_max: usize,
    /// Default coordinator timeout, in ms.
    pub timeout_ms: u64,
    /// What the transport learned about peers.
    pub peers: PeerInfo,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Injected transport faults; `None` unless started with `--fault-injection`.
    pub faults: Option<Faults>,
    /// The keys that sign and verify context tokens, and the longest token
    /// accepted (what this node can make for its limits).
    pub context_keys: ContextKeys,
    /// The bearer tokens clients must present; `None`: the API is open.
    pub tokens: Option<Arc<Tokens>>,
}

/// The HTTP service of the whole API: what [`router`] answers, with key
/// requests taken past the router.
///
/// Key reads and writes are nearly every request a node serves, and
/// routing them through axum (route matching, URL parameters, matched path,
/// request extensions) cost about a seventh of a request's instructions. The
/// service therefore hands a request that the router would give to the key
/// handler straight to that handler, and every other request to the router;
/// the answers are the same either way.
#[derive(Clone)]
pub struct Api {
    state: Arc<AppState>,
    router: Router,
}

/// The prefix of key paths; [`router`] sends `/v1/kv/{*rest}` to [`kv::kv`].
const KV_PREFIX: &str = "/v1/kv/";

impl Api {
    /// The service for `state`.
    pub fn new(state: AppState) -> Self {
        let state = Arc::new(state);
        Api {
            router: router_with(state.clone()),
            state,
        }
    }

    /// Whether [`router`] would route `req` to the key handler: a non-empty
    /// rest after the prefix and one of the methods the key route takes.
    fn is_key_request(req: &Request) -> bool {
        let path = req.uri().path();
        path.len() > KV_PREFIX.len()
            && path.starts_with(KV_PREFIX)
            && matches!(
                *req.method(),
                Method::GET | Method::HEAD | Method::PUT | Method::DELETE
            )
    }
}

impl tower_service::Service<Request> for Api {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<BoxFuture<'static, Result<Response, Infallible>>, RouteFuture<Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower_service::Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if let Some(tokens) = &self.state.tokens
            && let Err(refusal) = authorize(tokens, &req)
        {
            return Either::Left(futures::future::ready(Ok(*refusal)).boxed());
        }
        if !Self::is_key_request(&req) {
            return Either::Right(self.router.call(req));
        }
        let st = self.state.clone();
        let head = req.method() == Method::HEAD;
        Either::Left(
            async move {
                let mut resp = kv::kv(State(st), req).await;
                if head {
                    // What the router does for HEAD: the GET's length, no body.
                    if let Some(len) = http_body::Body::size_hint(resp.body()).exact()
                        && !resp.headers().contains_key(header::CONTENT_LENGTH)
                    {
                        resp.headers_mut()
                            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                    }
                    *resp.body_mut() = Body::empty();
                }
                Ok(resp)
            }
            .boxed(),
        )
    }
}

/// The answer to a request `tokens` do not allow: `401` without a valid
/// token (with `WWW-Authenticate: Bearer`), `403` without the permission.
fn authorize(tokens: &Tokens, req: &Request) -> Result<(), Box<Response>> {
    let need = Need::of(req.method(), req.uri().path());
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match tokens.check(auth, &need) {
        Ok(_) => Ok(()),
        Err(Denied::Unauthenticated(m)) => {
            let mut resp =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ringkv\""),
            );
            Err(Box::new(resp))
        }
        Err(Denied::Forbidden(m)) => Err(Box::new(
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", m).into_response(),
        )),
    }
}

/// The router of the whole API (without the bearer-token check, which is
/// [`Api`]'s: serve [`Api`]).
pub fn router(state: AppState) -> Router {
    router_with(Arc::new(state))
}

/// [`router`] over a state the [`Api`] service shares with it.
fn router_with(state: Arc<AppState>) -> Router {
    let mut small = Router::new()
        .route("/health", get(cluster::health))
        .route("/metrics", get(cluster::metrics))
        .route("/v1/cluster", get(cluster::cluster))
        .route("/v1/groups", get(cluster::groups))
        .route("/v1/cluster/layout", get(layout::layout_get))
        .route(
            "/v1/cluster/changes",
            axum::routing::post(layout::change_post).delete(layout::changes_clear),
        )
        .route(
            "/v1/cluster/changes/{node}",
            axum::routing::delete(layout::change_delete),
        )
        .route("/v1/cluster/plan", get(layout::plan_get))
        .route(
            "/v1/cluster/commit",
            axum::routing::post(layout::commit_post),
        )
        .route(
            "/v1/repair",
            get(repair::repair_get).post(repair::repair_post),
        )
        .route("/v1/ring", get(cluster::ring))
        .route("/v1/ring/{*rest}", get(cluster::locate))
        .route("/v1/buckets", get(buckets::buckets_list))
        .route(
            "/v1/buckets/{*rest}",
            get(buckets::bucket_get).put(buckets::bucket_set),
        );
    if state.faults.is_some() {
        small = small
            .route(
                "/v1/admin/faults",
                get(faults::faults_list).delete(faults::faults_clear_all),
            )
            .route(
                "/v1/admin/faults/{peer}",
                put(faults::fault_set).delete(faults::fault_clear),
            );
    }
    let small = small
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            SMALL_BODY_MAX,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    small
        .route("/v1/kv/{*rest}", get(kv::kv).put(kv::kv).delete(kv::kv))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .layer(tower::util::MapResponseLayer::new(error::json_layer_errors))
        .with_state(state)
}

/// The node as the handlers see it on the node loop.
type ServedNode = Node<Tracked>;

/// Runs `f` on the node loop and answers what it returns as JSON; `503`
/// once the loop stopped.
async fn inspect_json<T>(
    st: &AppState,
    f: impl FnOnce(&ServedNode) -> T + Send + 'static,
) -> Response
where
    T: Serialize + Send + 'static,
{
    match st.node.inspect(f).await {
        Ok(body) => axum::Json(body).into_response(),
        Err(_) => error::node_stopped().into_response(),
    }
}

/// Splits `{prefix}{bucket}/{key}` into decoded bucket and key bytes.
pub(crate) fn parse_bucket_key(path: &str, prefix: &str) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let rest = path.strip_prefix(prefix).unwrap_or("");
    let mut parts = rest.split('/');
    let (Some(b), Some(k), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ApiError::bad(format!(
            "path {path:?} is not {prefix}{{bucket}}/{{key}}: give exactly a bucket and a key, \
             and percent-encode '/' inside them as %2F"
        )));
    };
    if b.is_empty() || k.is_empty() {
        return Err(ApiError::bad("bucket and key must not be empty"));
    }
    Ok((
        percent_decode_str(b).collect(),
        percent_decode_str(k).collect(),
    ))
}

/// Reads a body of at most `limit` bytes; past it `413` naming `what`,
/// followed by `advice`.
pub(crate) async fn read_limited(
    limit: usize,
    what: &str,
    advice: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    let too_large = |n: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{what} is {n} bytes, more than the limit of {limit}{advice}"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(too_large(len.to_string()));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large("more than that".into()))
}

#[cfg(test)]
mod trust_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Event;
    use ringkv_core::msg::{ClientError, ClientOp, ClientReply};
    use ringkv_core::version::{Actor, Dot, Sibling};
    use ringkv_core::{Object, Value};
    use tower_service::Service;

    /// A node loop stand-in: key `two` has two siblings, `gone` is absent,
    /// `down` fails for want of replicas, any other key has one value; every
    /// write succeeds.
    pub(super) fn stand_in_node() -> NodeHandle {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let actor = Actor {
                node: NodeId::parse("n1").unwrap(),
                incarnation: 7,
            };
            let sibling = |counter: u64, value: &'static [u8]| Sibling {
                dot: Dot {
                    actor: actor.clone(),
                    counter,
                },
                value: Value::Data(Bytes::from_static(value)),
                timestamp_ms: 1,
            };
            let mut vv = ringkv_core::VersionVector::new();
            vv.add(&sibling(2, b"").dot);
            while let Some(ev) = rx.recv().await {
                let Event::Client { request, reply } = ev else {
                    continue;
                };
                let answer = match (&request.key.key[..], request.op) {
                    (_, ClientOp::List(q)) if q.limit == 1 => {
                        ClientReply::Error(ClientError::PartitionsUnavailable {
                            required: 2,
                            short: vec![(3, 1), (9, 0)],
                        })
                    }
                    (_, ClientOp::List(q)) => ClientReply::Keys(ringkv_core::list::KeyPage {
                        keys: vec![
                            bytes::Bytes::from(q.prefix.to_vec()),
                            bytes::Bytes::from_static(b"\xff\x00"),
                        ],
                        next: q.after.clone(),
                    }),
                    (_, ClientOp::Cluster(_)) => {
                        ClientReply::Error(ClientError::Conflict("not in these tests".into()))
                    }
                    (b"down", _) => ClientReply::Error(ClientError::Unavailable {
                        required: 2,
                        acks: 1,
                    }),
                    (_, ClientOp::Put { .. } | ClientOp::PutIf { .. }) => ClientReply::Written {
                        context: vv.clone(),
                        dot: None,
                        fallback_acks: 0,
                    },
                    (key, ClientOp::Get { .. }) => {
                        let siblings = match key {
                            b"gone" => vec![],
                            b"two" => vec![sibling(1, b"a"), sibling(2, b"b")],
                            _ => vec![sibling(2, b"value")],
                        };
                        ClientReply::Read {
                            object: Object {
                                vv: vv.clone(),
                                siblings,
                            },
                            fallback_replies: 0,
                        }
                    }
                };
                let _ = reply.send(answer);
            }
        });
        NodeHandle::from_sender(tx)
    }

    pub(super) fn state(node: NodeHandle) -> AppState {
        AppState {
            node,
            me: NodeId::parse("n1").unwrap(),
            http_addr: "127.0.0.1:1".into(),
            value_bytes_max: 16,
            timeout_ms: 1_000,
            peers: PeerInfo::default(),
            metrics: Arc::new(Metrics::new()),
            faults: None,
            context_keys: ContextKeys::new([9; 32], Vec::new()),
            tokens: None,
        }
    }

    /// Status, headers and body bytes of `svc`'s answer to `req`, as a client
    /// sees them: hyper adds the `content-length` of a body of known length
    /// when the response has none.
    pub(super) async fn answer<S>(svc: &mut S, req: Request) -> (StatusCode, HeaderMap, Bytes)
    where
        S: Service<Request, Response = Response, Error = Infallible>,
    {
        futures::future::poll_fn(|cx| svc.poll_ready(cx))
            .await
            .unwrap();
        let resp = svc.call(req).await.unwrap();
        let (mut parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        parts
            .headers
            .entry(header::CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(body.len()));
        (parts.status, parts.headers, body)
    }

    #[tokio::test]
    async fn a_bucket_path_lists_keys_with_non_utf8_keys_in_base64() {
        let mut api = Api::new(state(stand_in_node()));
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        let (status, _, body) =
            answer(&mut api, get("/v1/kv/b?prefix=a%2Fb&after=x%20y&limit=5")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"keys":["a/b"],"keys_b64":["/wA="],"next":"x y"}"#
        );
        let (status, _, body) = answer(&mut api, get("/v1/kv/b?after=%FF")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains(r#""next_b64":"/w==""#)
        );
        let (status, _, body) = answer(&mut api, get("/v1/kv/b?limit=1")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let text = std::str::from_utf8(&body).unwrap();
        assert!(
            text.contains("partition 3 (1 of 2)") && text.contains("partition 9 (0 of 2)"),
            "{text}"
        );
        for bad in [
            "/v1/kv/b?limit=many",
            "/v1/kv/b?colour=red",
            "/v1/kv/b?r=banana",
        ] {
            let (status, _, _) = answer(&mut api, get(bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }
        let put = Request::put("/v1/kv/b").body(Body::from("v")).unwrap();
        let (status, _, _) = answer(&mut api, put).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn key_requests_get_the_same_answers_past_the_router_as_through_it() {
        let node = stand_in_node();
        let mut api = Api::new(state(node.clone()));
        let mut router = router(state(node));
        // A valid context for key `k` of bucket `b`, from a read.
        let token = {
            let req = Request::get("/v1/kv/b/k").body(Body::empty()).unwrap();
            let (_, headers, _) = answer(&mut router, req).await;
            headers[CONTEXT_HEADER].to_str().unwrap().to_string()
        };
        let cases: Vec<(Method, &str, Option<&str>, &'static str)> = vec![
            (Method::GET, "/v1/kv/b/k", None, ""),
            (Method::GET, "/v1/kv/b/two", None, ""),
            (Method::GET, "/v1/kv/b/gone", None, ""),
            (Method::GET, "/v1/kv/b/down", None, ""),
            (Method::GET, "/v1/kv/b/k?r=2&timeout_ms=50", None, ""),
            (Method::GET, "/v1/kv/b/k?r=banana", None, ""),
            (Method::HEAD, "/v1/kv/b/k", None, ""),
            (Method::HEAD, "/v1/kv/b/two", None, ""),
            (Method::HEAD, "/v1/kv/b/gone", None, ""),
            (Method::PUT, "/v1/kv/b/k", None, "v"),
            (Method::PUT, "/v1/kv/b/k", Some(&token), "v"),
            (Method::PUT, "/v1/kv/b/other", Some(&token), "v"),
            (Method::PUT, "/v1/kv/b/k", Some("not a context"), "v"),
            (Method::PUT, "/v1/kv/b/k", None, "more than sixteen bytes"),
            (Method::PUT, "/v1/kv/b/k?w=0", None, "v"),
            (Method::PUT, "/v1/kv/b/down", None, "v"),
            (Method::DELETE, "/v1/kv/b/k", Some(&token), ""),
            (Method::DELETE, "/v1/kv/b/k", None, ""),
            (Method::POST, "/v1/kv/b/k", None, "v"),
            (Method::PATCH, "/v1/kv/b/k", None, "v"),
            (Method::GET, "/v1/kv/", None, ""),
            (Method::GET, "/v1/kv/b", None, ""),
            (Method::GET, "/v1/kv/b/k/extra", None, ""),
            (Method::GET, "/v1/kv//k", None, ""),
            (Method::GET, "/v1/kv", None, ""),
            (Method::GET, "/v1/nothing", None, ""),
        ];
        for (method, uri, context, body) in cases {
            let request = || {
                let mut req = Request::builder().method(method.clone()).uri(uri);
                if let Some(c) = context {
                    req = req.header(CONTEXT_HEADER, c);
                }
                req.body(Body::from(body)).unwrap()
            };
            let direct = answer(&mut api, request()).await;
            let routed = answer(&mut router, request()).await;
            assert_eq!(direct, routed, "{method} {uri} context {context:?}");
            if method == Method::HEAD {
                assert!(direct.2.is_empty(), "HEAD {uri} has a body");
            }
        }
    }
}
