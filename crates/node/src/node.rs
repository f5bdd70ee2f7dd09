//! The node: a thin router over its sub-machines.
//!
//! ```text
//!                 ┌──────────────────────── Node::handle ───────────────────────┐
//!  Input::Client ─┼─> Coordinator ── local reads/writes/hints ──> Replica       │
//!  Input::Peer   ─┼─> Coordinator (acks, replies, forwards) · Replica (writes,  │
//!                 │   reads) · Handoff (its acks) · Buckets · Peers (gossip)    │
//!  Input::Timer  ─┼─> Coordinator (deadlines) · Handoff (tick) · Peers (gossip) │
//!  PeerStatus    ─┼─> Peers                                                     │
//!                 │   PeerEvents (metadata, a peer back) ──> Buckets            │
//!                 │   silent targets of a deadline ──────> Peers                │
//!                 └──> Vec<Output>: Send, Reply, SetTimer, SendAddr, PeerAddr ──┘
//! ```
//!
//! Each sub-machine owns its state and is handed, per input, a `Ctx` (the
//! node's facts, the store, clock, request ids, counters and the output
//! list) and a read-only `View` of the others (liveness, bucket
//! properties). What one machine has to tell another comes back to the
//! router as a value, which hands it on. New machines (anti-entropy,
//! consensus groups, layout changes) plug in the same way: a field here, a
//! [`crate::Timer`] kind, and arms in [`Node::handle`]'s dispatch.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::bucket::{BucketEntry, BucketError, BucketPatch, BucketProps};
use ringkv_core::legs::LegHistograms;
use ringkv_core::msg::{ClientOp, PeerMsg};
use ringkv_core::{Actor, Layout, NodeId, PartitionId};
use ringkv_storage::Store;
use tracing::debug;

use crate::aae::{Aae, AaeStatus, Trees};
use crate::buckets::{Buckets, encode_entry};
use crate::config::{ConfigError, NodeConfig};
use crate::consensus::{Consensus, GroupStatus};
use crate::coordinator::{Coordinator, Origin, Plan};
use crate::ctx::{Clock, Ctx, RequestIds, View};
use crate::handoff::Handoff;
use crate::list::Lister;
use crate::manager::{self, Manager};
use crate::membership::{Liveness, MemberInfo, Membership};
use crate::peers::{PeerEvent, Peers};
use crate::replica::{Replica, ReplicaWrite};
use crate::{Input, NodeStats, Output, Timer};

/// A ringkv node: the router over its sub-machines, and its store.
pub struct Node<S: Store> {
    cfg: NodeConfig,
    actor: Actor,
    layout: Layout,
    store: S,
    clock: Clock,
    ids: RequestIds,
    stats: NodeStats,
    legs: LegHistograms,
    peers: Peers,
    buckets: Buckets,
    replica: Replica,
    handoff: Handoff,
    coord: Coordinator,
    consensus: Consensus,
    aae: Aae,
    trees: Trees,
    lister: Lister,
    manager: Manager,
    /// Whether [`Node::start`] ran (joins sent, handoff timer armed).
    started: bool,
}

/// The node taken apart for one input: the shared context and each
/// sub-machine, borrowed separately so that each can be handed to another.
struct Parts<'a, S> {
    ctx: Ctx<'a, S>,
    peers: &'a mut Peers,
    buckets: &'a mut Buckets,
    replica: &'a mut Replica,
    handoff: &'a mut Handoff,
    coord: &'a mut Coordinator,
    consensus: &'a mut Consensus,
    aae: &'a mut Aae,
    lister: &'a mut Lister,
    manager: &'a mut Manager,
}

/// A [`View`] of `p`'s peers and buckets, borrowing only those two fields.
macro_rules! view {
    ($p:expr) => {
        View {
            me: &$p.ctx.cfg.id,
            layout: $p.ctx.layout,
            peers: &*$p.peers,
            buckets: &*$p.buckets,
        }
    };
}

