//! An in-memory [`Store`] that models durability, for tests and the
//! deterministic simulator.
//!
//! A real node's writes pass three stages: the process has them (visible to
//! `get`), the operating system has them (after `flush`: a killed process
//! loses nothing), the disk has them (after `sync`: a power cut loses
//! nothing). [`MemStore`] keeps all three so the simulator can crash a node
//! either way and check that what was acknowledged survives:
//! [`MemStore::crash_process`] and [`MemStore::crash_power`].
//!
//! Everything is ordered (`BTreeMap`, `Vec`), never hashed, so a simulation
//! seed replays exactly.

use std::collections::{BTreeMap, BTreeSet};

use ringkv_core::hash::BucketKey;
use ringkv_core::sloppy::Hint;
use ringkv_core::{Object, PartitionId};

use crate::{Store, StoreError};

/// Objects of every partition, by partition then key, and the hints.
#[derive(Clone, Debug, Default)]
struct State {
    objects: BTreeMap<PartitionId, BTreeMap<BucketKey, Object>>,
    hints: BTreeSet<Hint>,
    meta: BTreeMap<Vec<u8>, Vec<u8>>,
    raft_state: BTreeMap<PartitionId, Vec<u8>>,
    raft_entries: BTreeMap<PartitionId, BTreeMap<u64, Vec<u8>>>,
}

/// One change, remembered until it is durable.
#[derive(Clone, Debug)]
enum Write {
    Put {
        partition: PartitionId,
        key: BucketKey,
        object: Object,
    },
    Delete {
        partition: PartitionId,
        key: BucketKey,
    },
    PutHint(Hint),
    DeleteHint(Hint),
    PutMeta(Vec<u8>, Vec<u8>),
    RaftAppend {
        group: PartitionId,
        first: u64,
        entries: Vec<Vec<u8>>,
    },
    RaftCompact {
        group: PartitionId,
        below: u64,
    },
    RaftState(PartitionId, Vec<u8>),
}

/// An in-memory store that remembers what was flushed and what was synced,
/// so crashes can be simulated faithfully.
///
/// - `put` changes the visible state and appends to the *unflushed* log.
/// - `flush` moves the unflushed log to the *unsynced* log (the OS has it).
/// - `sync` applies both logs to the *synced* state (the disk has it).
///
/// A process crash keeps the synced state plus the unsynced log; a power cut
/// keeps the synced state only (or, with [`MemStore::crash_power_keeping`], a
/// prefix of the unsynced log, as a journal-based engine recovers).
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    /// What `get` and `scan_partition` see: every write so far.
    visible: State,
    /// What survives a power cut: every write up to the last `sync`.
    synced: State,
    /// Flushed to the "OS" but not synced, in write order.
    unsynced: Vec<Write>,
    /// Not yet flushed, in write order.
    unflushed: Vec<Write>,
}

impl MemStore {
    /// An empty store: nothing written, nothing to lose.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates the process being killed (SIGKILL, panic, OOM kill): writes
    /// that were not flushed are lost; flushed ones survive (the OS still has
    /// them), whether synced or not.
    pub fn crash_process(&mut self) {
        self.unflushed.clear();
        let mut state = self.synced.clone();
        for w in &self.unsynced {
            apply(&mut state, w);
        }
        self.visible = state;
    }

    /// Simulates a power cut (or kernel crash): only what was synced survives.
    pub fn crash_power(&mut self) {
        self.crash_power_keeping(0);
    }

    /// Simulates a power cut after which the first `survivors` flushed but
    /// unsynced writes happened to reach the disk anyway (clamped to how many
    /// there are). A journal-based engine such as fjall recovers a prefix of
    /// its journal, so this is the set of outcomes a real power cut can have;
    /// the simulator picks `survivors` from its seed. Unflushed writes are
    /// always lost.
    pub fn crash_power_keeping(&mut self, survivors: usize) {
        self.unflushed.clear();
        let keep = survivors.min(self.unsynced.len());
        for w in self.unsynced.drain(..keep) {
            apply(&mut self.synced, &w);
        }
        self.unsynced.clear();
        self.visible = self.synced.clone();
    }

