//! `GET /v1/repair` (what anti-entropy is doing) and `POST /v1/repair`
//! (an operator's repair pass: queue exchanges ahead of the background
//! sweep), with `partition` and `bucket` to narrow it.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use ringkv_core::NodeId;
use ringkv_core::api::RepairStatus;

use super::error::{ApiError, node_stopped};
use super::{AppState, ServedNode, inspect_json};

/// What `POST /v1/repair` narrows the pass to.
#[derive(Debug, Default, PartialEq, Eq)]
struct RepairQuery {
    partition: Option<u32>,
    bucket: Option<Vec<u8>>,
}

/// Parses `partition` and `bucket`; anything else is an error.
fn parse_query(q: Option<&str>) -> Result<RepairQuery, ApiError> {
    let mut out = RepairQuery::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value: Vec<u8> = percent_decode_str(value).collect();
        match name {
            "partition" => {
                let text = String::from_utf8_lossy(&value);
                out.partition = Some(text.parse().map_err(|_| {
                    ApiError::bad(format!(
                        "partition={text:?} is not a partition number; see `ringkv ring`"
                    ))
                })?)
            }
            "bucket" if !value.is_empty() => out.bucket = Some(value),
            _ => {
                return Err(ApiError::bad(format!(
                    "unknown query parameter {name:?}; known: partition, bucket"
                )));
            }
        }
    }
    Ok(out)
}

/// The body of `GET /v1/repair`.
pub(crate) fn repair_status(n: &ServedNode, me: &NodeId) -> RepairStatus {
    let a = n.aae_status();
    let s = n.stats();
    RepairStatus {
        node: me.as_str().to_string(),
        queued_now: 0,
        queued: a.queued as u64,
        active: a.active as u64,
        exchanges: s.aae_exchanges,
        exchanges_in_sync: s.aae_exchanges_in_sync,
        keys_compared: s.aae_keys_compared,
        keys_sent: s.aae_keys_sent,
        keys_repaired: s.aae_keys_repaired,
        bytes_sent: s.aae_bytes_sent,
        trees_built: s.aae_tree_builds,
        tombstones_purged: s.tombstones_purged,
        trees_ready_after_ms: a.trees_ready_ms,
        partitions: a.partitions,
        oldest_sync_age_ms: a.oldest_sync_age_ms(),
    }
}

/// `GET /v1/repair`.
pub(crate) async fn repair_get(State(st): State<Arc<AppState>>) -> Response {
    let me = st.me.clone();
    inspect_json(&st, move |n| repair_status(n, &me)).await
}

/// `POST /v1/repair?partition=P&bucket=B`: queues this node's exchanges
/// (of every partition it is a replica of, or of `P`; of the trees holding
/// `B`'s keys, or of all) and answers at once with the status; the pass
/// runs in the background at the configured rate.
pub(crate) async fn repair_post(State(st): State<Arc<AppState>>, uri: Uri) -> Response {
    let q = match parse_query(uri.query()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let me = st.me.clone();
    let r = st
        .node
        .mutate(move |n, now, out| {
            let ring = n.layout().ring_size;
            if let Some(p) = q.partition
                && p >= ring
            {
                return Err(ApiError::bad(format!(
                    "partition={p} does not exist: the ring has partitions 0 to {}",
                    ring - 1
                )));
            }
            let queued = n.repair(now, q.partition, q.bucket.as_deref(), out);
            let mut status = repair_status(n, &me);
            status.queued_now = queued as u64;
            Ok(status)
        })
        .await;
    match r {
        Ok(Ok(status)) => (StatusCode::ACCEPTED, axum::Json(status)).into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(_) => node_stopped().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_a_partition_and_a_bucket_or_is_refused() {
        assert!(parse_query(None).is_ok_and(|q| q == RepairQuery::default()));
        let Ok(q) = parse_query(Some("partition=7&bucket=carts%2Fa")) else {
            panic!("a valid query refused")
        };
        assert_eq!(q.partition, Some(7));
        assert_eq!(q.bucket.as_deref(), Some(&b"carts/a"[..]));
        assert!(parse_query(Some("partition=x")).is_err());
        assert!(parse_query(Some("partition=-1")).is_err());
        assert!(parse_query(Some("force=1")).is_err());
    }
}
