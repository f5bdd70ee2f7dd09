//! `GET /v1/kv/{bucket}?prefix=&after=&limit=&r=&timeout_ms=`: a page of a
//! bucket's keys, merged across R replicas of every partition
//! ([`ringkv_node::list`]), as [`KeysBody`].

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use ringkv_core::api::KeysBody;
use ringkv_core::hash::BucketKey;
use ringkv_core::list::{LIMIT_DEFAULT, LIMIT_MAX, ListQuery};
use ringkv_core::msg::{ClientOp, ClientReply, ClientRequest};
use ringkv_core::params::QuorumParam;

use super::AppState;
use super::error::ApiError;

/// The bucket of a listing path (`/v1/kv/{bucket}`, no key), or `None` when
/// the path names a key.
pub(super) fn list_bucket(rest: &str) -> Option<Vec<u8>> {
    (!rest.is_empty() && !rest.contains('/')).then(|| percent_decode_str(rest).collect())
}

/// Parses the listing's query string; anything unknown is an error.
fn parse(q: Option<&str>) -> Result<(ListQuery, Option<u64>), ApiError> {
    let mut query = ListQuery {
        prefix: Bytes::new(),
        after: None,
        limit: LIMIT_DEFAULT,
        r: None,
    };
    let mut timeout_ms = None;
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        // '+' is a plus, as in key paths (not form encoding's space).
        let raw: Vec<u8> = percent_decode_str(value).collect();
        let text = String::from_utf8_lossy(&raw).into_owned();
        match name {
            "prefix" => query.prefix = raw.into(),
            "after" => query.after = Some(raw.into()),
            "limit" => {
                query.limit = text.parse().map_err(|_| {
                    ApiError::bad(format!(
                        "limit={text:?} is not a number: give 1 to {LIMIT_MAX} keys per page"
                    ))
                })?
            }
            "r" => {
                query.r =
                    Some(QuorumParam::parse("r", &text).map_err(|e| ApiError::bad(e.to_string()))?)
            }
            "timeout_ms" => {
                timeout_ms = Some(text.parse().map_err(|_| {
                    ApiError::bad(format!(
                        "timeout_ms={text:?} is not a number of milliseconds"
                    ))
                })?)
            }
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter {name:?} for a key listing; known: prefix, after, \
                     limit, r, timeout_ms"
                )));
            }
        }
    }
    Ok((query, timeout_ms))
}

/// Answers a listing of `bucket`.
pub(super) async fn list(
    st: &AppState,
    method: &Method,
    bucket: Vec<u8>,
    q: Option<&str>,
) -> Result<Response, ApiError> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "a bucket's path takes GET only (a page of its keys); keys are \
             /v1/kv/{bucket}/{key}",
        ));
    }
    let (query, timeout_ms) = parse(q)?;
    let request = ClientRequest {
        key: BucketKey::new(bucket, Bytes::new()),
        op: ClientOp::List(query),
        timeout_ms,
    };
    match super::kv::ask_node(st, request).await? {
        ClientReply::Keys(page) => {
            let text = serde_json::to_string(&KeysBody::from_page(&page))
                .expect("a page of keys always serializes");
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                text,
            )
                .into_response())
        }
        ClientReply::Error(e) => Err(e.into()),
        _ => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the node answered a listing with something else; please report this",
        )),
    }
}
