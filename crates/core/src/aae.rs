//! Anti-entropy hash trees: what two replicas of a partition compare to find
//! the keys on which they differ without sending the keys themselves.
//!
//! A tree is a fixed shape (as in Riak's "tictac" AAE): [`SEGMENTS`] leaf
//! segments under [`BRANCHES`] branches. A segment's hash is the XOR of the
//! hashes of its `(key, version digest)` pairs, and a branch's the XOR of
//! its segments'. XOR makes the tree cheap to keep current as writes land:
//! replacing a key's version XORs the old pair's hash out and the new one's
//! in, touching one segment and one branch, never rehashing a subtree. The
//! same set of pairs gives the same tree whatever the order of the writes.
//!
//! An exchange compares branches (256 bytes), then the segments of the
//! branches that differ, then the `(key, digest)` pairs of the segments that
//! differ, and ends with the keys on which the two sides differ: see
//! [`differing`] and [`diff_keys`].

use std::collections::BTreeMap;

use xxhash_rust::xxh3::xxh3_64;

use crate::hash::BucketKey;
use crate::version::Object;

/// Branches under a tree's root.
pub const BRANCHES: usize = 32;
/// Segments under each branch.
pub const SEGMENTS_PER_BRANCH: usize = 32;
/// Leaf segments of a tree.
pub const SEGMENTS: usize = BRANCHES * SEGMENTS_PER_BRANCH;

/// The digest of one replica's state of a key: equal states have equal
/// digests (objects are canonical: siblings sorted by dot, vectors ordered).
/// `None` for the empty object, which counts as "no key here".
pub fn object_digest(object: &Object) -> Option<u64> {
    if object.is_empty() {
        return None;
    }
    Some(xxh3_64(&object.to_bytes()))
}

/// The segment `key` falls in. The ring uses the top bits of the key's
/// hash to pick a partition; the segment uses the low bits, which are
/// independent of them, so each partition's keys spread over all segments.
pub fn segment_of(key: &BucketKey) -> usize {
    (key.hash() as usize) & (SEGMENTS - 1)
}

/// The hash a `(key, digest)` pair contributes to its segment.
fn leaf(key: &BucketKey, digest: u64) -> u64 {
    let mut buf = Vec::with_capacity(16 + key.bucket.len() + key.key.len());
    buf.extend_from_slice(&(key.bucket.len() as u64).to_be_bytes());
    buf.extend_from_slice(&key.bucket);
    buf.extend_from_slice(&key.key);
    buf.extend_from_slice(&digest.to_be_bytes());
    xxh3_64(&buf)
}

/// One replica's hash tree of one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicTacTree {
    segments: Vec<u64>,
    branches: Vec<u64>,
}

impl Default for TicTacTree {
    fn default() -> Self {
        TicTacTree {
            segments: vec![0; SEGMENTS],
            branches: vec![0; BRANCHES],
        }
    }
}

impl TicTacTree {
    /// The tree of an empty partition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `key`'s digest changed from `old` to `new` (`None`: no
    /// key). Both must be the truth: a stale `old` leaves the tree wrong
    /// until it is rebuilt.
    pub fn update(&mut self, key: &BucketKey, old: Option<u64>, new: Option<u64>) {
        if old == new {
            return;
        }
        let delta = old.map_or(0, |d| leaf(key, d)) ^ new.map_or(0, |d| leaf(key, d));
        let s = segment_of(key);
        self.segments[s] ^= delta;
        self.branches[s / SEGMENTS_PER_BRANCH] ^= delta;
    }

    /// The root: the XOR of every pair's hash. Equal roots mean, but for a
    /// 2^-64 chance, equal contents.
    pub fn root(&self) -> u64 {
        self.branches.iter().fold(0, |a, b| a ^ b)
    }

    /// The branches' hashes, [`BRANCHES`] of them.
    pub fn branches(&self) -> &[u64] {
        &self.branches
    }

    /// The hashes of branch `b`'s segments, [`SEGMENTS_PER_BRANCH`] of
    /// them; `None` when `b` is out of range (a peer's bad index).
    pub fn branch_segments(&self, b: usize) -> Option<&[u64]> {
        let start = b.checked_mul(SEGMENTS_PER_BRANCH)?;
        self.segments.get(start..start + SEGMENTS_PER_BRANCH)
    }
}

/// The indexes at which `ours` and `theirs` differ; `None` when their
/// lengths differ (a peer's malformed list).
pub fn differing(ours: &[u64], theirs: &[u64]) -> Option<Vec<usize>> {
    if ours.len() != theirs.len() {
        return None;
    }
    Some(
        ours.iter()
            .zip(theirs)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect(),
    )
}

/// The keys two replicas must exchange, from each side's `(key, digest)`
/// pairs of the segments that differ.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyDiff {
    /// Keys we hold that they lack or hold in another state: we send ours.
    pub send: Vec<BucketKey>,
    /// Keys they hold that we lack or hold in another state: they send
    /// theirs. (A key held differently by both is in both lists: each side
    /// merges the other's state, and merge makes them equal.)
    pub want: Vec<BucketKey>,
}

