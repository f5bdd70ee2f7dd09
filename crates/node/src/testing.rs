//! A fixture for testing one sub-machine on its own, without a [`Node`]:
//! it owns everything the router would lend a machine for one input (the
//! config, a 3-member layout, a [`MemStore`], the clock, request ids,
//! counters and the output list) plus a [`Peers`] and a [`Buckets`] to build
//! the [`View`] from. A test owns the machine under test, feeds it one input
//! through [`Fixture::run`] (or [`Fixture::run_peers`] /
//! [`Fixture::run_buckets`]), then checks the exact outputs
//! ([`Fixture::take_out`]) and the state afterwards: the machine's, the
//! store's and the counters.
//!
//! [`Node`]: crate::Node

use bytes::Bytes;
use ringkv_core::bucket::BucketProps;
use ringkv_core::hash::BucketKey;
use ringkv_core::{
    Actor, Dot, Layout, Limits, Member, NodeId, Object, PartitionId, Value, VersionVector,
};
use ringkv_storage::Store;
use ringkv_storage::memory::MemStore;

use crate::buckets::Buckets;
use crate::ctx::{Clock, Ctx, RequestIds, View};
use crate::membership::GossipConfig;
use crate::peers::Peers;
use crate::{NodeConfig, NodeStats, Output};

/// Partitions of the fixture's layout.
pub(crate) const RING_SIZE: u32 = 16;

/// Incarnation of every fixture node (so [`object`] can write as any of
/// them, this node's own actor included).
pub(crate) const INCARNATION: u32 = 1;

/// A node id.
pub(crate) fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

/// Key `k` of bucket `default`.
pub(crate) fn key(k: &str) -> BucketKey {
    BucketKey::new(
        Bytes::from_static(b"default"),
        Bytes::copy_from_slice(k.as_bytes()),
    )
}

/// The actor of node `node` in the fixture.
pub(crate) fn actor(node: &str) -> Actor {
    Actor {
        node: id(node),
        incarnation: INCARNATION,
    }
}

/// An object holding `value`, written by `writer` as its `counter`-th write
/// of the key, over nothing.
pub(crate) fn object(writer: &str, counter: u64, value: &str) -> Object {
    let dot = Dot {
        actor: actor(writer),
        counter,
    };
    let value = Value::Data(Bytes::copy_from_slice(value.as_bytes()));
    Object::empty().update(&VersionVector::new(), dot, value, 1_000 + counter)
}

/// One node's context and view, owned, for driving a sub-machine alone.
pub(crate) struct Fixture {
    /// The time of the next input.
    /// The legs the coordinator measured.
    pub(crate) legs: ringkv_core::legs::LegHistograms,
    pub(crate) now_ms: u64,
    pub(crate) cfg: NodeConfig,
    pub(crate) actor: Actor,
    pub(crate) layout: Layout,
    pub(crate) store: MemStore,
    pub(crate) clock: Clock,
    pub(crate) ids: RequestIds,
    pub(crate) stats: NodeStats,
    /// What the machines emitted so far (see [`Fixture::take_out`]).
    pub(crate) out: Vec<Output>,
    /// Liveness for the view; drive it with [`Fixture::run_peers`].
    pub(crate) peers: Peers,
    /// Bucket properties for the view; drive them with
    /// [`Fixture::run_buckets`].
    pub(crate) buckets: Buckets,
    /// Anti-entropy trees (none built unless a test builds them).
    pub(crate) trees: crate::aae::Trees,
}

impl Fixture {
    /// Node `me` (one of `n1`, `n2`, `n3`) with n = 3, r = w = 2.
    pub(crate) fn new(me: &str) -> Self {
        Self::with(me, |_| {})
    }

