//! The ringkv node as a sans-IO state machine.
//!
//! ```text
//!   client request ─┐                     ┌─> Send { to, msg }      (runtime: TCP)
//!   peer message  ──┼─> Node::handle ─────┼─> Reply { client, .. }  (runtime: HTTP)
//!   timer / peer up ┘     (Store)         └─> SetTimer { id, at_ms } (runtime: clock)
//! ```
//!
//! `Node::handle(now_ms, input, &mut outputs)` is the only entry point. It
//! reads and writes its [`Store`] through the trait and never touches a socket,
//! a clock or a thread, so the same code runs under the tokio runtime and in the
//! deterministic simulator. The runtime must make the batch's writes durable
//! (`Store::flush`/`sync`) before it performs the outputs of that batch.
//!
//! # Layout
//! - `lib.rs`: inputs, outputs, config, dispatch.
//! - [`coordinator`]: GET, PUT and DELETE coordinators and forwarding.
//! - [`replica`]: what a replica does with the coordinators' messages.
//! - [`membership`]: gossip membership and SWIM failure detection (foca),
//!   self-contained.
//! - [`gossip`]: the glue between [`Node`] and [`membership`]: gossip
//!   packets and timers, liveness, suspicion from timed-out requests.
//! - [`buckets`]: bucket properties, spread to every node.
//! - [`handoff`]: hinted handoff, a fallback giving writes back to their
//!   primaries.
#![forbid(unsafe_code)]

pub mod buckets;
pub mod coordinator;
pub mod gossip;
pub mod handoff;
pub mod membership;
pub mod replica;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use ringkv_core::HlcClock;
use ringkv_core::bucket::{BucketEntry, BucketProps};
use ringkv_core::sloppy::Hint;

use ringkv_core::msg::{ClientReply, ClientRequest, PeerMsg};
use ringkv_core::{Actor, Layout, Limits, NodeId, PartitionId};
use ringkv_storage::Store;

use coordinator::Coord;
use membership::{GossipConfig, Liveness, MemberInfo, Membership};

/// Id of a client request, chosen by the runtime; echoed in its [`Output::Reply`].
pub type ClientId = u64;

/// Id of a timer, echoed in [`Input::Timer`].
pub type TimerId = u64;

/// Something that happened to the node.
#[derive(Clone, Debug)]
pub enum Input {
    /// A client request arrived.
    Client {
        /// The runtime's id for it.
        client_id: ClientId,
        /// The request.
        request: ClientRequest,
    },
    /// A peer sent a message.
    Peer {
        /// The sender.
        from: NodeId,
        /// The message.
        msg: PeerMsg,
    },
    /// A timer set by [`Output::SetTimer`] fired.
    Timer(TimerId),
    /// The transport reached a peer (connected) or lost it.
    PeerStatus {
        /// The peer.
        peer: NodeId,
        /// Whether it is reachable now.
        up: bool,
    },
}

/// Something the runtime must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a message to a peer (best effort: it may be lost).
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        msg: PeerMsg,
    },
    /// Answer a client request.
    Reply {
        /// The request.
        client_id: ClientId,
        /// The answer.
        reply: ClientReply,
    },
    /// Deliver [`Input::Timer`] with `id` at time `at_ms` (or later).
    SetTimer {
        /// Echoed back.
        id: TimerId,
        /// When, on the clock `handle` is given.
        at_ms: u64,
    },
    /// Send a message to an RPC address whose node id is not known yet
    /// (gossip join announces for `--join`). Best effort, like
    /// [`Output::Send`]; the receiver learns the sender's id from the
    /// connection's hello.
    SendAddr {
        /// The peer's RPC address (`host:port`).
        addr: String,
        /// The message.
        msg: PeerMsg,
    },
    /// Gossip told us where `peer` listens (a member appeared or its info
    /// changed). The runtime makes sure it can [`Output::Send`] to it: peers
    /// outside the layout are learned this way. Emitted before any `Send` of
    /// the same batch that may need it.
    PeerAddr {
        /// The member.
        peer: NodeId,
        /// Its RPC address.
        rpc_addr: String,
    },
}

