//! Anti-entropy: the replicas of each partition compare hash trees and
//! exchange only the keys on which they differ, so a replica that missed
//! writes (a lost message, a hint lost with its fallback's disk, hinted
//! handoff off) catches up without anyone reading those keys.
//!
//! Owns: the exchanges this node leads, the queue of exchanges to run, the
//! sweep schedule and the repair budget. The trees themselves ([`Trees`])
//! are lent to every machine in `Ctx`, because every write must keep them
//! current.
//!
//! - One tree per (partition, n): a key lives on the first `n` nodes of its
//!   partition's preference list, its bucket's `n`, so only nodes that both
//!   hold a key compare it. Strong buckets' keys are in no tree: their
//!   consensus groups keep them in step. Trees are built on first use by a
//!   scan of the partition (kept in memory, rebuilt after a restart), then
//!   kept current write by write.
//! - An exchange, led by one primary with another: roots, then branches,
//!   then the segments of the branches that differ, then the `(key, digest)` pairs of
//!   the segments that differ; then each side sends the other its state of
//!   the keys the other lacks or holds otherwise ([`PeerMsg::AaePut`]), and
//!   the receiver merges it like any replica write. Trees that are equal end
//!   the exchange after one message each way (a root hash, 8 bytes).
//! - A round that repaired keys is followed by another, up to
//!   `rounds_max`, which confirms the trees now agree (or carries on with
//!   what did not fit in a round).
//! - Background sweeps queue every partition this node is a primary of,
//!   every `interval_ms`; `Node::repair` queues the partitions an operator
//!   names, first. The leader of an exchange sends at most `keys_per_tick`
//!   keys per tick, so repair never starves client traffic.
//! - The responder keeps no state: each message is answered from its tree
//!   and store. Every field a peer sends is checked (partition, `n`, that
//!   both nodes are replicas, lengths, indexes, keys) before it is used.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ringkv_core::aae::{
    BRANCHES, SEGMENTS, SEGMENTS_PER_BRANCH, TicTacTree, diff_keys, differing, object_digest,
    segment_of,
};
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::PeerMsg;
use ringkv_core::request::check_key;
use ringkv_core::{NodeId, Object, PartitionId};
use ringkv_storage::Store;
use tracing::{debug, warn};

use crate::ctx::{Ctx, View};
use crate::replica::{Merged, Replica, check_peer_object, eventual_only};
use crate::{Output, Timer};

/// Most `(key, digest)` pairs or keys one anti-entropy message may carry:
/// the bound on a peer's lists, whatever its config.
pub const ROUND_KEYS_LIMIT: usize = 100_000;

/// Exchanges this node leads at once.
const ACTIVE_MAX: usize = 2;

/// What starting a round of an exchange costs of the tick's budget, in
/// keys: rounds make both sides compare and list pairs, so a node starts
/// at most `keys_per_tick / ROUND_COST` of them per tick.
const ROUND_COST: usize = 50;

/// The anti-entropy trees this node has built, by (partition, n).
#[derive(Debug, Default)]
pub struct Trees {
    built: BTreeMap<(PartitionId, usize), Tree>,
}

/// One partition's tree, and the `(key, digest)` pairs it hashes: an
/// exchange lists the pairs of the segments that differ from memory, not by
/// a scan of the store (about 60 bytes per key).
#[derive(Debug, Default)]
struct Tree {
    hashes: TicTacTree,
    digests: BTreeMap<BucketKey, u64>,
    /// The keys whose state is a tombstone: what a purge looks at, without
    /// a scan.
    tombstones: BTreeSet<BucketKey>,
}

impl Trees {
    /// Records that a key of a bucket with `n` replicas changed from `old`
    /// to `new` in `partition` (a no-op until that tree is built: its
    /// build scans the store, which has the write).
    pub(crate) fn on_write(
        &mut self,
        partition: PartitionId,
        n: usize,
        key: &BucketKey,
        old: &Object,
        new: &Object,
    ) {
        if let Some(t) = self.built.get_mut(&(partition, n)) {
            if !new.is_empty() && new.is_deleted() {
                t.tombstones.insert(key.clone());
            } else {
                t.tombstones.remove(key);
            }
            let new = object_digest(new);
            t.hashes.update(key, object_digest(old), new);
            match new {
                Some(d) => {
                    t.digests.insert(key.clone(), d);
                }
                None => {
                    t.digests.remove(key);
                }
            }
        }
    }

    /// Forgets every tree (a bucket's `n` or consistency changed, so its
    /// keys belong elsewhere): each is rebuilt from the store when next
    /// needed.
    pub(crate) fn clear(&mut self) {
        self.built.clear();
    }

    /// How many trees are built.
    pub fn len(&self) -> usize {
        self.built.len()
    }

    /// Whether no tree is built.
    pub fn is_empty(&self) -> bool {
        self.built.is_empty()
    }
}

/// Whether `key` belongs in the tree of `n`: its bucket is eventual and has
/// `n` replicas.
fn in_tree(view: &View<'_>, key: &BucketKey, n: usize) -> bool {
    !view.is_strong(&key.bucket) && view.props(&key.bucket).n == n
}

