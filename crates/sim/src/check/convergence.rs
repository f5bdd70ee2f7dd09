//! The liveness check of anti-entropy: once faults have ended and the
//! cluster has run quietly, every replica of every key holds the same
//! state (invariant 3). Unlike the other checkers it reads the nodes'
//! stores at the end of a run, not the history.

use std::collections::BTreeMap;

use ringkv_core::hash::BucketKey;
use ringkv_core::{NodeId, Object};
use ringkv_storage::Store;

use crate::cluster::Cluster;
use crate::history::{History, OpKind, Outcome};

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
    /// Keys whose last write was an acknowledged delete of every value
    /// written before it, checked for resurrection.
    pub deleted_keys: u64,
    /// Of those, keys some running replica holds a value of again.
    pub resurrected: u64,
    /// The first few resurrected keys, with what came back.
    pub resurrected_examples: Vec<String>,
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

/// The keys whose last write is an acknowledged delete that removed every
/// value written before it: each other write of the key was acknowledged
/// before the delete started, and the delete's context covers it (a delete
/// without a context reads first, which sees every acknowledged write when
/// quorums are `strict`: R + W > N without fallbacks). Their state at the
/// end must hold no value on any replica.
pub fn deleted_keys(history: &History, strict: bool) -> BTreeMap<String, u64> {
    let mut by_key: BTreeMap<&str, Vec<&crate::history::Op>> = BTreeMap::new();
    for op in history.ops.iter().filter(|o| !o.strong) {
        if matches!(op.kind, OpKind::Put { .. } | OpKind::Delete { .. }) {
            by_key.entry(&op.key).or_default().push(op);
        }
    }
    let mut out = BTreeMap::new();
    for (key, writes) in by_key {
        let Some(d) = writes.iter().max_by_key(|o| o.invoke_ms) else {
            continue;
        };
        let OpKind::Delete { context } = &d.kind else {
            continue;
        };
        if !matches!(d.outcome, Outcome::Written { dot: Some(_), .. }) {
            continue;
        }
        if context.is_none() && !strict {
            continue;
        }
        let covered = writes.iter().filter(|w| w.id != d.id).all(|w| {
            let Outcome::Written { dot, .. } = &w.outcome else {
                return false;
            };
            let before = w.complete_ms.is_some_and(|c| c < d.invoke_ms);
            let seen = match (context, dot) {
                (Some(ctx), Some(dot)) => ctx.covers(dot),
                _ => true,
            };
            before && seen
        });
        if covered {
            out.insert(key.to_string(), d.id);
        }
    }
    out
}

/// Checks that no replica holds a value of a key [`deleted_keys`] names.
pub fn check_deleted(
    cluster: &Cluster,
    n: usize,
    history: &History,
    strict: bool,
    out: &mut Convergence,
) {
    let deleted = deleted_keys(history, strict);
    out.deleted_keys = deleted.len() as u64;
    let Some(layout) = (0..cluster.len())
        .find_map(|i| cluster.node(i))
        .map(|n| n.layout().clone())
    else {
        return;
    };
    for (key, op) in &deleted {
        let bk = BucketKey::new(&b"default"[..], key.clone().into_bytes());
        let p = bk.partition(layout.ring_size);
        let replicas = layout.preference_list(p, n);
        let mut back = vec![];
        for i in 0..cluster.len() {
            let Some(node) = cluster.node(i) else {
                continue;
            };
            if !replicas.contains(node.id()) {
                continue;
            }
            let o = node
                .store()
                .get(p, &bk)
                .expect("memory store reads")
                .unwrap_or_default();
            if !o.is_deleted() {
                back.push(format!("{} holds {} siblings", node.id(), o.siblings.len()));
            }
        }
        if !back.is_empty() {
            out.resurrected += 1;
            if out.resurrected_examples.len() < SHOWN_MAX {
                out.resurrected_examples.push(format!(
                    "key {key:?}, deleted by op {op}: {}",
                    back.join("; ")
                ));
            }
        }
    }
}
