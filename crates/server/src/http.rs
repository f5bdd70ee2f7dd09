//! The HTTP API v1 (see DESIGN.md "HTTP API"): key-value requests, bucket
//! properties, cluster and ring pages, health and metrics. Every error is JSON
//! `{"error": code, "message": text}` with a fitting status; a refused
//! request changes nothing.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use axum::routing::get;
use base64::Engine;
use bytes::Bytes;
use futures::future::{BoxFuture, Either, FutureExt};
use percent_encoding::percent_decode_str;
use ringkv_core::bucket::{BucketPatch, BucketProps};
use ringkv_core::context;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest};
use ringkv_core::params::QuorumParam;
use ringkv_core::{NodeId, Object, Value};
use serde_json::json;
use tokio::sync::oneshot;

use crate::faults::{Faults, LinkFault};
use crate::metrics::{Metrics, Snapshot};
use crate::runtime::{Event, MutateError, NodeHandle, QueueError};
use crate::transport::PeerInfo;

/// Header carrying the causal context.
pub const CONTEXT_HEADER: &str = "x-ringkv-context";

/// [`CONTEXT_HEADER`] as a header name, checked once at compile time rather
/// than on every response.
static CONTEXT_NAME: HeaderName = HeaderName::from_static(CONTEXT_HEADER);

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

/// The prefix of key paths; [`router`] sends `/v1/kv/{*rest}` to [`kv`].
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
        if !Self::is_key_request(&req) {
            return Either::Right(self.router.call(req));
        }
        let st = self.state.clone();
        let head = req.method() == Method::HEAD;
        Either::Left(
            async move {
                let mut resp = kv(State(st), req).await;
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

/// The router of the whole API.
pub fn router(state: AppState) -> Router {
    router_with(Arc::new(state))
}

fn router_with(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/cluster", get(cluster))
        .route("/v1/ring", get(ring))
        .route("/v1/ring/{*rest}", get(locate))
        .route(
            "/v1/admin/faults",
            get(faults_list).delete(faults_clear_all),
        )
        .route(
            "/v1/admin/faults/{peer}",
            axum::routing::put(fault_set).delete(fault_clear),
        )
        .route("/v1/buckets", get(buckets_list))
        .route("/v1/buckets/{*rest}", get(bucket_get).put(bucket_set))
        .route("/v1/kv/{*rest}", get(kv).put(kv).delete(kv))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// An API error: status, code and a message that says what to do.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    counts: Option<(usize, usize)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            counts: None,
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "message": self.message});
        if let Some((required, acks)) = self.counts {
            body["required"] = json!(required);
            body["acks"] = json!(acks);
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unavailable { required, acks } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                message: format!(
                    "quorum not reached: {acks} of the {required} required replicas answered in time; \
                     a write may still be applied on the replicas that acked (not confirmed, not lost); retry, \
                     or lower r/w"
                ),
                counts: Some((required, acks)),
            },
            ClientError::PrimariesUnavailable { required, acks } => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "unavailable",
                message: format!(
                    "strict quorum not reached: {acks} of the {required} primary replicas required by \
                     pr/pw answered (the others are unreachable; fallbacks do not count toward pr/pw); \
                     a write may still be applied where it was acked (not confirmed, not lost); retry \
                     later, or lower pr/pw to let fallbacks stand in"
                ),
                counts: Some((required, acks)),
            },
            ClientError::BadRequest(m) => ApiError::bad(m),
            ClientError::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m)
            }
            ClientError::Overloaded(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", m)
            }
            ClientError::Internal(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
            }
        }
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route for {}; see /v1/kv/{{bucket}}/{{key}}, /v1/buckets/{{bucket}}, /v1/cluster, \
             /v1/ring, /health, /metrics",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; keys take GET, PUT and DELETE, buckets GET and PUT, \
             the other pages GET",
            uri.path()
        ),
    )
}

/// 200 while the node loop answers; 503 once it stopped.
async fn health(State(st): State<Arc<AppState>>) -> Response {
    let probe = st.node.inspect(|_| ());
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(())) => "ok\n".into_response(),
        _ => node_stopped().into_response(),
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let snapshot = st.node.inspect(Snapshot::of).await;
    match snapshot {
        Ok(snapshot) => {
            let text = st.metrics.render(&snapshot);
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
        Err(_) => node_stopped().into_response(),
    }
}