    /// How many writes a process crash would lose right now (not flushed).
    /// Lets tests and the simulator check that the runtime flushes before it
    /// acknowledges.
    pub fn unflushed_len(&self) -> usize {
        self.unflushed.len()
    }

    /// How many writes a power cut could lose right now (not synced, flushed
    /// or not).
    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len() + self.unflushed.len()
    }
}

/// Applies one write to a state.
fn apply(state: &mut State, w: &Write) {
    match w {
        Write::Put {
            partition,
            key,
            object,
        } => {
            state
                .objects
                .entry(*partition)
                .or_default()
                .insert(key.clone(), object.clone());
        }
        Write::Delete { partition, key } => {
            if let Some(p) = state.objects.get_mut(partition) {
                p.remove(key);
            }
        }
        Write::PutHint(h) => {
            state.hints.insert(h.clone());
        }
        Write::DeleteHint(h) => {
            state.hints.remove(h);
        }
        Write::PutMeta(k, v) => {
            state.meta.insert(k.clone(), v.clone());
        }
        Write::RaftAppend {
            group,
            first,
            entries,
        } => {
            let log = state.raft_entries.entry(*group).or_default();
            log.split_off(first);
            for (i, e) in entries.iter().enumerate() {
                log.insert(first + i as u64, e.clone());
            }
        }
        Write::RaftCompact { group, below } => {
            if let Some(log) = state.raft_entries.get_mut(group) {
                *log = log.split_off(below);
            }
        }
        Write::RaftState(group, bytes) => {
            state.raft_state.insert(*group, bytes.clone());
        }
    }
}

impl MemStore {
    fn record(&mut self, w: Write) {
        apply(&mut self.visible, &w);
        self.unflushed.push(w);
    }
}

impl Store for MemStore {
    fn get(&self, partition: PartitionId, key: &BucketKey) -> Result<Option<Object>, StoreError> {
        Ok(self
            .visible
            .objects
            .get(&partition)
            .and_then(|p| p.get(key))
            .cloned())
    }

    fn put(
        &mut self,
        partition: PartitionId,
        key: &BucketKey,
        object: &Object,
    ) -> Result<(), StoreError> {
        self.record(Write::Put {
            partition,
            key: key.clone(),
            object: object.clone(),
        });
        Ok(())
    }

    fn delete(&mut self, partition: PartitionId, key: &BucketKey) -> Result<(), StoreError> {
        self.record(Write::Delete {
            partition,
            key: key.clone(),
        });
        Ok(())
    }

    fn put_hint(&mut self, hint: &Hint) -> Result<(), StoreError> {
        self.record(Write::PutHint(hint.clone()));
        Ok(())
    }

    fn delete_hint(&mut self, hint: &Hint) -> Result<(), StoreError> {
        self.record(Write::DeleteHint(hint.clone()));
        Ok(())
    }

    fn hints(&self) -> Result<Vec<Hint>, StoreError> {
        Ok(self.visible.hints.iter().cloned().collect())
    }

    fn put_meta(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.record(Write::PutMeta(key.to_vec(), value.to_vec()));
        Ok(())
    }

