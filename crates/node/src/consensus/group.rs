//! One partition's consensus group on this node: raft-rs's `RawNode` over
//! the group's log, and what a `Ready` asks of us: persist entries and hard
//! state, send messages, apply committed entries to the store, adopt
//! snapshots, and report reads whose index is confirmed.

use raft::eraftpb::{Entry, EntryType, Message, Snapshot};
use raft::{Config, RawNode, ReadOnlyOption, StateRole};
use ringkv_core::hash::BucketKey;
use ringkv_core::strong::{self, Applied, Command};
use ringkv_core::{Object, PartitionId};
use ringkv_storage::{Store, StoreError};
use tracing::warn;

use super::log::{GroupLog, StateRecord};
use crate::config::ConsensusConfig;

/// What a group's `Ready` produced for the machine to act on.
#[derive(Default)]
pub(crate) struct Effects {
    /// Raft messages to send once this batch's writes are durable (votes,
    /// append responses: they promise what was persisted).
    pub(crate) msgs: Vec<Message>,
    /// Raft messages that may leave at once (a leader's appends and
    /// heartbeats, raft-rs's `messages`).
    pub(crate) msgs_now: Vec<Message>,
    /// Entries applied with their outcome: `(index, command, outcome)`.
    pub(crate) applied: Vec<(u64, Command, Applied)>,
    /// Reads confirmed by ReadIndex: `(request id, index to wait for)`.
    pub(crate) reads: Vec<(u64, u64)>,
    /// Whether anything was persisted that must reach the disk before the
    /// messages are sent (entries, hard state, a snapshot).
    pub(crate) must_sync: bool,
    /// Whether the leader changed.
    pub(crate) leader_changed: bool,
}

/// One consensus group.
pub(crate) struct Group {
    pub(crate) partition: PartitionId,
    pub(crate) raw: RawNode<GroupLog>,
    pub(crate) applied: u64,
    /// Ticks since the group last had work (see [`ConsensusConfig::idle_ticks`]).
    pub(crate) idle: u32,
    /// Times this node became the group's leader.
    pub(crate) elections: u64,
    /// The leader as of the last `Ready` handled.
    seen_leader: Option<u64>,
}

/// A logger that drops everything: raft-rs logs through slog, and we do not
/// want its chatter in ours.
fn discard() -> slog::Logger {
    slog::Logger::root(slog::Discard, slog::o!())
}

/// The raft config of a group: `seed` fixes the election timeout (see
/// [`ConsensusConfig::election_seed`]).
fn raft_config(id: u64, applied: u64, cfg: &ConsensusConfig, partition: PartitionId) -> Config {
    let mut c = Config {
        id,
        election_tick: cfg.election_ticks,
        heartbeat_tick: cfg.heartbeat_ticks,
        applied,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        pre_vote: true,
        check_quorum: false,
        read_only_option: ReadOnlyOption::Safe,
        ..Config::default()
    };
    if let Some(seed) = cfg.election_seed {
        // raft-rs draws the timeout from [min, max): with max = min + 1 the
        // draw is constant. Spread the minimum over [e, 2e) per node and
        // group from the seed, as the random draw would.
        let e = cfg.election_ticks as u64;
        let mix = ringkv_core::hash::key_hash(
            &seed.to_le_bytes(),
            &[id.to_le_bytes(), u64::from(partition).to_le_bytes()].concat(),
        );
        let min = (e + mix % e) as usize;
        c.min_election_tick = min;
        c.max_election_tick = min + 1;
    }
    c
}