/// What a node needs to know about itself and its defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node.
    pub id: NodeId,
    /// Incarnation of this node's data directory (see [`Actor`]).
    pub incarnation: u32,
    /// Replicas per key.
    pub n: usize,
    /// Default replies a read waits for.
    pub r: usize,
    /// Default acks a write waits for.
    pub w: usize,
    /// Default coordinator timeout, in ms.
    pub timeout_ms: u64,
    /// Size limits.
    pub limits: Limits,
    /// Most requests this node coordinates or forwards at once.
    pub pending_max: usize,
    /// Deliberate bugs, for proving that the simulator's checkers catch
    /// them. Always off outside those tests.
    pub bugs: InjectedBugs,
    /// First request id of this process start. Pick it fresh for every start
    /// (random, or a start counter shifted high) so that a peer's late reply
    /// to a request of a previous start can never match a new request.
    pub request_id_base: u64,
    /// Most hints this node keeps as a fallback. Past it the node refuses
    /// writes as a fallback (its disk is not a dumping ground for a long
    /// outage) and says so in its status.
    pub hints_max: usize,
    /// How often the handoff job looks for primaries that are back, in ms.
    pub handoff_interval_ms: u64,
    /// Handoff writes in flight per primary at once.
    pub handoff_window: usize,
    /// Timing of the gossip membership protocol ([`GossipConfig::lan`] for
    /// real clusters, [`GossipConfig::fast`] for tests and simulation).
    pub gossip: GossipConfig,
    /// This node's RPC address as peers reach it (spread by gossip).
    pub rpc_addr: String,
    /// This node's HTTP address (spread by gossip, for status pages).
    pub http_addr: String,
    /// Must grow with every process start of this node id (wall-clock ms at
    /// start in the server, simulated time in the simulator): a restarted
    /// node's gossip identity then supersedes its old one at once.
    pub generation: u64,
    /// Seed of the gossip protocol's random choices (whom to probe).
    pub gossip_seed: u64,
    /// RPC addresses to announce this node to at start (`--join`), besides
    /// the layout's members.
    pub join: Vec<String>,
}

/// Default for [`NodeConfig::hints_max`].
pub const HINTS_MAX_DEFAULT: usize = 1_000_000;
/// Default for [`NodeConfig::handoff_interval_ms`].
pub const HANDOFF_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default for [`NodeConfig::handoff_window`].
pub const HANDOFF_WINDOW_DEFAULT: usize = 64;

/// Deliberate protocol bugs a test can switch on to see a checker fail.
/// A checker that cannot fail is worthless; these prove ours can.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// Acknowledge a write as soon as the coordinator stored it, before W acks.
    pub ack_before_quorum: bool,
    /// Ignore the client's context on writes (lose its causal information).
    pub ignore_context: bool,
}

/// Longest timeout a client may ask for, in ms.
pub const TIMEOUT_MS_MAX: u64 = 600_000;

/// Counters a node keeps about its own work (exported as metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Reads this node coordinated.
    pub gets_coordinated: u64,
    /// Writes (and deletes) this node coordinated.
    pub puts_coordinated: u64,
    /// Requests forwarded to a primary.
    pub forwarded: u64,
    /// Requests that failed for lack of replies.
    pub unavailable: u64,
    /// Requests refused as invalid or too large.
    pub rejected: u64,
    /// Requests refused because too many were pending.
    pub overloaded: u64,
    /// Read-repair writes sent.
    pub read_repairs: u64,
    /// Replica writes applied for peers.
    pub replica_puts: u64,
    /// Storage errors seen.
    pub store_errors: u64,
    /// Writes this node stored as a fallback, with a hint.
    pub hinted_writes: u64,
    /// Hints handed off and confirmed by their primary.
    pub hints_delivered: u64,
    /// Writes refused as a fallback because the hints reached `hints_max`.
    pub hints_refused: u64,
    /// Fallback copies dropped after their last hint was delivered.
    pub handoff_drops: u64,
    /// Writes that left a key with more siblings than its bucket's
    /// `siblings_warn`.
    pub siblings_warned: u64,
    /// Gossip packets refused and dropped: malformed, too large, or from a
    /// stale identity of a peer.
    pub gossip_errors: u64,
}

