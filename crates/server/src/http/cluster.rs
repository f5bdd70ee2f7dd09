//! The pages about the node and the cluster: `/health`, `/metrics`,
//! `/v1/cluster`, `/v1/ring` and `/v1/ring/{bucket}/{key}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use ringkv_core::NodeId;
use ringkv_core::api::{
    ClusterStatus, GroupInfo, GroupsStatus, HintsStatus, KeyLocation, KeyNode, MemberDetail,
    MemberStatus, PartitionInfo, RingInfo,
};
use ringkv_core::hash::BucketKey;
use ringkv_node::membership::{Liveness, MemberInfo};

use super::error::{ApiError, node_stopped};
use super::{AppState, ServedNode, inspect_json, parse_bucket_key};
use crate::metrics::Snapshot;

/// `GET /health`: 200 while the node loop answers; 503 once it stopped,
/// or once its store failed (with why).
pub(crate) async fn health(State(st): State<Arc<AppState>>) -> Response {
    if let Some(why) = st.node.store_failure() {
        return store_failed(why).into_response();
    }
    let probe = st.node.inspect(|_| ());
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(())) => "ok\n".into_response(),
        _ => node_stopped().into_response(),
    }
}

/// The answer of `/health` once the node's store failed: `503`, the reason.
fn store_failed(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_failed",
        format!(
            "this node's store failed ({why}): it is out of service and its peers route around \
             it; check its disk (full, or failing), then restart it"
        ),
    )
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let snapshot = st.node.inspect(Snapshot::of).await;
    match snapshot {
        Ok(mut snapshot) => {
            snapshot.store_failed = st.node.store_failure().is_some();
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

/// `GET /v1/cluster`: this node, the members with their addresses and
/// liveness as this node sees them, the layout, the default quorums and
/// hinted handoff.
pub(crate) async fn cluster(State(st): State<Arc<AppState>>) -> Response {
    let addrs = Addresses {
        me: st.me.clone(),
        my_http: st.http_addr.clone(),
        peers: st.peers.http_addrs.lock().expect("lock").clone(),
    };
    inspect_json(&st, move |n| cluster_status(n, &addrs)).await
}

/// `GET /v1/groups`: the consensus groups of strong buckets this node
/// opened, with leader, term, indexes and snapshot size.
pub(crate) async fn groups(State(st): State<Arc<AppState>>) -> Response {
    let me = st.me.clone();
    inspect_json(&st, move |n| groups_status(n, &me)).await
}

/// The body of `GET /v1/groups`.
pub(crate) fn groups_status(n: &ServedNode, me: &NodeId) -> GroupsStatus {
    GroupsStatus {
        node: me.as_str().to_string(),
        proposals_in_flight: n.proposals_in_flight(),
        groups: n
            .groups()
            .into_iter()
            .map(|g| GroupInfo {
                active: g.active,
                applied: g.applied,
                commit: g.commit,
                elections: g.elections,
                leader: g.leader.map(|l| l.as_str().to_string()),
                log_entries: g.log_entries,
                partition: g.partition,
                snapshot_bytes: g.snapshot_bytes as u64,
                term: g.term,
            })
            .collect(),
    }
}

/// The HTTP addresses `GET /v1/cluster` shows, from outside the node loop.
struct Addresses {
    /// This node.
    me: NodeId,
    /// This node's HTTP address.
    my_http: String,
    /// What the transport learned about peers.
    peers: BTreeMap<NodeId, String>,
}

/// The body of `GET /v1/cluster`.
fn cluster_status(n: &ServedNode, addrs: &Addresses) -> ClusterStatus<MemberDetail> {
    let layout = n.layout();
    let cfg = n.config();
    let known = n.members();
    let mut members: Vec<_> = layout
        .members
        .iter()
        .map(|m| {
            let http = if m.id == addrs.me {
                Some(addrs.my_http.clone())
            } else {
                addrs
                    .peers
                    .get(&m.id)
                    .cloned()
                    .or_else(|| gossiped(n, &known, &m.id).map(|i| i.http_addr.clone()))
            };
            let replicated = (0..layout.ring_size)
                .filter(|&p| n.primaries(p).contains(&m.id))
                .count();
            let owned = layout.partitions_owned(&m.id);
            member(n, &known, &m.id, &m.rpc_addr, http, (owned, replicated))
        })
        .collect();
    // Members known through gossip only (joined with --join from outside
    // this node's layout): listed, but they own nothing.
    for (i, _) in known.iter().filter(|(i, _)| layout.member(&i.id).is_none()) {
        let http = Some(i.http_addr.clone());
        members.push(member(n, &known, &i.id, &i.rpc_addr, http, (0, 0)));
    }
    ClusterStatus {
        groups: Some(groups_status(n, &addrs.me).summary()),
        hints: Some(hints_status(n)),
        layout_version: layout.version,
        members,
        n: cfg.n as u64,
        node: addrs.me.as_str().to_string(),
        partitions_without_quorum: n.partitions_without_quorum() as u64,
        r: cfg.r as u64,
        read_repairs: n.stats().read_repairs,
        ring_size: layout.ring_size,
        w: cfg.w as u64,
    }
}

/// What gossip spread about `id`, when gossip reports on it.
fn gossiped<'a>(
    n: &ServedNode,
    known: &'a [(MemberInfo, Liveness)],
    id: &NodeId,
) -> Option<&'a MemberInfo> {
    n.gossip_liveness(id)?;
    known.iter().find(|(i, _)| &i.id == id).map(|(i, _)| i)
}

