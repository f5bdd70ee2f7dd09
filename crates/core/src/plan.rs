//! Layout changes: what an operator stages (a node joins, leaves, is
//! removed, moves zone), the next layout those changes make, and the plan
//! shown before it is committed: which partitions move, how much data each
//! node receives, the balance, and any partition whose replicas would share
//! a node or a zone.
//!
//! The next layout moves as few partitions as reaching the new balance
//! allows: every member gets a target share of the ring in proportion to
//! its capacity; partitions of departed members and the excess of members
//! over their target go to members under their target, and no other
//! partition changes owner. Among the candidates, a partition goes where
//! the receiving node (and its zone) is farthest from its other partitions
//! on the ring, so consecutive partitions keep distinct owners and
//! preference lists stay short walks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::hash::PartitionId;
use crate::layout::{CAPACITY_MAX, Layout, LayoutError, Member, NodeId, check_members, check_zone};

/// Most changes that may be staged at once.
pub const CHANGES_MAX: usize = 64;

/// How far (in partitions) placement looks for a node's or a zone's other
/// partitions: beyond the largest N worth planning for, distance no longer
/// matters.
const GAP_CAP: u32 = 8;

/// One staged change to the membership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// A new node takes a share of the ring.
    Join {
        /// Its id.
        id: NodeId,
        /// Where peers reach it.
        rpc_addr: String,
        /// Its zone (empty: none).
        #[serde(default)]
        zone: String,
        /// Its relative weight.
        #[serde(default = "one")]
        capacity: u32,
    },
    /// A member hands its partitions to the others, streaming its data to
    /// them, and then leaves.
    Leave {
        /// Its id.
        id: NodeId,
    },
    /// A member that is gone for good: its partitions are rebuilt on the
    /// others from the remaining replicas.
    Remove {
        /// Its id.
        id: NodeId,
    },
    /// A member's zone or capacity changes.
    Zone {
        /// Its id.
        id: NodeId,
        /// The new zone (empty: none).
        zone: String,
        /// The new capacity, if it changes.
        #[serde(default)]
        capacity: Option<u32>,
    },
}

fn one() -> u32 {
    1
}

impl Change {
    /// The node the change is about.
    pub fn node(&self) -> &NodeId {
        match self {
            Change::Join { id, .. }
            | Change::Leave { id }
            | Change::Remove { id }
            | Change::Zone { id, .. } => id,
        }
    }
}

/// Why staged changes cannot make a layout. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The resulting members are not a valid layout.
    #[error("{0}")]
    Layout(#[from] LayoutError),
    /// A join names a node that is already a member.
    #[error("node {0} is already a member; to change its zone or capacity stage `cluster zone`")]
    AlreadyMember(NodeId),
    /// A leave, remove or zone change names a node that is not a member.
    #[error("node {0} is not a member of the layout; `ringkv status` lists the members")]
    NotMember(NodeId),
    /// Two staged changes name the same node.
    #[error(
        "node {0} already has a staged change; `cluster plan` shows it, `cluster clear` drops it"
    )]
    Twice(NodeId),
    /// Too many changes at once.
    #[error("at most {CHANGES_MAX} changes may be staged at once; commit or clear some first")]
    TooMany,
    /// No change is staged.
    #[error("no change is staged: stage one with `cluster join`, `leave`, `remove` or `zone`")]
    Nothing,
    /// Every member would leave.
    #[error("the changes would leave the cluster without members; keep at least one")]
    Empty,
}

/// Checks one change on its own (ids, zone, capacity), before staging it.
pub fn check_change(change: &Change) -> Result<(), PlanError> {
    NodeId::parse(change.node().as_str())?;
    match change {
        Change::Join { zone, capacity, .. } => {
            check_zone(zone)?;
            check_capacity(*capacity)?;
        }
        Change::Zone { zone, capacity, .. } => {
            check_zone(zone)?;
            if let Some(c) = capacity {
                check_capacity(*c)?;
            }
        }
        Change::Leave { .. } | Change::Remove { .. } => {}
    }
    Ok(())
}

