//! The liveness check of anti-entropy: once faults have ended and the
//! cluster has run quietly, every replica of every key holds the same
//! state (invariant 3). Unlike the other checkers it reads the nodes'
//! stores at the end of a run, not the history.

use std::collections::BTreeMap;

use ringkv_core::hash::BucketKey;
use ringkv_core::{NodeId, Object};
use ringkv_storage::Store;

use crate::cluster::Cluster;

/// Most divergent keys described in a report; the count is always exact.
const SHOWN_MAX: usize = 10;

/// What the convergence check found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Convergence {
    /// Keys (of eventual buckets) checked.
    pub keys: u64,
    /// Keys whose running replicas hold different states.
    pub divergent: u64,
    /// The first few of them, with each replica's state.
    pub examples: Vec<String>,
    /// Replicas that were down at the end (not compared).
    pub down: Vec<String>,
}

/// Compares, for every key any node stores, the states held by the key's
/// replicas (the first `n` of its preference list) that are running. A
/// replica that lacks the key counts as holding the empty state. Keys of
/// strong buckets are the consensus checkers' business and are skipped.
pub fn check(cluster: &Cluster, n: usize, strong_bucket: &[u8]) -> Convergence {
    let mut out = Convergence::default();
    let Some(layout) = (0..cluster.len())
        .find_map(|i| cluster.node(i))
        .map(|n| n.layout().clone())
    else {
        return out;
    };
    for i in 0..cluster.len() {
        if cluster.node(i).is_none() {
            out.down.push(cluster.id(i).to_string());
        }
    }
    for p in 0..layout.ring_size {
        let mut states: BTreeMap<BucketKey, BTreeMap<NodeId, Object>> = BTreeMap::new();
        for i in 0..cluster.len() {
            let Some(node) = cluster.node(i) else {
                continue;
            };
            let keys = node.store().scan_partition(p).expect("memory store scans");
            for (k, o) in keys {
                if &k.bucket[..] != strong_bucket {
                    states.entry(k).or_default().insert(node.id().clone(), o);
                }
            }
        }
        let replicas = layout.preference_list(p, n);
        for (key, held) in states {
            out.keys += 1;
            let running: Vec<&NodeId> = replicas
                .iter()
                .filter(|r| {
                    (0..cluster.len()).any(|i| cluster.node(i).is_some_and(|nd| nd.id() == *r))
                })
                .collect();
            let empty = Object::empty();
            if running.is_empty() {
                continue;
            }
            let first = held.get(running[0]).unwrap_or(&empty);
            if running
                .iter()
                .all(|r| held.get(*r).unwrap_or(&empty) == first)
            {
                continue;
            }
            out.divergent += 1;
            if out.examples.len() < SHOWN_MAX {
                let each: Vec<String> = running
                    .iter()
                    .map(|r| {
                        let o = held.get(*r).unwrap_or(&empty);
                        format!("{r}: {} siblings, vv {:?}", o.siblings.len(), o.vv)
                    })
                    .collect();
                out.examples.push(format!(
                    "key {:?} in partition {p}: {}",
                    String::from_utf8_lossy(&key.key),
                    each.join("; ")
                ));
            }
        }
    }
    out
}