/// Compares our pairs with theirs (both for the same segments).
pub fn diff_keys(ours: &BTreeMap<BucketKey, u64>, theirs: &[(BucketKey, u64)]) -> KeyDiff {
    let theirs_map: BTreeMap<&BucketKey, u64> = theirs.iter().map(|(k, d)| (k, *d)).collect();
    let send = ours
        .iter()
        .filter(|(k, d)| theirs_map.get(k) != Some(d))
        .map(|(k, _)| k.clone())
        .collect();
    let want = theirs_map
        .iter()
        .filter(|(k, d)| ours.get(**k) != Some(d))
        .map(|(k, _)| (*k).clone())
        .collect();
    KeyDiff { send, want }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    fn k(i: u16) -> BucketKey {
        BucketKey::new("b", format!("k{i}").into_bytes())
    }

    fn tree_of(map: &BTreeMap<u16, u64>) -> TicTacTree {
        let mut t = TicTacTree::new();
        for (i, d) in map {
            t.update(&k(*i), None, Some(*d));
        }
        t
    }

    /// The segments found by descending: branches first, then the
    /// segments of the branches that differ.
    fn descend(a: &TicTacTree, b: &TicTacTree) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for br in differing(a.branches(), b.branches()).unwrap() {
            let (sa, sb) = (
                a.branch_segments(br).unwrap(),
                b.branch_segments(br).unwrap(),
            );
            for s in differing(sa, sb).unwrap() {
                out.insert(br * SEGMENTS_PER_BRANCH + s);
            }
        }
        out
    }

    proptest! {
        /// A tree kept current write by write equals the tree built from
        /// the final contents, whatever the order and however many
        /// overwrites and deletions.
        #[test]
        fn incremental_equals_rebuilt(
            ops in prop::collection::vec((0u16..200, prop::option::of(0u64..5)), 0..400)
        ) {
            let mut map = BTreeMap::new();
            let mut t = TicTacTree::new();
            for (i, d) in ops {
                let old = map.get(&i).copied();
                t.update(&k(i), old, d);
                match d {
                    Some(d) => { map.insert(i, d); }
                    None => { map.remove(&i); }
                }
            }
            prop_assert_eq!(&t, &tree_of(&map));
            prop_assert_eq!(t.root() == 0, map.is_empty());
        }

        /// Descending two trees finds exactly the segments of the keys on
        /// which the contents differ, and the key diff of those segments
        /// finds exactly those keys, each side's in its list.
        #[test]
        fn descent_finds_exactly_the_differing_keys(
            a in prop::collection::btree_map(0u16..3000, 0u64..3, 0..500),
            b in prop::collection::btree_map(0u16..3000, 0u64..3, 0..500),
        ) {
            let (ta, tb) = (tree_of(&a), tree_of(&b));
            let all: BTreeSet<u16> = a.keys().chain(b.keys()).copied().collect();
            let differ: BTreeSet<u16> =
                all.into_iter().filter(|i| a.get(i) != b.get(i)).collect();
            let want_segments: BTreeSet<usize> = differ.iter().map(|i| segment_of(&k(*i))).collect();
            let found = descend(&ta, &tb);
            prop_assert_eq!(&found, &want_segments);
            prop_assert_eq!(ta.root() == tb.root(), differ.is_empty());

            let in_found = |i: &u16| found.contains(&segment_of(&k(*i)));
            let ours: BTreeMap<BucketKey, u64> =
                a.iter().filter(|(i, _)| in_found(i)).map(|(i, d)| (k(*i), *d)).collect();
            let theirs: Vec<(BucketKey, u64)> =
                b.iter().filter(|(i, _)| in_found(i)).map(|(i, d)| (k(*i), *d)).collect();
            let diff = diff_keys(&ours, &theirs);
            let send: BTreeSet<BucketKey> = differ.iter().filter(|i| a.contains_key(i)).map(|i| k(*i)).collect();
            let want: BTreeSet<BucketKey> = differ.iter().filter(|i| b.contains_key(i)).map(|i| k(*i)).collect();
            prop_assert_eq!(diff.send.into_iter().collect::<BTreeSet<_>>(), send);
            prop_assert_eq!(diff.want.into_iter().collect::<BTreeSet<_>>(), want);
        }
    }

    #[test]
    fn bad_indexes_and_lengths_are_refused() {
        let t = TicTacTree::new();
        assert!(t.branch_segments(BRANCHES).is_none());
        assert!(t.branch_segments(usize::MAX).is_none());
        assert!(differing(&[1, 2], &[1]).is_none());
    }

    #[test]
    fn empty_object_has_no_digest_and_equal_objects_equal_digests() {
        use crate::version::{Actor, Value, VersionVector};
        assert_eq!(object_digest(&Object::empty()), None);
        let a = Actor {
            node: crate::NodeId::from("n1"),
            incarnation: 0,
        };
        let o = Object::empty();
        let dot = o.next_dot(&a, &VersionVector::new());
        let one = o.update(&VersionVector::new(), dot, Value::Data("x".into()), 1);
        assert_eq!(object_digest(&one), object_digest(&one.clone()));
        let tomb = one.update(
            one.context(),
            one.next_dot(&a, one.context()),
            Value::Tombstone,
            2,
        );
        assert_ne!(object_digest(&one), object_digest(&tomb));
    }
}