fn node_stopped() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the node is shutting down; use another node",
    )
}

async fn cluster(State(st): State<Arc<AppState>>) -> Response {
    let http_addrs = st.peers.http_addrs.lock().expect("lock").clone();
    let me = st.me.clone();
    let my_http = st.http_addr.clone();
    let r = st
        .node
        .inspect(move |n| {
            let layout = n.layout();
            let cfg = n.config();
            // Liveness as this node sees it (transport and gossip), and what
            // gossip spread about each member.
            let known = n.members();
            let gossiped = |id: &NodeId| {
                known
                    .iter()
                    .find(|(i, _)| &i.id == id && n.gossip_liveness(id).is_some())
                    .map(|(i, _)| i)
            };
            let liveness_fields = |id: &NodeId| {
                let word = |l: ringkv_node::membership::Liveness| format!("{l:?}").to_lowercase();
                json!({
                    "liveness": word(n.liveness(id)),
                    "gossip": n.gossip_liveness(id).map(word),
                    "incarnation": gossiped(id).map(|i| i.incarnation),
                })
            };
            let mut members: Vec<_> = layout
                .members
                .iter()
                .map(|m| {
                    let http = if m.id == me {
                        Some(my_http.clone())
                    } else {
                        http_addrs
                            .get(&m.id)
                            .cloned()
                            .or_else(|| gossiped(&m.id).map(|i| i.http_addr.clone()))
                    };
                    let replicated = (0..layout.ring_size)
                        .filter(|&p| n.primaries(p).contains(&m.id))
                        .count();
                    let mut v = json!({
                        "id": m.id.as_str(),
                        "rpc_addr": m.rpc_addr,
                        "http_addr": http,
                        "alive": n.is_live(&m.id),
                        "partitions_owned": layout.partitions_owned(&m.id),
                        "partitions_replicated": replicated,
                    });
                    merge(&mut v, liveness_fields(&m.id));
                    v
                })
                .collect();
            // Members known through gossip only (joined with --join from
            // outside this node's layout): listed, but they own nothing.
            for (i, _) in known.iter().filter(|(i, _)| layout.member(&i.id).is_none()) {
                let mut v = json!({
                    "id": i.id.as_str(),
                    "rpc_addr": i.rpc_addr,
                    "http_addr": i.http_addr,
                    "alive": n.is_live(&i.id),
                    "partitions_owned": 0,
                    "partitions_replicated": 0,
                });
                merge(&mut v, liveness_fields(&i.id));
                members.push(v);
            }
            let stats = n.stats();
            let by_target: serde_json::Map<String, serde_json::Value> = n
                .hints_by_primary()
                .into_iter()
                .map(|(id, count)| (id.to_string(), json!(count)))
                .collect();
            json!({
                "node": me.as_str(),
                "layout_version": layout.version,
                "ring_size": layout.ring_size,
                "n": cfg.n, "r": cfg.r, "w": cfg.w,
                "members": members,
                "partitions_without_quorum": n.partitions_without_quorum(),
                "hints": {
                    "pending": n.hints_len(),
                    "by_target": by_target,
                    "max": cfg.hints_max,
                    "full": n.hints_full(),
                    "delivered": stats.hints_delivered,
                    "refused": stats.hints_refused,
                    "hinted_writes": stats.hinted_writes,
                },
                "read_repairs": stats.read_repairs,
            })
        })
        .await;
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(_) => node_stopped().into_response(),
    }
}

/// Adds `extra`'s fields to the JSON object `v`.
fn merge(v: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
}

async fn ring(State(st): State<Arc<AppState>>) -> Response {
    let r = st
        .node
        .inspect(|n| {
            let layout = n.layout();
            let parts: Vec<_> = (0..layout.ring_size)
                .map(|p| {
                    let pl: Vec<String> = n.primaries(p).into_iter().map(|id| id.to_string()).collect();
                    json!({"partition": p, "preference_list": pl})
                })
                .collect();
            json!({"layout_version": layout.version, "ring_size": layout.ring_size, "n": n.config().n, "partitions": parts})
        })
        .await;
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(_) => node_stopped().into_response(),
    }
}