fn check_capacity(c: u32) -> Result<(), LayoutError> {
    if (1..=CAPACITY_MAX).contains(&c) {
        Ok(())
    } else {
        Err(LayoutError::BadCapacity(c))
    }
}

impl Layout {
    /// The layout `changes` make from this one, with the next version.
    /// Partitions move only as far as the new balance needs (see the
    /// module docs).
    pub fn next(&self, changes: &[Change]) -> Result<Layout, PlanError> {
        if changes.is_empty() {
            return Err(PlanError::Nothing);
        }
        if changes.len() > CHANGES_MAX {
            return Err(PlanError::TooMany);
        }
        let mut members = self.members.clone();
        let mut seen: Vec<&NodeId> = Vec::with_capacity(changes.len());
        for c in changes {
            check_change(c)?;
            if seen.contains(&c.node()) {
                return Err(PlanError::Twice(c.node().clone()));
            }
            seen.push(c.node());
            apply_change(&mut members, c)?;
        }
        if members.is_empty() {
            return Err(PlanError::Empty);
        }
        check_members(&mut members)?;
        let owners = reassign(self, &members);
        Ok(Layout::with_owners(
            self.version + 1,
            self.ring_size,
            members,
            owners,
        ))
    }

    /// Each member's target number of partitions: its capacity's share of
    /// the ring, rounded so that the targets add up to the ring size
    /// (largest remainders first, ties by id).
    pub fn targets(&self) -> Vec<u32> {
        targets(&self.members, self.ring_size)
    }
}

fn apply_change(members: &mut Vec<Member>, c: &Change) -> Result<(), PlanError> {
    let pos = members.iter().position(|m| &m.id == c.node());
    match (c, pos) {
        (Change::Join { id, .. }, Some(_)) => Err(PlanError::AlreadyMember(id.clone())),
        (
            Change::Join {
                id,
                rpc_addr,
                zone,
                capacity,
            },
            None,
        ) => {
            members.push(Member {
                id: id.clone(),
                rpc_addr: rpc_addr.clone(),
                zone: zone.clone(),
                capacity: *capacity,
            });
            Ok(())
        }
        (_, None) => Err(PlanError::NotMember(c.node().clone())),
        (Change::Leave { .. } | Change::Remove { .. }, Some(i)) => {
            members.remove(i);
            Ok(())
        }
        (Change::Zone { zone, capacity, .. }, Some(i)) => {
            members[i].zone = zone.clone();
            if let Some(c) = capacity {
                members[i].capacity = *c;
            }
            Ok(())
        }
    }
}

fn targets(members: &[Member], ring_size: u32) -> Vec<u32> {
    let total: u64 = members.iter().map(|m| u64::from(m.capacity)).sum();
    let q = u64::from(ring_size);
    let mut t: Vec<u32> = members
        .iter()
        .map(|m| (q * u64::from(m.capacity) / total) as u32)
        .collect();
    let given: u32 = t.iter().sum();
    let mut by_remainder: Vec<usize> = (0..members.len()).collect();
    // Larger remainder first; the sort is stable, so ties stay in id order.
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(q * u64::from(members[i].capacity) % total));
    for &i in by_remainder.iter().take((ring_size - given) as usize) {
        t[i] += 1;
    }
    t
}

/// The owners of the next layout: see the module docs.
fn reassign(old: &Layout, members: &[Member]) -> Vec<u16> {
    let q = old.ring_size;
    let index: BTreeMap<&NodeId, u16> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (&m.id, i as u16))
        .collect();
    let mut owners: Vec<Option<u16>> = (0..q).map(|p| index.get(old.owner(p)).copied()).collect();
    let target = targets(members, q);
    let mut count = vec![0u32; members.len()];
    for o in owners.iter().flatten() {
        count[*o as usize] += 1;
    }
    // Every step gives one partition to the member furthest under its
    // target; it ends when all are at target (the deficits add up to the
    // orphans plus the excess, so each step shrinks both sides).
    while let Some(to) = neediest(&count, &target) {
        let p = best_partition(&owners, members, &count, &target, to);
        if let Some(from) = owners[p as usize] {
            count[from as usize] -= 1;
        }
        owners[p as usize] = Some(to);
        count[to as usize] += 1;
    }
    owners
        .into_iter()
        .map(|o| o.expect("every partition was given an owner"))
        .collect()
}

