//! The pages about the node and the cluster: `/health`, `/metrics`,
//! `/v1/cluster`, `/v1/ring` and `/v1/ring/{bucket}/{key}`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use ringkv_core::NodeId;
use ringkv_core::hash::BucketKey;
use serde_json::json;

use super::error::node_stopped;
use super::{AppState, parse_bucket_key};
use crate::metrics::Snapshot;

/// 200 while the node loop answers; 503 once it stopped.
pub(crate) async fn health(State(st): State<Arc<AppState>>) -> Response {
    let probe = st.node.inspect(|_| ());
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(())) => "ok\n".into_response(),
        _ => node_stopped().into_response(),
    }
}

pub(crate) async fn metrics(State(st): State<Arc<AppState>>) -> Response {
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

pub(crate) async fn cluster(State(st): State<Arc<AppState>>) -> Response {
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

pub(crate) async fn ring(State(st): State<Arc<AppState>>) -> Response {
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
pub(crate) async fn locate(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
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