/// A ringkv node: coordinators, replica logic and its store.
pub struct Node<S: Store> {
    cfg: NodeConfig,
    actor: Actor,
    layout: Layout,
    store: S,
    /// Peers the transport reports unreachable.
    down: BTreeSet<NodeId>,
    /// Peers reported reachable at least once (each gets our bucket
    /// properties when first heard up and whenever it comes back).
    heard_up: BTreeSet<NodeId>,
    next_id: u64,
    coords: BTreeMap<u64, Coord>,
    stats: NodeStats,
    /// Wall-clock time the runtime last told us, for write timestamps.
    wall_ms: Option<u64>,
    /// Forward ids recently taken from each peer, so that a duplicated
    /// forward is coordinated once (a second coordination would make a second
    /// write the client never hears of).
    seen_forwards: BTreeMap<NodeId, BTreeSet<u64>>,
    /// Hints this node keeps, mirrored from the store (`None` until loaded).
    hints: Option<BTreeSet<Hint>>,
    /// Handoff writes waiting for their primary's ack, by request id.
    handoffs: BTreeMap<u64, handoff::InFlight>,
    /// Whether the handoff timer is set.
    handoff_armed: bool,
    /// Properties of the buckets that have their own, by bucket name.
    buckets: BTreeMap<Bytes, BucketEntry>,
    /// Properties of every other bucket, from the config.
    default_props: BucketProps,
    /// Stamps writes (last-write-wins order) and bucket changes.
    hlc: HlcClock,
    /// Gossip membership and failure detection.
    membership: Membership,
    /// Gossip's last reported liveness per member (to see "alive again").
    gossip_seen: gossip::GossipSeen,
    /// Requests in a row each peer left unanswered (reset by any message
    /// from it): a peer is suspected after [`gossip::SILENT_TIMEOUTS`].
    silent: BTreeMap<NodeId, u32>,
    /// Whether [`Node::start`] ran (joins sent, handoff timer armed).
    started: bool,
}

/// Forward ids remembered per peer.
const SEEN_FORWARDS_MAX: usize = 4_096;