/// The member furthest under its target (ties: lowest index), if any.
fn neediest(count: &[u32], target: &[u32]) -> Option<u16> {
    (0..count.len())
        .filter(|&i| count[i] < target[i])
        .max_by_key(|&i| (target[i] - count[i], std::cmp::Reverse(i)))
        .map(|i| i as u16)
}

/// The partition `to` should take: one without an owner if any is left,
/// else one of a member over its target; the one where `to` and its zone
/// are farthest from their other partitions (ties: the giver most over
/// target, then the lowest partition).
fn best_partition(
    owners: &[Option<u16>],
    members: &[Member],
    count: &[u32],
    target: &[u32],
    to: u16,
) -> PartitionId {
    let orphans = owners.iter().any(Option::is_none);
    let q = owners.len() as u32;
    (0..q)
        .filter(|&p| match owners[p as usize] {
            None => true,
            Some(o) => !orphans && count[o as usize] > target[o as usize],
        })
        .max_by_key(|&p| {
            let excess = owners[p as usize].map_or(0, |o| count[o as usize] - target[o as usize]);
            let node_gap = gap(owners, p, |o| o == to);
            let zone_gap = gap(owners, p, |o| {
                members[o as usize].same_zone(&members[to as usize])
            });
            (zone_gap, node_gap, excess, std::cmp::Reverse(p))
        })
        .expect("a member under target means a partition to give")
}

/// Distance from `p` to the nearest other partition whose owner matches,
/// looking at most [`GAP_CAP`] either way.
fn gap(owners: &[Option<u16>], p: PartitionId, matches: impl Fn(u16) -> bool) -> u32 {
    let q = owners.len() as u32;
    for d in 1..=GAP_CAP.min(q / 2) {
        let hit = |x: u32| owners[x as usize].is_some_and(&matches);
        if hit((p + d) % q) || hit((p + q - d) % q) {
            return d;
        }
    }
    GAP_CAP + 1
}

/// The size of one partition's data on a node, as far as it knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionSize {
    /// Keys.
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
}

/// One partition whose replica set changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The partition.
    pub partition: PartitionId,
    /// Its replicas now.
    pub from: Vec<NodeId>,
    /// Its replicas in the next layout.
    pub to: Vec<NodeId>,
}

/// What the plan means for one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodePlan {
    /// The node.
    pub id: NodeId,
    /// Its zone in the next layout (or now, if it leaves).
    pub zone: String,
    /// Its capacity in the next layout (0 if it leaves).
    pub capacity: u32,
    /// Partitions it owns now.
    pub owned_before: u32,
    /// Partitions it owns in the next layout.
    pub owned_after: u32,
    /// Partitions it holds a replica of now.
    pub replicas_before: u32,
    /// Partitions it holds a replica of in the next layout.
    pub replicas_after: u32,
    /// Partitions it must receive.
    pub receives: u32,
    /// Keys it must receive (from the sizes known).
    pub receive_keys: u64,
    /// Bytes it must receive (from the sizes known).
    pub receive_bytes: u64,
}

/// The plan for a layout change: shown by `cluster plan`, committed by
/// `cluster commit`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The version in force.
    pub from_version: u64,
    /// The version the commit makes.
    pub to_version: u64,
    /// Replicas per partition the plan was made for.
    pub n: usize,
    /// Partitions whose owner changes.
    pub owners_changed: u32,
    /// Partitions whose replica set changes.
    pub moves: Vec<Move>,
    /// Per node, in id order (members now and next).
    pub nodes: Vec<NodePlan>,
    /// Max minus min partitions owned per member, now.
    pub balance_before: u32,
    /// Max minus min partitions owned per member, next.
    pub balance_after: u32,
    /// Largest distance of any member from its capacity's share, next.
    pub off_target_after: u32,
    /// Partitions whose replicas would be fewer than N distinct nodes.
    pub short_of_nodes: Vec<PartitionId>,
    /// Partitions where one zone would hold more than one replica.
    pub shared_zones: Vec<PartitionId>,
    /// Whether partition sizes were known, so that the keys and bytes to
    /// receive mean something (they are 0 otherwise).
    pub sizes_known: bool,
}