/// The tree of (`partition`, `n`), built by a scan of the store when this
/// node has none yet; `None` when the store cannot be read.
fn tree<'c, S: Store>(
    ctx: &'c mut Ctx<'_, S>,
    view: &View<'_>,
    partition: PartitionId,
    n: usize,
) -> Option<&'c TicTacTree> {
    built(ctx, view, partition, n).map(|t| &t.hashes)
}

/// The built tree of (`partition`, `n`), building it first if need be.
fn built<'c, S: Store>(
    ctx: &'c mut Ctx<'_, S>,
    view: &View<'_>,
    partition: PartitionId,
    n: usize,
) -> Option<&'c Tree> {
    if !ctx.trees.built.contains_key(&(partition, n)) {
        let keys = scan(ctx, partition)?;
        let mut t = Tree::default();
        for (key, object) in keys.into_iter().filter(|(k, _)| in_tree(view, k, n)) {
            if let Some(d) = object_digest(&object) {
                if object.is_deleted() {
                    t.tombstones.insert(key.clone());
                }
                t.hashes.update(&key, None, Some(d));
                t.digests.insert(key, d);
            }
        }
        ctx.stats.aae_tree_builds += 1;
        ctx.trees.built.insert((partition, n), t);
    }
    ctx.trees.built.get(&(partition, n))
}

/// Every key of `partition` with its state; `None` (counted, logged) when
/// the store fails.
fn scan<S: Store>(
    ctx: &mut Ctx<'_, S>,
    partition: PartitionId,
) -> Option<Vec<(BucketKey, Object)>> {
    match ctx.store.scan_partition(partition) {
        Ok(k) => Some(k),
        Err(e) => {
            ctx.stats.store_errors += 1;
            warn!(error = %e, partition, "anti-entropy could not scan a partition");
            None
        }
    }
}

/// This node's `(key, digest)` pairs of the tree of `n` in `segments`.
fn pairs<S: Store>(
    ctx: &mut Ctx<'_, S>,
    view: &View<'_>,
    partition: PartitionId,
    n: usize,
    segments: &BTreeSet<usize>,
) -> Option<BTreeMap<BucketKey, u64>> {
    let t = built(ctx, view, partition, n)?;
    Some(
        t.digests
            .iter()
            .filter(|(k, _)| segments.contains(&segment_of(k)))
            .map(|(k, d)| (k.clone(), *d))
            .collect(),
    )
}

/// One exchange to run: this node and `peer` compare `partition`'s tree of
/// `n`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Job {
    partition: PartitionId,
    n: usize,
    peer: NodeId,
}

/// An exchange this node leads, waiting for its peer.
#[derive(Debug)]
struct Exchange {
    job: Job,
    /// Rounds before this one.
    round: u32,
    started_ms: u64,
    /// The segments this round compares (known once the peer's segment
    /// hashes arrived): the keys the peer may want are in them.
    segments: BTreeSet<usize>,
}

/// A purge round this node leads.
#[derive(Debug)]
struct PurgeRound {
    partition: PartitionId,
    n: usize,
    /// The tombstones every replica answered for so far.
    keys: BTreeMap<BucketKey, u64>,
    /// Replicas that have not answered yet.
    waiting: BTreeSet<NodeId>,
    started_ms: u64,
}

/// What anti-entropy reports about itself (status pages, metrics, the
/// `repair` command).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AaeStatus {
    /// Exchanges and tombstone purges waiting to run.
    pub queued: usize,
    /// Exchanges and tombstone purges in flight.
    pub active: usize,
    /// For each partition this node exchanged, when (on the node's
    /// monotonic clock) its last exchange with every one of its peers had
    /// ended with equal trees: the oldest of those times.
    pub synced_ms: BTreeMap<PartitionId, u64>,
    /// The node's clock at the job's last tick, to read `synced_ms` against.
    pub now_ms: u64,
    /// Partitions this node leads exchanges of (it is one of their
    /// replicas).
    pub partitions: u64,
    /// When (the node's clock) every tree this node keeps had been built
    /// after it started, one per tick in the background; `None` while some
    /// is not.
    pub trees_ready_ms: Option<u64>,
}

impl AaeStatus {
    /// How long ago the partition least recently found in step was found
    /// so, in ms; `None` while some partition was never found in step.
    pub fn oldest_sync_age_ms(&self) -> Option<u64> {
        if (self.synced_ms.len() as u64) < self.partitions {
            return None;
        }
        let oldest = self.synced_ms.values().min()?;
        Some(self.now_ms.saturating_sub(*oldest))
    }
}

/// The anti-entropy job.
#[derive(Debug, Default)]
pub struct Aae {
    queue: VecDeque<Job>,
    /// The rounds already run by queued jobs that paused for budget.
    resume: BTreeMap<Job, u32>,
    /// Whether every tree this node keeps was built once since it started.
    warm_done: bool,
    /// When that happened (the node's clock).
    warm_done_ms: Option<u64>,
    active: BTreeMap<u64, Exchange>,
    armed: bool,
    next_sweep_ms: u64,
    /// Keys (and exchange starts) this node may still send this tick.
    budget: usize,
    /// When each job last ended with equal trees.
    synced: BTreeMap<Job, u64>,
    /// The clock at the last tick.
    now_ms: u64,
    /// Partitions (and trees) whose old tombstones this node leads the
    /// purge of, waiting to run.
    purge_queue: VecDeque<(PartitionId, usize)>,
    /// Purge rounds waiting for the other replicas' answers, by id.
    purges: BTreeMap<u64, PurgeRound>,
    /// Partitions this node is a replica of, at the last sweep.
    partitions: u64,
}

