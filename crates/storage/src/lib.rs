//! Where a node keeps its objects: the [`Store`] trait, its types and errors,
//! and the in-memory engine.
//!
//! - [`memory::MemStore`]: in memory, for tests and simulation; it models what
//!   was synced and what a crash loses.
//! - The on-disk engine (fjall) and the data directory live in the crate
//!   `ringkv-storage-fjall`, so that what needs only the trait (the node, the
//!   simulator) does not compile fjall.
//! - `conformance` (cargo feature `conformance`): the behaviour every engine
//!   must have, as tests an engine's crate runs against its own engine.
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod memory;

use ringkv_core::hash::BucketKey;
use ringkv_core::sloppy::Hint;
use ringkv_core::{Object, PartitionId};

/// A storage failure. The message says what failed; the write it belonged to
/// may or may not have been applied.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine reported an I/O or internal error.
    #[error("storage engine error: {0}")]
    Engine(String),
    /// A stored record does not decode: the data directory is damaged.
    #[error("stored record for a key is corrupt: {0}")]
    Corrupt(String),
}

/// One stored piece of metadata: (key, value).
pub type Meta = (Vec<u8>, Vec<u8>);

/// What a node keeps of one consensus group (a partition's raft group of a
/// strong bucket), as [`Store::raft_load`] returns it. The bytes are the
/// consensus machine's own encodings; the store does not read them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftLog {
    /// The group's state record (term, vote, commit, members, where the log
    /// starts, what was applied), as last given to [`Store::raft_put_state`].
    pub state: Vec<u8>,
    /// The log's entries, `(index, entry)` in index order, consecutive.
    pub entries: Vec<(u64, Vec<u8>)>,
}

/// How far a write must get before the node acknowledges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// Replies wait for fsync; concurrent writes share one fsync (group commit).
    Always,
    /// Replies wait for the write to reach the operating system; fsync runs at
    /// least every `interval_ms`. A power cut may lose the last interval.
    Periodic {
        /// Longest time between two fsyncs, in ms.
        interval_ms: u64,
    },
}

/// A node's objects, keyed by partition and (bucket, key).
///
/// Writes become visible to `get` at once; `flush` and `sync` decide how
/// durable they are. The runtime calls `flush` (or `sync`) once per batch of
/// inputs, before releasing the replies that depend on the batch's writes.
pub trait Store {
    /// The stored state of `key`, or `None` when it has none.
    fn get(&self, partition: PartitionId, key: &BucketKey) -> Result<Option<Object>, StoreError>;

    /// Replaces the stored state of `key`.
    fn put(
        &mut self,
        partition: PartitionId,
        key: &BucketKey,
        object: &Object,
    ) -> Result<(), StoreError>;

    /// Removes `key` from `partition` (a fallback dropping a copy it handed
    /// off). Removing a key that is not there is not an error.
    fn delete(&mut self, partition: PartitionId, key: &BucketKey) -> Result<(), StoreError>;

    /// Records a hint, durable on the same terms as `put` (and in order with
    /// it): a fallback stores the object and its hint in one batch.
    fn put_hint(&mut self, hint: &Hint) -> Result<(), StoreError>;

    /// Removes a hint (its primary confirmed the handoff).
    fn delete_hint(&mut self, hint: &Hint) -> Result<(), StoreError>;

    /// Every stored hint, in [`Hint`] order (by primary first).
    fn hints(&self) -> Result<Vec<Hint>, StoreError>;

    /// Stores a piece of cluster metadata this node must remember across
    /// restarts (bucket properties), durable on the same terms as `put`.
    fn put_meta(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;

    /// Every stored piece of metadata, in key order.
    fn metas(&self) -> Result<Vec<Meta>, StoreError>;

    /// Makes every write so far reach the operating system: a killed process
    /// loses none of them (a power cut may).
    fn flush(&mut self) -> Result<(), StoreError>;

    /// Makes every write so far durable on disk (fsync).
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Every key stored in `partition` with its state, in key order.
    fn scan_partition(
        &self,
        partition: PartitionId,
    ) -> Result<Vec<(BucketKey, Object)>, StoreError>;

    /// Up to `limit` keys of `bucket` stored in `partition` that start with
    /// `prefix` and, when `after` is given, come after it, in key order,
    /// each with its state (tombstones included). A range scan: it reads
    /// from the first such key on, never the whole partition.
    fn scan_bucket(
        &self,
        partition: PartitionId,
        bucket: &[u8],
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(bytes::Bytes, Object)>, StoreError>;

    /// Stores raft log entries of `group`, `entries[i]` at index
    /// `first + i`, replacing any stored at those indexes, and removes every
    /// stored entry after the last one given (a new leader overwrote them).
    /// Durable on the same terms as `put`, and in order with it.
    fn raft_append(
        &mut self,
        group: PartitionId,
        first: u64,
        entries: &[Vec<u8>],
    ) -> Result<(), StoreError>;

    /// Removes `group`'s log entries below index `below` (a snapshot covers
    /// them). Removing entries that are not there is not an error.
    fn raft_compact(&mut self, group: PartitionId, below: u64) -> Result<(), StoreError>;

    /// Replaces `group`'s state record. Durable on the same terms as `put`,
    /// and in order with it.
    fn raft_put_state(&mut self, group: PartitionId, state: &[u8]) -> Result<(), StoreError>;

    /// `group`'s state record and log, or `None` if it never had a state
    /// record.
    fn raft_load(&self, group: PartitionId) -> Result<Option<RaftLog>, StoreError>;

    /// Every group with a stored state record, in order.
    fn raft_groups(&self) -> Result<Vec<PartitionId>, StoreError>;
}