/// `GET /v1/ring/{bucket}/{key}`: where a key lives. Its partition, then
/// every member in the order this node would use them for the key: the N
/// primaries first, then the fallbacks, each with its liveness as this node
/// sees it.
async fn locate(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let (bucket, key) = match parse_bucket_key(uri.path(), "/v1/ring/") {
        Ok(bk) => bk,
        Err(e) => return e.into_response(),
    };
    let key = BucketKey::new(bucket, key);
    let r = st
        .node
        .inspect(move |n| {
            let layout = n.layout();
            let p = key.partition(layout.ring_size);
            let primaries = n.primaries(p);
            let walk = layout.preference_list(p, layout.members.len());
            let nodes: Vec<_> = walk
                .iter()
                .map(|id| {
                    json!({
                        "node": id.as_str(),
                        "role": if primaries.contains(id) { "primary" } else { "fallback" },
                        "alive": n.is_live(id),
                    })
                })
                .collect();
            json!({
                "bucket": String::from_utf8_lossy(&key.bucket),
                "key": String::from_utf8_lossy(&key.key),
                "hash": format!("{:016x}", key.hash()),
                "partition": p,
                "ring_size": layout.ring_size,
                "layout_version": layout.version,
                "n": n.config().n,
                "nodes": nodes,
            })
        })
        .await;
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(_) => node_stopped().into_response(),
    }
}

/// Largest accepted body of `PUT /v1/buckets/{bucket}`, in bytes.
const BUCKET_BODY_MAX: usize = 64 * 1024;

/// The JSON document of one bucket: its name (lossy UTF-8), the properties
/// in force and whether they were set for it (`false`: the node's defaults).
pub fn bucket_json(bucket: &[u8], props: &BucketProps, set: bool) -> serde_json::Value {
    json!({
        "bucket": String::from_utf8_lossy(bucket),
        "props": props,
        "set": set,
    })
}

/// Decodes the bucket of `/v1/buckets/{bucket}` (one percent-encoded segment).
pub fn parse_bucket_path(path: &str) -> Result<Vec<u8>, ApiError> {
    let rest = path.strip_prefix("/v1/buckets/").unwrap_or("");
    if rest.is_empty() {
        return Err(ApiError::bad(
            "the bucket name is empty: use /v1/buckets/{bucket}, or GET /v1/buckets for the list",
        ));
    }
    if rest.contains('/') {
        return Err(ApiError::bad(format!(
            "path {path:?} is not /v1/buckets/{{bucket}}: give exactly one bucket, and \
             percent-encode '/' inside it as %2F"
        )));
    }
    Ok(percent_decode_str(rest).collect())
}

/// `GET /v1/buckets`: every bucket with properties of its own, and the
/// defaults the others use.
async fn buckets_list(State(st): State<Arc<AppState>>) -> Response {
    let r = st
        .node
        .inspect(|n| {
            let buckets: Vec<_> = n
                .buckets()
                .map(|e| bucket_json(&e.bucket, &e.props, true))
                .collect();
            json!({"buckets": buckets, "defaults": n.default_props()})
        })
        .await;
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(_) => node_stopped().into_response(),
    }
}

/// `GET /v1/buckets/{bucket}`: the properties in force for a bucket.
async fn bucket_get(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let bucket = match parse_bucket_path(uri.path()) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let r = st
        .node
        .inspect(move |n| {
            let set = n.buckets().any(|e| e.bucket == bucket);
            bucket_json(&bucket, &n.bucket_props(&bucket), set)
        })
        .await;
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(_) => node_stopped().into_response(),
    }
}

/// `PUT /v1/buckets/{bucket}` with a JSON patch such as
/// `{"conflict": "lww", "n": 3, "r": "quorum"}`: applies it, spreads the
/// result to every member, answers the new properties. Invalid properties
/// get `400` with what is allowed, and change nothing.
async fn bucket_set(
    State(st): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    bucket_set_inner(&st, uri, headers, body)
        .await
        .unwrap_or_else(|e| e.into_response())
}

