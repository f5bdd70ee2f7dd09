//! `/v1/kv/{bucket}/{key}`: reads, writes and deletes of one key, with
//! their quorum parameters, causal contexts and siblings. This is the hot
//! path: nearly every request a node serves comes through here.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use ringkv_core::api::{SiblingsBody, WireSibling};
use ringkv_core::context;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest};
use ringkv_core::params::QuorumParam;
use ringkv_core::strong::{self, Condition};
use ringkv_core::{ContextKeys, Object, Value};

use super::error::{ApiError, node_stopped, queue_full};
use super::{AppState, parse_bucket_key, read_limited};
use crate::runtime::{AskError, QueueError};

/// Header carrying the causal context.
pub const CONTEXT_HEADER: &str = "x-ringkv-context";

/// [`CONTEXT_HEADER`] as a header name, checked once at compile time rather
/// than on every response.
static CONTEXT_NAME: HeaderName = HeaderName::from_static(CONTEXT_HEADER);
/// The header that names the node that led a strong request's group.
static LEADER_NAME: HeaderName = HeaderName::from_static("x-ringkv-leader");

/// Splits `/v1/kv/{bucket}/{key}` into decoded bucket and key bytes.
fn parse_kv_path(path: &str) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    parse_bucket_key(path, "/v1/kv/")
}

/// Quorum and timeout parameters from the query string.
#[derive(Default, Debug, PartialEq)]
pub(super) struct KvQuery {
    r: Option<QuorumParam>,
    pr: Option<QuorumParam>,
    w: Option<QuorumParam>,
    pw: Option<QuorumParam>,
    timeout_ms: Option<u64>,
}

/// Parses `r`, `pr`, `w`, `pw`, `timeout_ms`; anything else is an error.
pub(super) fn parse_query(q: Option<&str>) -> Result<KvQuery, ApiError> {
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

/// The context of a write: the `X-Ringkv-Context` header, checked against
/// the key; none when the header is absent or blank.
fn context_from(
    headers: &HeaderMap,
    key_hash: u64,
    keys: &ContextKeys,
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
            context::decode(s, key_hash, keys)
                .map(Some)
                .map_err(|e| ApiError::bad(e.to_string()))
        }
    }
}

/// The condition of a compare-and-set: `If-None-Match: *` (create only if
/// absent) or `If-Match: <context>` (only at the version a read returned).
fn condition_from(
    headers: &HeaderMap,
    key_hash: u64,
    keys: &ContextKeys,
) -> Result<Option<Condition>, ApiError> {
    let if_match = headers.get(header::IF_MATCH);
    let if_none = headers.get(header::IF_NONE_MATCH);
    match (if_match, if_none) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(ApiError::bad(
            "give If-Match or If-None-Match, not both: If-Match writes only at the version a \
             read returned, If-None-Match: * only if the key is absent",
        )),
        (None, Some(v)) if v.as_bytes() == b"*" => Ok(Some(Condition::IfAbsent)),
        (None, Some(_)) => Err(ApiError::bad(
            "If-None-Match takes only *: it writes only if the key is absent",
        )),
        (Some(v), None) => {
            let s = v.to_str().map_err(|_| {
                ApiError::bad("If-Match is not ASCII; pass the X-Ringkv-Context a read returned")
            })?;
            let s = s.trim().trim_matches('"');
            let vv = context::decode(s, key_hash, keys).map_err(|e| {
                ApiError::bad(format!(
                    "If-Match must be the X-Ringkv-Context a read of this key returned: {e}"
                ))
            })?;
            Ok(Some(Condition::IfVersion(strong::version_of(&vv))))
        }
    }
}

/// The key API. It takes the whole request (not method, URI and headers as
/// separate extractors, which would clone each of them) because it is the
/// hot path: every client read and write comes through here.
pub(crate) async fn kv(State(st): State<Arc<AppState>>, request: Request) -> Response {
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
    let took = start.elapsed();
    st.metrics.observe_http(op, resp.status().as_u16(), took);
    // Only requests on strong buckets name a leader.
    if resp.headers().contains_key(&LEADER_NAME) {
        st.metrics
            .observe_strong(strong_op(op, &parts.headers), took);
    }
    resp
}