impl Aae {
    /// Arms the periodic tick (once); the first sweep comes one interval
    /// after the start.
    pub(crate) fn start<S>(&mut self, ctx: &mut Ctx<'_, S>) {
        if !self.armed {
            self.armed = true;
            self.next_sweep_ms = ctx.now_ms.saturating_add(ctx.cfg.aae.interval_ms);
            self.budget = ctx.cfg.aae.keys_per_tick;
            self.arm(ctx);
        }
    }

    fn arm<S>(&mut self, ctx: &mut Ctx<'_, S>) {
        ctx.out.push(Output::SetTimer {
            id: Timer::Aae,
            at_ms: ctx.now_ms + ctx.cfg.aae.tick_ms,
        });
    }

    /// The periodic tick: refill the budget, forget exchanges whose peer
    /// went silent, start a sweep when one is due, and run what is queued.
    pub(crate) fn tick<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: View<'_>) {
        self.arm(ctx);
        self.budget = ctx.cfg.aae.keys_per_tick;
        self.now_ms = ctx.now_ms;
        // A round is a few messages: one not answered within twice the
        // request timeout was lost, and its slot goes to the next exchange.
        let (now, timeout) = (ctx.now_ms, ctx.cfg.timeout_ms.saturating_mul(2));
        self.active
            .retain(|_, x| now.saturating_sub(x.started_ms) < timeout);
        self.purges
            .retain(|_, r| now.saturating_sub(r.started_ms) < timeout);
        if ctx.cfg.aae.interval_ms > 0 && now >= self.next_sweep_ms {
            self.next_sweep_ms = now.saturating_add(ctx.cfg.aae.interval_ms);
            if self.queue.is_empty() {
                let jobs = jobs(ctx, &view, None);
                let parts: BTreeSet<PartitionId> = jobs.iter().map(|j| j.partition).collect();
                self.partitions = parts.len() as u64;
                self.queue.extend(jobs);
            }
            self.queue_purges(ctx, &view, None);
        }
        self.warm(ctx, &view);
        self.pump(ctx, view);
        self.pump_purges(ctx, &view);
    }

    /// Builds the next tree this node keeps that is not built yet: one per
    /// tick, from the start, so that trees are rebuilt in the background
    /// after a restart (a build scans a partition) rather than all at once
    /// by the first repair pass, in the way of client requests.
    fn warm<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: &View<'_>) {
        if self.warm_done {
            return;
        }
        let trees: BTreeSet<(PartitionId, usize)> = jobs(ctx, view, None)
            .into_iter()
            .map(|j| (j.partition, j.n))
            .collect();
        let Some(&(p, n)) = trees.iter().find(|pn| !ctx.trees.built.contains_key(pn)) else {
            self.warm_done = true;
            self.warm_done_ms = Some(ctx.now_ms);
            return;
        };
        built(ctx, view, p, n);
    }

    /// Queues an exchange of `partition` (every partition when `None`) with
    /// each of its other replicas, ahead of the background sweep; with a
    /// `bucket`, only of the trees holding its keys (those of its `n`, which
    /// it shares with every bucket of the same `n`). Returns how many
    /// exchanges were queued.
    pub(crate) fn repair<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        partition: Option<PartitionId>,
        bucket: Option<&[u8]>,
    ) -> usize {
        let n = bucket.map(|b| view.props(b).n);
        let all = jobs(ctx, &view, partition);
        if partition.is_none() {
            let parts: BTreeSet<PartitionId> = all.iter().map(|j| j.partition).collect();
            self.partitions = parts.len() as u64;
        }
        let jobs: Vec<Job> = all
            .into_iter()
            .filter(|j| n.is_none_or(|n| j.n == n) && !self.queue.contains(j))
            .collect();
        let queued = jobs.len();
        for j in jobs.into_iter().rev() {
            self.queue.push_front(j);
        }
        self.queue_purges(ctx, &view, partition);
        self.pump(ctx, view);
        self.pump_purges(ctx, &view);
        queued
    }

    /// Queues the purge of old tombstones of `partition` (every one when
    /// `None`) for each tree this node leads the purge of: those whose
    /// first replica it is. Nothing without a grace period.
    fn queue_purges<S>(
        &mut self,
        ctx: &Ctx<'_, S>,
        view: &View<'_>,
        partition: Option<PartitionId>,
    ) {
        if ctx.cfg.aae.tombstone_grace_ms.is_none() {
            return;
        }
        let mut lead: BTreeSet<(PartitionId, usize)> = BTreeSet::new();
        for j in jobs(ctx, view, partition) {
            if ctx.layout.preference_list(j.partition, j.n).first() == Some(ctx.me()) {
                lead.insert((j.partition, j.n));
            }
        }
        for pn in lead {
            if !self.purge_queue.contains(&pn) {
                self.purge_queue.push_back(pn);
            }
        }
    }

    /// Starts queued purge rounds, one at a time.
    fn pump_purges<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: &View<'_>) {
        while self.purges.is_empty() {
            let Some((partition, n)) = self.purge_queue.pop_front() else {
                return;
            };
            self.begin_purge(ctx, view, partition, n);
        }
    }

    /// Asks every other replica of (`partition`, `n`) whether it holds the
    /// tombstones whose grace period is over; nothing when a replica is
    /// unreachable (a purge needs every one of them) or none is old enough.
    fn begin_purge<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: &View<'_>,
        partition: PartitionId,
        n: usize,
    ) {
        let Some(grace) = ctx.cfg.aae.tombstone_grace_ms else {
            return;
        };
        let replicas = ctx.layout.preference_list(partition, n);
        if !replicas.iter().all(|r| view.is_live(r)) && !ctx.cfg.bugs.purge_unconfirmed {
            return;
        }
        let Some(t) = built(ctx, view, partition, n) else {
            return;
        };
        let candidates: Vec<BucketKey> = t
            .tombstones
            .iter()
            .take(ROUND_KEYS_LIMIT)
            .cloned()
            .collect();
        let before = ctx.clock.wall_ms(ctx.now_ms).saturating_sub(grace);
        let mut old: BTreeMap<BucketKey, u64> = BTreeMap::new();
        for k in candidates {
            if let Ok(Some(o)) = ctx.store.get(partition, &k)
                && is_old_tombstone(&o, before)
                && let Some(d) = object_digest(&o)
            {
                old.insert(k, d);
            }
        }
        if old.is_empty() {
            return;
        }
        let others: BTreeSet<NodeId> = replicas.into_iter().filter(|r| r != ctx.me()).collect();
        if ctx.cfg.bugs.purge_unconfirmed {
            return finish_purge(ctx, view, partition, n, &others, old);
        }
        let xid = ctx.ids.next();
        let list: Vec<(BucketKey, u64)> = old.iter().map(|(k, d)| (k.clone(), *d)).collect();
        for r in &others {
            ctx.out.push(Output::Send {
                to: r.clone(),
                msg: PeerMsg::PurgeCheck {
                    xid,
                    partition,
                    n: n as u32,
                    keys: list.clone(),
                },
            });
        }
        self.purges.insert(
            xid,
            PurgeRound {
                partition,
                n,
                keys: old,
                waiting: others,
                started_ms: ctx.now_ms,
            },
        );
    }

    /// A replica's answer to a purge check: keep the tombstones it holds;
    /// once every replica answered, purge what all of them hold.
    fn on_purge_have<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: &View<'_>,
        from: &NodeId,
        xid: u64,
        have: &[BucketKey],
    ) -> Result<(), String> {
        let Some(round) = self.purges.get_mut(&xid) else {
            return Ok(());
        };
        if !round.waiting.remove(from) {
            return Err("an answer to a purge check it was not asked".into());
        }
        if have.len() > ROUND_KEYS_LIMIT {
            return Err(format!("{} keys, more than {ROUND_KEYS_LIMIT}", have.len()));
        }
        let have: BTreeSet<&BucketKey> = have.iter().collect();
        round.keys.retain(|k, _| have.contains(k));
        if round.waiting.is_empty() {
            let round = self.purges.remove(&xid).expect("present");
            let replicas = ctx.layout.preference_list(round.partition, round.n);
            let others: BTreeSet<NodeId> = replicas.into_iter().filter(|r| r != ctx.me()).collect();
            if !round.keys.is_empty() {
                finish_purge(ctx, view, round.partition, round.n, &others, round.keys);
            }
            self.pump_purges(ctx, view);
        }
        Ok(())
    }

    /// What the job is doing.
    pub(crate) fn status(&self) -> AaeStatus {
        let mut synced_ms: BTreeMap<PartitionId, u64> = BTreeMap::new();
        for (job, at) in &self.synced {
            let e = synced_ms.entry(job.partition).or_insert(*at);
            *e = (*e).min(*at);
        }
        AaeStatus {
            queued: self.queue.len() + self.purge_queue.len(),
            active: self.active.len() + self.purges.len(),
            synced_ms,
            now_ms: self.now_ms,
            partitions: self.partitions,
            trees_ready_ms: self.warm_done_ms,
        }
    }

    /// Starts queued exchanges while there is room and budget.
    fn pump<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: View<'_>) {
        while self.active.len() < ACTIVE_MAX && self.budget > 0 {
            let Some(job) = self.queue.pop_front() else {
                return;
            };
            self.budget = self.budget.saturating_sub(ROUND_COST);
            let round = self.resume.remove(&job).unwrap_or(0);
            self.begin(ctx, &view, job, round);
        }
    }

    /// Sends the first message of a round of `job`.
    fn begin<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: &View<'_>, job: Job, round: u32) {
        if !view.is_live(&job.peer) {
            return;
        }
        let Some(t) = tree(ctx, view, job.partition, job.n) else {
            return;
        };
        let root = t.root();
        let xid = ctx.ids.next();
        ctx.stats.aae_exchanges += u64::from(round == 0);
        ctx.stats.aae_bytes_sent += 8;
        ctx.out.push(Output::Send {
            to: job.peer.clone(),
            msg: PeerMsg::AaeBranches {
                xid,
                partition: job.partition,
                n: job.n as u32,
                branches: vec![root],
            },
        });
        self.active.insert(
            xid,
            Exchange {
                job,
                round,
                started_ms: ctx.now_ms,
                segments: BTreeSet::new(),
            },
        );
    }

    /// Ends an exchange whose trees were found equal.
    fn in_sync<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: View<'_>, x: Exchange) {
        ctx.stats.aae_exchanges_in_sync += 1;
        self.synced.insert(x.job, ctx.now_ms);
        self.pump(ctx, view);
    }

    /// Ends a round that found differences: another round confirms the
    /// repair (or carries on), up to `rounds_max`.
    fn next_round<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, view: View<'_>, x: Exchange) {
        if x.round + 1 < ctx.cfg.aae.rounds_max {
            if self.budget > 0 {
                self.budget = self.budget.saturating_sub(ROUND_COST);
                self.begin(ctx, &view, x.job, x.round + 1);
            } else {
                // Out of budget: it runs again from the front next tick.
                self.resume.insert(x.job.clone(), x.round + 1);
                self.queue.push_front(x.job);
            }
        } else {
            ctx.stats.aae_rounds_exhausted += 1;
        }
        self.pump(ctx, view);
    }

    /// An anti-entropy message from `from`.
    pub(crate) fn on_msg<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        from: NodeId,
        msg: PeerMsg,
    ) {
        let refused = match msg {
            PeerMsg::AaeBranches {
                xid,
                partition,
                n,
                branches,
            } => on_branches(ctx, &view, &from, (xid, partition, n), &branches),
            PeerMsg::AaeSegments {
                xid,
                partition,
                n,
                segments,
            } => self.on_segments(ctx, view, &from, (xid, partition, n), &segments),
            PeerMsg::AaeKeys {
                xid,
                partition,
                n,
                segments,
                keys,
            } => on_keys(ctx, &view, &from, (xid, partition, n), &segments, &keys),
            PeerMsg::AaeWant {
                xid,
                partition,
                n,
                keys,
            } => self.on_want(ctx, view, &from, (xid, partition, n), &keys),
            PeerMsg::AaePut { key, object } => on_put(ctx, &view, replica, &from, &key, &object),
            PeerMsg::PurgeCheck {
                xid,
                partition,
                n,
                keys,
            } => on_purge_check(ctx, &view, &from, (xid, partition, n), &keys),
            PeerMsg::PurgeHave { xid, keys } => self.on_purge_have(ctx, &view, &from, xid, &keys),
            PeerMsg::AaeRootDiffers { xid } => self.on_root_differs(ctx, &view, &from, xid),
            PeerMsg::Purge { partition, n, keys } => {
                on_purge(ctx, &view, &from, partition, n, &keys).map(|_| ())
            }
            _ => Ok(()),
        };
        if let Err(why) = refused {
            ctx.stats.aae_refused += 1;
            debug!(peer = %from, %why, "anti-entropy message refused");
        }
    }

    /// The roots differ: send the branches.
    fn on_root_differs<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: &View<'_>,
        from: &NodeId,
        xid: u64,
    ) -> Result<(), String> {
        let Some(x) = self.active.get(&xid) else {
            return Ok(());
        };
        if &x.job.peer != from {
            return Err("a root answer from a node not in the exchange".into());
        }
        let (partition, n) = (x.job.partition, x.job.n);
        let Some(t) = tree(ctx, view, partition, n) else {
            return Ok(());
        };
        let branches = t.branches().to_vec();
        ctx.stats.aae_bytes_sent += 8 * branches.len() as u64;
        ctx.out.push(Output::Send {
            to: from.clone(),
            msg: PeerMsg::AaeBranches {
                xid,
                partition,
                n: n as u32,
                branches,
            },
        });
        Ok(())
    }

    /// The peer's segment hashes of the branches that differ: compare
    /// ours, and send our pairs of the segments that differ.
    fn on_segments<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        from: &NodeId,
        (xid, partition, n): (u64, u32, u32),
        theirs: &[(u32, Vec<u64>)],
    ) -> Result<(), String> {
        let Some(x) = self.active.get(&xid) else {
            return Ok(()); // Timed out, or a duplicate: nothing to do.
        };
        if &x.job.peer != from || x.job.partition != partition || x.job.n != n as usize {
            return Err("segments that do not match the exchange they name".into());
        }
        if theirs.len() > BRANCHES {
            return Err(format!("{} branches, more than {BRANCHES}", theirs.len()));
        }
        let job = x.job.clone();
        if theirs.is_empty() {
            let x = self.active.remove(&xid).expect("present");
            self.in_sync(ctx, view, x);
            return Ok(());
        }
        let Some(t) = tree(ctx, &view, job.partition, job.n) else {
            return Ok(());
        };
        let mut segments = BTreeSet::new();
        for (b, hashes) in theirs {
            let ours = t
                .branch_segments(*b as usize)
                .ok_or_else(|| format!("branch {b} out of range"))?;
            let diff = differing(ours, hashes).ok_or_else(|| {
                format!("{} segment hashes, not {SEGMENTS_PER_BRANCH}", hashes.len())
            })?;
            segments.extend(
                diff.into_iter()
                    .map(|s| *b as usize * SEGMENTS_PER_BRANCH + s),
            );
        }
        let Some(mut mine) = pairs(ctx, &view, job.partition, job.n, &segments) else {
            return Ok(());
        };
        let kept = fit_segments(&mine, &segments, ctx.cfg.aae.round_keys_max);
        mine.retain(|k, _| kept.contains(&segment_of(k)));
        let keys: Vec<(BucketKey, u64)> = mine.into_iter().take(ROUND_KEYS_LIMIT).collect();
        // The peer answers with up to as many keys each way: the round
        // spends that much of the tick's budget.
        self.budget = self.budget.saturating_sub(keys.len());
        ctx.stats.aae_bytes_sent += keys
            .iter()
            .map(|(k, _)| (k.bucket.len() + k.key.len() + 8) as u64)
            .sum::<u64>()
            + 4 * kept.len() as u64;
        ctx.out.push(Output::Send {
            to: from.clone(),
            msg: PeerMsg::AaeKeys {
                xid,
                partition,
                n,
                segments: kept.iter().map(|s| *s as u32).collect(),
                keys,
            },
        });
        if let Some(x) = self.active.get_mut(&xid) {
            x.segments = kept;
        }
        Ok(())
    }

    /// The keys the peer lacks or holds otherwise: send ours, and end the
    /// round.
    fn on_want<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        from: &NodeId,
        (xid, partition, n): (u64, u32, u32),
        keys: &[BucketKey],
    ) -> Result<(), String> {
        let Some(x) = self.active.get(&xid) else {
            return Ok(());
        };
        if &x.job.peer != from || x.job.partition != partition || x.job.n != n as usize {
            return Err("a want that does not match the exchange it names".into());
        }
        if keys.len() > ROUND_KEYS_LIMIT {
            return Err(format!("{} keys, more than {ROUND_KEYS_LIMIT}", keys.len()));
        }
        let x = self.active.remove(&xid).expect("present");
        for key in keys {
            if !x.segments.contains(&segment_of(key))
                || key.partition(ctx.layout.ring_size) != partition
            {
                continue; // Not a key of this round: not sent.
            }
            send_key(ctx, &view, from, key);
            self.budget = self.budget.saturating_sub(1);
        }
        self.next_round(ctx, view, x);
        Ok(())
    }
}

