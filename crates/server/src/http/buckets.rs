//! `/v1/buckets`: bucket properties, read and set.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use ringkv_core::bucket::{BucketPatch, BucketProps};
use serde_json::json;

use super::error::{ApiError, node_stopped, queue_full};
use super::{AppState, read_limited};
use crate::runtime::{MutateError, QueueError};

/// Largest accepted body of `PUT /v1/buckets/{bucket}`, in bytes.
const BUCKET_BODY_MAX: usize = 64 * 1024;

/// The JSON document of one bucket: its name (lossy UTF-8), the properties
/// in force and whether they were set for it (`false`: the node's defaults).
pub(crate) fn bucket_json(bucket: &[u8], props: &BucketProps, set: bool) -> serde_json::Value {
    json!({
        "bucket": String::from_utf8_lossy(bucket),
        "props": props,
        "set": set,
    })
}

/// Decodes the bucket of `/v1/buckets/{bucket}` (one percent-encoded segment).
pub(crate) fn parse_bucket_path(path: &str) -> Result<Vec<u8>, ApiError> {
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
pub(crate) async fn buckets_list(State(st): State<Arc<AppState>>) -> Response {
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
pub(crate) async fn bucket_get(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
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
pub(crate) async fn bucket_set(
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
