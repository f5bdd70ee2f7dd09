//! The cluster manager's routes: `GET /v1/cluster/layout` (the document),
//! `POST /v1/cluster/changes` (stage one), `DELETE /v1/cluster/changes[/NODE]`
//! (unstage), `GET /v1/cluster/plan` (what the staged changes would do) and
//! `POST /v1/cluster/commit?version=V`.
//!
//! Every one is a [`ClientOp::Cluster`] request to the node, which reads
//! and writes the document through its consensus group.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ringkv_core::NodeId;
use ringkv_core::cluster::{
    CLUSTER_BUCKET, CLUSTER_KEY, ChangeSpec, ClusterInfo, ClusterOp, ClusterState,
};
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientOp, ClientReply, ClientRequest};

use super::AppState;
use super::error::{ApiError, node_stopped};
use super::kv::ask_node;
use super::read_limited;

/// How long an operator's request may wait for the manager: a few
/// elections and compare-and-set rounds.
const MANAGER_TIMEOUT_MS: u64 = 20_000;

/// Largest body of a staged change.
const CHANGE_BODY_MAX: usize = 4096;

/// Sends `op` to the node's manager; the document after it.
async fn manager(st: &AppState, op: ClusterOp) -> Result<ClusterState, ApiError> {
    let request = ClientRequest {
        key: BucketKey::new(
            Bytes::from_static(CLUSTER_BUCKET),
            Bytes::from_static(CLUSTER_KEY),
        ),
        op: ClientOp::Cluster(op),
        timeout_ms: Some(MANAGER_TIMEOUT_MS),
    };
    match ask_node(st, request).await? {
        ClientReply::Cluster(state) => Ok(*state),
        ClientReply::Error(e) => Err(ApiError::from(e)),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the cluster manager answered {other:?}; please report this"),
        )),
    }
}

fn info(state: &ClusterState) -> Response {
    axum::Json(ClusterInfo::of(state)).into_response()
}

/// `GET /v1/cluster/layout`.
pub(crate) async fn layout_get(State(st): State<Arc<AppState>>) -> Response {
    match manager(&st, ClusterOp::Get).await {
        Ok(state) => info(&state),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/cluster/changes`: stages the change in the JSON body.
pub(crate) async fn change_post(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let staged = async {
        let body = read_limited(CHANGE_BODY_MAX, "a change", "", &headers, body).await?;
        let spec: ChangeSpec = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad(format!(
                "the change is not JSON like {{\"op\": \"join\", \"node\": \"n4\"}}: {e}"
            ))
        })?;
        // A join without an address takes the one the node announced.
        let members = st
            .node
            .inspect(|n| n.members())
            .await
            .map_err(|_| node_stopped())?;
        let known = |id: &NodeId| {
            members
                .iter()
                .find(|(m, _)| &m.id == id)
                .map(|(m, _)| m.rpc_addr.clone())
        };
        let change = spec.to_change(known).map_err(ApiError::bad)?;
        manager(&st, ClusterOp::Stage(change)).await
    };
    match staged.await {
        Ok(state) => info(&state),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/cluster/changes/{node}`: drops the change staged for it.
pub(crate) async fn change_delete(
    State(st): State<Arc<AppState>>,
    Path(node): Path<String>,
) -> Response {
    let id = match NodeId::parse(&node) {
        Ok(id) => id,
        Err(e) => return ApiError::bad(e.to_string()).into_response(),
    };
    match manager(&st, ClusterOp::Unstage(id)).await {
        Ok(state) => info(&state),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /v1/cluster/changes`: drops every staged change.
pub(crate) async fn changes_clear(State(st): State<Arc<AppState>>) -> Response {
    match manager(&st, ClusterOp::Clear).await {
        Ok(state) => info(&state),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/cluster/plan`: the plan of the staged changes.
pub(crate) async fn plan_get(State(st): State<Arc<AppState>>) -> Response {
    let plan = async {
        let state = manager(&st, ClusterOp::Get).await?;
        let n = st
            .node
            .inspect(|n| n.config().n)
            .await
            .map_err(|_| node_stopped())?;
        state
            .doc
            .plan(n, &[])
            .map_err(|e| ApiError::bad(e.to_string()))
    };
    match plan.await {
        Ok(plan) => axum::Json(plan).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/cluster/commit?version=V`: commits the staged changes, planned
/// against layout version `V`.
pub(crate) async fn commit_post(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let commit = async {
        let expected = parse_version(uri.query())?;
        manager(&st, ClusterOp::Commit { expected }).await
    };
    match commit.await {
        Ok(state) => info(&state),
        Err(e) => e.into_response(),
    }
}

fn parse_version(q: Option<&str>) -> Result<u64, ApiError> {
    let mut version = None;
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("version", v)) => {
                version = Some(v.parse().map_err(|_| {
                    ApiError::bad(format!("version={v:?} is not a layout version number"))
                })?)
            }
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter {pair:?}; known: version"
                )));
            }
        }
    }
    version.ok_or_else(|| {
        ApiError::bad(
            "give version=V: the layout version the plan was made from, as `cluster plan` \
             shows it (from_version)",
        )
    })
}