/// The segments one round compares: whole segments of `segments`, in
/// order, while their pairs in `mine` fit in `max` (the first always goes).
/// One pass over the pairs, whatever the number of segments.
fn fit_segments(
    mine: &BTreeMap<BucketKey, u64>,
    segments: &BTreeSet<usize>,
    max: usize,
) -> BTreeSet<usize> {
    let mut per_segment: BTreeMap<usize, usize> = BTreeMap::new();
    for k in mine.keys() {
        *per_segment.entry(segment_of(k)).or_default() += 1;
    }
    let mut kept = BTreeSet::new();
    let mut count = 0;
    for s in segments {
        let here = per_segment.get(s).copied().unwrap_or(0);
        if !kept.is_empty() && count + here > max {
            break;
        }
        kept.insert(*s);
        count += here;
    }
    kept
}

/// The exchanges of `partition` (all when `None`) this node leads: one per
/// other replica, for each `n` in use.
fn jobs<S>(ctx: &Ctx<'_, S>, view: &View<'_>, partition: Option<PartitionId>) -> Vec<Job> {
    let members = ctx.layout.members.len();
    let mut ns: BTreeSet<usize> = BTreeSet::from([ctx.cfg.n.min(members)]);
    ns.extend(
        view.buckets
            .entries()
            .filter(|e| e.props.consistency != ringkv_core::Consistency::Strong)
            .map(|e| e.props.n.min(members)),
    );
    let partitions: Vec<PartitionId> = match partition {
        Some(p) => vec![p],
        None => (0..ctx.layout.ring_size).collect(),
    };
    let mut out = Vec::new();
    for p in partitions {
        for &n in ns.iter().filter(|&&n| n >= 2) {
            let replicas = ctx.layout.preference_list(p, n);
            if !replicas.contains(ctx.me()) {
                continue;
            }
            for peer in replicas.into_iter().filter(|r| r != ctx.me()) {
                out.push(Job {
                    partition: p,
                    n,
                    peer,
                });
            }
        }
    }
    out
}

