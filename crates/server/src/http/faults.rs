//! `/v1/admin/faults`: test-only fault injection on this node's links to
//! its peers, served only when the node was started with
//! `--fault-injection` (see [`crate::faults`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ringkv_core::NodeId;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::faults::{Faults, LinkFault};

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
        Ok(f) => axum::Json(json!(f.all())).into_response(),
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