    /// Node `me` with the default config changed by `tweak` (before the
    /// buckets' defaults are taken from it).
    pub(crate) fn with(me: &str, tweak: impl FnOnce(&mut NodeConfig)) -> Self {
        let members = (1..=3)
            .map(|i| Member::new(id(&format!("n{i}")), format!("sim:{i}")))
            .collect();
        let layout = Layout::initial(members, RING_SIZE).expect("valid layout");
        let mut cfg = NodeConfig {
            id: id(me),
            incarnation: INCARNATION,
            n: 3,
            r: 2,
            w: 2,
            timeout_ms: 1_000,
            limits: Limits {
                key_bytes_max: 16,
                value_bytes_max: 64,
                siblings_max: 3,
                ..Limits::default()
            },
            pending_max: 100,
            bugs: Default::default(),
            request_id_base: 0,
            hints_max: 100,
            buckets_max: 100,
            handoff_interval_ms: 500,
            handoff_window: 4,
            gossip: GossipConfig::fast(),
            rpc_addr: layout
                .member(&id(me))
                .map(|m| m.rpc_addr.clone())
                .unwrap_or_default(),
            http_addr: String::new(),
            generation: 1,
            gossip_seed: 7,
            join: vec![],
            consensus: Default::default(),
            aae: Default::default(),
            hinted_handoff: true,
        };
        tweak(&mut cfg);
        cfg.validate(&layout).expect("valid fixture config");
        let defaults = BucketProps::defaults(cfg.n, cfg.r, cfg.w, cfg.limits.siblings_max);
        let store = MemStore::new();
        Fixture {
            now_ms: 0,
            legs: Default::default(),
            actor: Actor {
                node: cfg.id.clone(),
                incarnation: cfg.incarnation,
            },
            ids: RequestIds::new(cfg.request_id_base),
            peers: Peers::new(&cfg, &layout),
            buckets: Buckets::load(defaults, &store),
            clock: Clock::default(),
            stats: NodeStats::default(),
            out: Vec::new(),
            trees: Default::default(),
            cfg,
            layout,
            store,
        }
    }

    /// The context, and the peers and buckets machines, borrowed apart.
    fn parts(&mut self) -> (Ctx<'_, MemStore>, &mut Peers, &mut Buckets) {
        let ctx = Ctx {
            now_ms: self.now_ms,
            cfg: &self.cfg,
            actor: &self.actor,
            layout: &self.layout,
            store: &mut self.store,
            clock: &mut self.clock,
            ids: &mut self.ids,
            stats: &mut self.stats,
            legs: &mut self.legs,
            trees: &mut self.trees,
            out: &mut self.out,
        };
        (ctx, &mut self.peers, &mut self.buckets)
    }

    /// Runs `f` with the context and the view, as the router would for one
    /// input (for the replica, handoff and coordinator machines).
    pub(crate) fn run<R>(&mut self, f: impl FnOnce(&mut Ctx<'_, MemStore>, View<'_>) -> R) -> R {
        let (mut ctx, peers, buckets) = self.parts();
        let (cfg, layout) = (ctx.cfg, ctx.layout);
        let view = View {
            me: &cfg.id,
            layout,
            peers,
            buckets,
        };
        f(&mut ctx, view)
    }

    /// Runs `f` with the context and the fixture's peers machine.
    pub(crate) fn run_peers<R>(
        &mut self,
        f: impl FnOnce(&mut Ctx<'_, MemStore>, &mut Peers) -> R,
    ) -> R {
        let (mut ctx, peers, _) = self.parts();
        f(&mut ctx, peers)
    }

    /// Runs `f` with the context and the fixture's buckets machine.
    pub(crate) fn run_buckets<R>(
        &mut self,
        f: impl FnOnce(&mut Ctx<'_, MemStore>, &mut Buckets) -> R,
    ) -> R {
        let (mut ctx, _, buckets) = self.parts();
        f(&mut ctx, buckets)
    }

    /// The outputs emitted since the last call, in order.
    pub(crate) fn take_out(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// The transport reports `peer` unreachable: the view holds it Down.
    pub(crate) fn set_down(&mut self, peer: &str) {
        let event = self.run_peers(|ctx, p| p.on_status(ctx, id(peer), false));
        assert_eq!(event, None);
    }

    /// `key`'s partition.
    pub(crate) fn partition(&self, key: &BucketKey) -> PartitionId {
        key.partition(self.layout.ring_size)
    }

    /// The first `n` nodes of `key`'s preference list: its primaries for n
    /// replicas.
    pub(crate) fn primaries(&self, key: &BucketKey, n: usize) -> Vec<NodeId> {
        self.layout.preference_list(self.partition(key), n)
    }

    /// The first key `k0`, `k1`, ... whose primaries for `n` replicas satisfy
    /// `pred`.
    pub(crate) fn key_where(&self, n: usize, pred: impl Fn(&[NodeId]) -> bool) -> BucketKey {
        (0..1_000)
            .map(|i| key(&format!("k{i}")))
            .find(|k| pred(&self.primaries(k, n)))
            .expect("some key fits")
    }

    /// What the store holds for `key`.
    pub(crate) fn stored(&self, key: &BucketKey) -> Option<Object> {
        self.store
            .get(self.partition(key), key)
            .expect("memory store reads")
    }

    /// Stores `object` as `key`'s state, as if written earlier.
    pub(crate) fn store_object(&mut self, key: &BucketKey, object: &Object) {
        let p = self.partition(key);
        self.store.put(p, key, object).expect("memory store writes");
    }
}
