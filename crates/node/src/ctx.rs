//! What the router lends a sub-machine for one input: the node's fixed
//! facts, the shared services (store, clock, request ids, counters) and the
//! output list ([`Ctx`]), and a read-only view of the other machines' state
//! ([`View`]). A sub-machine gets these by argument and never holds another
//! machine's fields.

use ringkv_core::bucket::BucketProps;
use ringkv_core::hash::BucketKey;
use ringkv_core::sloppy::choose_targets;
use ringkv_core::{Actor, Hlc, HlcClock, Layout, NodeId, Object, PartitionId};
use ringkv_storage::{Store, StoreError};

use crate::aae::Trees;
use crate::buckets::Buckets;
use crate::coordinator::Plan;
use crate::membership::Liveness;
use crate::peers::Peers;
use crate::{NodeConfig, NodeStats, Output};

/// How far ahead of our wall clock a peer's stamp may be before it is
/// clamped (see [`ringkv_core::HlcClock::observe`]).
pub const MAX_DRIFT_MS: u64 = 60_000;

/// The node's fixed facts and shared services, lent for one input.
pub(crate) struct Ctx<'a, S> {
    /// The time of the input, on the runtime's monotonic clock.
    pub(crate) now_ms: u64,
    pub(crate) cfg: &'a NodeConfig,
    /// This node's actor: the writer named in the dots it makes.
    pub(crate) actor: &'a Actor,
    pub(crate) layout: &'a Layout,
    pub(crate) store: &'a mut S,
    pub(crate) clock: &'a mut Clock,
    pub(crate) ids: &'a mut RequestIds,
    pub(crate) stats: &'a mut NodeStats,
    /// Latency of the replica requests this node coordinates, per leg.
    pub(crate) legs: &'a mut ringkv_core::legs::LegHistograms,
    /// The anti-entropy trees of the partitions that have one, kept
    /// current by every write of an eventual bucket's key.
    pub(crate) trees: &'a mut Trees,
    /// Where the outputs of this input go, in order.
    pub(crate) out: &'a mut Vec<Output>,
}

impl<S> Ctx<'_, S> {
    /// This node's id.
    pub(crate) fn me(&self) -> &NodeId {
        &self.cfg.id
    }
}

impl<S: Store> Ctx<'_, S> {
    /// Replaces the stored state of a key of an eventual bucket with `n`
    /// replicas, `old` with `new`, and keeps the partition's anti-entropy tree current.
    /// Every such write goes through here (strong buckets' keys are the
    /// consensus groups' and never in a tree).
    pub(crate) fn put_object(
        &mut self,
        partition: PartitionId,
        n: usize,
        key: &BucketKey,
        old: &Object,
        new: &Object,
    ) -> Result<(), StoreError> {
        self.store.put(partition, key, new)?;
        if !self.cfg.bugs.aae_stale_trees {
            self.trees.on_write(partition, n, key, old, new);
        }
        Ok(())
    }

    /// Removes a key of an eventual bucket whose stored state was `old`,
    /// keeping the partition's tree current.
    pub(crate) fn delete_object(
        &mut self,
        partition: PartitionId,
        n: usize,
        key: &BucketKey,
        old: &Object,
    ) -> Result<(), StoreError> {
        self.store.delete(partition, key)?;
        self.trees
            .on_write(partition, n, key, old, &Object::empty());
        Ok(())
    }
}

/// Read-only answers about the cluster as this node sees it: who is live
/// (from [`Peers`]), each bucket's properties (from [`Buckets`]), and where
/// a key's requests go.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub(crate) me: &'a NodeId,
    pub(crate) layout: &'a Layout,
    pub(crate) peers: &'a Peers,
    pub(crate) buckets: &'a Buckets,
}