/// The op a strong request is measured by: `cas` when conditional.
fn strong_op(method: &'static str, headers: &HeaderMap) -> &'static str {
    let conditional =
        headers.contains_key(header::IF_MATCH) || headers.contains_key(header::IF_NONE_MATCH);
    match method {
        "PUT" | "DELETE" if conditional => "cas",
        "PUT" => "put",
        "DELETE" => "delete",
        _ => "get",
    }
}

/// Parses the request, hands it to the node loop and turns the reply into
/// the answer.
async fn kv_inner(
    st: &AppState,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let rest = uri.path().strip_prefix("/v1/kv/").unwrap_or("");
    if let Some(bucket) = super::list::list_bucket(rest) {
        return super::list::list(st, &method, bucket, uri.query()).await;
    }
    let (bucket, key) = parse_kv_path(uri.path())?;
    let q = parse_query(uri.query())?;
    let key = BucketKey::new(bucket, key);
    let key_hash = key.hash();
    let op = key_op(st, method, &q, headers, body, key_hash).await?;
    let is_get = matches!(op, ClientOp::Get { .. });
    let request = ClientRequest {
        key,
        op,
        timeout_ms: q.timeout_ms,
    };
    let (leader, reply) = match ask_node(st, request).await? {
        ClientReply::Strong { leader, reply } => (Some(leader), *reply),
        other => (None, other),
    };
    let mut resp = match reply {
        ClientReply::Error(ClientError::PreconditionFailed { current }) => {
            let mut resp = ApiError::from(ClientError::PreconditionFailed {
                current: current.clone(),
            })
            .into_response();
            set_context(&mut resp, &current, key_hash, &st.context_keys);
            resp
        }
        ClientReply::Error(e) => ApiError::from(e).into_response(),
        ClientReply::Written { context, .. } => {
            let mut resp = StatusCode::NO_CONTENT.into_response();
            set_context(&mut resp, &context, key_hash, &st.context_keys);
            resp
        }
        ClientReply::Read { object, .. } => {
            debug_assert!(is_get);
            read_response(&object, key_hash, &st.context_keys)
        }
        ClientReply::Strong { .. } | ClientReply::Keys(_) | ClientReply::Cluster(_) => {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the node answered twice wrapped; please report this",
            )
            .into_response()
        }
    };
    if let Some(leader) = leader
        && let Ok(v) = HeaderValue::try_from(leader.as_str())
    {
        resp.headers_mut().insert(LEADER_NAME.clone(), v);
    }
    Ok(resp)
}

/// The operation `method` asks for, with its parameters, context and value.
/// Reads the body of a `PUT` (up to the value limit).
async fn key_op(
    st: &AppState,
    method: Method,
    q: &KvQuery,
    headers: &HeaderMap,
    body: Body,
    key_hash: u64,
) -> Result<ClientOp, ApiError> {
    let value = match method {
        Method::GET | Method::HEAD => return Ok(ClientOp::Get { r: q.r, pr: q.pr }),
        Method::PUT => None,
        Method::DELETE => Some(Value::Tombstone),
        other => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{other} is not allowed on keys; use GET, PUT or DELETE"),
            ));
        }
    };
    // The context is checked before the body is read, as it always was.
    let context = context_from(headers, key_hash, &st.context_keys)?;
    let condition = condition_from(headers, key_hash, &st.context_keys)?;
    let value = match value {
        Some(tombstone) => tombstone,
        None => Value::Data(read_body(st.value_bytes_max, headers, body).await?),
    };
    if let Some(condition) = condition {
        return Ok(ClientOp::PutIf { value, condition });
    }
    Ok(ClientOp::Put {
        value,
        context,
        w: q.w,
        pw: q.pw,
    })
}

/// Queues `request` on the node loop and waits for its reply.
pub(super) async fn ask_node(
    st: &AppState,
    request: ClientRequest,
) -> Result<ClientReply, ApiError> {
    st.node
        .ask(request, st.timeout_ms)
        .await
        .map_err(|e| match e {
            AskError::Queue(QueueError::Full) => queue_full(),
            AskError::Queue(QueueError::Stopped) => node_stopped(),
            AskError::NoAnswer => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the node gave no answer in time; the request may or may not have been applied; retry",
            ),
        })
}

/// Sets the context header of `resp` to `vv`, bound to the key.
fn set_context(
    resp: &mut Response,
    vv: &ringkv_core::VersionVector,
    key_hash: u64,
    keys: &ContextKeys,
) {
    let token = context::encode(vv, key_hash, keys);
    resp.headers_mut().insert(
        CONTEXT_NAME.clone(),
        HeaderValue::try_from(token).expect("base64url is a valid header"),
    );
}

/// 404 when no sibling holds data (absent, or deleted, even by several
/// concurrent deletes), 300 with the siblings when there are several, 200
/// with the value otherwise. The context is bound to the key (`key_hash`).
fn read_response(object: &Object, key_hash: u64, keys: &ContextKeys) -> Response {
    let mut resp = if object.is_deleted() {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the key has no value (never written, or deleted)",
        )
        .into_response()
    } else if object.siblings.len() > 1 {
        let body = SiblingsBody {
            context: context::encode(&object.vv, key_hash, keys),
            siblings: object
                .siblings
                .iter()
                .map(|s| match &s.value {
                    Value::Data(b) => WireSibling::value(b),
                    Value::Tombstone => WireSibling::deleted(),
                })
                .collect(),
        };
        let text = serde_json::to_string(&body).expect("a siblings body always serializes");
        (
            StatusCode::MULTIPLE_CHOICES,
            [(header::CONTENT_TYPE, "application/json")],
            text,
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
        set_context(&mut resp, &object.vv, key_hash, keys);
    }
    resp
}

/// Reads a value of at most `limit` bytes.
/// It must arrive within [`super::REQUEST_TIMEOUT`] (`408` past it).
async fn read_body(limit: usize, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let read = read_limited(
        limit,
        "value",
        " (--value-bytes-max); store it in parts",
        headers,
        body,
    );
    tokio::time::timeout(super::REQUEST_TIMEOUT, read)
        .await
        .unwrap_or_else(|_| Err(super::error::request_timeout()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
