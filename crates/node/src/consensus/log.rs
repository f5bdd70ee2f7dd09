//! One consensus group's log as raft-rs reads it ([`raft::Storage`]), kept
//! in memory and mirrored to the node's store by the group, and the state
//! record that makes it durable.
//!
//! Snapshots are made lazily: when raft asks for one the log cannot give,
//! the request is noted and raft is told to try later; the group then builds
//! one from its store at its applied index (it has the store, this does not)
//! and hands it here.

use std::cell::Cell;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{Error as RaftError, GetEntriesContext, RaftState, Storage, StorageError};
use serde::{Deserialize, Serialize};

/// What a group must remember across restarts besides its entries: raft's
/// hard state, the voters, where the log starts, and what was applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateRecord {
    pub(crate) term: u64,
    pub(crate) vote: u64,
    pub(crate) commit: u64,
    pub(crate) voters: Vec<u64>,
    /// The last index a snapshot or compaction covers (entries start after it).
    pub(crate) snap_index: u64,
    /// Its term.
    pub(crate) snap_term: u64,
    /// The last entry applied to the store.
    pub(crate) applied: u64,
}

impl StateRecord {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("state encoding cannot fail")
    }

    pub(crate) fn from_bytes(b: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(b)
    }
}

/// The log of one group, in memory.
pub(crate) struct GroupLog {
    hard: HardState,
    conf: ConfState,
    snap_index: u64,
    snap_term: u64,
    entries: Vec<Entry>,
    /// A snapshot built for raft, while it is recent enough.
    snapshot: Option<Snapshot>,
    /// Raft asked for a snapshot at or above this index and got none yet.
    wanted: Cell<Option<u64>>,
}

impl GroupLog {
    /// A log from its state record and entries.
    /// Entries at or below the record's `snap_index` (a crash between a
    /// compaction's steps) are dropped, and so is anything after a gap.
    pub(crate) fn restore(state: &StateRecord, mut entries: Vec<Entry>) -> Self {
        entries.retain(|e| e.index > state.snap_index);
        let contiguous = entries
            .iter()
            .enumerate()
            .take_while(|(i, e)| e.index == state.snap_index + 1 + *i as u64)
            .count();
        entries.truncate(contiguous);
        let hard = HardState {
            term: state.term,
            vote: state.vote,
            commit: state.commit,
            ..HardState::default()
        };
        let conf = ConfState {
            voters: state.voters.clone(),
            ..ConfState::default()
        };
        GroupLog {
            hard,
            conf,
            snap_index: state.snap_index,
            snap_term: state.snap_term,
            entries,
            snapshot: None,
            wanted: Cell::new(None),
        }
    }

    /// The record that restores this log (with `applied`).
    pub(crate) fn record(&self, applied: u64) -> StateRecord {
        StateRecord {
            term: self.hard.term,
            vote: self.hard.vote,
            commit: self.hard.commit,
            voters: self.conf.voters.clone(),
            snap_index: self.snap_index,
            snap_term: self.snap_term,
            applied,
        }
    }

    pub(crate) fn set_hard_state(&mut self, hs: HardState) {
        self.hard = hs;
    }

    pub(crate) fn set_commit(&mut self, commit: u64) {
        self.hard.commit = commit;
    }

    /// Appends `ents`, dropping any stored entries they overwrite and every
    /// later one. Entries must follow the log without a gap (raft's promise).
    pub(crate) fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else { return };
        let keep = first.index.saturating_sub(self.snap_index + 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
    }

    /// Forgets entries up to and including `index` (at most the last one).
    pub(crate) fn compact(&mut self, index: u64) {
        if index <= self.snap_index || index > self.last() {
            return;
        }
        let term = self.term_of(index).unwrap_or(self.snap_term);
        let drop = (index - self.snap_index) as usize;
        self.entries.drain(..drop);
        self.snap_index = index;
        self.snap_term = term;
        // A snapshot older than the log's start could not be followed by
        // appends (its next entries are gone): build a new one when asked.
        if self
            .snapshot
            .as_ref()
            .is_some_and(|s| s.get_metadata().index < index)
        {
            self.snapshot = None;
        }
    }

    /// Adopts a snapshot from the leader: the log restarts after it.
    pub(crate) fn apply_snapshot(&mut self, snap: &Snapshot) {
        let meta = snap.get_metadata();
        self.entries.clear();
        self.snap_index = meta.index;
        self.snap_term = meta.term;
        self.hard.term = self.hard.term.max(meta.term);
        self.hard.commit = self.hard.commit.max(meta.index);
        self.conf = meta.get_conf_state().clone();
    }

