//! `/v1/admin/faults`: test-only fault injection on this node's links to
//! its peers, served only when the node was started with
//! `--fault-injection` (see [`crate::faults`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ringkv_core::NodeId;

use super::AppState;
use super::error::ApiError;
use crate::faults::{Faults, LinkFault};

/// The fault table, or `404` when fault injection is off.
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
pub(crate) async fn faults_list(State(st): State<Arc<AppState>>) -> Response {
    match faults_of(&st) {
        Ok(f) => axum::Json(f.all()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/admin/faults`: heal every link.
pub(crate) async fn faults_clear_all(State(st): State<Arc<AppState>>) -> Response {
    match faults_of(&st) {
        Ok(f) => {
            f.clear_all();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `PUT /v1/admin/faults/{peer}` with `{"drop": 0..1, "delay_ms": N}`.
pub(crate) async fn fault_set(
    State(st): State<Arc<AppState>>,
    Path(peer): Path<String>,
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
pub(crate) async fn fault_clear(
    State(st): State<Arc<AppState>>,
    Path(peer): Path<String>,
) -> Response {
    match faults_of(&st) {
        Ok(f) => {
            f.clear(&NodeId::from(peer));
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::Method;

    use super::*;
    use crate::http::router;
    use crate::http::tests::{answer, stand_in_node, state};

    fn request(method: Method, uri: &str, body: &'static str) -> Request {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .unwrap()
    }

    #[tokio::test]
    async fn faults_are_set_listed_and_cleared() {
        let mut st = state(stand_in_node());
        st.faults = Some(Faults::default());
        let mut api = router(st);
        let put =
            |peer: &str, body| request(Method::PUT, &format!("/v1/admin/faults/{peer}"), body);
        let list = || request(Method::GET, "/v1/admin/faults", "");
        assert_eq!(
            answer(&mut api, put("n2", r#"{"drop": 1}"#)).await.0,
            StatusCode::NO_CONTENT
        );
        for refused in [
            put("n1", r#"{"drop": 1}"#),
            put("n3", r#"{"drop": 2}"#),
            put("n3", r#"{"loss": 1}"#),
        ] {
            assert_eq!(answer(&mut api, refused).await.0, StatusCode::BAD_REQUEST);
        }
        let (status, _, body) = answer(&mut api, list()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, r#"{"n2":{"delay_ms":0,"drop":1.0}}"#);
        let clear = request(Method::DELETE, "/v1/admin/faults/n2", "");
        assert_eq!(answer(&mut api, clear).await.0, StatusCode::NO_CONTENT);
        assert_eq!(answer(&mut api, list()).await.2, "{}");
    }

    #[tokio::test]
    async fn faults_are_not_found_when_injection_is_off() {
        let mut api = router(state(stand_in_node()));
        let (status, _, body) =
            answer(&mut api, request(Method::GET, "/v1/admin/faults", "")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let body: ringkv_core::api::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, "not_found");
    }
}
