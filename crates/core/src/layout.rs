//! Cluster layout: the members, which node owns each partition, and the
//! preference list of every partition.
//!
//! A layout is an immutable, versioned document. Version 1 is computed from the
//! initial members; later versions (joins and leaves) come with their own issue.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

use crate::hash::{PartitionId, RING_SIZE_MAX, RING_SIZE_MIN};

/// Longest allowed node id, in bytes.
pub const NODE_ID_LEN_MAX: usize = 64;

/// A stable node name such as `n1`: ASCII letters, digits, `-`, `_`, `.`.
///
/// Node ids are in every dot, version vector, quorum and peer message, and
/// are copied far more often than made, so the text is shared: a clone is a
/// reference count, not an allocation. On the wire and on disk it is a
/// string.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(Arc<str>);

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = NodeId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a node id")
            }
            // Borrowed and owned strings come here too, with one copy.
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NodeId, E> {
                Ok(NodeId::from(v))
            }
        }
        d.deserialize_str(Text)
    }
}

impl NodeId {
    /// Checks that `s` is a usable node id and wraps it.
    pub fn parse(s: &str) -> Result<Self, LayoutError> {
        let ok = !s.is_empty()
            && s.len() <= NODE_ID_LEN_MAX
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ok {
            Ok(NodeId::from(s))
        } else {
            Err(LayoutError::BadNodeId(s.to_string()))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        NodeId(Arc::from(s))
    }
}

impl From<String> for NodeId {
    fn from(s: String) -> Self {
        NodeId(Arc::from(s))
    }
}

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable node id.
    pub id: NodeId,
    /// Address peers connect to (`host:port`).
    pub rpc_addr: String,
}

/// Why a layout could not be built. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The ring size is not a power of two in the allowed range.
    #[error(
        "ring size {0} is not allowed: use a power of two from {RING_SIZE_MIN} to {RING_SIZE_MAX}"
    )]
    BadRingSize(u32),
    /// No members were given.
    #[error("a layout needs at least one member")]
    NoMembers,
    /// Two members share an id.
    #[error("node id {0} appears twice in the member list")]
    DuplicateNode(String),
    /// A node id has characters or a length we do not accept.
    #[error(
        "node id {0:?} is not valid: use 1 to {NODE_ID_LEN_MAX} ASCII letters, digits, '-', '_' or '.'"
    )]
    BadNodeId(String),
}

/// Which node owns each partition, for one version of the membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Increases with every change; every node adopts the highest it has seen.
    pub version: u64,
    /// Number of partitions (power of two).
    pub ring_size: u32,
    /// Members, sorted by id.
    pub members: Vec<Member>,
    /// `owners[p]` is the index in `members` of partition `p`'s owner.
    owners: Vec<u16>,
}

impl Layout {
    /// Layout version 1 from the initial members.
    ///
    /// Partition `p` goes to member `p mod S` (members sorted by id), so every
    /// node owns `floor(Q/S)` or `ceil(Q/S)` partitions and any `S` consecutive
    /// partitions that do not wrap past the end of the ring have distinct owners.
    /// Across the wrap, when `S` does not divide `Q`, a node can own two
    /// partitions fewer than `S` apart: no placement can avoid that (a cyclic
    /// sequence whose every window of `S` is distinct has period `S`). The
    /// preference list walks past such repeats, so it always holds `min(N, S)`
    /// distinct nodes.
    pub fn initial(mut members: Vec<Member>, ring_size: u32) -> Result<Self, LayoutError> {
        if !ring_size.is_power_of_two() || !(RING_SIZE_MIN..=RING_SIZE_MAX).contains(&ring_size) {
            return Err(LayoutError::BadRingSize(ring_size));
        }
        if members.is_empty() {
            return Err(LayoutError::NoMembers);
        }
        for m in &members {
            NodeId::parse(m.id.as_str())?;
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        for w in members.windows(2) {
            if w[0].id == w[1].id {
                return Err(LayoutError::DuplicateNode(w[0].id.to_string()));
            }
        }
        let s = members.len();
        let owners = (0..ring_size as usize).map(|p| (p % s) as u16).collect();
        Ok(Layout {
            version: 1,
            ring_size,
            members,
            owners,
        })
    }

    /// The owner of partition `p`.
    pub fn owner(&self, p: PartitionId) -> &NodeId {
        &self.members[self.owners[p as usize] as usize].id
    }

    /// The member with id `id`, if any.
    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.members.iter().find(|m| &m.id == id)
    }