impl<S: Store> Node<S> {
    /// A node with its config, the cluster layout and its store. Refuses a
    /// config that cannot run (see [`NodeConfig::validate`]).
    pub fn new(cfg: NodeConfig, layout: Layout, store: S) -> Result<Self, ConfigError> {
        cfg.validate(&layout)?;
        let defaults = BucketProps::defaults(cfg.n, cfg.r, cfg.w, cfg.limits.siblings_max);
        let actor = Actor {
            node: cfg.id.clone(),
            incarnation: cfg.incarnation,
        };
        Ok(Node {
            actor,
            ids: RequestIds::new(cfg.request_id_base),
            peers: Peers::new(&cfg, &layout),
            buckets: Buckets::load(defaults, &store),
            replica: Replica::new(),
            handoff: Handoff::default(),
            coord: Coordinator::default(),
            consensus: Consensus::default(),
            aae: Aae::default(),
            trees: Trees::default(),
            lister: Lister::default(),
            manager: Manager::load(&store),
            clock: Clock::default(),
            stats: NodeStats::default(),
            legs: LegHistograms::default(),
            started: false,
            cfg,
            layout,
            store,
        })
    }

    fn parts<'a>(&'a mut self, now_ms: u64, out: &'a mut Vec<Output>) -> Parts<'a, S> {
        Parts {
            ctx: Ctx {
                now_ms,
                cfg: &self.cfg,
                actor: &self.actor,
                layout: &self.layout,
                store: &mut self.store,
                clock: &mut self.clock,
                ids: &mut self.ids,
                stats: &mut self.stats,
                legs: &mut self.legs,
                trees: &mut self.trees,
                out,
            },
            peers: &mut self.peers,
            buckets: &mut self.buckets,
            replica: &mut self.replica,
            handoff: &mut self.handoff,
            coord: &mut self.coord,
            consensus: &mut self.consensus,
            aae: &mut self.aae,
            lister: &mut self.lister,
            manager: &mut self.manager,
        }
    }

    /// Starts the background work: arms the handoff timer and announces
    /// this node to the layout's other members and the `join` addresses.
    /// Runs once; [`Node::handle`] calls it on the first input if the
    /// runtime did not call it before.
    pub fn start(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        if self.started {
            return;
        }
        self.started = true;
        let mut p = self.parts(now_ms, out);
        p.handoff.start(&mut p.ctx);
        p.aae.start(&mut p.ctx);
        p.manager.start(&mut p.ctx);
        let events = p.peers.join(&mut p.ctx);
        p.on_events(events);
    }

    /// Feeds one input; appends what the runtime must do to `out`.
    pub fn handle(&mut self, now_ms: u64, input: Input, out: &mut Vec<Output>) {
        self.start(now_ms, out);
        let mut p = self.parts(now_ms, out);
        match input {
            Input::Client { client_id, request } => p.on_client(client_id, request),
            Input::Peer { from, msg } => p.on_peer(from, msg),
            Input::Timer(timer) => p.on_timer(timer),
            Input::PeerStatus { peer, up } => {
                let events = p.peers.on_status(&mut p.ctx, peer, up);
                p.on_events(events.into_iter().collect());
            }
        }
        p.drain_internal();
        self.put_layout_in_force();
    }

    /// Puts the adopted cluster document's layout in force when it is
    /// newer and needs no data moved (the same members in the same
    /// places: a zone or capacity change that moved no replica).
    fn put_layout_in_force(&mut self) {
        let Some(state) = self.manager.state() else {
            return;
        };
        let next = &state.doc.layout;
        let same_members = next.members.len() == self.layout.members.len()
            && next
                .members
                .iter()
                .zip(&self.layout.members)
                .all(|(a, b)| a.id == b.id && a.rpc_addr == b.rpc_addr);
        if next.version > self.layout.version && same_members {
            tracing::info!(version = next.version, "layout in force");
            self.layout = next.clone();
        }
    }

    /// The cluster document this node adopted last (`None`: none yet;
    /// layout version 1 from the configuration is in force).
    pub fn cluster_state(&self) -> Option<&ringkv_core::cluster::ClusterState> {
        self.manager.state()
    }