impl Group {
    /// Loads the group of `partition` from `store`, or starts it with
    /// `voters` when it was never stored (and stores its first record).
    pub(crate) fn open<S: Store>(
        store: &mut S,
        partition: PartitionId,
        me: u64,
        voters: &[u64],
        cfg: &ConsensusConfig,
    ) -> Result<Group, String> {
        let loaded = store
            .raft_load(partition)
            .map_err(|e| format!("cannot load consensus group {partition}: {e}"))?;
        let (log, applied) = match loaded {
            Some(l) => {
                let state = StateRecord::from_bytes(&l.state)
                    .map_err(|e| format!("group {partition}'s state record is corrupt: {e}"))?;
                let mut entries = Vec::with_capacity(l.entries.len());
                for (i, bytes) in &l.entries {
                    let e: Entry = protobuf::Message::parse_from_bytes(bytes)
                        .map_err(|e| format!("group {partition}'s entry {i} is corrupt: {e}"))?;
                    entries.push(e);
                }
                let applied = state.applied;
                (GroupLog::restore(&state, entries), applied)
            }
            None => {
                let state = StateRecord {
                    voters: voters.to_vec(),
                    ..StateRecord::default()
                };
                store
                    .raft_put_state(partition, &state.to_bytes())
                    .map_err(|e| format!("cannot store consensus group {partition}: {e}"))?;
                (GroupLog::restore(&state, Vec::new()), 0)
            }
        };
        let config = raft_config(me, applied, cfg, partition);
        let raw = RawNode::new(&config, log, &discard())
            .map_err(|e| format!("cannot start consensus group {partition}: {e}"))?;
        Ok(Group {
            partition,
            raw,
            applied,
            idle: 0,
            elections: 0,
            seen_leader: None,
        })
    }

    /// The leader's raft id, if known.
    pub(crate) fn leader(&self) -> Option<u64> {
        let l = self.raw.raft.leader_id;
        (l != raft::INVALID_ID).then_some(l)
    }

    /// Whether this node leads the group.
    pub(crate) fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// Whether the group has nothing left to do: no leader change to make,
    /// every voter has the whole log (so no append needs a retry).
    pub(crate) fn settled(&self) -> bool {
        let Some(_) = self.leader() else { return false };
        if !self.is_leader() {
            return true;
        }
        let last = self.raw.raft.raft_log.last_index();
        self.raw.raft.prs().iter().all(|(_, p)| p.matched >= last)
            && self.applied >= self.raw.raft.raft_log.committed
    }

