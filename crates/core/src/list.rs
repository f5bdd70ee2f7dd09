//! Key listing: the query, what one replica answers for one partition, and
//! the merge of those answers into one page of keys.
//!
//! Keys are spread over partitions by hash, so a page of a bucket's keys in
//! key order is the merge of every partition's keys. The coordinator asks R
//! replicas of each partition for up to `limit` keys of the bucket after
//! `after` with the prefix, in key order ([`ReplicaPage`]), and merges them
//! with [`merge_pages`]. A replica sends each key with the *shape* of its
//! state ([`shape`]: the version vector and the siblings with their values
//! emptied), so whether a key is deleted is decided on the merged state of
//! the replies, exactly as a read would merge them, never on one replica's.
//!
//! A replica's page may stop before the end of its keys (it reached `limit`,
//! or [`REPLY_BYTES_MAX`]): past its last key the replica said nothing, so
//! the merged page only covers keys up to the smallest last key of the
//! pages that stopped short (the *horizon*). The page's `next` is then that
//! horizon or its last key, and a short page (or an empty one) with a `next`
//! is not the end: only a page without `next` is.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::bucket::ConflictMode;
use crate::lww::resolve_lww;
use crate::msg::ClientError;
use crate::params::{Limits, QuorumParam};
use crate::version::{Object, Value};

/// Keys a page has when the request names no `limit`.
pub const LIMIT_DEFAULT: u32 = 1000;

/// Most keys a page may have; a larger `limit` is refused.
pub const LIMIT_MAX: u32 = 10_000;

/// Bytes of keys and states after which a replica ends its page early
/// (marked incomplete), so that a reply stays far below the peer frame limit
/// whatever the key sizes: 10,000 keys of 1 KiB would not.
pub const REPLY_BYTES_MAX: usize = 1024 * 1024;

/// How many keys a listing of `limit` keys asks of each of `partitions`
/// partitions: about twice a partition's share of the page (keys are spread
/// evenly by hash), plus a margin, and never more than `limit`. Asking
/// every partition for `limit` keys would read and send `partitions` times
/// what the page needs; asking for less only makes a page shorter when a
/// partition's answer runs out first (its last key is the horizon, and the
/// next page goes on from there), never wrong.
pub fn per_partition_limit(limit: u32, partitions: u32) -> u32 {
    let share = limit.div_ceil(partitions.max(1));
    share.saturating_mul(2).saturating_add(8).min(limit)
}

/// A listing request: the keys of the request's bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only keys starting with these bytes (empty: every key).
    pub prefix: Bytes,
    /// Only keys after this one (exclusive): the `next` of the previous page.
    pub after: Option<Bytes>,
    /// Most keys in the page (1 to [`LIMIT_MAX`]).
    pub limit: u32,
    /// Replies to wait for per partition (default: the bucket's `r`).
    pub r: Option<QuorumParam>,
}

impl ListQuery {
    /// Whether `key` is one this query asks for (prefix and `after`).
    pub fn wants(&self, key: &[u8]) -> bool {
        key.starts_with(&self.prefix) && self.after.as_ref().is_none_or(|a| key > &a[..])
    }
}

/// Checks a listing query against the limits: `limit` in 1..=[`LIMIT_MAX`],
/// prefix and `after` no longer than a key may be.
pub fn check_query(q: &ListQuery, limits: &Limits) -> Result<(), ClientError> {
    if q.limit == 0 || q.limit > LIMIT_MAX {
        return Err(ClientError::BadRequest(format!(
            "limit={} is out of range: a page has 1 to {LIMIT_MAX} keys (default {LIMIT_DEFAULT}); \
             page through with `after` for more",
            q.limit
        )));
    }
    for (name, v) in [("prefix", Some(&q.prefix)), ("after", q.after.as_ref())] {
        if let Some(v) = v
            && v.len() > limits.key_bytes_max
        {
            return Err(ClientError::TooLarge(format!(
                "{name} is {} bytes, more than the key limit of {} (--key-bytes-max)",
                v.len(),
                limits.key_bytes_max
            )));
        }
    }
    Ok(())
}

/// One key as a replica lists it: the key and the shape of its state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The key (within the query's bucket).
    pub key: Bytes,
    /// The replica's state of the key with every value emptied ([`shape`]).
    pub object: Object,
}