    /// Starts a batch of inputs: the consensus groups' work (appends,
    /// ReadIndex rounds, fsync) waits for [`Node::end_batch`], so that every
    /// input of the batch shares it. Without a batch each input does its own.
    pub fn begin_batch(&mut self) {
        self.consensus.begin_batch();
    }

    /// Ends a batch started by [`Node::begin_batch`].
    pub fn end_batch(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let mut p = self.parts(now_ms, out);
        let view = view!(p);
        p.consensus.end_batch(&mut p.ctx, view);
        p.drain_internal();
        self.put_layout_in_force();
    }

    /// Applies `patch` to `bucket`'s properties and spreads the result to
    /// every member. Invalid properties are refused and change nothing.
    pub fn set_bucket(
        &mut self,
        now_ms: u64,
        bucket: Bytes,
        patch: &BucketPatch,
        out: &mut Vec<Output>,
    ) -> Result<BucketProps, BucketError> {
        let mut p = self.parts(now_ms, out);
        let entry = p.buckets.set(&mut p.ctx, bucket, patch)?;
        // Gossip carries it to every member, also those outside the layout.
        let (key, data) = encode_entry(&entry);
        let events = p
            .peers
            .broadcast(&mut p.ctx, &key, entry.stamp.to_u64(), data);
        p.on_events(events);
        p.buckets.send_to_members(&mut p.ctx, &entry);
        Ok(entry.props)
    }

    /// Queues an anti-entropy exchange of `partition` (every partition
    /// when `None`; with a `bucket`, of the trees holding its keys) with
    /// each of its other replicas, ahead of the background sweep; returns
    /// how many were queued. The exchanges run
    /// at the configured rate; [`Node::aae_status`] tells when they are
    /// done.
    pub fn repair(
        &mut self,
        now_ms: u64,
        partition: Option<PartitionId>,
        bucket: Option<&[u8]>,
        out: &mut Vec<Output>,
    ) -> usize {
        self.start(now_ms, out);
        let mut p = self.parts(now_ms, out);
        let view = view!(p);
        p.aae.repair(&mut p.ctx, view, partition, bucket)
    }

    /// Tells the node the wall-clock time (ms since the Unix epoch), which it
    /// stamps on the values it writes. Timers keep using the `now_ms` given to
    /// [`Node::handle`], a monotonic clock. Without it, stamps use `now_ms`.
    pub fn set_wall_clock_ms(&mut self, wall_ms: u64) {
        self.clock.set_wall_ms(wall_ms);
    }

    /// Tells the node the wall-clock time of the next input, in µs since the
    /// Unix epoch: the stamps that measure the legs of replica requests
    /// ([`ringkv_core::legs`]). One-way legs compare two nodes' clocks, so
    /// they are as exact as the clocks agree. Without it, stamps use `now_ms`.
    pub fn set_wall_clock_us(&mut self, wall_us: u64) {
        self.clock.set_wall_us(wall_us);
    }

    /// The latencies of the replica requests this node coordinated, per leg.
    pub fn legs(&self) -> &LegHistograms {
        &self.legs
    }
}

