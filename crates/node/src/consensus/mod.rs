//! Strong buckets: one consensus group (raft) per partition, its voters the
//! partition's primaries, created on first use.
//!
//! A request on a strong bucket goes to the group's leader (any node passes
//! it on, at most [`HOPS_MAX`] times). The leader proposes a write as a log
//! entry and answers when the entry is applied; it answers a read after
//! ReadIndex confirmed it still leads and the entry at that index is
//! applied. Every outcome is one of: done, not done (`NoQuorum`, nothing
//! was proposed), or unknown (`OutcomeUnknown`, proposed or passed on and
//! no answer before the deadline).
//!
//! Groups tick only while they have work, or had some within
//! [`crate::config::ConsensusConfig::idle_ticks`]: hundreds of idle partitions cost nothing.
//! A request or a peer's message wakes a group; a woken follower that hears
//! no leader stands for election.
//!
//! Every `Ready` of every group handled in one input is persisted before
//! any of the input's outputs leave (one [`Output::Sync`] covers them all).

mod group;
mod log;

use std::collections::{BTreeMap, BTreeSet};

use raft::SnapshotStatus;
use raft::eraftpb::{Message, MessageType};
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest, PeerMsg};
use ringkv_core::strong::{self, Applied, Command, Proposer};
use ringkv_core::{Dot, NodeId, PartitionId, request};
use ringkv_storage::Store;
use tracing::{debug, warn};

use crate::ctx::{Ctx, View};
use crate::{ClientId, Output, Timer};
use group::Group;

/// How many times a request may be passed on between nodes looking for the
/// leader before a node keeps it and waits for a leader of its own view.
pub const HOPS_MAX: u8 = 3;

/// Forwarded requests remembered per peer, to drop duplicates.
const SEEN_MAX: usize = 4096;

/// Who waits for a request's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Client(ClientId),
    Forward {
        from: NodeId,
        fwd_id: u64,
    },
    /// Another of this node's machines (the cluster manager), by its id.
    Internal(u64),
}

/// Where a request is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Stage {
    /// Waiting for the group to have a leader.
    Waiting,
    /// Proposed; waits for its entry to be applied.
    Proposed,
    /// ReadIndex asked; waits for the leader's confirmation.
    Reading,
    /// Confirmed; waits for the store to apply up to `index`.
    ReadAt(u64),
    /// Passed on to a peer; waits for its answer.
    Forwarded,
}

/// One request on a strong bucket at this node.
#[derive(Clone, Debug)]
struct Pending {
    origin: Origin,
    req: ClientRequest,
    partition: PartitionId,
    hops: u8,
    stage: Stage,
}

/// Status of one group, for the status page and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// The partition.
    pub partition: PartitionId,
    /// Its leader, if known.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// The highest committed index.
    pub commit: u64,
    /// The highest applied index.
    pub applied: u64,
    /// Entries kept in the log.
    pub log_entries: u64,
    /// Size of the last snapshot built, in bytes.
    pub snapshot_bytes: usize,
    /// Times this node was elected leader since it started.
    pub elections: u64,
    /// Whether the group ticks (has recent work) or hibernates.
    pub active: bool,
}

/// The strong buckets' sub-machine.
#[derive(Default)]
pub(crate) struct Consensus {
    groups: BTreeMap<PartitionId, Group>,
    pending: BTreeMap<u64, Pending>,
    /// Forward ids seen per peer, oldest first evicted.
    seen: BTreeMap<NodeId, BTreeSet<u64>>,
    /// Whether the tick timer is armed.
    ticking: bool,
    /// Raft messages to send once the input's writes are durable, per peer.
    outbox: BTreeMap<NodeId, Vec<(u32, Vec<u8>)>>,
    /// Raft messages that may leave at once ([`Output::Now`]), per peer.
    outbox_now: BTreeMap<NodeId, Vec<(u32, Vec<u8>)>>,
    /// Whether a `Ready` of this input persisted something.
    must_sync: bool,
    /// Proposals made and not yet answered (status).
    proposals: u64,
    /// Reads that wait for a ReadIndex to be asked, per group.
    reads_to_ask: BTreeMap<PartitionId, Vec<u64>>,
    /// ReadIndex requests asked, by their id: the reads each one serves.
    read_batches: BTreeMap<u64, Vec<u64>>,
    /// Answers wait for the batch's fsync (a one-voter group's Ready).
    late_answers: bool,
    /// Inside a batch of inputs ([`Consensus::begin_batch`]): the `Ready`
    /// work waits for its end.
    deferred: bool,
    /// Answers to this node's own machines' requests, by their id.
    internal: Vec<(u64, ClientReply)>,
}