    /// Handles a `Ready` if there is one: persists, applies, collects.
    pub(crate) fn on_ready<S: Store>(&mut self, store: &mut S) -> Result<Effects, StoreError> {
        let mut fx = Effects::default();
        if !self.raw.has_ready() {
            return Ok(fx);
        }
        let mut rd = self.raw.ready();
        fx.msgs_now.extend(rd.take_messages());
        if !rd.snapshot().is_empty() {
            self.adopt_snapshot(store, rd.snapshot())?;
            fx.must_sync = true;
        }
        self.apply_entries(store, rd.take_committed_entries(), &mut fx)?;
        if !rd.entries().is_empty() {
            let ents = rd.take_entries();
            self.persist_entries(store, &ents)?;
            fx.must_sync = true;
        }
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs.clone());
            fx.must_sync = true;
        }
        for rs in rd.take_read_states() {
            if let Some(id) = read_id(&rs.request_ctx) {
                fx.reads.push((id, rs.index));
            }
        }
        fx.msgs.extend(rd.take_persisted_messages());
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit);
        }
        fx.msgs.extend(light.take_messages());
        self.apply_entries(store, light.take_committed_entries(), &mut fx)?;
        self.raw.advance_apply_to(self.applied);
        self.save_state(store)?;
        if self.leader() != self.seen_leader {
            self.seen_leader = self.leader();
            fx.leader_changed = true;
            if self.is_leader() {
                self.elections += 1;
            }
        }
        Ok(fx)
    }

    fn persist_entries<S: Store>(
        &mut self,
        store: &mut S,
        ents: &[Entry],
    ) -> Result<(), StoreError> {
        let bytes: Vec<Vec<u8>> = ents
            .iter()
            .map(|e| protobuf::Message::write_to_bytes(e).expect("entry encoding cannot fail"))
            .collect();
        store.raft_append(self.partition, ents[0].index, &bytes)?;
        self.raw.mut_store().append(ents);
        Ok(())
    }

    fn save_state<S: Store>(&mut self, store: &mut S) -> Result<(), StoreError> {
        let rec = self.raw.store().record(self.applied);
        store.raft_put_state(self.partition, &rec.to_bytes())
    }

    /// Applies committed entries in order; records the outcome of each
    /// command for whoever waits for it.
    fn apply_entries<S: Store>(
        &mut self,
        store: &mut S,
        ents: Vec<Entry>,
        fx: &mut Effects,
    ) -> Result<(), StoreError> {
        for e in ents {
            if e.index <= self.applied {
                continue;
            }
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                match Command::from_bytes(&e.data) {
                    Ok(cmd) => {
                        let outcome = self.apply_command(store, e.index, &cmd)?;
                        fx.applied.push((e.index, cmd, outcome));
                    }
                    Err(err) => warn!(
                        group = self.partition,
                        index = e.index,
                        error = %err,
                        "a committed entry does not decode; skipped"
                    ),
                }
            }
            self.applied = e.index;
        }
        Ok(())
    }

    fn apply_command<S: Store>(
        &mut self,
        store: &mut S,
        index: u64,
        cmd: &Command,
    ) -> Result<Applied, StoreError> {
        let current = store.get(self.partition, &cmd.key)?;
        let outcome = strong::apply(current.as_ref(), index, cmd);
        if let Applied::Written(o) = &outcome {
            store.put(self.partition, &cmd.key, o)?;
        }
        Ok(outcome)
    }

    /// Adopts the leader's snapshot: stores every key it holds that is newer
    /// than ours, and restarts the log after it.
    fn adopt_snapshot<S: Store>(
        &mut self,
        store: &mut S,
        snap: &Snapshot,
    ) -> Result<(), StoreError> {
        // `on_raft` refused snapshots that do not decode; one that does not
        // here is our own bug, and adopting nothing would leave raft ahead
        // of the store.
        let objects = decode_snapshot(&snap.data).map_err(|e| {
            StoreError::Corrupt(format!("group {}'s snapshot: {e}", self.partition))
        })?;
        for (key, object) in &objects {
            let have = store.get(self.partition, key)?;
            if strong::stored_version(Some(object)) > strong::stored_version(have.as_ref()) {
                store.put(self.partition, key, object)?;
            }
        }
        let index = snap.get_metadata().index;
        self.raw.mut_store().apply_snapshot(snap);
        self.applied = self.applied.max(index);
        // The keys first, then the record that says the log starts after
        // the snapshot, then the old entries go: a crash between any two
        // leaves a state `Group::open` can restart from.
        self.save_state(store)?;
        store.raft_compact(self.partition, u64::MAX)?;
        Ok(())
    }

    /// Builds the snapshot raft asked for, at the applied index, from the
    /// strong keys of the partition in `store`.
    pub(crate) fn build_snapshot<S: Store>(&mut self, store: &S) -> Result<(), StoreError> {
        if self.raw.store().wanted().is_none() {
            return Ok(());
        }
        let Some(term) = self.raw.store().term_of(self.applied) else {
            return Ok(());
        };
        let objects: Vec<(BucketKey, Object)> = store
            .scan_partition(self.partition)?
            .into_iter()
            .filter(|(_, o)| is_strong(o))
            .collect();
        let mut snap = Snapshot {
            data: postcard::to_allocvec(&objects)
                .expect("snapshot encoding cannot fail")
                .into(),
            ..Snapshot::default()
        };
        let meta = snap.mut_metadata();
        meta.index = self.applied;
        meta.term = term;
        meta.set_conf_state(self.raw.store().conf().clone());
        self.raw.mut_store().set_snapshot(snap);
        Ok(())
    }

    /// Compacts the log when more than `keep` applied entries are behind.
    pub(crate) fn maybe_compact<S: Store>(
        &mut self,
        store: &mut S,
        keep: u64,
    ) -> Result<(), StoreError> {
        let log = self.raw.store();
        if self.applied.saturating_sub(log.first()) <= keep {
            return Ok(());
        }
        let upto = self.applied - keep / 2;
        self.raw.mut_store().compact(upto);
        // The record first: entries below its start are ignored on restart.
        self.save_state(store)?;
        store.raft_compact(self.partition, upto + 1)
    }
}

/// The keys a snapshot carries.
pub(crate) fn decode_snapshot(data: &[u8]) -> Result<Vec<(BucketKey, Object)>, postcard::Error> {
    postcard::from_bytes(data)
}

/// Whether a stored object belongs to a strong bucket (written through a
/// consensus group).
pub(crate) fn is_strong(o: &Object) -> bool {
    o.siblings.len() == 1 && o.siblings[0].dot.actor == strong::strong_actor()
}

/// A read's request id, from the context raft echoes in its read state.
fn read_id(ctx: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(ctx.try_into().ok()?))
}
