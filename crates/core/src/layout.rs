//! Cluster layout: the members, which node owns each partition, and the
//! preference list of every partition.
//!
//! A layout is an immutable, versioned document. Version 1 is computed from the
//! initial members; later versions come from staged changes (see
//! [`crate::plan`]), committed through the cluster manager.

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

/// Longest allowed zone name, in bytes.
pub const ZONE_LEN_MAX: usize = 64;

/// Most members a layout may hold.
pub const MEMBERS_MAX: usize = 1024;

/// Largest capacity weight a member may be given.
pub const CAPACITY_MAX: u32 = 1_000_000;

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Stable node id.
    pub id: NodeId,
    /// Address peers connect to (`host:port`).
    pub rpc_addr: String,
    /// Failure domain (rack, room, data centre); empty when not set, and
    /// then the node counts as a zone of its own. Preference lists take
    /// distinct zones first.
    #[serde(default)]
    pub zone: String,
    /// Relative weight: a member owns partitions in proportion to it.
    #[serde(default = "default_capacity")]
    pub capacity: u32,
}

fn default_capacity() -> u32 {
    1
}

impl Member {
    /// A member without a zone, of capacity 1.
    pub fn new(id: NodeId, rpc_addr: impl Into<String>) -> Self {
        Member {
            id,
            rpc_addr: rpc_addr.into(),
            zone: String::new(),
            capacity: 1,
        }
    }

    /// Whether `self` and `other` share a failure domain: the same zone,
    /// or (without zones) the same node.
    pub fn same_zone(&self, other: &Member) -> bool {
        if self.zone.is_empty() || other.zone.is_empty() {
            self.id == other.id
        } else {
            self.zone == other.zone
        }
    }
}

/// Checks a zone name: empty (no zone), or up to [`ZONE_LEN_MAX`] ASCII
/// letters, digits, `-`, `_`, `.`.
pub fn check_zone(zone: &str) -> Result<(), LayoutError> {
    let ok = zone.len() <= ZONE_LEN_MAX
        && zone
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LayoutError::BadZone(zone.to_string()))
    }
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
    /// A zone name has characters or a length we do not accept.
    #[error(
        "zone {0:?} is not valid: use up to {ZONE_LEN_MAX} ASCII letters, digits, '-', '_' or '.'"
    )]
    BadZone(String),
    /// A capacity outside `1..=CAPACITY_MAX`.
    #[error("capacity {0} is not allowed: use a whole number from 1 to {CAPACITY_MAX}")]
    BadCapacity(u32),
    /// Owners that do not index the members, or members out of order.
    #[error("the layout's owners or members are malformed")]
    Malformed,
    /// More members than a layout may hold.
    #[error("a layout holds at most {MEMBERS_MAX} members; {0} were given")]
    TooManyMembers(usize),
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
    pub(crate) owners: Vec<u16>,
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
        check_members(&mut members)?;
        let s = members.len();
        let owners = (0..ring_size as usize).map(|p| (p % s) as u16).collect();
        Ok(Layout {
            version: 1,
            ring_size,
            members,
            owners,
        })
    }

    /// A layout with these members (checked, sorted by id) and owners
    /// (`owners[p]` indexes the sorted members).
    pub(crate) fn with_owners(
        version: u64,
        ring_size: u32,
        members: Vec<Member>,
        owners: Vec<u16>,
    ) -> Self {
        debug_assert_eq!(owners.len(), ring_size as usize);
        debug_assert!(owners.iter().all(|&o| (o as usize) < members.len()));
        Layout {
            version,
            ring_size,
            members,
            owners,
        }
    }

    /// Checks a layout that came from a peer or the store: its ring size,
    /// its members (valid, sorted, distinct) and that every owner indexes
    /// a member.
    pub fn check(&self) -> Result<(), LayoutError> {
        let q = self.ring_size;
        if !q.is_power_of_two() || !(RING_SIZE_MIN..=RING_SIZE_MAX).contains(&q) {
            return Err(LayoutError::BadRingSize(q));
        }
        let mut sorted = self.members.clone();
        check_members(&mut sorted)?;
        if sorted != self.members
            || self.owners.len() != q as usize
            || self
                .owners
                .iter()
                .any(|&o| o as usize >= self.members.len())
        {
            return Err(LayoutError::Malformed);
        }
        Ok(())
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
    /// (all owners when there are fewer than `n`), distinct zones first:
    /// the walk takes owners whose zone is not yet in the list, and only
    /// when the ring has no more zones does a second walk add the first
    /// owners not yet taken. The first is the partition's own owner.
    pub fn preference_list(&self, p: PartitionId, n: usize) -> Vec<NodeId> {
        self.preference_indexes(p, n)
            .into_iter()
            .map(|i| self.members[i as usize].id.clone())
            .collect()
    }

    /// [`Layout::preference_list`] as indexes into `members`.
    fn preference_indexes(&self, p: PartitionId, n: usize) -> Vec<u16> {
        let want = n.min(self.members.len()).min(self.ring_size as usize);
        let mut out: Vec<u16> = Vec::with_capacity(want);
        let q = self.ring_size;
        for distinct_zones in [true, false] {
            for i in 0..q {
                if out.len() == want {
                    return out;
                }
                let o = self.owners[((p + i) % q) as usize];
                let m = &self.members[o as usize];
                let taken = out
                    .iter()
                    .any(|&t| t == o || (distinct_zones && self.members[t as usize].same_zone(m)));
                if !taken {
                    out.push(o);
                }
            }
        }
        debug_assert_eq!(out.len(), want);
        out
    }

    /// How many distinct zones `p`'s preference list of `n` spans.
    pub fn zones_spanned(&self, p: PartitionId, n: usize) -> usize {
        let pl = self.preference_indexes(p, n);
        let mut spanned: Vec<&Member> = Vec::with_capacity(pl.len());
        for &i in &pl {
            let m = &self.members[i as usize];
            if !spanned.iter().any(|s| s.same_zone(m)) {
                spanned.push(m);
            }
        }
        spanned.len()
    }
}

/// Checks members for a layout and sorts them by id.
pub(crate) fn check_members(members: &mut [Member]) -> Result<(), LayoutError> {
    if members.is_empty() {
        return Err(LayoutError::NoMembers);
    }
    if members.len() > MEMBERS_MAX {
        return Err(LayoutError::TooManyMembers(members.len()));
    }
    for m in members.iter() {
        NodeId::parse(m.id.as_str())?;
        check_zone(&m.zone)?;
        if !(1..=CAPACITY_MAX).contains(&m.capacity) {
            return Err(LayoutError::BadCapacity(m.capacity));
        }
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    for w in members.windows(2) {
        if w[0].id == w[1].id {
            return Err(LayoutError::DuplicateNode(w[0].id.to_string()));
        }
    }
    Ok(())
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
            .map(|i| {
                Member::new(
                    NodeId::from(format!("n{i}")),
                    format!("127.0.0.1:{}", 7000 + i),
                )
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