    /// How many partitions `id` owns.
    pub fn partitions_owned(&self, id: &NodeId) -> usize {
        (0..self.ring_size).filter(|&p| self.owner(p) == id).count()
    }

    /// The first `n` distinct owners walking clockwise from partition `p`
    /// (all owners when there are fewer than `n`). The first is the
    /// partition's own owner.
    pub fn preference_list(&self, p: PartitionId, n: usize) -> Vec<NodeId> {
        let want = n.min(self.members.len()).min(self.ring_size as usize);
        let mut out: Vec<NodeId> = Vec::with_capacity(want);
        let q = self.ring_size;
        for i in 0..q {
            if out.len() == want {
                break;
            }
            let owner = self.owner((p + i) % q);
            if !out.contains(owner) {
                out.push(owner.clone());
            }
        }
        debug_assert_eq!(out.len(), want);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// A node id is a plain string on the wire, on disk and in JSON, so
        /// data and peers from before it was shared still read the same.
        #[test]
        fn node_ids_encode_as_strings(s in "[a-zA-Z0-9._-]{1,64}") {
            let id = NodeId::parse(&s).unwrap();
            let wire = postcard::to_stdvec(&id).unwrap();
            prop_assert_eq!(&wire, &postcard::to_stdvec(&s).unwrap());
            prop_assert_eq!(postcard::from_bytes::<NodeId>(&wire).unwrap(), id.clone());
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(&json, &serde_json::to_string(&s).unwrap());
            prop_assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), id);
        }
    }

    fn members(s: usize) -> Vec<Member> {
        (1..=s)
            .map(|i| Member {
                id: NodeId::from(format!("n{i}")),
                rpc_addr: format!("127.0.0.1:{}", 7000 + i),
            })
            .collect()
    }

    #[test]
    fn rejects_bad_ring_sizes() {
        for q in [0, 4, 7, 12, 8192] {
            assert_eq!(
                Layout::initial(members(3), q),
                Err(LayoutError::BadRingSize(q))
            );
        }
    }

    #[test]
    fn rejects_duplicates_and_bad_ids() {
        let mut m = members(2);
        m[1].id = m[0].id.clone();
        assert!(matches!(
            Layout::initial(m, 64),
            Err(LayoutError::DuplicateNode(_))
        ));
        let mut m = members(2);
        m[0].id = NodeId::from("bad id");
        assert!(matches!(
            Layout::initial(m, 64),
            Err(LayoutError::BadNodeId(_))
        ));
        assert_eq!(Layout::initial(vec![], 64), Err(LayoutError::NoMembers));
    }

    proptest! {
        #[test]
        fn balanced_and_distinct(s in 1usize..=20, bits in 3u32..=10, n in 1usize..=5) {
            let q = 1u32 << bits;
            let layout = Layout::initial(members(s), q).unwrap();
            let counts: Vec<usize> = layout.members.iter().map(|m| layout.partitions_owned(&m.id)).collect();
            let max = *counts.iter().max().unwrap();
            let min = *counts.iter().min().unwrap();
            prop_assert!(max - min <= 1, "counts {:?}", counts);
            prop_assert_eq!(counts.iter().sum::<usize>(), q as usize);
            for p in 0..q {
                let pl = layout.preference_list(p, n);
                prop_assert_eq!(pl.len(), n.min(s).min(q as usize));
                let mut d = pl.clone();
                d.sort();
                d.dedup();
                prop_assert_eq!(d.len(), pl.len());
                prop_assert_eq!(&pl[0], layout.owner(p));
                // Away from the wrap, the preference list is exactly the next
                // owners on the ring.
                if p as usize + pl.len() <= q as usize {
                    for (i, node) in pl.iter().enumerate() {
                        prop_assert_eq!(node, layout.owner(p + i as u32));
                    }
                }
            }
        }
    }
}