    fn metas(&self) -> Result<Vec<crate::Meta>, StoreError> {
        Ok(self
            .visible
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.unsynced.append(&mut self.unflushed);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        for w in self.unsynced.drain(..) {
            apply(&mut self.synced, &w);
        }
        Ok(())
    }

    fn scan_partition(
        &self,
        partition: PartitionId,
    ) -> Result<Vec<(BucketKey, Object)>, StoreError> {
        Ok(self
            .visible
            .objects
            .get(&partition)
            .map(|p| p.iter().map(|(k, o)| (k.clone(), o.clone())).collect())
            .unwrap_or_default())
    }

    fn scan_bucket(
        &self,
        partition: PartitionId,
        bucket: &[u8],
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(bytes::Bytes, Object)>, StoreError> {
        use std::ops::Bound;
        let Some(objects) = self.visible.objects.get(&partition) else {
            return Ok(Vec::new());
        };
        let at = |k: &[u8]| {
            BucketKey::new(
                bytes::Bytes::copy_from_slice(bucket),
                bytes::Bytes::copy_from_slice(k),
            )
        };
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(at(a)),
            _ => Bound::Included(at(prefix)),
        };
        Ok(objects
            .range((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.bucket == bucket && k.key.starts_with(prefix))
            .take(limit)
            .map(|(k, o)| (k.key.clone(), o.clone()))
            .collect())
    }

    fn raft_append(
        &mut self,
        group: PartitionId,
        first: u64,
        entries: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.record(Write::RaftAppend {
            group,
            first,
            entries: entries.to_vec(),
        });
        Ok(())
    }

    fn raft_compact(&mut self, group: PartitionId, below: u64) -> Result<(), StoreError> {
        self.record(Write::RaftCompact { group, below });
        Ok(())
    }

    fn raft_put_state(&mut self, group: PartitionId, state: &[u8]) -> Result<(), StoreError> {
        self.record(Write::RaftState(group, state.to_vec()));
        Ok(())
    }

    fn raft_load(&self, group: PartitionId) -> Result<Option<crate::RaftLog>, StoreError> {
        let Some(state) = self.visible.raft_state.get(&group) else {
            return Ok(None);
        };
        let entries = self
            .visible
            .raft_entries
            .get(&group)
            .map(|log| log.iter().map(|(i, e)| (*i, e.clone())).collect())
            .unwrap_or_default();
        Ok(Some(crate::RaftLog {
            state: state.clone(),
            entries,
        }))
    }

    fn raft_groups(&self) -> Result<Vec<PartitionId>, StoreError> {
        Ok(self.visible.raft_state.keys().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringkv_core::{Actor, Dot, NodeId, Value, VersionVector};

    fn obj(v: &str) -> Object {
        let actor = Actor {
            node: NodeId::from("n1"),
            incarnation: 1,
        };
        let dot = Dot { actor, counter: 1 };
        Object::empty().update(
            &VersionVector::new(),
            dot,
            Value::Data(Bytes::copy_from_slice(v.as_bytes())),
            0,
        )
    }

    fn key(b: &str, k: &str) -> BucketKey {
        BucketKey::new(b.as_bytes().to_vec(), k.as_bytes().to_vec())
    }

    /// The memory engine under the conformance suite: a restart is a
    /// process crash, which keeps what was flushed.
    struct MemEngine;

    impl crate::conformance::Engine for MemEngine {
        type Store = MemStore;

        fn open(&mut self) -> MemStore {
            MemStore::new()
        }

        fn restart(&mut self, mut store: MemStore) -> MemStore {
            store.crash_process();
            store
        }
    }

    mod conformance {
        crate::store_conformance_tests!(super::MemEngine);
    }

    #[test]
    fn writes_are_unflushed_until_flush_and_unsynced_until_sync() {
        let mut s = MemStore::new();
        s.put(3, &key("b", "k"), &obj("v")).unwrap();
        s.put_hint(&Hint {
            primary: NodeId::from("n2"),
            partition: 3,
            key: key("b", "k"),
        })
        .unwrap();
        assert_eq!(s.unflushed_len(), 2);
        assert_eq!(s.unsynced_len(), 2);
        s.flush().unwrap();
        assert_eq!(s.unflushed_len(), 0);
        assert_eq!(s.unsynced_len(), 2);
        s.put_meta(b"m", b"v").unwrap();
        assert_eq!(s.unflushed_len(), 1);
        assert_eq!(s.unsynced_len(), 3);
        s.sync().unwrap();
        assert_eq!(s.unflushed_len(), 0);
        assert_eq!(s.unsynced_len(), 0);
    }

    #[test]
    fn process_crash_keeps_flushed_writes_only() {
        let mut s = MemStore::new();
        s.put(0, &key("b", "synced"), &obj("1")).unwrap();
        s.sync().unwrap();
        s.put(0, &key("b", "flushed"), &obj("2")).unwrap();
        s.flush().unwrap();
        s.put(0, &key("b", "lost"), &obj("3")).unwrap();
        // An overwrite of a flushed key that was not flushed itself.
        s.put(0, &key("b", "flushed"), &obj("2b")).unwrap();

        s.crash_process();
        assert_eq!(s.get(0, &key("b", "synced")).unwrap(), Some(obj("1")));
        assert_eq!(s.get(0, &key("b", "flushed")).unwrap(), Some(obj("2")));
        assert_eq!(s.get(0, &key("b", "lost")).unwrap(), None);
        assert_eq!(s.unflushed_len(), 0);
        // The flushed write is still not synced: a power cut now loses it.
        assert_eq!(s.unsynced_len(), 1);
        s.crash_power();
        assert_eq!(s.get(0, &key("b", "flushed")).unwrap(), None);
        assert_eq!(s.get(0, &key("b", "synced")).unwrap(), Some(obj("1")));
    }

    #[test]
    fn power_cut_keeps_synced_writes_only() {
        let mut s = MemStore::new();
        s.put(1, &key("b", "a"), &obj("old")).unwrap();
        s.sync().unwrap();
        s.put(1, &key("b", "a"), &obj("new")).unwrap();
        s.put(1, &key("b", "c"), &obj("c")).unwrap();
        s.flush().unwrap();
        s.put(2, &key("b", "d"), &obj("d")).unwrap();

        s.crash_power();
        assert_eq!(s.get(1, &key("b", "a")).unwrap(), Some(obj("old")));
        assert_eq!(s.get(1, &key("b", "c")).unwrap(), None);
        assert_eq!(s.get(2, &key("b", "d")).unwrap(), None);
        assert_eq!(s.unsynced_len(), 0);
        // Nothing more is lost by a second crash.
        s.crash_process();
        assert_eq!(
            s.scan_partition(1).unwrap(),
            vec![(key("b", "a"), obj("old"))]
        );
    }

    #[test]
    fn sync_covers_unflushed_writes() {
        let mut s = MemStore::new();
        s.put(0, &key("b", "k"), &obj("v")).unwrap();
        s.sync().unwrap();
        s.crash_power();
        assert_eq!(s.get(0, &key("b", "k")).unwrap(), Some(obj("v")));
    }

    #[test]
    fn power_cut_may_keep_a_prefix_of_flushed_writes() {
        let mut s = MemStore::new();
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            s.put(0, &key("b", k), &obj(&i.to_string())).unwrap();
        }
        s.flush().unwrap();
        s.put(0, &key("b", "d"), &obj("unflushed")).unwrap();
        s.crash_power_keeping(2);
        let keys: Vec<_> = s
            .scan_partition(0)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![key("b", "a"), key("b", "b")]);
        // The survivors are now durable.
        s.crash_power();
        assert_eq!(s.scan_partition(0).unwrap().len(), 2);
        // Asking for more survivors than there are is fine.
        s.put(0, &key("b", "e"), &obj("e")).unwrap();
        s.flush().unwrap();
        s.crash_power_keeping(100);
        assert_eq!(s.scan_partition(0).unwrap().len(), 3);
    }

    #[test]
    fn hints_and_deletes_follow_the_durability_model() {
        let h = |p: &str| Hint {
            primary: NodeId::from(p),
            partition: 0,
            key: key("b", "k"),
        };
        let mut s = MemStore::new();
        s.put(0, &key("b", "k"), &obj("v")).unwrap();
        s.put_hint(&h("n2")).unwrap();
        s.put_hint(&h("n1")).unwrap();
        s.flush().unwrap();
        s.delete_hint(&h("n2")).unwrap();
        s.delete(0, &key("b", "k")).unwrap();
        assert_eq!(s.hints().unwrap(), vec![h("n1")]);
        assert_eq!(s.get(0, &key("b", "k")).unwrap(), None);
        // The deletions were not flushed: a killed process brings both back.
        s.crash_process();
        assert_eq!(s.hints().unwrap(), vec![h("n1"), h("n2")]);
        assert_eq!(s.get(0, &key("b", "k")).unwrap(), Some(obj("v")));
        // Nothing was synced: a power cut loses the hints and the object.
        s.crash_power();
        assert!(s.hints().unwrap().is_empty());
        assert_eq!(s.get(0, &key("b", "k")).unwrap(), None);
        s.delete(3, &key("b", "absent")).unwrap();
    }

    #[test]
    fn raft_writes_follow_the_durability_model() {
        let entries = |tag: &str, first: u64, n: u64| -> Vec<Vec<u8>> {
            (first..first + n)
                .map(|i| format!("{tag}{i}").into_bytes())
                .collect()
        };
        let log = |state: &[u8], first: u64, e: Vec<Vec<u8>>| crate::RaftLog {
            state: state.to_vec(),
            entries: (first..).zip(e).collect(),
        };
        let mut s = MemStore::new();
        // Synced: group 1 with entries 1..=4.
        s.raft_put_state(1, b"synced").unwrap();
        s.raft_append(1, 1, &entries("s", 1, 4)).unwrap();
        s.sync().unwrap();
        // Flushed, not synced: a truncation and a new group.
        s.raft_append(1, 3, &entries("f", 3, 1)).unwrap();
        s.raft_put_state(2, b"flushed").unwrap();
        s.flush().unwrap();
        // Not flushed: a compaction, a state record, an append, a new group.
        s.raft_compact(1, 2).unwrap();
        s.raft_put_state(1, b"unflushed").unwrap();
        s.raft_append(2, 1, &entries("u", 1, 2)).unwrap();
        s.raft_put_state(3, b"unflushed").unwrap();
        assert_eq!(s.unflushed_len(), 4);
        assert_eq!(s.unsynced_len(), 6);
        assert_eq!(s.raft_groups().unwrap(), vec![1, 2, 3]);

        // A killed process loses the unflushed four, keeps the flushed two.
        s.crash_process();
        let mut flushed = entries("s", 1, 2);
        flushed.extend(entries("f", 3, 1));
        assert_eq!(s.raft_load(1).unwrap(), Some(log(b"synced", 1, flushed)));
        assert_eq!(s.raft_load(2).unwrap(), Some(log(b"flushed", 1, vec![])));
        assert_eq!(s.raft_load(3).unwrap(), None);
        assert_eq!(s.raft_groups().unwrap(), vec![1, 2]);
        assert_eq!(s.unsynced_len(), 2);

        // A power cut loses the flushed ones too: the truncated entry 4 is back.
        s.crash_power();
        let synced = log(b"synced", 1, entries("s", 1, 4));
        assert_eq!(s.raft_load(1).unwrap(), Some(synced.clone()));
        assert_eq!(s.raft_load(2).unwrap(), None);
        assert_eq!(s.raft_groups().unwrap(), vec![1]);

        // A power cut that keeps a prefix of the flushed writes keeps them
        // in order: the truncation without the later state record.
        s.raft_append(1, 2, &entries("p", 2, 1)).unwrap();
        s.raft_put_state(1, b"second").unwrap();
        s.flush().unwrap();
        s.crash_power_keeping(1);
        let kept = log(b"synced", 1, vec![b"s1".to_vec(), b"p2".to_vec()]);
        assert_eq!(s.raft_load(1).unwrap(), Some(kept));
    }
}