impl<S: Store> Node<S> {
    /// A node with its config, the cluster layout and its store.
    pub fn new(cfg: NodeConfig, layout: Layout, store: S) -> Self {
        assert!(
            cfg.n >= 1 && cfg.r >= 1 && cfg.w >= 1,
            "n, r, w must be at least 1"
        );
        assert!(
            layout.member(&cfg.id).is_some(),
            "node {} is not in the layout",
            cfg.id
        );
        let first_id = cfg.request_id_base.max(1);
        let default_props = BucketProps::defaults(cfg.n, cfg.r, cfg.w, cfg.limits.siblings_max);
        let buckets = match store.metas() {
            Ok(m) => buckets::load_buckets(m)
                .into_iter()
                .map(|e| (Bytes::from(e.bucket.clone()), e))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "could not load bucket properties; peers will resend them");
                BTreeMap::new()
            }
        };
        let actor = Actor {
            node: cfg.id.clone(),
            incarnation: cfg.incarnation,
        };
        let membership = Membership::new(
            MemberInfo {
                id: cfg.id.clone(),
                rpc_addr: cfg.rpc_addr.clone(),
                http_addr: cfg.http_addr.clone(),
                incarnation: cfg.incarnation,
                layout_version: layout.version,
                status: membership::MemberStatus::Active,
            },
            cfg.generation,
            cfg.gossip_seed,
            cfg.gossip.clone(),
        );
        Node {
            cfg,
            actor,
            layout,
            store,
            down: BTreeSet::new(),
            heard_up: BTreeSet::new(),
            next_id: first_id,
            seen_forwards: BTreeMap::new(),
            coords: BTreeMap::new(),
            stats: NodeStats::default(),
            wall_ms: None,
            hints: None,
            handoffs: BTreeMap::new(),
            handoff_armed: false,
            buckets,
            default_props,
            hlc: HlcClock::new(),
            membership,
            gossip_seen: Default::default(),
            silent: BTreeMap::new(),
            started: false,
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
        if !self.handoff_armed {
            self.handoff_armed = true;
            out.push(Output::SetTimer {
                id: handoff::TIMER,
                at_ms: now_ms + self.cfg.handoff_interval_ms,
            });
        }
        self.gossip_join(now_ms, out);
    }

    /// Feeds one input; appends what the runtime must do to `out`.
    pub fn handle(&mut self, now_ms: u64, input: Input, out: &mut Vec<Output>) {
        self.start(now_ms, out);
        match input {
            Input::Client { client_id, request } => self.on_client(
                now_ms,
                coordinator::Origin::Client(client_id),
                request,
                false,
                out,
            ),
            Input::Peer { from, msg } => self.on_peer(now_ms, from, msg, out),
            Input::Timer(id) => self.on_timer(now_ms, id, out),
            Input::PeerStatus { peer, up } => {
                if up {
                    if (self.down.remove(&peer) || !self.heard_up.contains(&peer))
                        && self.layout.member(&peer).is_some()
                    {
                        self.heard_up.insert(peer.clone());
                        self.send_buckets(&peer, out);
                    }
                } else if peer != self.cfg.id {
                    self.down.insert(peer);
                }
            }
        }
    }

    fn on_peer(&mut self, now_ms: u64, from: NodeId, msg: PeerMsg, out: &mut Vec<Output>) {
        if !self.silent.is_empty() {
            self.silent.remove(&from);
        }
        if let PeerMsg::Gossip { data } = msg {
            return self.on_gossip(now_ms, &data, out);
        }
        if self.layout.member(&from).is_none() {
            // Known through gossip only (`--join` from outside the layout):
            // it takes no part in storing keys until a layout names it.
            tracing::debug!(peer = %from, "message from a node outside the layout dropped");
            return;
        }
        match msg {
            PeerMsg::Forward { fwd_id, request } => {
                if self.first_forward(&from, fwd_id) {
                    let origin = coordinator::Origin::Forward { from, fwd_id };
                    self.on_client(now_ms, origin, request, true, out)
                }
            }
            PeerMsg::ForwardReply { fwd_id, reply } => self.on_forward_reply(fwd_id, reply, out),
            PeerMsg::ReplicaPut {
                req_id,
                key,
                object,
                stands_in_for,
            } => self.replica_put(from, req_id, key, object, stands_in_for, out),
            PeerMsg::ReplicaGet { req_id, key } => self.replica_get(from, req_id, key, out),
            PeerMsg::ReplicaPutAck { req_id, ok } => {
                if self.handoffs.contains_key(&req_id) {
                    self.on_handoff_ack(now_ms, from, req_id, ok, out)
                } else {
                    self.on_put_ack(now_ms, from, req_id, ok, out)
                }
            }
            PeerMsg::ReplicaGetReply { req_id, object } => {
                self.on_get_reply(now_ms, from, req_id, object, out)
            }
            PeerMsg::Bucket { entry } => self.on_bucket_entry(now_ms, entry),
            PeerMsg::Gossip { .. } => unreachable!("handled above"),
        }
    }

    /// Tells the node the wall-clock time (ms since the Unix epoch), which it
    /// stamps on the values it writes. Timers keep using the `now_ms` given to
    /// [`Node::handle`], a monotonic clock. Without it, stamps use `now_ms`.
    pub fn set_wall_clock_ms(&mut self, wall_ms: u64) {
        self.wall_ms = Some(wall_ms);
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

    /// Whether this node believes `peer` reachable (itself always is): the
    /// transport's link to it is not down and gossip does not hold it
    /// Suspect or Down (see [`Node::liveness`]).
    pub fn is_live(&self, peer: &NodeId) -> bool {
        self.liveness(peer) == Liveness::Alive
    }

    /// Replicas per key, capped by the cluster size.
    pub fn n(&self) -> usize {
        self.cfg.n.min(self.layout.members.len())
    }

    /// Hints this node keeps, by the primary they are for (empty until the
    /// handoff job first loaded them from the store).
    pub fn hints_by_primary(&self) -> BTreeMap<NodeId, usize> {
        let mut out = BTreeMap::new();
        for h in self.hints.iter().flatten() {
            *out.entry(h.primary.clone()).or_insert(0) += 1;
        }
        out
    }

    /// Hints this node keeps.
    pub fn hints_len(&self) -> usize {
        self.hints.as_ref().map_or(0, BTreeSet::len)
    }

    /// Whether the hints reached `hints_max`: the node refuses writes as a
    /// fallback until handoff makes room.
    pub fn hints_full(&self) -> bool {
        self.hints_len() >= self.cfg.hints_max
    }

    /// Number of partitions whose live primaries are fewer than `max(r, w)`.
    pub fn partitions_without_quorum(&self) -> usize {
        let need = self.cfg.r.max(self.cfg.w);
        (0..self.layout.ring_size)
            .filter(|&p| {
                self.layout
                    .preference_list(p, self.cfg.n)
                    .iter()
                    .filter(|id| self.is_live(id))
                    .count()
                    < need
            })
            .count()
    }

    /// The primaries of partition `p`.
    pub fn primaries(&self, p: PartitionId) -> Vec<NodeId> {
        self.layout.preference_list(p, self.cfg.n)
    }

    /// Counters about this node's work.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Requests being coordinated or forwarded right now.
    pub fn pending(&self) -> usize {
        self.coords.len()
    }

    /// The store (the runtime flushes and syncs it).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The store, read-only.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Whether forward `fwd_id` from `from` is new (and remembers it). Ids
    /// older than every remembered one count as seen once the memory is full.
    fn first_forward(&mut self, from: &NodeId, fwd_id: u64) -> bool {
        let seen = self.seen_forwards.entry(from.clone()).or_default();
        if seen.len() >= SEEN_FORWARDS_MAX && seen.first().is_some_and(|&min| fwd_id < min) {
            return false;
        }
        if !seen.insert(fwd_id) {
            return false;
        }
        if seen.len() > SEEN_FORWARDS_MAX {
            seen.pop_first();
        }
        true
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }
}