/// Checks that (`partition`, `n`) names a tree both this node and `from`
/// keep: the partition exists, `n` is in range, both are among its first
/// `n` replicas.
fn check_replicas<S>(
    ctx: &Ctx<'_, S>,
    from: &NodeId,
    partition: u32,
    n: u32,
) -> Result<usize, String> {
    if partition >= ctx.layout.ring_size {
        return Err(format!("partition {partition} does not exist"));
    }
    let members = ctx.layout.members.len();
    let n = n as usize;
    if !(2..=members).contains(&n) {
        return Err(format!("n={n} is out of range 2..={members}"));
    }
    let replicas = ctx.layout.preference_list(partition, n);
    if !replicas.contains(ctx.me()) || !replicas.contains(from) {
        return Err(format!(
            "partition {partition} with n={n} is not kept by both {from} and this node"
        ));
    }
    Ok(n)
}

/// A peer's root: answer whether ours equals it. A peer's branch hashes:
/// answer with our segment hashes of each branch that differs (none: the
/// trees are equal).
fn on_branches<S: Store>(
    ctx: &mut Ctx<'_, S>,
    view: &View<'_>,
    from: &NodeId,
    (xid, partition, n): (u64, u32, u32),
    theirs: &[u64],
) -> Result<(), String> {
    let nn = check_replicas(ctx, from, partition, n)?;
    let Some(t) = tree(ctx, view, partition, nn) else {
        return Ok(());
    };
    if let [root] = theirs {
        let msg = if *root == t.root() {
            PeerMsg::AaeSegments {
                xid,
                partition,
                n,
                segments: vec![],
            }
        } else {
            PeerMsg::AaeRootDiffers { xid }
        };
        ctx.out.push(Output::Send {
            to: from.clone(),
            msg,
        });
        return Ok(());
    }
    let diff = differing(t.branches(), theirs)
        .ok_or_else(|| format!("{} branch hashes, not {BRANCHES}", theirs.len()))?;
    let segments: Vec<(u32, Vec<u64>)> = diff
        .into_iter()
        .map(|b| {
            let s = t.branch_segments(b).expect("b < BRANCHES");
            (b as u32, s.to_vec())
        })
        .collect();
    ctx.stats.aae_bytes_sent += segments
        .iter()
        .map(|(_, s)| 4 + 8 * s.len() as u64)
        .sum::<u64>();
    ctx.out.push(Output::Send {
        to: from.clone(),
        msg: PeerMsg::AaeSegments {
            xid,
            partition,
            n,
            segments,
        },
    });
    Ok(())
}