/// A node's raft id: a hash of its id (never 0), stable across layouts.
pub(crate) fn raft_id(node: &NodeId) -> u64 {
    ringkv_core::hash::key_hash(b"~raft", node.as_str().as_bytes()) | 1
}

fn node_of(view: &View<'_>, id: u64) -> Option<NodeId> {
    view.layout
        .members
        .iter()
        .find(|m| raft_id(&m.id) == id)
        .map(|m| m.id.clone())
}

impl Consensus {
    /// A client request on a strong bucket (from a client of this node, or
    /// passed on by a peer with `hops`).
    pub(crate) fn on_client<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        client_id: ClientId,
        req: ClientRequest,
    ) {
        self.admit(ctx, view, Origin::Client(client_id), req, 0);
        self.flush(ctx, view);
    }

    /// A request from another of this node's machines (the cluster
    /// manager): answered through [`Consensus::take_internal`].
    pub(crate) fn submit<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        id: u64,
        req: ClientRequest,
    ) {
        self.admit(ctx, view, Origin::Internal(id), req, 0);
        self.flush(ctx, view);
    }

    /// The answers to internal requests since the last call.
    pub(crate) fn take_internal(&mut self) -> Vec<(u64, ClientReply)> {
        std::mem::take(&mut self.internal)
    }

    fn admit<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        origin: Origin,
        req: ClientRequest,
        hops: u8,
    ) {
        // The cluster document is the manager's, not a client's value: it
        // has its own bound (only this node's manager and peers' send it).
        let mut limits = ctx.cfg.limits.clone();
        if req.key.bucket == ringkv_core::cluster::CLUSTER_BUCKET {
            limits.value_bytes_max = ringkv_core::cluster::DOC_BYTES_MAX;
        }
        let checked = request::check_request(&req, &limits, ctx.cfg.timeout_ms)
            .and_then(|t| request::check_strong(&req.op).map(|()| t));
        let timeout_ms = match checked {
            Ok(t) => t,
            Err(e) => {
                ctx.stats.rejected += 1;
                return self.answer(ctx, &origin, None, ClientReply::Error(e), true);
            }
        };
        if self.pending.len() >= ctx.cfg.pending_max {
            ctx.stats.overloaded += 1;
            let e = ClientError::Overloaded(format!(
                "{} requests are in flight on this node (--pending-max); retry later",
                self.pending.len()
            ));
            return self.answer(ctx, &origin, None, ClientReply::Error(e), true);
        }
        let id = ctx.ids.next();
        let partition = req.key.partition(ctx.layout.ring_size);
        ctx.out.push(Output::SetTimer {
            id: Timer::Strong(id),
            at_ms: ctx.now_ms + timeout_ms,
        });
        self.pending.insert(
            id,
            Pending {
                origin,
                req,
                partition,
                hops,
                stage: Stage::Waiting,
            },
        );
        self.dispatch(ctx, view, id);
    }

    /// The voters of `partition`'s group: its primaries.
    fn voters(ctx: &Ctx<'_, impl Store>, view: &View<'_>, partition: PartitionId) -> Vec<NodeId> {
        view.plan(partition, ctx.cfg.n).primaries
    }

    /// Moves a waiting request on: refuses it without a live majority,
    /// passes it on towards the leader, or leads it.
    fn dispatch<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: View<'_>, id: u64) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        let partition = p.partition;
        let voters = Self::voters(ctx, &view, partition);
        let live = voters.iter().filter(|v| view.is_live(v)).count();
        if live < voters.len() / 2 + 1 {
            let reason = format!(
                "the consensus group of partition {partition} has no majority: {live} of its {} \
                 voters are reachable from this node; nothing was written",
                voters.len()
            );
            return self.finish(
                ctx,
                id,
                None,
                ClientReply::Error(ClientError::NoQuorum { reason }),
            );
        }
        if ctx.cfg.bugs.strong_stale_reads
            && matches!(p.req.op, ClientOp::Get { .. })
            && voters.contains(ctx.me())
        {
            return self.serve_read(ctx, view, id);
        }
        if !voters.contains(ctx.me()) {
            let to = voters
                .iter()
                .find(|v| view.is_live(v))
                .cloned()
                .expect("a live majority has a live voter");
            return self.forward(ctx, id, to);
        }
        let me = raft_id(ctx.me());
        let Some(group) = self.group(ctx, view, partition) else {
            let reason = format!("consensus group {partition} cannot start on this node");
            return self.finish(
                ctx,
                id,
                None,
                ClientReply::Error(ClientError::Internal(reason)),
            );
        };
        group.idle = 0;
        self.wake(ctx);
        let group = &self.groups[&partition];
        match group.leader() {
            Some(l) if l == me && group.is_leader() => self.lead(ctx, id),
            Some(l) => {
                let hops = self.pending[&id].hops;
                match node_of(&view, l) {
                    Some(to) if view.is_live(&to) && hops < HOPS_MAX => self.forward(ctx, id, to),
                    _ => self.campaign_if_stale(partition, &view),
                }
            }
            None => {
                // A group nobody has led yet (just created): stand for
                // election now rather than after a timeout. Otherwise wait:
                // the leader's heartbeat or the election timeout will come.
                let g = self.groups.get_mut(&partition).expect("opened above");
                if g.raw.raft.term == 0 {
                    let _ = g.raw.campaign();
                }
            }
        }
    }

    /// A leader the view holds down: stand for election at once rather than
    /// wait out a hibernating group's timeout.
    fn campaign_if_stale(&mut self, partition: PartitionId, view: &View<'_>) {
        let Some(g) = self.groups.get_mut(&partition) else {
            return;
        };
        let down = g
            .leader()
            .and_then(|l| node_of(view, l))
            .is_some_and(|n| !view.is_live(&n));
        if down {
            let _ = g.raw.campaign();
        }
    }

    /// Proposes a write, or asks ReadIndex for a read, as the leader.
    fn lead<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, id: u64) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        let group = self.groups.get_mut(&p.partition).expect("led groups exist");
        let (value, condition) = match &p.req.op {
            ClientOp::Get { .. } => {
                // Asked at the end of the batch, once for every read of the
                // group that arrived in it (one heartbeat round for all).
                p.stage = Stage::Reading;
                self.reads_to_ask.entry(p.partition).or_default().push(id);
                return;
            }
            ClientOp::Put { value, .. } => (value.clone(), None),
            ClientOp::PutIf { value, condition } => (value.clone(), Some(condition.clone())),
            // `admit` refuses them (check_request: an empty key; check_strong).
            ClientOp::List(_) | ClientOp::Cluster(_) => {
                unreachable!("check_strong refuses listings and cluster ops")
            }
        };
        let cmd = Command {
            proposer: Proposer {
                node: ctx.me().clone(),
                incarnation: ctx.actor.incarnation,
                id,
            },
            key: p.req.key.clone(),
            value,
            condition,
            timestamp_ms: ctx.clock.now(ctx.now_ms).wall_ms(),
        };
        match group.raw.propose(Vec::new(), cmd.to_bytes()) {
            Ok(()) => {
                p.stage = Stage::Proposed;
                self.proposals += 1;
                if ctx.cfg.bugs.strong_ack_before_commit {
                    let index = group.raw.raft.raft_log.last_index();
                    let leader = ctx.me().clone();
                    let reply = written(index);
                    self.finish(ctx, id, Some(leader), reply);
                }
            }
            Err(e) => {
                debug!(group = p.partition, error = %e, "proposal dropped; waits for a leader")
            }
        }
    }

    fn forward<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, id: u64, to: NodeId) {
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        p.stage = Stage::Forwarded;
        ctx.stats.forwarded += 1;
        ctx.out.push(Output::Send {
            to,
            msg: PeerMsg::StrongForward {
                fwd_id: id,
                hops: p.hops + 1,
                request: p.req.clone(),
            },
        });
    }

    /// A peer passed a request on.
    pub(crate) fn on_forward<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        from: NodeId,
        fwd_id: u64,
        hops: u8,
        req: ClientRequest,
    ) {
        let seen = self.seen.entry(from.clone()).or_default();
        if !seen.insert(fwd_id) {
            return;
        }
        if seen.len() > SEEN_MAX {
            seen.pop_first();
        }
        let origin = Origin::Forward { from, fwd_id };
        self.admit(ctx, view, origin, req, hops.min(HOPS_MAX));
        self.flush(ctx, view);
    }

    /// A peer answered a request passed on to it.
    pub(crate) fn on_forward_reply<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: &NodeId,
        fwd_id: u64,
        reply: ClientReply,
    ) {
        match self.pending.get(&fwd_id) {
            Some(p) if p.stage == Stage::Forwarded => {}
            _ => {
                debug!(peer = %from, fwd_id, "a strong reply for no request here; dropped");
                return;
            }
        }
        let (leader, reply) = match reply {
            ClientReply::Strong { leader, reply } => (Some(leader), *reply),
            other => (None, other),
        };
        self.finish(ctx, fwd_id, leader, reply);
    }

    /// Raft messages from a peer.
    pub(crate) fn on_raft<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        from: &NodeId,
        msgs: Vec<(u32, Vec<u8>)>,
    ) {
        for (partition, bytes) in msgs {
            let Some(msg) = Self::check_peer_msg(ctx, &view, from, partition, &bytes) else {
                ctx.stats.peer_refused += 1;
                continue;
            };
            let Some(group) = self.group(ctx, view, partition) else {
                continue;
            };
            // Heartbeats keep a group alive but are not work: a settled
            // group whose only traffic is heartbeats goes to sleep.
            if !matches!(
                msg.get_msg_type(),
                MessageType::MsgHeartbeat | MessageType::MsgHeartbeatResponse
            ) {
                group.idle = 0;
            }
            if let Err(e) = group.raw.step(msg) {
                debug!(group = partition, error = %e, "raft refused a message");
            }
        }
        self.wake(ctx);
        self.flush(ctx, view);
    }

    /// A peer's raft message for `partition`, decoded and checked: a
    /// partition of the ring, a kind we send, addressed to us by its sender,
    /// both voters of the group. `None` (refused) otherwise.
    fn check_peer_msg<S>(
        ctx: &Ctx<'_, S>,
        view: &View<'_>,
        from: &NodeId,
        partition: PartitionId,
        bytes: &[u8],
    ) -> Option<Message>
    where
        S: Store,
    {
        if partition >= ctx.layout.ring_size {
            return None;
        }
        let msg: Message = match protobuf::Message::parse_from_bytes(bytes) {
            Ok(m) => m,
            Err(e) => {
                debug!(peer = %from, error = %e, "a raft message does not decode; dropped");
                return None;
            }
        };
        if !acceptable_from_peer(&msg) {
            debug!(peer = %from, "a raft message we never send, or malformed; dropped");
            return None;
        }
        let voters = Self::voters(ctx, view, partition);
        let addressed = msg.to == raft_id(ctx.me()) && msg.from == raft_id(from);
        (addressed && voters.contains(ctx.me()) && voters.contains(from)).then_some(msg)
    }

    /// The group of `partition`, opened (loaded or created) on first use.
    fn group<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        partition: PartitionId,
    ) -> Option<&mut Group> {
        use std::collections::btree_map::Entry;
        match self.groups.entry(partition) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(e) => {
                let voters: Vec<u64> = Self::voters(ctx, &view, partition)
                    .iter()
                    .map(raft_id)
                    .collect();
                let me = raft_id(ctx.me());
                match Group::open(ctx.store, partition, me, &voters, &ctx.cfg.consensus) {
                    Ok(g) => Some(e.insert(g)),
                    Err(err) => {
                        ctx.stats.store_errors += 1;
                        warn!(error = %err, "consensus group not started");
                        None
                    }
                }
            }
        }
    }

    /// Arms the tick timer if it is not.
    fn wake<S>(&mut self, ctx: &mut Ctx<'_, S>) {
        if !self.ticking {
            self.ticking = true;
            ctx.out.push(Output::SetTimer {
                id: Timer::RaftTick,
                at_ms: ctx.now_ms + ctx.cfg.consensus.tick_ms,
            });
        }
    }

    /// A tick: every active group ticks; groups idle long enough and
    /// settled stop ticking.
    pub(crate) fn on_tick<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: View<'_>) {
        self.ticking = false;
        let idle_max = ctx.cfg.consensus.idle_ticks;
        let busy: BTreeSet<PartitionId> = self.pending.values().map(|p| p.partition).collect();
        let mut any = false;
        for (partition, g) in &mut self.groups {
            if g.idle >= idle_max && g.settled() && !busy.contains(partition) {
                continue;
            }
            g.raw.tick();
            g.idle = g.idle.saturating_add(1);
            any = true;
        }
        if any {
            self.wake(ctx);
        }
        // ReadIndex requests nobody waits for any more (their reads timed
        // out or were asked again) are forgotten.
        let pending = &self.pending;
        self.read_batches
            .retain(|_, ids| ids.iter().any(|id| pending.contains_key(id)));
        self.flush(ctx, view);
    }

    /// A request's deadline.
    pub(crate) fn on_deadline<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, id: u64) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        let write = !matches!(p.req.op, ClientOp::Get { .. });
        let err = match (&p.stage, write) {
            (Stage::Proposed | Stage::Forwarded, true) => ClientError::OutcomeUnknown {
                reason: "the write was proposed (or passed to the group's leader) and no \
                         answer came before the deadline: it may or may not have been applied; \
                         read the key to know"
                    .into(),
            },
            (Stage::Waiting, _) => ClientError::NoQuorum {
                reason: format!(
                    "the consensus group of partition {} elected no leader before the deadline; \
                     nothing was written",
                    p.partition
                ),
            },
            _ => ClientError::NoQuorum {
                reason: format!(
                    "the read could not be confirmed by a majority of partition {}'s group \
                     before the deadline",
                    p.partition
                ),
            },
        };
        ctx.stats.unavailable += 1;
        self.finish(ctx, id, None, ClientReply::Error(err));
    }

    /// Handles every group's `Ready`, then what it unblocked; sends the
    /// batched raft messages. Called at the end of every input.
    fn flush<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: View<'_>) {
        if self.deferred {
            return;
        }
        self.ask_reads(ctx);
        // A round's answers (a leader elected, a read confirmed) may make
        // more work ready; a few rounds settle it, the next input does the rest.
        for _round in 0..4 {
            let ready: Vec<PartitionId> = self
                .groups
                .iter()
                .filter(|(_, g)| g.raw.has_ready())
                .map(|(p, _)| *p)
                .collect();
            if ready.is_empty() {
                break;
            }
            for partition in ready {
                if self.on_group_ready(ctx, view, partition) {
                    self.redispatch(ctx, view, partition);
                }
            }
            self.ask_reads(ctx);
        }
        if std::mem::take(&mut self.must_sync) {
            ctx.out.push(Output::Sync);
        }
        for (to, msgs) in std::mem::take(&mut self.outbox_now) {
            ctx.out.push(Output::Now(Box::new(Output::Send {
                to,
                msg: PeerMsg::Raft { msgs },
            })));
        }
        for (to, msgs) in std::mem::take(&mut self.outbox) {
            ctx.out.push(Output::Send {
                to,
                msg: PeerMsg::Raft { msgs },
            });
        }
    }

    /// From the next input on, `Ready` work waits for [`Consensus::end_batch`]:
    /// the proposals and reads of every input of a batch then share one
    /// append and one heartbeat round per group.
    pub(crate) fn begin_batch(&mut self) {
        self.deferred = true;
    }

    /// Ends a batch: does the `Ready` work of all its inputs.
    pub(crate) fn end_batch<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: View<'_>) {
        self.deferred = false;
        self.flush(ctx, view);
    }

    /// Asks one ReadIndex per group for the reads that arrived since the
    /// last time. Reads whose group lost its leader meanwhile wait again.
    fn ask_reads<S>(&mut self, ctx: &mut Ctx<'_, S>) {
        for (partition, mut ids) in std::mem::take(&mut self.reads_to_ask) {
            let Some(g) = self.groups.get_mut(&partition) else {
                continue;
            };
            // Reads asked again since (a leader change) are not asked here.
            let pending = &self.pending;
            ids.retain(|id| pending.get(id).is_some_and(|p| p.stage == Stage::Reading));
            if ids.is_empty() || !g.is_leader() {
                // No longer leading: the leader change asks them again.
                continue;
            }
            if !g.raw.raft.commit_to_current_term() {
                // raft-rs drops a ReadIndex until the leader has committed
                // in its term: ask once it has.
                self.reads_to_ask.insert(partition, ids);
                continue;
            }
            let batch = ctx.ids.next();
            g.raw.read_index(batch.to_be_bytes().to_vec());
            self.read_batches.insert(batch, ids);
        }
    }

    /// Handles one group's `Ready`; returns whether its leader changed.
    fn on_group_ready<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        partition: PartitionId,
    ) -> bool {
        let g = self.groups.get_mut(&partition).expect("listed");
        let fx = match g.on_ready(ctx.store) {
            Ok(fx) => fx,
            Err(e) => {
                // Raft moved past entries we could not apply: going on would
                // skip them. Close the group; its next use reopens it from
                // what the store holds, as a restart would.
                ctx.stats.store_errors += 1;
                warn!(group = partition, error = %e, "consensus group failed to persist or apply; closed");
                self.groups.remove(&partition);
                return false;
            }
        };
        let keep = ctx.cfg.consensus.log_keep;
        if let Err(e) = g
            .build_snapshot(ctx.store)
            .and_then(|()| g.maybe_compact(ctx.store, keep))
        {
            ctx.stats.store_errors += 1;
            warn!(group = partition, error = %e, "snapshot or compaction failed");
        }
        self.must_sync |= fx.must_sync;
        // One voter commits in the Ready that appends, before this batch's
        // fsync: its answers must wait for it (no Output::Now).
        self.late_answers = g.raw.raft.prs().is_singleton();
        self.queue_msgs(&view, partition, fx.msgs_now, fx.msgs);
        let me = ctx.me().clone();
        for (index, cmd, outcome) in fx.applied {
            self.on_applied(ctx, &me, index, &cmd, outcome);
        }
        for (batch, index) in fx.reads {
            for id in self.read_batches.remove(&batch).unwrap_or_default() {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.stage = Stage::ReadAt(index);
                }
            }
        }
        self.serve_ready_reads(ctx, view, partition);
        self.late_answers = false;
        fx.leader_changed
    }

    /// Puts a group's raft messages in the outboxes (those that may leave
    /// at once, and those that wait for the batch's fsync), and tells raft
    /// of the snapshots among them.
    fn queue_msgs(
        &mut self,
        view: &View<'_>,
        partition: PartitionId,
        now: Vec<Message>,
        later: Vec<Message>,
    ) {
        // A snapshot handed to the transport counts as sent: raft then
        // probes the follower, and sends another if this one was lost
        // (otherwise the follower's progress stays paused for good).
        if let Some(g) = self.groups.get_mut(&partition) {
            for m in now.iter().chain(&later) {
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    g.raw.report_snapshot(m.to, SnapshotStatus::Finish);
                }
            }
        }
        let tagged = now
            .into_iter()
            .map(|m| (m, true))
            .chain(later.into_iter().map(|m| (m, false)));
        for (m, early) in tagged {
            if let Some(to) = node_of(view, m.to) {
                let bytes = protobuf::Message::write_to_bytes(&m).expect("messages encode");
                let outbox = if early {
                    &mut self.outbox_now
                } else {
                    &mut self.outbox
                };
                outbox.entry(to).or_default().push((partition, bytes));
            }
        }
    }

    /// Moves on the requests of `partition` that wait for a leader.
    fn redispatch<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        partition: PartitionId,
    ) {
        let waiting: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                let read = matches!(p.req.op, ClientOp::Get { .. });
                p.partition == partition
                    && (matches!(p.stage, Stage::Waiting | Stage::Reading)
                        || (read && p.stage == Stage::Forwarded))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            // A read whose ReadIndex the old leader never confirmed (raft-rs
            // drops it when leadership moves), or that was passed to the old
            // leader, asks again: a read changes nothing, so asking twice is
            // safe (a late answer to the first is as good as the second).
            if let Some(p) = self.pending.get_mut(&id) {
                p.stage = Stage::Waiting;
            }
            self.dispatch(ctx, view, id);
        }
    }

    /// An entry was applied: answers its proposer's client if that is us.
    fn on_applied<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        me: &NodeId,
        index: u64,
        cmd: &Command,
        outcome: Applied,
    ) {
        if &cmd.proposer.node != me || cmd.proposer.incarnation != ctx.actor.incarnation {
            return;
        }
        let id = cmd.proposer.id;
        if !matches!(self.pending.get(&id), Some(p) if p.stage == Stage::Proposed) {
            return;
        }
        let reply = match outcome {
            Applied::Written(_) => written(index),
            Applied::Mismatch { current } => ClientReply::Error(ClientError::PreconditionFailed {
                current: strong::context_of(current),
            }),
            Applied::Replayed => return,
        };
        self.finish(ctx, id, Some(me.clone()), reply);
    }

    /// Answers the reads of `partition` whose index is applied.
    fn serve_ready_reads<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        partition: PartitionId,
    ) {
        let applied = self.groups.get(&partition).map_or(0, |g| g.applied);
        let ready: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.partition == partition && matches!(p.stage, Stage::ReadAt(i) if i <= applied)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            self.serve_read(ctx, view, id);
        }
    }

    /// Reads the key from this node's store and answers.
    fn serve_read<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, _view: View<'_>, id: u64) {
        let Some(p) = self.pending.get(&id) else {
            return;
        };
        let reply = match ctx.store.get(p.partition, &p.req.key) {
            Ok(o) => ClientReply::Read {
                object: o.unwrap_or_default(),
                fallback_replies: 0,
            },
            Err(e) => {
                ctx.stats.store_errors += 1;
                ClientReply::Error(ClientError::Internal(format!("cannot read the key: {e}")))
            }
        };
        let leader = ctx.me().clone();
        self.finish(ctx, id, Some(leader), reply);
    }

    /// Answers request `id` and forgets it.
    fn finish<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        id: u64,
        leader: Option<NodeId>,
        reply: ClientReply,
    ) {
        if let Some(p) = self.pending.remove(&id) {
            if p.stage == Stage::Proposed {
                self.proposals = self.proposals.saturating_sub(1);
            }
            let now = !self.late_answers;
            self.answer(ctx, &p.origin, leader, reply, now);
        }
    }

    /// Status of every group this node has opened.
    pub(crate) fn status(&self, view: &View<'_>, idle_max: u32) -> Vec<GroupStatus> {
        self.groups
            .values()
            .map(|g| GroupStatus {
                partition: g.partition,
                leader: g.leader().and_then(|l| node_of(view, l)),
                term: g.raw.raft.term,
                commit: g.raw.raft.raft_log.committed,
                applied: g.applied,
                log_entries: g.raw.store().last() + 1 - g.raw.store().first(),
                snapshot_bytes: g.raw.store().snapshot_bytes(),
                elections: g.elections,
                active: g.idle < idle_max || !g.settled(),
            })
            .collect()
    }

    /// Proposals waiting to be applied.
    pub(crate) fn proposals_in_flight(&self) -> u64 {
        self.proposals
    }
}