impl View<'_> {
    /// Whether `peer` counts as reachable (this node always does).
    pub(crate) fn is_live(&self, peer: &NodeId) -> bool {
        self.peers.liveness(self.me, peer) == Liveness::Alive
    }

    /// The properties in force for `bucket`, with `n` capped by the number
    /// of members (a bucket cannot have more replicas than nodes).
    pub(crate) fn props(&self, bucket: &[u8]) -> BucketProps {
        let mut props = self.buckets.props(bucket);
        props.n = props.n.min(self.layout.members.len());
        props
    }

    /// Whether `bucket` is a strong bucket (its keys go through consensus).
    pub(crate) fn is_strong(&self, bucket: &[u8]) -> bool {
        bucket == ringkv_core::cluster::CLUSTER_BUCKET
            || self.buckets.props(bucket).consistency == ringkv_core::Consistency::Strong
    }

    /// The primaries and targets of a request on `partition` with `n`
    /// replicas, from this node's view of who is live.
    pub(crate) fn plan(&self, partition: PartitionId, n: usize) -> Plan {
        let members = self.layout.members.len();
        let n = n.min(members);
        let extended = self.layout.preference_list(partition, members);
        let sloppy = self.peers.hinted_handoff();
        let targets = choose_targets(&extended, n, sloppy, |x| self.is_live(x));
        Plan {
            primaries: extended[..n].to_vec(),
            targets,
        }
    }
}

/// The hybrid logical clock that stamps writes (last-write-wins order) and
/// bucket changes, with the wall-clock time the runtime last told us.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    hlc: HlcClock,
    wall_ms: Option<u64>,
    wall_us: Option<u64>,
}

impl Clock {
    /// Records the wall-clock time (ms since the Unix epoch).
    pub(crate) fn set_wall_ms(&mut self, wall_ms: u64) {
        self.wall_ms = Some(wall_ms);
    }

    /// Records the wall-clock time of the current input (µs since the Unix
    /// epoch), for the latency stamps of replica requests.
    pub(crate) fn set_wall_us(&mut self, wall_us: u64) {
        self.wall_us = Some(wall_us);
    }

    /// The stamp of a replica request's send or arrival, in µs: the wall
    /// clock of the current input (without one, `now_ms`: in a simulation
    /// every node shares that clock).
    pub(crate) fn stamp_us(&self, now_ms: u64) -> u64 {
        self.wall_us.unwrap_or(now_ms.saturating_mul(1_000))
    }

    /// A new stamp for a local event; without a wall clock, `now_ms` stands in.
    pub(crate) fn now(&mut self, now_ms: u64) -> Hlc {
        self.hlc.now(self.wall_ms.unwrap_or(now_ms))
    }

    /// Whether `stamp` is further ahead of our wall clock (without one,
    /// `now_ms`) than [`MAX_DRIFT_MS`]: metadata so stamped is refused.
    pub(crate) fn beyond_drift(&self, stamp: Hlc, now_ms: u64) -> bool {
        let wall = self.wall_ms.unwrap_or(now_ms);
        stamp.wall_ms() > wall.saturating_add(MAX_DRIFT_MS)
    }

    /// The wall-clock time the runtime last told us (without one, `now_ms`).
    pub(crate) fn wall_ms(&self, now_ms: u64) -> u64 {
        self.wall_ms.unwrap_or(now_ms)
    }

    /// Moves the clock past a peer's metadata stamp.
    pub(crate) fn observe(&mut self, stamp: Hlc, now_ms: u64) {
        let wall = self.wall_ms.unwrap_or(now_ms);
        self.hlc.observe(stamp, wall, MAX_DRIFT_MS);
    }

    /// Moves the clock past the newest timestamp of a replicated write, so
    /// that a later local write stamps above it.
    pub(crate) fn observe_write(&mut self, timestamp: u64) {
        let wall = self.wall_ms.unwrap_or(0).max(self.hlc.last().wall_ms());
        self.hlc
            .observe(Hlc::from_u64(timestamp), wall, MAX_DRIFT_MS);
    }
}

/// Ids of the requests this node sends (coordinated writes and reads,
/// forwards, handoffs): counted up from the config's fresh base, never reused
/// within a process start.
#[derive(Debug)]
pub(crate) struct RequestIds {
    next: u64,
}

impl RequestIds {
    /// Ids from `base` (0 counts as 1: id 0 means "no ack wanted").
    pub(crate) fn new(base: u64) -> Self {
        RequestIds { next: base.max(1) }
    }

    /// A new id.
    pub(crate) fn next(&mut self) -> u64 {
        let id = self.next;
        debug_assert!(id != 0 && id < u64::MAX, "request ids never wrap");
        self.next += 1;
        id
    }
}