/// One member's entry, with its liveness as this node sees it (transport
/// and gossip) and as gossip alone reports it; `partitions` is (owned,
/// replicated).
fn member(
    n: &ServedNode,
    known: &[(MemberInfo, Liveness)],
    id: &NodeId,
    rpc_addr: &str,
    http_addr: Option<String>,
    partitions: (usize, usize),
) -> MemberDetail {
    let word = |l: Liveness| format!("{l:?}").to_lowercase();
    MemberDetail {
        status: MemberStatus {
            alive: n.is_live(id),
            http_addr,
            id: id.as_str().to_string(),
            incarnation: gossiped(n, known, id).map(|i| i.incarnation),
            liveness: Some(word(n.liveness(id))),
            partitions_owned: partitions.0 as u64,
            partitions_replicated: partitions.1 as u64,
            rpc_addr: rpc_addr.to_string(),
        },
        gossip: n.gossip_liveness(id).map(word),
    }
}

/// Hinted handoff on this node.
fn hints_status(n: &ServedNode) -> HintsStatus {
    let stats = n.stats();
    HintsStatus {
        by_target: n
            .hints_by_primary()
            .into_iter()
            .map(|(id, count)| (id.to_string(), count as u64))
            .collect(),
        delivered: stats.hints_delivered,
        full: n.hints_full(),
        hinted_writes: stats.hinted_writes,
        max: n.config().hints_max as u64,
        pending: n.hints_len() as u64,
        refused: stats.hints_refused,
    }
}

/// `GET /v1/ring`: the preference list of every partition.
pub(crate) async fn ring(State(st): State<Arc<AppState>>) -> Response {
    inspect_json(&st, |n| {
        let layout = n.layout();
        let partitions = (0..layout.ring_size)
            .map(|p| PartitionInfo {
                partition: p,
                preference_list: n.primaries(p).iter().map(|id| id.to_string()).collect(),
            })
            .collect();
        RingInfo {
            layout_version: layout.version,
            n: n.config().n as u64,
            partitions,
            ring_size: layout.ring_size,
        }
    })
    .await
}

/// `GET /v1/ring/{bucket}/{key}`: where a key lives. Its partition, then
/// every member in the order this node would use them for the key: the N
/// primaries first, then the fallbacks, each with its liveness as this node
/// sees it.
pub(crate) async fn locate(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let (bucket, key) = match parse_bucket_key(uri.path(), "/v1/ring/") {
        Ok(bk) => bk,
        Err(e) => return e.into_response(),
    };
    let key = BucketKey::new(bucket, key);
    inspect_json(&st, move |n| {
        let layout = n.layout();
        let p = key.partition(layout.ring_size);
        let primaries = n.primaries(p);
        let walk = layout.preference_list(p, layout.members.len());
        let nodes = walk
            .iter()
            .map(|id| KeyNode {
                alive: n.is_live(id),
                node: id.as_str().to_string(),
                role: if primaries.contains(id) {
                    "primary"
                } else {
                    "fallback"
                }
                .to_string(),
            })
            .collect();
        KeyLocation {
            bucket: String::from_utf8_lossy(&key.bucket).into_owned(),
            hash: format!("{:016x}", key.hash()),
            key: String::from_utf8_lossy(&key.key).into_owned(),
            layout_version: layout.version,
            n: n.config().n as u64,
            nodes,
            partition: p,
            ring_size: layout.ring_size,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_store_is_a_503_with_the_reason() {
        let resp = store_failed("No space left on device").into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "store_failed");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains("No space left on device"), "{message}");
        assert!(message.contains("restart"), "{message}");
    }
}