impl<S: Store> Parts<'_, S> {
    fn on_client(&mut self, client_id: crate::ClientId, request: ringkv_core::msg::ClientRequest) {
        let view = view!(self);
        if let ClientOp::Cluster(op) = request.op {
            let fx = self.manager.on_client(&mut self.ctx, client_id, op);
            return self.on_manager(fx);
        }
        if request.key.bucket.starts_with(b"~") {
            self.ctx.stats.rejected += 1;
            let e = ringkv_core::msg::ClientError::BadRequest(
                "bucket names starting with '~' are kept for ringkv's own data; choose another \
                 name"
                    .into(),
            );
            let reply = ringkv_core::msg::ClientReply::Error(e);
            return self.ctx.out.push(Output::Reply { client_id, reply });
        }
        if let ClientOp::List(_) = request.op {
            return self
                .lister
                .on_client(&mut self.ctx, view, client_id, request);
        }
        if view.is_strong(&request.key.bucket) {
            return self
                .consensus
                .on_client(&mut self.ctx, view, client_id, request);
        }
        self.coord.on_client(
            &mut self.ctx,
            view,
            self.replica,
            Origin::Client(client_id),
            request,
        )
    }

    /// Hands the consensus machine's answers to internal requests to the
    /// cluster manager, until no more come.
    fn drain_internal(&mut self) {
        for _round in 0..16 {
            let answers = self.consensus.take_internal();
            if answers.is_empty() {
                return;
            }
            for (id, reply) in answers {
                let fx = self.manager.on_reply(&mut self.ctx, id, reply);
                self.on_manager(fx);
            }
        }
    }

    /// Does what the cluster manager asked: requests on its document, and
    /// announcing a newer one.
    fn on_manager(&mut self, fx: manager::Effects) {
        if let Some(state) = fx.adopted {
            let data = state.version.to_le_bytes().to_vec();
            let events =
                self.peers
                    .broadcast(&mut self.ctx, manager::META_ANNOUNCE, state.version, data);
            self.on_events(events);
        }
        for (id, req) in fx.submit {
            let view = view!(self);
            self.consensus.submit(&mut self.ctx, view, id, req);
        }
    }

    // One arm per kind of message, exhaustive so a new kind cannot be
    // forgotten: long, but flat.
    #[allow(clippy::too_many_lines)]
    fn on_peer(&mut self, from: NodeId, msg: PeerMsg) {
        self.peers.heard_from(&from);
        if let PeerMsg::Gossip { data } = msg {
            let events = self.peers.on_gossip(&mut self.ctx, &data);
            return self.on_events(events);
        }
        if self.ctx.layout.member(&from).is_none() {
            // Known through gossip only (`--join` from outside the layout):
            // it takes no part in storing keys until a layout names it.
            debug!(peer = %from, "message from a node outside the layout dropped");
            return;
        }
        let view = view!(self);
        let (ctx, replica) = (&mut self.ctx, &mut *self.replica);
        match msg {
            PeerMsg::Forward { fwd_id, request } => {
                if self.coord.first_forward(&from, fwd_id) {
                    let origin = Origin::Forward { from, fwd_id };
                    self.coord.on_client(ctx, view, replica, origin, request)
                }
            }
            PeerMsg::ForwardReply { fwd_id, reply } => {
                self.coord.on_forward_reply(ctx, fwd_id, reply)
            }
            PeerMsg::ReplicaPut {
                req_id,
                key,
                object,
                stands_in_for,
                sent_us,
            } => {
                let write = ReplicaWrite {
                    req_id,
                    key,
                    object,
                    stands_in_for,
                    handoff: false,
                    sent_us,
                };
                replica.on_put(ctx, view, from, write)
            }
            PeerMsg::HandoffPut {
                req_id,
                key,
                object,
            } => {
                let write = ReplicaWrite {
                    req_id,
                    key,
                    object,
                    stands_in_for: None,
                    handoff: true,
                    sent_us: 0,
                };
                replica.on_put(ctx, view, from, write)
            }
            PeerMsg::ReplicaGet {
                req_id,
                key,
                sent_us,
            } => replica.on_get(ctx, from, (req_id, sent_us), key),
            PeerMsg::ReplicaPutAck { req_id, ok, .. } if self.handoff.owns(req_id) => {
                self.handoff.on_ack(ctx, view, replica, from, req_id, ok)
            }
            PeerMsg::ReplicaPutAck { req_id, ok, stamps } => {
                self.coord.on_put_ack(ctx, from, req_id, ok, stamps)
            }
            PeerMsg::ReplicaGetReply {
                req_id,
                object,
                stamps,
            } => self
                .coord
                .on_get_reply(ctx, view, replica, from, (req_id, stamps), object),
            PeerMsg::Bucket { entry } => self.buckets.on_entry(ctx, entry),
            PeerMsg::ClusterVersion { version } => self.manager.on_version(ctx, &from, version),
            PeerMsg::ClusterFetch => self.manager.on_fetch(ctx, from),
            PeerMsg::ClusterDoc { version, doc } => {
                let fx = self.manager.on_doc(ctx, &from, version, &doc);
                self.on_manager(fx);
            }
            PeerMsg::Raft { msgs } => self.consensus.on_raft(ctx, view, &from, msgs),
            PeerMsg::StrongForward {
                fwd_id,
                hops,
                request,
            } => self
                .consensus
                .on_forward(ctx, view, from, fwd_id, hops, request),
            PeerMsg::StrongReply { fwd_id, reply } => {
                self.consensus.on_forward_reply(ctx, &from, fwd_id, reply)
            }
            msg @ (PeerMsg::AaeBranches { .. }
            | PeerMsg::AaeSegments { .. }
            | PeerMsg::AaeKeys { .. }
            | PeerMsg::AaeWant { .. }
            | PeerMsg::AaePut { .. }
            | PeerMsg::AaeRootDiffers { .. }
            | PeerMsg::PurgeCheck { .. }
            | PeerMsg::PurgeHave { .. }
            | PeerMsg::Purge { .. }) => self.aae.on_msg(ctx, view, replica, from, msg),
            PeerMsg::List {
                req_id,
                partition,
                bucket,
                query,
            } => self
                .lister
                .on_list(ctx, view, from, req_id, partition, bucket, query),
            PeerMsg::ListReply {
                req_id,
                partition,
                page,
            } => self.lister.on_reply(ctx, from, req_id, partition, page),
            PeerMsg::Gossip { .. } => unreachable!("handled above"),
        }
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Request(id) => {
                let view = view!(self);
                let silent = self.coord.on_timer(&mut self.ctx, view, self.replica, id);
                if !silent.is_empty() {
                    let events = self.peers.suspect_silent(&mut self.ctx, &silent);
                    self.on_events(events);
                }
            }
            Timer::Handoff => {
                let view = view!(self);
                self.handoff.tick(&mut self.ctx, view, self.replica)
            }
            Timer::Gossip(token) => {
                let events = self.peers.on_timer(&mut self.ctx, token);
                self.on_events(events);
            }
            Timer::Strong(id) => self.consensus.on_deadline(&mut self.ctx, id),
            Timer::RaftTick => {
                let view = view!(self);
                self.consensus.on_tick(&mut self.ctx, view)
            }
            Timer::Aae => {
                let view = view!(self);
                self.aae.tick(&mut self.ctx, view)
            }
            Timer::List(id) => self.lister.on_deadline(&mut self.ctx, id),
            Timer::Manager => {
                let fx = self.manager.tick(&mut self.ctx);
                self.on_manager(fx);
            }
        }
    }

    /// Hands what the peers machine reported to the machines it concerns.
    fn on_events(&mut self, events: Vec<PeerEvent>) {
        for e in events {
            match e {
                PeerEvent::Metadata { key, data } if key == manager::META_ANNOUNCE => {
                    let fx = self.manager.on_announce(&mut self.ctx, &data);
                    self.on_manager(fx);
                }
                PeerEvent::Metadata { key, data } => {
                    self.buckets.on_metadata(&mut self.ctx, &key, &data)
                }
                PeerEvent::Back(peer) => {
                    self.buckets.send_to(&mut self.ctx, &peer);
                    // It may have missed the last announcement.
                    let version = self.manager.version();
                    if version > 0 {
                        self.ctx.out.push(Output::Send {
                            to: peer,
                            msg: PeerMsg::ClusterVersion { version },
                        });
                    }
                }
            }
        }
    }
}