/// What one replica answers for one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaPage {
    /// Keys wanted by the query, strictly increasing, tombstones included.
    pub entries: Vec<ListEntry>,
    /// Whether these are all the keys the replica holds that the query
    /// wants; when not, it said nothing about keys past its last one.
    pub complete: bool,
}

/// A page of keys, as the client gets it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPage {
    /// Keys holding a value, in key order.
    pub keys: Vec<Bytes>,
    /// Where the next page starts (pass it as `after`); `None` on the last.
    pub next: Option<Bytes>,
}

/// `o` with each value emptied: what a listing needs of a key's state to
/// merge replies (dots, version vector, timestamps, which siblings are
/// tombstones), without the values' bytes.
pub fn shape(o: &Object) -> Object {
    let mut s = o.clone();
    for sib in &mut s.siblings {
        if let Value::Data(_) = sib.value {
            sib.value = Value::Data(Bytes::new());
        }
    }
    s
}

/// Bytes an entry counts for toward [`REPLY_BYTES_MAX`] (an estimate of its
/// encoding, from above).
pub fn entry_bytes(e: &ListEntry) -> usize {
    let dots: usize = e
        .object
        .vv
        .iter()
        .map(|(a, _)| a.node.as_str().len() + 16)
        .sum();
    let sibs: usize = e
        .object
        .siblings
        .iter()
        .map(|s| s.dot.actor.node.as_str().len() + 32)
        .sum();
    e.key.len() + 8 + dots + sibs
}

/// Checks a replica's page for `q`: at most `limit` entries, keys strictly
/// increasing, each wanted by the query, no longer than `key_bytes_max`,
/// and an incomplete page is not empty. Says what is wrong.
pub fn check_page(q: &ListQuery, page: &ReplicaPage, key_bytes_max: usize) -> Result<(), String> {
    if page.entries.len() > q.limit as usize {
        return Err(format!(
            "{} keys, more than the {} asked",
            page.entries.len(),
            q.limit
        ));
    }
    if !page.complete && page.entries.is_empty() {
        return Err("an incomplete page without keys".into());
    }
    if let Some(e) = page.entries.iter().find(|e| e.key.len() > key_bytes_max) {
        return Err(format!("a key of {} bytes", e.key.len()));
    }
    if page.entries.iter().any(|e| !q.wants(&e.key)) {
        return Err("a key outside the prefix or not after `after`".into());
    }
    if page.entries.windows(2).any(|w| w[0].key >= w[1].key) {
        return Err("keys not strictly increasing".into());
    }
    Ok(())
}