async fn bucket_set_inner(
    st: &AppState,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bucket = parse_bucket_path(uri.path())?;
    if let Some(q) = uri.query().filter(|q| !q.is_empty()) {
        return Err(ApiError::bad(format!(
            "PUT /v1/buckets/{{bucket}} takes no query parameters (got {q:?}); \
             send the properties as a JSON body such as {{\"n\": 3}}"
        )));
    }
    let body = read_limited(BUCKET_BODY_MAX, "bucket properties", "", &headers, body).await?;
    let patch = BucketPatch::from_json(&body).map_err(|e| ApiError::bad(e.to_string()))?;
    let r = st
        .node
        .mutate(move |n, now, out| {
            let limit = n.config().limits.bucket_bytes_max;
            if bucket.len() > limit {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!(
                        "bucket name is {} bytes, more than the limit of {limit} \
                         (--bucket-bytes-max); use a shorter name",
                        bucket.len()
                    ),
                ));
            }
            let props = n
                .set_bucket(now, Bytes::from(bucket.clone()), &patch, out)
                .map_err(|e| ApiError::bad(e.to_string()))?;
            Ok(bucket_json(&bucket, &props, true))
        })
        .await;
    match r {
        Ok(Ok(v)) => Ok(axum::Json(v).into_response()),
        Ok(Err(e)) => Err(e),
        Err(MutateError::Queue(QueueError::Full)) => Err(queue_full()),
        Err(MutateError::Queue(QueueError::Stopped)) => Err(node_stopped()),
        Err(MutateError::NotDurable(e)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!(
                "the properties were accepted but this node could not store them ({e}); \
                 they are not confirmed: check the node's disk and log, then set them again"
            ),
        )),
    }
}

fn queue_full() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "this node's request queue is full; retry later or use another node",
    )
}

fn faults_of(st: &AppState) -> Result<&Faults, ApiError> {
    st.faults.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "fault injection is off; start the server with --fault-injection (test clusters only)",
        )
    })
}