/// A peer's pairs of the segments that differ: send our state of the keys
/// it lacks or holds otherwise, and ask for the ones we lack or hold
/// otherwise.
fn on_keys<S: Store>(
    ctx: &mut Ctx<'_, S>,
    view: &View<'_>,
    from: &NodeId,
    (xid, partition, n): (u64, u32, u32),
    segments: &[u32],
    theirs: &[(BucketKey, u64)],
) -> Result<(), String> {
    let nn = check_replicas(ctx, from, partition, n)?;
    if segments.len() > SEGMENTS || theirs.len() > ROUND_KEYS_LIMIT {
        return Err(format!(
            "{} segments and {} keys: over the bounds {SEGMENTS} and {ROUND_KEYS_LIMIT}",
            segments.len(),
            theirs.len()
        ));
    }
    let segments: BTreeSet<usize> = segments.iter().map(|s| *s as usize).collect();
    if let Some(s) = segments.iter().find(|s| **s >= SEGMENTS) {
        return Err(format!("segment {s} out of range"));
    }
    for (k, _) in theirs {
        check_key(k, &ctx.cfg.limits).map_err(|e| format!("{e:?}"))?;
        if k.partition(ctx.layout.ring_size) != partition || !segments.contains(&segment_of(k)) {
            return Err("a key outside the partition and segments compared".into());
        }
    }
    let Some(ours) = pairs(ctx, view, partition, nn, &segments) else {
        return Ok(());
    };
    ctx.stats.aae_keys_compared += theirs.len().max(ours.len()) as u64;
    let diff = diff_keys(&ours, theirs);
    for key in &diff.send {
        send_key(ctx, view, from, key);
    }
    let want: Vec<BucketKey> = diff
        .want
        .into_iter()
        .filter(|k| in_tree(view, k, nn))
        .collect();
    ctx.stats.aae_bytes_sent += want
        .iter()
        .map(|k| (k.bucket.len() + k.key.len()) as u64)
        .sum::<u64>();
    ctx.out.push(Output::Send {
        to: from.clone(),
        msg: PeerMsg::AaeWant {
            xid,
            partition,
            n,
            keys: want,
        },
    });
    Ok(())
}

