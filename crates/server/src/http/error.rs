//! The API's errors: every refusal is JSON `{"error": code, "message":
//! text}` with a fitting status (README.md, "HTTP API v1"), and a refused
//! request changes nothing.

use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use ringkv_core::api::ErrorBody;
use ringkv_core::msg::ClientError;

/// An API error: status, code and a message that says what to do.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    counts: Option<(usize, usize)>,
    /// Says `"outcome": "unknown"` in the body.
    unknown: bool,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            counts: None,
            unknown: false,
        }
    }

    /// `400 bad_request`: a parameter, path or body the API cannot take.
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (required, acks) = match self.counts {
            Some((required, acks)) => (Some(required as u64), Some(acks as u64)),
            None => (None, None),
        };
        let body = ErrorBody {
            acks,
            error: self.code.to_string(),
            message: self.message,
            required,
            outcome: self.unknown.then(|| "unknown".to_string()),
        };
        error_response(self.status, &body)
    }
}

/// An error answer: `body` as JSON, with `status`.
fn error_response(status: StatusCode, body: &ErrorBody) -> Response {
    let text = serde_json::to_string(body).expect("an error body always serializes");
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
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
                unknown: false,
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
                unknown: false,
            },
            ClientError::BadRequest(m) => ApiError::bad(m),
            ClientError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            ClientError::TooLarge(m) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m)
            }
            ClientError::Overloaded(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", m)
            }
            ClientError::Internal(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
            }
            ClientError::PreconditionFailed { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the key is not at the version the condition names (If-Match), or exists \
                 (If-None-Match: *); nothing was written. X-Ringkv-Context has its current \
                 version: read it, and retry with that",
            ),
            ClientError::NoQuorum { reason } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_quorum",
                format!("{reason}; retry when a majority of the group's voters is up"),
            ),
            ClientError::PartitionsUnavailable { required, short } => {
                let acks = short.iter().map(|&(_, got)| got).min().unwrap_or(0);
                let named: Vec<String> = short
                    .iter()
                    .take(16)
                    .map(|(p, got)| format!("partition {p} ({got} of {required})"))
                    .collect();
                let more = short.len().saturating_sub(named.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                ApiError {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "unavailable",
                    message: format!(
                        "listing quorum not reached: {} partitions had fewer than the {required} \
                         required replies in time: {}{more}; nothing was changed; retry, or \
                         lower r",
                        short.len(),
                        named.join(", ")
                    ),
                    counts: Some((required, acks)),
                    unknown: false,
                }
            }
            ClientError::OutcomeUnknown { reason } => ApiError {
                unknown: true,
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown", reason)
            },
        }
    }
}

/// Gives the refusals of the tower layers (`408` request timeout, `413`
/// body over the limit), which have a plain or empty body, the API's JSON
/// error body; any other response passes unchanged.
pub(crate) fn json_layer_errors(resp: Response) -> Response {
    let status = resp.status();
    if !matches!(
        status,
        StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
    ) || resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        return resp;
    }
    if status == StatusCode::REQUEST_TIMEOUT {
        request_timeout().into_response()
    } else {
        ApiError::new(
            status,
            "too_large",
            format!(
                "the request body is over the limit of {} bytes for this route",
                super::SMALL_BODY_MAX
            ),
        )
        .into_response()
    }
}

/// `408`: the request took longer than [`super::REQUEST_TIMEOUT`].
pub(crate) fn request_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request was not received or answered within {} s; nothing was changed unless \
             it was a write already handed to the node; retry",
            super::REQUEST_TIMEOUT.as_secs()
        ),
    )
}

/// The answer to a path no route takes. The fault-injection routes exist
/// only on a node started with `--fault-injection`: asked for elsewhere,
/// the answer says so.
pub(crate) async fn not_found(uri: Uri) -> ApiError {
    if uri.path().starts_with("/v1/admin/faults") {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "fault injection is off; start the server with --fault-injection (test clusters only)",
        );
    }
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

/// The answer to a method the route of the path does not take.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
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

/// `503`: the node loop stopped (the node is shutting down).
pub(crate) fn node_stopped() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the node is shutting down; use another node",
    )
}

/// `503 overloaded`: the node loop's queue is full.
pub(crate) fn queue_full() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        "this node's request queue is full; retry later or use another node",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(resp: Response) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn quorum_errors_carry_the_counts_and_others_do_not() {
        let e = ApiError::from(ClientError::Unavailable {
            required: 2,
            acks: 1,
        });
        let message = serde_json::to_string(&e.message).unwrap();
        let resp = e.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_of(resp).await,
            format!(r#"{{"acks":1,"error":"unavailable","message":{message},"required":2}}"#)
        );
        let resp = ApiError::bad("no").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body_of(resp).await,
            r#"{"error":"bad_request","message":"no"}"#
        );
    }
}