/// Whether a peer's raft message is one this code sends, well formed:
/// raft-rs panics on some malformed ones (an empty proposal or ReadIndex),
/// and a snapshot must decode before raft adopts it. Proposals and
/// ReadIndex requests never travel (only leaders propose and ask), so they
/// are refused whole.
fn acceptable_from_peer(msg: &Message) -> bool {
    match msg.get_msg_type() {
        MessageType::MsgPropose | MessageType::MsgReadIndex => false,
        MessageType::MsgSnapshot => group::decode_snapshot(&msg.get_snapshot().data).is_ok(),
        _ => true,
    }
}

/// A write's answer: its version as a context, and its dot.
fn written(index: u64) -> ClientReply {
    ClientReply::Written {
        context: strong::context_of(index),
        dot: Some(Dot {
            actor: strong::strong_actor(),
            counter: index,
        }),
        fallback_acks: 0,
    }
}

impl Consensus {
    /// Sends `reply` to whoever waits, wrapped with the leader when known.
    /// At once ([`Output::Now`]) when `now`: an answer reports an entry
    /// committed on a majority (or a read of one), never this batch's own
    /// writes.
    fn answer<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        origin: &Origin,
        leader: Option<NodeId>,
        reply: ClientReply,
        now: bool,
    ) {
        let reply = match leader {
            Some(leader) => ClientReply::Strong {
                leader,
                reply: Box::new(reply),
            },
            None => reply,
        };
        let out = match origin {
            Origin::Client(client_id) => Output::Reply {
                client_id: *client_id,
                reply,
            },
            Origin::Forward { from, fwd_id } => Output::Send {
                to: from.clone(),
                msg: PeerMsg::StrongReply {
                    fwd_id: *fwd_id,
                    reply,
                },
            },
            Origin::Internal(id) => return self.internal.push((*id, reply)),
        };
        ctx.out
            .push(if now { Output::Now(Box::new(out)) } else { out });
    }
}
