//! `/v1/buckets`: bucket properties, read and set.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use percent_encoding::percent_decode_str;
use ringkv_core::api::{BucketInfo, BucketList};
use ringkv_core::bucket::{BucketError, BucketPatch};

use super::error::{ApiError, node_stopped, queue_full};
use super::{AppState, inspect_json, read_limited};
use crate::runtime::{MutateError, QueueError};

/// Largest accepted body of `PUT /v1/buckets/{bucket}`, in bytes.
const BUCKET_BODY_MAX: usize = 64 * 1024;

/// Decodes the bucket of `/v1/buckets/{bucket}` (one percent-encoded segment).
fn parse_bucket_path(path: &str) -> Result<Vec<u8>, ApiError> {
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
    inspect_json(&st, |n| BucketList {
        buckets: n
            .buckets()
            .map(|e| BucketInfo::new(&e.bucket, &e.props, true))
            .collect(),
        defaults: n.default_props().into(),
    })
    .await
}

/// `GET /v1/buckets/{bucket}`: the properties in force for a bucket.
/// `GET /v1/buckets/{bucket}/staleness` is answered by [`super::staleness`].
pub(crate) async fn bucket_get(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let rest = uri.path().strip_prefix("/v1/buckets/").unwrap_or("");
    if let Some(bucket) = rest.strip_suffix(super::staleness::SUFFIX) {
        return super::staleness::staleness(&st, bucket, uri.query()).await;
    }
    let bucket = match parse_bucket_path(uri.path()) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    inspect_json(&st, move |n| {
        let set = n.buckets().any(|e| e.bucket == bucket);
        BucketInfo::new(&bucket, &n.bucket_props(&bucket), set)
    })
    .await
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

/// Checks and applies the patch; the answer or the error.
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
                .map_err(bucket_refused)?;
            Ok(BucketInfo::new(&bucket, &props, true))
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

/// A bucket change the node refused: `409` when it conflicts with what is
/// in force (properties stamped ahead of this node's clock, or the bound on
/// buckets with properties reached), `400` when the properties are invalid.
fn bucket_refused(e: BucketError) -> ApiError {
    match e {
        BucketError::Superseded { .. } => {
            ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
        }
        BucketError::TooManyBuckets { .. } => {
            ApiError::new(StatusCode::CONFLICT, "too_many_buckets", e.to_string())
        }
        BucketError::ConsistencyFixed { .. } => {
            ApiError::new(StatusCode::CONFLICT, "consistency_fixed", e.to_string())
        }
        e => ApiError::bad(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::bucket::BucketProps;
    use serde_json::json;

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
            serde_json::to_value(BucketInfo::new(b"carts", &props, false)).unwrap(),
            json!({
                "bucket": "carts",
                "props": {"n": 3, "r": 2, "w": 2, "pr": 0, "pw": 0, "conflict": "siblings",
                          "consistency": "eventual", "siblings_warn": 25, "siblings_max": 100},
                "set": false,
            })
        );
    }

    #[test]
    fn refused_bucket_changes_are_errors_with_fitting_statuses() {
        let status = |e: BucketError| bucket_refused(e).into_response().status();
        let superseded = BucketError::Superseded {
            origin: "n2".into(),
            have: ringkv_core::Hlc::from_parts(2, 0),
            mine: ringkv_core::Hlc::from_parts(1, 0),
        };
        assert_eq!(status(superseded), StatusCode::CONFLICT);
        assert_eq!(
            status(BucketError::TooManyBuckets { max: 1 }),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status(BucketError::SiblingsMaxZero),
            StatusCode::BAD_REQUEST
        );
    }
}