/// Read-only accessors, for the runtime's status pages, metrics and tests.
impl<S: Store> Node<S> {
    fn view(&self) -> View<'_> {
        View {
            me: &self.cfg.id,
            layout: &self.layout,
            peers: &self.peers,
            buckets: &self.buckets,
        }
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.cfg.id
    }

    /// This node's config.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }

    /// The layout in force.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `peer`'s liveness as this node sees it: the worse of the transport's
    /// view (a link that is down counts as Down) and gossip's (unknown
    /// counts as Alive). This node itself is always Alive.
    pub fn liveness(&self, peer: &NodeId) -> Liveness {
        self.peers.liveness(&self.cfg.id, peer)
    }

    /// Whether this node believes `peer` reachable (itself always is): the
    /// transport's link to it is not down and gossip does not hold it
    /// Suspect or Down (see [`Node::liveness`]).
    pub fn is_live(&self, peer: &NodeId) -> bool {
        self.liveness(peer) == Liveness::Alive
    }

    /// `peer`'s liveness according to gossip alone; `None` if gossip never
    /// heard of it.
    pub fn gossip_liveness(&self, peer: &NodeId) -> Option<Liveness> {
        self.peers.membership().liveness(peer)
    }

    /// Every member this node knows, by id, with its [`Node::liveness`]:
    /// gossip's members (with the info they spread) and the layout's members
    /// gossip has not met (with their layout address, empty HTTP address and
    /// incarnation 0).
    pub fn members(&self) -> Vec<(MemberInfo, Liveness)> {
        self.peers.members(&self.cfg.id, &self.layout)
    }

    /// The gossip membership, read-only (tests, status pages).
    pub fn membership(&self) -> &Membership {
        self.peers.membership()
    }

    /// Replicas per key, capped by the cluster size.
    pub fn n(&self) -> usize {
        self.cfg.n.min(self.layout.members.len())
    }

    /// The properties in force for `bucket`: the ones set for it, or the
    /// node's defaults.
    pub fn bucket_props(&self, bucket: &[u8]) -> BucketProps {
        self.buckets.props(bucket)
    }

    /// Every consensus group this node has opened (strong buckets), with
    /// its leader, term, indexes and whether it ticks.
    pub fn groups(&self) -> Vec<GroupStatus> {
        self.consensus
            .status(&self.view(), self.cfg.consensus.idle_ticks)
    }

    /// What anti-entropy is doing: exchanges queued and in flight, and when
    /// each partition was last found in step with its other replicas.
    pub fn aae_status(&self) -> AaeStatus {
        self.aae.status()
    }

    /// Anti-entropy trees built so far.
    pub fn aae_trees(&self) -> usize {
        self.trees.len()
    }

    /// Proposals of strong writes this node made that wait to be applied.
    pub fn proposals_in_flight(&self) -> u64 {
        self.consensus.proposals_in_flight()
    }

    /// The defaults every bucket without properties of its own uses.
    pub fn default_props(&self) -> &BucketProps {
        self.buckets.defaults()
    }

    /// Every bucket whose properties were set, with its entry.
    pub fn buckets(&self) -> impl Iterator<Item = &BucketEntry> {
        self.buckets.entries()
    }

    /// The primaries and targets of a request on `partition`, from this
    /// node's view of who is live.
    pub fn plan(&self, partition: PartitionId, n: usize) -> Plan {
        self.view().plan(partition, n)
    }

    /// The primaries of partition `p`.
    pub fn primaries(&self, p: PartitionId) -> Vec<NodeId> {
        self.layout.preference_list(p, self.cfg.n)
    }

    /// Number of partitions whose live primaries are fewer than `max(r, w)`.
    pub fn partitions_without_quorum(&self) -> usize {
        let need = self.cfg.r.max(self.cfg.w);
        (0..self.layout.ring_size)
            .filter(|&p| {
                self.primaries(p)
                    .iter()
                    .filter(|id| self.is_live(id))
                    .count()
                    < need
            })
            .count()
    }

    /// Hints this node keeps, by the primary they are for (empty until the
    /// handoff job first loaded them from the store).
    pub fn hints_by_primary(&self) -> BTreeMap<NodeId, usize> {
        self.replica.hints_by_primary()
    }

    /// Hints this node keeps.
    pub fn hints_len(&self) -> usize {
        self.replica.hints_len()
    }

    /// Whether the hints reached `hints_max`: the node refuses writes as a
    /// fallback until handoff makes room.
    pub fn hints_full(&self) -> bool {
        self.replica.hints_full(self.cfg.hints_max)
    }

    /// Counters about this node's work.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Requests being coordinated or forwarded right now.
    pub fn pending(&self) -> usize {
        self.coord.pending()
    }

    /// Key listings being coordinated right now.
    pub fn listings_pending(&self) -> usize {
        self.lister.pending()
    }

    /// The store (the runtime flushes and syncs it).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The store, read-only.
    pub fn store(&self) -> &S {
        &self.store
    }
}