    /// The snapshot raft asked for, if it asked for one not yet built.
    pub(crate) fn wanted(&self) -> Option<u64> {
        self.wanted.get()
    }

    /// Hands raft a snapshot (built by the group at `snap`'s index).
    pub(crate) fn set_snapshot(&mut self, snap: Snapshot) {
        self.wanted.set(None);
        self.snapshot = Some(snap);
    }

    /// The size of the last snapshot built, in bytes (for status).
    pub(crate) fn snapshot_bytes(&self) -> usize {
        self.snapshot.as_ref().map_or(0, |s| s.data.len())
    }

    pub(crate) fn conf(&self) -> &ConfState {
        &self.conf
    }

    pub(crate) fn first(&self) -> u64 {
        self.snap_index + 1
    }

    pub(crate) fn last(&self) -> u64 {
        self.entries.last().map_or(self.snap_index, |e| e.index)
    }

    /// The term of entry `index`, if the log still has it.
    pub(crate) fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.snap_index {
            return Some(self.snap_term);
        }
        if index < self.first() || index > self.last() {
            return None;
        }
        Some(self.entries[(index - self.first()) as usize].term)
    }
}

impl Storage for GroupLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard.clone(), self.conf.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(RaftError::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(RaftError::Store(StorageError::Unavailable));
        }
        let lo = (low - self.first()) as usize;
        let hi = (high - self.first()) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.snap_index {
            return Err(RaftError::Store(StorageError::Compacted));
        }
        self.term_of(idx)
            .ok_or(RaftError::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        match &self.snapshot {
            // Only a snapshot the log continues: an older one would leave the
            // follower needing entries that are gone, and it would get the
            // same snapshot again, for ever.
            Some(s)
                if s.get_metadata().index >= request_index
                    && s.get_metadata().index >= self.snap_index =>
            {
                Ok(s.clone())
            }
            _ => {
                self.wanted.set(Some(request_index));
                Err(RaftError::Store(
                    StorageError::SnapshotTemporarilyUnavailable,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Entry::default()
        }
    }

    fn log() -> GroupLog {
        GroupLog::restore(&StateRecord::default(), Vec::new())
    }

    #[test]
    fn append_overwrites_the_tail() {
        let mut l = log();
        l.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]);
        l.append(&[entry(2, 2)]);
        assert_eq!(l.last(), 2);
        assert_eq!(l.term_of(2), Some(2));
        assert_eq!(l.term_of(3), None);
    }

    #[test]
    fn compaction_keeps_the_term_of_the_last_compacted_entry() {
        let mut l = log();
        l.append(&[entry(1, 1), entry(2, 1), entry(3, 2)]);
        l.compact(2);
        assert_eq!(l.first(), 3);
        assert_eq!(l.term(2).unwrap(), 1);
        assert!(matches!(
            l.term(1),
            Err(RaftError::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            l.entries(2, 4, None, GetEntriesContext::empty(false)),
            Err(RaftError::Store(StorageError::Compacted))
        ));
        assert_eq!(
            l.entries(3, 4, None, GetEntriesContext::empty(false))
                .unwrap()
                .len(),
            1
        );
        // Appending after a compaction continues the log.
        l.append(&[entry(4, 2)]);
        assert_eq!(l.last(), 4);
    }

    #[test]
    fn a_missing_snapshot_is_noted_and_served_once_built() {
        let l0 = log();
        assert!(l0.snapshot(5, 2).is_err());
        assert_eq!(l0.wanted(), Some(5));
        let mut l = l0;
        let mut s = Snapshot::default();
        s.mut_metadata().index = 7;
        l.set_snapshot(s);
        assert_eq!(l.wanted(), None);
        assert_eq!(l.snapshot(5, 2).unwrap().get_metadata().index, 7);
    }

    #[test]
    fn the_state_record_round_trips() {
        let r = StateRecord {
            term: 3,
            vote: 9,
            commit: 40,
            voters: vec![1, 2, 3],
            snap_index: 20,
            snap_term: 2,
            applied: 39,
        };
        assert_eq!(StateRecord::from_bytes(&r.to_bytes()).unwrap(), r);
        let l = GroupLog::restore(&r, Vec::new());
        assert_eq!(l.record(39), r);
    }
}