/// `GET /v1/admin/faults`: the faults in force, by peer.
async fn faults_list(State(st): State<Arc<AppState>>) -> Response {
    match faults_of(&st) {
        Ok(f) => axum::Json(json!(f.all())).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/admin/faults`: heal every link.
async fn faults_clear_all(State(st): State<Arc<AppState>>) -> Response {
    match faults_of(&st) {
        Ok(f) => {
            f.clear_all();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `PUT /v1/admin/faults/{peer}` with `{"drop": 0..1, "delay_ms": N}`.
async fn fault_set(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(peer): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    let r = (|| {
        let faults = faults_of(&st)?;
        let peer = NodeId::parse(&peer).map_err(|e| ApiError::bad(e.to_string()))?;
        if peer == st.me {
            return Err(ApiError::bad("a node has no link to itself; name a peer"));
        }
        let fault: LinkFault = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad(format!(
                "body must be JSON {{\"drop\": 0..1, \"delay_ms\": N}}: {e}"
            ))
        })?;
        fault.validate().map_err(ApiError::bad)?;
        faults.set(peer, fault);
        Ok(StatusCode::NO_CONTENT.into_response())
    })();
    r.unwrap_or_else(|e| e.into_response())
}

/// `DELETE /v1/admin/faults/{peer}`: heal one link.
async fn fault_clear(
    State(st): State<Arc<AppState>>,
    axum::extract::Path(peer): axum::extract::Path<String>,
) -> Response {
    match faults_of(&st) {
        Ok(f) => {
            f.clear(&NodeId::from(peer));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Splits `/v1/kv/{bucket}/{key}` into decoded bucket and key bytes.
pub fn parse_kv_path(path: &str) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    parse_bucket_key(path, "/v1/kv/")
}

/// Splits `{prefix}{bucket}/{key}` into decoded bucket and key bytes.
fn parse_bucket_key(path: &str, prefix: &str) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
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

/// Quorum and timeout parameters from the query string.
#[derive(Default, Debug, PartialEq)]
pub struct KvQuery {
    r: Option<QuorumParam>,
    pr: Option<QuorumParam>,
    w: Option<QuorumParam>,
    pw: Option<QuorumParam>,
    timeout_ms: Option<u64>,
}

/// Parses `r`, `pr`, `w`, `pw`, `timeout_ms`; anything else is an error.
pub fn parse_query(q: Option<&str>) -> Result<KvQuery, ApiError> {
    let mut out = KvQuery::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(value).decode_utf8_lossy().into_owned();
        let quorum =
            |v: &str| QuorumParam::parse(name, v).map_err(|e| ApiError::bad(e.to_string()));
        match name {
            "r" => out.r = Some(quorum(&value)?),
            "pr" => out.pr = Some(quorum(&value)?),
            "w" => out.w = Some(quorum(&value)?),
            "pw" => out.pw = Some(quorum(&value)?),
            "timeout_ms" => {
                out.timeout_ms = Some(value.parse().map_err(|_| {
                    ApiError::bad(format!(
                        "timeout_ms={value:?} is not a number of milliseconds"
                    ))
                })?)
            }
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter {name:?}; known: r, pr, w, pw, timeout_ms"
                )));
            }
        }
    }
    Ok(out)
}

fn context_from(
    headers: &HeaderMap,
    key_hash: u64,
) -> Result<Option<ringkv_core::VersionVector>, ApiError> {
    match headers.get(&CONTEXT_NAME) {
        None => Ok(None),
        Some(v) => {
            let s = v.to_str().map_err(|_| {
                ApiError::bad("X-Ringkv-Context is not ASCII; pass the value a read returned")
            })?;
            if s.trim().is_empty() {
                return Ok(None);
            }
            context::decode(s, key_hash)
                .map(Some)
                .map_err(|e| ApiError::bad(e.to_string()))
        }
    }
}

/// The key API. It takes the whole request (not method, URI and headers as
/// separate extractors, which would clone each of them) because it is the
/// hot path: every client read and write comes through here.
async fn kv(State(st): State<Arc<AppState>>, request: Request) -> Response {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method;
    // The router sends only these methods here.
    let op = match method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "other",
    };
    let resp = match kv_inner(&st, method, &parts.uri, &parts.headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    st.metrics
        .observe_http(op, resp.status().as_u16(), start.elapsed());
    resp
}

async fn kv_inner(
    st: &AppState,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (bucket, key) = parse_kv_path(uri.path())?;
    let q = parse_query(uri.query())?;
    let key = BucketKey::new(bucket, key);
    let key_hash = key.hash();
    let op = match method {
        Method::GET | Method::HEAD => ClientOp::Get { r: q.r, pr: q.pr },
        Method::PUT => {
            let context = context_from(headers, key_hash)?;
            let value = read_body(st.value_bytes_max, headers, body).await?;
            ClientOp::Put {
                value: Value::Data(value),
                context,
                w: q.w,
                pw: q.pw,
            }
        }
        Method::DELETE => {
            let context = context_from(headers, key_hash)?;
            ClientOp::Put {
                value: Value::Tombstone,
                context,
                w: q.w,
                pw: q.pw,
            }
        }
        other => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{other} is not allowed on keys; use GET, PUT or DELETE"),
            ));
        }
    };
    let is_get = matches!(op, ClientOp::Get { .. });
    let timeout_ms = q.timeout_ms;
    let request = ClientRequest {
        key,
        op,
        timeout_ms,
    };
    let (tx, rx) = oneshot::channel();
    st.node
        .try_send(Event::Client { request, reply: tx })
        .map_err(|e| match e {
            QueueError::Full => queue_full(),
            QueueError::Stopped => node_stopped(),
        })?;
    // The node always answers by its own deadline, with an error if its
    // journal write failed; this bound only guards against a lost reply.
    let bound = Duration::from_millis(
        timeout_ms
            .unwrap_or(st.timeout_ms)
            .min(ringkv_node::TIMEOUT_MS_MAX)
            + 5_000,
    );
    let reply = match tokio::time::timeout(bound, rx).await {
        Ok(Ok(r)) => r,
        _ => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node gave no answer in time; the request may or may not have been applied; retry",
            ));
        }
    };
    match reply {
        ClientReply::Error(e) => Err(e.into()),
        ClientReply::Written { context, .. } => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            set_context(&mut resp, &context, key_hash);
            Ok(resp)
        }
        ClientReply::Read { object, .. } => {
            debug_assert!(is_get);
            Ok(read_response(&object, key_hash))
        }
    }
}

fn set_context(resp: &mut Response, vv: &ringkv_core::VersionVector, key_hash: u64) {
    let token = context::encode(vv, key_hash);
    resp.headers_mut().insert(
        CONTEXT_NAME.clone(),
        HeaderValue::try_from(token).expect("base64url is a valid header"),
    );
}

/// 404 when no sibling holds data (absent, or deleted, even by several
/// concurrent deletes), 300 with the siblings when there are several, 200
/// with the value otherwise. The context is bound to the key (`key_hash`).
pub fn read_response(object: &Object, key_hash: u64) -> Response {
    let mut resp = if object.is_deleted() {
        let body = json!({"error": "not_found", "message": "the key has no value (never written, or deleted)"});
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    } else if object.siblings.len() > 1 {
        let siblings: Vec<_> = object
            .siblings
            .iter()
            .map(|s| match &s.value {
                Value::Data(b) => {
                    json!({"value": base64::engine::general_purpose::STANDARD.encode(b)})
                }
                Value::Tombstone => json!({"deleted": true}),
            })
            .collect();
        let body = json!({"context": context::encode(&object.vv, key_hash), "siblings": siblings});
        (
            StatusCode::MULTIPLE_CHOICES,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    } else {
        let value = match object.siblings.first().map(|s| &s.value) {
            Some(Value::Data(b)) => b.clone(),
            _ => unreachable!("one sibling, not deleted: it holds data"),
        };
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            value,
        )
            .into_response()
    };
    if !object.vv.is_empty() {
        set_context(&mut resp, &object.vv, key_hash);
    }
    resp
}

async fn read_body(limit: usize, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    read_limited(
        limit,
        "value",
        " (--value-bytes-max); store it in parts",
        headers,
        body,
    )
    .await
}

/// Reads a body of at most `limit` bytes; past it `413` naming `what`,
/// followed by `advice`.
async fn read_limited(
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
mod tests {
    use super::*;
    use ringkv_core::version::{Actor, Dot, Sibling};
    use tower_service::Service;

    /// A node loop stand-in: key `two` has two siblings, `gone` is absent,
    /// `down` fails for want of replicas, any other key has one value; every
    /// write succeeds.
    fn stand_in_node() -> NodeHandle {
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
                    (b"down", _) => ClientReply::Error(ClientError::Unavailable {
                        required: 2,
                        acks: 1,
                    }),
                    (_, ClientOp::Put { .. }) => ClientReply::Written {
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

    fn state(node: NodeHandle) -> AppState {
        AppState {
            node,
            me: NodeId::parse("n1").unwrap(),
            http_addr: "127.0.0.1:1".into(),
            value_bytes_max: 16,
            timeout_ms: 1_000,
            peers: PeerInfo::default(),
            metrics: Arc::new(Metrics::new()),
            faults: None,
        }
    }

    /// Status, headers and body bytes of `svc`'s answer to `req`, as a client
    /// sees them: hyper adds the `content-length` of a body of known length
    /// when the response has none.
    async fn answer<S>(svc: &mut S, req: Request) -> (StatusCode, HeaderMap, Bytes)
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

    #[test]
    fn kv_paths_decode_any_bytes() {
        assert_eq!(
            parse_kv_path("/v1/kv/b/a%2Fb%20c%FF").ok().unwrap(),
            (b"b".to_vec(), b"a/b c\xff".to_vec())
        );
        assert!(parse_kv_path("/v1/kv/b/a/b").is_err());
        assert!(parse_kv_path("/v1/kv/b/").is_err());
        assert!(parse_kv_path("/v1/kv//k").is_err());
    }

    #[test]
    fn bucket_paths_decode_one_segment() {
        assert_eq!(
            parse_bucket_path("/v1/buckets/a%2Fb%20c%FF").ok().unwrap(),
            b"a/b c\xff".to_vec()
        );
        assert!(parse_bucket_path("/v1/buckets/a/b").is_err());
        assert!(parse_bucket_path("/v1/buckets/").is_err());
    }

    #[test]
    fn bucket_json_shape() {
        let props = BucketProps::defaults(3, 2, 2, 100);
        assert_eq!(
            bucket_json(b"carts", &props, false),
            json!({
                "bucket": "carts",
                "props": {"n": 3, "r": 2, "w": 2, "pr": 0, "pw": 0, "conflict": "siblings",
                          "siblings_warn": 25, "siblings_max": 100},
                "set": false,
            })
        );
    }

    #[test]
    fn queries_are_strict() {
        assert_eq!(
            parse_query(Some("r=2&w=all")).ok().unwrap().w,
            Some(QuorumParam::All)
        );
        assert!(parse_query(Some("r=banana")).is_err());
        assert!(parse_query(Some("rr=1")).is_err());
        assert!(parse_query(Some("timeout_ms=x")).is_err());
        assert_eq!(parse_query(None).ok().unwrap(), KvQuery::default());
    }
}