/// Sends our state of `key` to `to` for it to merge.
fn send_key<S: Store>(ctx: &mut Ctx<'_, S>, view: &View<'_>, to: &NodeId, key: &BucketKey) {
    if view.is_strong(&key.bucket) {
        return;
    }
    let partition = key.partition(ctx.layout.ring_size);
    let object = match ctx.store.get(partition, key) {
        Ok(Some(o)) if !o.is_empty() => o,
        Ok(_) => return,
        Err(e) => {
            ctx.stats.store_errors += 1;
            warn!(error = %e, "anti-entropy could not read a key to send");
            return;
        }
    };
    ctx.stats.aae_keys_sent += 1;
    ctx.stats.aae_bytes_sent += object.to_bytes().len() as u64;
    ctx.out.push(Output::Send {
        to: to.clone(),
        msg: PeerMsg::AaePut {
            key: key.clone(),
            object,
        },
    });
}

/// A peer's state of a key this node keeps: checked like any replica write,
/// then merged.
fn on_put<S: Store>(
    ctx: &mut Ctx<'_, S>,
    view: &View<'_>,
    replica: &mut Replica,
    from: &NodeId,
    key: &BucketKey,
    object: &Object,
) -> Result<(), String> {
    check_peer_object(ctx, key, object).map_err(|e| format!("{e:?}"))?;
    eventual_only(*view, key).map_err(|e| format!("{e:?}"))?;
    let props = view.props(&key.bucket);
    let replicas = ctx
        .layout
        .preference_list(key.partition(ctx.layout.ring_size), props.n);
    if !replicas.contains(ctx.me()) || !replicas.contains(from) {
        return Err("a repair of a key that this node and the sender do not both keep".into());
    }
    if replica.merge_report(ctx, &props, key, object) == Merged::Changed {
        ctx.stats.aae_keys_repaired += 1;
    }
    Ok(())
}