impl Plan {
    /// The plan from `from` to `to` for `n` replicas, with what each node
    /// knows of its partitions' sizes (`sizes[p]`, zeros when unknown).
    pub fn new(from: &Layout, to: &Layout, n: usize, sizes: &[PartitionSize]) -> Plan {
        let q = from.ring_size.min(to.ring_size);
        let mut nodes = node_plans(from, to);
        let mut moves = Vec::new();
        let mut short_of_nodes = Vec::new();
        let mut shared_zones = Vec::new();
        for p in 0..q {
            let before = from.preference_list(p, n);
            let after = to.preference_list(p, n);
            for id in &before {
                plan_of(&mut nodes, id).replicas_before += 1;
            }
            let size = sizes.get(p as usize).copied().unwrap_or_default();
            for id in &after {
                let np = plan_of(&mut nodes, id);
                np.replicas_after += 1;
                if !before.contains(id) {
                    np.receives += 1;
                    np.receive_keys += size.keys;
                    np.receive_bytes += size.bytes;
                }
            }
            if after.len() < n {
                short_of_nodes.push(p);
            }
            if to.zones_spanned(p, n) < after.len() {
                shared_zones.push(p);
            }
            let (mut b, mut a) = (before.clone(), after.clone());
            b.sort();
            a.sort();
            if a != b {
                moves.push(Move {
                    partition: p,
                    from: before,
                    to: after,
                });
            }
        }
        let targets = to.targets();
        let off_target_after = to
            .members
            .iter()
            .zip(&targets)
            .map(|(m, &t)| (to.partitions_owned(&m.id) as u32).abs_diff(t))
            .max()
            .unwrap_or(0);
        Plan {
            from_version: from.version,
            to_version: to.version,
            n,
            owners_changed: (0..q).filter(|&p| from.owner(p) != to.owner(p)).count() as u32,
            moves,
            nodes,
            balance_before: balance(from),
            balance_after: balance(to),
            off_target_after,
            short_of_nodes,
            shared_zones,
            sizes_known: !sizes.is_empty(),
        }
    }
}

fn node_plans(from: &Layout, to: &Layout) -> Vec<NodePlan> {
    let mut nodes: BTreeMap<NodeId, NodePlan> = BTreeMap::new();
    for (layout, next) in [(from, false), (to, true)] {
        for m in &layout.members {
            let owned = layout.partitions_owned(&m.id) as u32;
            let np = nodes.entry(m.id.clone()).or_insert_with(|| NodePlan {
                id: m.id.clone(),
                zone: m.zone.clone(),
                capacity: 0,
                owned_before: 0,
                owned_after: 0,
                replicas_before: 0,
                replicas_after: 0,
                receives: 0,
                receive_keys: 0,
                receive_bytes: 0,
            });
            if next {
                np.zone = m.zone.clone();
                np.capacity = m.capacity;
                np.owned_after = owned;
            } else {
                np.owned_before = owned;
            }
        }
    }
    nodes.into_values().collect()
}

fn plan_of<'a>(nodes: &'a mut [NodePlan], id: &NodeId) -> &'a mut NodePlan {
    let i = nodes
        .binary_search_by(|n| n.id.cmp(id))
        .expect("every replica is a member of one of the layouts");
    &mut nodes[i]
}

/// Max minus min partitions owned per member.
pub fn balance(layout: &Layout) -> u32 {
    let counts = layout
        .members
        .iter()
        .map(|m| layout.partitions_owned(&m.id) as u32);
    let max = counts.clone().max().unwrap_or(0);
    let min = counts.min().unwrap_or(0);
    max - min
}

#[cfg(test)]
mod tests;