/// Merges replicas' pages (of every partition, R or more per partition)
/// into the client's page of at most `limit` keys: the union of their keys
/// up to the horizon, each key's states merged as a read merges them
/// (resolved by `conflict`), the deleted ones dropped.
pub fn merge_pages<'a>(
    pages: impl IntoIterator<Item = &'a ReplicaPage>,
    conflict: ConflictMode,
    limit: u32,
) -> KeyPage {
    let limit = limit as usize;
    let pages: Vec<&ReplicaPage> = pages.into_iter().collect();
    // Past the last key of a page that stopped short, that replica said
    // nothing: a key there might be deleted on it.
    let horizon: Option<&Bytes> = pages
        .iter()
        .filter(|p| !p.complete)
        .filter_map(|p| p.entries.last().map(|e| &e.key))
        .min();
    let mut merged: BTreeMap<&Bytes, Object> = BTreeMap::new();
    for e in pages.iter().flat_map(|p| &p.entries) {
        if horizon.is_some_and(|h| e.key > *h) {
            continue;
        }
        merged
            .entry(&e.key)
            .and_modify(|o| *o = o.merge(&e.object))
            .or_insert_with(|| e.object.clone());
    }
    let mut live = merged.into_iter().filter(|(_, o)| {
        let o = match conflict {
            ConflictMode::Siblings => o.clone(),
            ConflictMode::Lww => resolve_lww(o),
        };
        !o.is_deleted()
    });
    let keys: Vec<Bytes> = live.by_ref().take(limit).map(|(k, _)| k.clone()).collect();
    let more_live = live.next().is_some();
    let next = if keys.len() == limit && (more_live || horizon.is_some()) {
        keys.last().cloned()
    } else if keys.len() < limit {
        horizon.cloned()
    } else {
        None
    };
    debug_assert!(keys.windows(2).all(|w| w[0] < w[1]), "a page is sorted");
    KeyPage { keys, next }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;
    use crate::layout::NodeId;
    use crate::version::{Actor, VersionVector};

    fn actor(i: usize) -> Actor {
        Actor {
            node: NodeId::from(format!("n{i}")),
            incarnation: 1,
        }
    }

    fn write(o: &Object, who: usize, ctx: &VersionVector, v: Value, ts: u64) -> Object {
        let dot = o.next_dot(&actor(who), ctx);
        o.update(ctx, dot, v, ts)
    }

    fn data() -> Value {
        Value::Data(Bytes::from_static(b"value"))
    }

    /// A replica's store: key -> state.
    type Replica = BTreeMap<Bytes, Object>;

    /// What a replica answers: the first `limit` wanted keys.
    fn answer(r: &Replica, q: &ListQuery) -> ReplicaPage {
        let mut wanted = r.iter().filter(|(k, _)| q.wants(k));
        let entries: Vec<ListEntry> = wanted
            .by_ref()
            .take(q.limit as usize)
            .map(|(k, o)| ListEntry {
                key: k.clone(),
                object: shape(o),
            })
            .collect();
        let complete = wanted.next().is_none();
        let page = ReplicaPage { entries, complete };
        assert_eq!(check_page(q, &page, 1024), Ok(()));
        page
    }

    /// Every page of a listing, paging through with `next`, replicas asked
    /// for `ask(limit)` keys each.
    fn list_all(parts: &[Vec<Replica>], prefix: &[u8], limit: u32) -> Vec<Bytes> {
        list_all_asking(parts, prefix, limit, limit)
    }

    fn list_all_asking(parts: &[Vec<Replica>], prefix: &[u8], limit: u32, ask: u32) -> Vec<Bytes> {
        let mut q = ListQuery {
            prefix: Bytes::copy_from_slice(prefix),
            after: None,
            limit,
            r: None,
        };
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let asked = ListQuery {
                limit: ask,
                ..q.clone()
            };
            let pages: Vec<ReplicaPage> = parts
                .iter()
                .flat_map(|reps| reps.iter().map(|r| answer(r, &asked)))
                .collect();
            let page = merge_pages(&pages, ConflictMode::Siblings, limit);
            assert!(page.keys.len() <= limit as usize);
            out.extend(page.keys);
            match page.next {
                Some(n) => {
                    assert!(q.after.as_ref().is_none_or(|a| n > *a), "a page moves on");
                    q.after = Some(n);
                }
                None => return out,
            }
        }
        panic!("the listing never ended");
    }

    #[test]
    fn deleted_is_decided_on_the_merged_state() {
        let ctx = VersionVector::new();
        let v = write(&Object::empty(), 0, &ctx, data(), 1);
        // Replica b deleted it with the context of a read; replica a has not
        // heard: merged, the key is deleted.
        let gone = write(&v, 1, &v.vv.clone(), Value::Tombstone, 2);
        let pages = [
            ReplicaPage {
                entries: vec![ListEntry {
                    key: "k".into(),
                    object: shape(&v),
                }],
                complete: true,
            },
            ReplicaPage {
                entries: vec![ListEntry {
                    key: "k".into(),
                    object: shape(&gone),
                }],
                complete: true,
            },
        ];
        assert_eq!(
            merge_pages(&pages, ConflictMode::Siblings, 10),
            KeyPage::default()
        );
        // A tombstone concurrent with the value leaves the value alive.
        let blind = write(&Object::empty(), 1, &ctx, Value::Tombstone, 3);
        let pages = [pages[0].clone(), {
            let mut p = pages[1].clone();
            p.entries[0].object = shape(&blind);
            p
        }];
        let page = merge_pages(&pages, ConflictMode::Siblings, 10);
        assert_eq!(page.keys, vec![Bytes::from("k")]);
        // ...unless the bucket is last-write-wins and the tombstone is newer.
        assert!(merge_pages(&pages, ConflictMode::Lww, 10).keys.is_empty());
    }

    #[test]
    fn a_page_stops_at_the_horizon_of_a_short_replica() {
        let e = |k: &str| ListEntry {
            key: Bytes::copy_from_slice(k.as_bytes()),
            object: write(&Object::empty(), 0, &VersionVector::new(), data(), 1),
        };
        let short = ReplicaPage {
            entries: vec![e("b")],
            complete: false,
        };
        let full = ReplicaPage {
            entries: vec![e("a"), e("c"), e("d")],
            complete: true,
        };
        let page = merge_pages([&short, &full], ConflictMode::Siblings, 5);
        assert_eq!(page.keys, vec![Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(page.next, Some(Bytes::from("b")));
        // Exactly `limit` keys and nothing after: the last page.
        let page = merge_pages([&full], ConflictMode::Siblings, 3);
        assert_eq!(page.next, None);
        let page = merge_pages([&full], ConflictMode::Siblings, 2);
        assert_eq!(page.next, Some(Bytes::from("c")));
    }

    #[test]
    fn bad_pages_are_refused() {
        let q = ListQuery {
            prefix: "a".into(),
            after: Some("ab".into()),
            limit: 2,
            r: None,
        };
        let e = |k: &'static str| ListEntry {
            key: k.into(),
            object: Object::empty(),
        };
        let page = |entries, complete| ReplicaPage { entries, complete };
        assert!(check_page(&q, &page(vec![e("ac"), e("ad")], false), 8).is_ok());
        assert!(check_page(&q, &page(vec![e("ad"), e("ac")], true), 8).is_err());
        assert!(check_page(&q, &page(vec![e("ab")], true), 8).is_err());
        assert!(check_page(&q, &page(vec![e("b")], true), 8).is_err());
        assert!(check_page(&q, &page(vec![e("ac"), e("ad"), e("ae")], true), 8).is_err());
        assert!(check_page(&q, &page(vec![], false), 8).is_err());
        assert!(check_page(&q, &page(vec![e("acccccccccc")], true), 8).is_err());
        let big = ListQuery {
            limit: LIMIT_MAX + 1,
            ..q.clone()
        };
        assert!(check_query(&big, &Limits::default()).is_err());
        assert!(check_query(&q, &Limits::default()).is_ok());
    }

    /// What replica `r` holds of a key, by the case drawn for it.
    fn state_of(case: u8, r: usize) -> Option<Object> {
        let ctx = VersionVector::new();
        let v = write(&Object::empty(), 0, &ctx, data(), 1);
        match case % 4 {
            0 => None,
            1 => Some(v),
            2 => Some(write(&v, r + 1, &v.vv.clone(), Value::Tombstone, 2)),
            _ => Some(write(&v, r + 1, &ctx, Value::Tombstone, 2)),
        }
    }

    proptest! {
        /// Paging through the merge of every partition's replicas' pages
        /// lists exactly the keys whose union state holds a value, in order.
        #[test]
        fn paging_the_merge_lists_the_union(
            keys in prop::collection::btree_map("[a-c]{1,4}", prop::collection::vec(0u8..4, 3), 0..60),
            limit in 1u32..12,
            prefix in "[a-c]{0,1}",
        ) {
            const PARTS: usize = 4;
            let mut parts: Vec<Vec<Replica>> = vec![vec![Replica::new(); 3]; PARTS];
            let mut expected = BTreeSet::new();
            for (k, cases) in &keys {
                let p = (crate::key_hash(b"b", k.as_bytes()) as usize) % PARTS;
                let mut union = Object::empty();
                for (r, case) in cases.iter().enumerate() {
                    if let Some(o) = state_of(*case, r) {
                        union = union.merge(&o);
                        parts[p][r].insert(Bytes::copy_from_slice(k.as_bytes()), o);
                    }
                }
                if !union.is_empty() && !union.is_deleted() && k.starts_with(&prefix) {
                    expected.insert(Bytes::copy_from_slice(k.as_bytes()));
                }
            }
            let listed = list_all(&parts, prefix.as_bytes(), limit);
            let expected: Vec<Bytes> = expected.into_iter().collect();
            prop_assert_eq!(&listed, &expected);
            // Replicas asked for fewer keys than the page: shorter pages,
            // the same listing.
            let ask = 1 + limit / 3;
            prop_assert_eq!(list_all_asking(&parts, prefix.as_bytes(), limit, ask), expected);
        }
    }
}