/// Whether `o` is a tombstone (no sibling holds data) whose newest delete
/// was stamped before the wall-clock time `before`.
fn is_old_tombstone(o: &Object, before: u64) -> bool {
    !o.is_empty()
        && o.is_deleted()
        && o.siblings
            .iter()
            .map(|s| ringkv_core::Hlc::from_u64(s.timestamp_ms).wall_ms())
            .max()
            .is_some_and(|newest| newest < before)
}

/// Checks a peer's list of `(key, digest)` pairs of (`partition`): bounded,
/// and every key of that partition.
fn check_pairs<S>(
    ctx: &Ctx<'_, S>,
    partition: u32,
    keys: &[(BucketKey, u64)],
) -> Result<(), String> {
    if keys.len() > ROUND_KEYS_LIMIT {
        return Err(format!("{} keys, more than {ROUND_KEYS_LIMIT}", keys.len()));
    }
    for (k, _) in keys {
        check_key(k, &ctx.cfg.limits).map_err(|e| format!("{e:?}"))?;
        if k.partition(ctx.layout.ring_size) != partition {
            return Err("a key outside the partition named".into());
        }
    }
    Ok(())
}

/// The tombstones of a purge check that this node holds in exactly the
/// state named.
fn on_purge_check<S: Store>(
    ctx: &mut Ctx<'_, S>,
    view: &View<'_>,
    from: &NodeId,
    (xid, partition, n): (u64, u32, u32),
    keys: &[(BucketKey, u64)],
) -> Result<(), String> {
    let nn = check_replicas(ctx, from, partition, n)?;
    check_pairs(ctx, partition, keys)?;
    let mut have = vec![];
    for (k, d) in keys {
        if !in_tree(view, k, nn) {
            continue;
        }
        if let Ok(Some(o)) = ctx.store.get(partition, k)
            && o.is_deleted()
            && object_digest(&o) == Some(*d)
        {
            have.push(k.clone());
        }
    }
    ctx.out.push(Output::Send {
        to: from.clone(),
        msg: PeerMsg::PurgeHave { xid, keys: have },
    });
    Ok(())
}

/// Tells every other replica to purge `keys`, and purges them here.
fn finish_purge<S: Store>(
    ctx: &mut Ctx<'_, S>,
    view: &View<'_>,
    partition: PartitionId,
    n: usize,
    others: &BTreeSet<NodeId>,
    keys: BTreeMap<BucketKey, u64>,
) {
    let list: Vec<(BucketKey, u64)> = keys.into_iter().collect();
    for r in others {
        ctx.out.push(Output::Send {
            to: r.clone(),
            msg: PeerMsg::Purge {
                partition,
                n: n as u32,
                keys: list.clone(),
            },
        });
    }
    let me = ctx.me().clone();
    if let Err(why) = on_purge(ctx, view, &me, partition, n as u32, &list) {
        warn!(%why, "could not purge tombstones");
    }
}

/// Removes each listed tombstone this node still holds in exactly the
/// state named (a write since, or a state it never had, keeps the key);
/// returns how many were removed.
fn on_purge<S: Store>(
    ctx: &mut Ctx<'_, S>,
    view: &View<'_>,
    from: &NodeId,
    partition: u32,
    n: u32,
    keys: &[(BucketKey, u64)],
) -> Result<u64, String> {
    let nn = check_replicas(ctx, from, partition, n)?;
    check_pairs(ctx, partition, keys)?;
    let mut purged = 0;
    for (k, d) in keys {
        if !in_tree(view, k, nn) {
            continue;
        }
        let Ok(Some(o)) = ctx.store.get(partition, k) else {
            continue;
        };
        if !o.is_deleted() || object_digest(&o) != Some(*d) {
            continue;
        }
        match ctx.delete_object(partition, nn, k, &o) {
            Ok(()) => purged += 1,
            Err(e) => {
                ctx.stats.store_errors += 1;
                warn!(error = %e, "could not purge a tombstone");
            }
        }
    }
    ctx.stats.tombstones_purged += purged;
    Ok(purged)
}
