//! The on-disk [`Store`]: fjall 3, one keyspace per ring partition.
//!
//! # Layout on disk
//! - One fjall keyspace per partition, named `p0000` .. `p4095`, created on
//!   the partition's first write, so a whole partition can later be dropped
//!   or streamed on its own.
//! - Record key: the bucket's length (`u16`, big-endian), the bucket bytes,
//!   then the key bytes. The length prefix keeps (`"ab"`, `"c"`) and
//!   (`"a"`, `"bc"`) apart.
//! - Hints live in one more keyspace, `hints`: record key [`Hint::to_bytes`],
//!   empty value. They share the database's journal with the objects, so an
//!   object and its hint written in one batch become durable together.
//! - Record value: [`Object::to_bytes`]. A record that does not decode is
//!   reported as [`StoreError::Corrupt`], never a panic.
//! - The consensus groups' raft logs live in two more keyspaces, in the same
//!   journal as the objects: `raft_state`, record key the group id (`u32`,
//!   big-endian), value its state record; `raft_log`, record key the group id
//!   then the entry's index (`u64`, big-endian), value the entry, so one
//!   group's log is one range of keys in index order. An append (with the
//!   truncation of the entries after it) and a compaction are each one fjall
//!   write batch: a crash keeps all of it or none.
//!
//! # Durability
//! Keyspaces are created with `manual_journal_persist(true)`: a `put` only
//! appends to fjall's in-process journal buffer (no `write(2)`, no fsync), so
//! the runtime decides when to pay for I/O, once per batch:
//! - [`Store::flush`] = `Database::persist(PersistMode::Buffer)`: the journal
//!   buffer is written to the journal file (the OS page cache). A killed
//!   process loses nothing after it returns; a power cut may.
//! - [`Store::sync`] = `Database::persist(PersistMode::SyncData)`: the same,
//!   then `fdatasync` of the journal. fjall preallocates and fsyncs each
//!   journal file when it creates it, and fsyncs file and directory when it
//!   rotates journals, so `fdatasync` is enough for the appended records.
//!
//! fjall itself never fsyncs per write; it fsyncs the journal only when a
//! background worker flushes a full memtable (every few MiB) and when the
//! database is dropped.
//!
//! `sync` holds fjall's journal lock while the disk works, so no write can
//! go in meanwhile. A [`JournalSyncer`] makes flushed writes durable from
//! another thread without that lock: the node's periodic fsync uses it, so
//! the node keeps serving during the fsync.
//!
//! # Row cache
//! The store keeps the most recently read or written objects, decoded, in a
//! row cache of [`ROW_CACHE_BYTES`]. A hot key's memtable holds every version
//! written since the last flush, so a point read walks a skiplist of
//! thousands of entries spread over megabytes: under workload A, reads
//! through the engine were 14 % of a 1-node server's CPU, through the cache
//! 3.6 % (docs/benchmarks.md, fourth round). Every `put` and `delete` goes
//! through the store and updates the cache in the same call, so the cache
//! never disagrees with the engine; it is memory only and starts empty after
//! a restart.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use quick_cache::Weighter;
use ringkv_core::hash::{BucketKey, RING_SIZE_MAX};
use ringkv_core::sloppy::Hint;
use ringkv_core::{Object, PartitionId};

use ringkv_storage::{RaftLog, Store, StoreError};

/// fjall background worker threads (flush and compaction) per store. fjall's
/// default is min(cores, 4); tests run 3 nodes on 2 cores, and writes are
/// small, so one worker keeps up without starving the node's own threads.
pub const WORKER_THREADS: usize = 1;

/// Block cache per store, in bytes (fjall's default: 32 MiB). Modest because
/// several nodes share one test machine; the OS page cache helps reads too.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Largest memtable per partition keyspace before it is flushed to a table, in
/// bytes (fjall's default: 64 MiB). With 64+ partitions per node the default
/// would let memtables grow to gigabytes.
pub const MEMTABLE_BYTES: u64 = 8 * 1024 * 1024;

/// Total journal size after which fjall flushes the oldest memtables, in bytes
/// (fjall's default: 512 MiB; 64 MiB is its minimum). Bounds both disk use and
/// the memory held in memtables, and keeps recovery after a crash short.
pub const MAX_JOURNAL_BYTES: u64 = 64 * 1024 * 1024;

/// Most bytes of decoded objects the row cache keeps (their encoded size plus
/// their key). 16 MiB holds about 60,000 objects of 100-byte values: the hot
/// set of most workloads, at a fraction of the memtables' memory.
pub const ROW_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// Longest encoded record key fjall accepts (its journal stores key lengths as
/// `u16`); longer keys are refused with an error instead of being truncated.
const MAX_RECORD_KEY: usize = u16::MAX as usize;

/// The on-disk store: a fjall database with one keyspace per partition.
///
/// Knobs (see the constants): [`WORKER_THREADS`] background worker,
/// [`CACHE_BYTES`] block cache, [`MEMTABLE_BYTES`] per memtable,
/// [`MAX_JOURNAL_BYTES`] of journals, and manual journal persistence so that
/// `put` never does I/O on its own (`flush`/`sync` do, once per batch).
pub struct FjallStore {
    db: Database,
    path: PathBuf,
    ring_size: u32,
    /// Open keyspace of each partition, `None` until its first write.
    keyspaces: Vec<Option<Keyspace>>,
    /// The hints a fallback keeps for unreachable primaries.
    hints: Keyspace,
    /// Cluster metadata this node remembers (bucket properties).
    meta: Keyspace,
    /// Each consensus group's state record, by group id (see the module docs).
    raft_state: Keyspace,
    /// Each consensus group's log entries, by group id then index.
    raft_log: Keyspace,
    /// Recently used objects, decoded (see the module docs). Behind a lock
    /// only so that `get(&self)` can fill it; the node loop is its one user,
    /// so the lock is never contended.
    rows: Mutex<RowCache>,
    /// The first write that failed, as reported: fjall poisons itself after
    /// a failed journal write, and its later flush errors say only
    /// "Poisoned", while this names the cause (a full disk, say).
    first_write_error: Option<String>,
}

/// Row cache key: the partition and the encoded record key.
type RowKey = (PartitionId, Vec<u8>);

/// A cached object with its weight (encoded size), so eviction needs no
/// encoding.
type RowCache = quick_cache::unsync::Cache<RowKey, (Object, u64), RowWeight>;

/// Weighs a cached row: key bytes plus the object's encoded size.
#[derive(Clone)]
struct RowWeight;

impl Weighter<RowKey, (Object, u64)> for RowWeight {
    fn weight(&self, key: &RowKey, value: &(Object, u64)) -> u64 {
        key.1.len() as u64 + value.1
    }
}

/// An empty row cache holding up to `bytes`.
fn row_cache(bytes: u64) -> RowCache {
    // ~250 bytes per 100-byte-value object: the item estimate only sizes
    // the cache's table up front.
    let items = (bytes / 256).max(1) as usize;
    RowCache::with_weighter(items, bytes, RowWeight)
}

/// Name of the keyspace of cluster metadata.
const META_KEYSPACE: &str = "meta";

/// Name of the keyspace of hints (cannot clash with `p0000`..).
const HINTS_KEYSPACE: &str = "hints";

/// Name of the keyspace of the consensus groups' state records.
const RAFT_STATE_KEYSPACE: &str = "raft_state";

/// Name of the keyspace of the consensus groups' log entries.
const RAFT_LOG_KEYSPACE: &str = "raft_log";

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.path)
            .field("ring_size", &self.ring_size)
            .finish_non_exhaustive()
    }
}

/// Makes every write a [`FjallStore`] had flushed ([`Store::flush`]) when
/// [`JournalSyncer::sync`] is called durable, from any thread, while the
/// store keeps taking writes.
///
/// It `fdatasync`s the active journal, the file fjall appends to, through a
/// descriptor of its own, so it never holds fjall's journal lock. The older
/// journals need nothing: fjall syncs a journal when it seals it and starts
/// the next.
#[derive(Clone, Debug)]
pub struct JournalSyncer {
    /// The database folder, where fjall keeps its journals as `<id>.jnl`.
    dir: PathBuf,
}

impl JournalSyncer {
    /// Makes every write flushed before this call durable.
    pub fn sync(&self) -> Result<(), StoreError> {
        // The journal found may be sealed and removed before it is opened:
        // it was synced when it was sealed, and the next one is active.
        for _ in 0..3 {
            let path = active_journal(&self.dir)?;
            // Opened read-only: on Linux `fdatasync` writes back the file's
            // data whichever descriptor wrote it.
            match std::fs::File::open(&path) {
                Ok(f) => {
                    return f.sync_data().map_err(|e| {
                        StoreError::Engine(format!("syncing journal {}: {e}", path.display()))
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(StoreError::Engine(format!(
                        "opening journal {} to sync it: {e}",
                        path.display()
                    )));
                }
            }
        }
        Err(StoreError::Engine(format!(
            "the journals in {} kept changing while a sync looked for the active one",
            self.dir.display()
        )))
    }
}

/// The journal fjall appends to: the `<id>.jnl` in `dir` with the highest id.
fn active_journal(dir: &Path) -> Result<PathBuf, StoreError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StoreError::Engine(format!("listing journals in {}: {e}", dir.display())))?;
    let mut active: Option<(u64, PathBuf)> = None;
    for entry in entries {
        let entry = entry.map_err(|e| {
            StoreError::Engine(format!("listing journals in {}: {e}", dir.display()))
        })?;
        let name = entry.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jnl"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(id) = id
            && active.as_ref().is_none_or(|(best, _)| id > *best)
        {
            active = Some((id, entry.path()));
        }
    }
    active.map(|(_, path)| path).ok_or_else(|| {
        StoreError::Engine(format!(
            "no journal (<id>.jnl) in {}: the data directory is damaged or not a fjall store",
            dir.display()
        ))
    })
}

/// The keyspace name of a partition: `p` and four digits, so names sort in
/// partition order and fit every allowed ring size.
pub(crate) fn keyspace_name(partition: PartitionId) -> String {
    format!("p{partition:04}")
}

/// Encodes a record key: `u16` big-endian bucket length, bucket, key.
fn encode_key(key: &BucketKey) -> Result<Vec<u8>, StoreError> {
    let len = 2 + key.bucket.len() + key.key.len();
    let blen = u16::try_from(key.bucket.len())
        .ok()
        .filter(|_| len <= MAX_RECORD_KEY);
    let Some(blen) = blen else {
        return Err(StoreError::Engine(format!(
            "bucket and key are {} bytes together, more than the storage engine's limit of {} bytes; use a shorter key",
            key.bucket.len() + key.key.len(),
            MAX_RECORD_KEY - 2
        )));
    };
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&blen.to_be_bytes());
    out.extend_from_slice(&key.bucket);
    out.extend_from_slice(&key.key);
    Ok(out)
}

/// Decodes what [`encode_key`] made.
fn decode_key(raw: &[u8]) -> Result<BucketKey, StoreError> {
    let corrupt = || {
        StoreError::Corrupt(format!(
            "record key {:02x?} is not a length-prefixed bucket and key",
            &raw[..raw.len().min(32)]
        ))
    };
    let (len, rest) = raw.split_first_chunk::<2>().ok_or_else(corrupt)?;
    let blen = usize::from(u16::from_be_bytes(*len));
    if blen > rest.len() {
        return Err(corrupt());
    }
    let (bucket, key) = rest.split_at(blen);
    Ok(BucketKey::new(bucket.to_vec(), key.to_vec()))
}

/// Decodes a record value, naming the key in the error.
fn decode_object(
    key: &BucketKey,
    partition: PartitionId,
    raw: &[u8],
) -> Result<Object, StoreError> {
    Object::from_bytes(raw).map_err(|e| {
        StoreError::Corrupt(format!(
            "partition {partition}, bucket {:?}, key {:?}: {} bytes do not decode as an object ({e})",
            String::from_utf8_lossy(&key.bucket),
            String::from_utf8_lossy(&key.key),
            raw.len()
        ))
    })
}

/// The record key of `group`'s log entry at `index`: both big-endian, so
/// one group's entries are one key range, in index order.
fn raft_log_key(group: PartitionId, index: u64) -> [u8; 12] {
    let mut out = [0; 12];
    out[..4].copy_from_slice(&group.to_be_bytes());
    out[4..].copy_from_slice(&index.to_be_bytes());
    out
}

/// The index in a record key of `group`'s log (see [`raft_log_key`]).
fn decode_raft_index(group: PartitionId, raw: &[u8]) -> Result<u64, StoreError> {
    let index = raw
        .split_first_chunk::<4>()
        .filter(|(g, _)| u32::from_be_bytes(**g) == group)
        .and_then(|(_, rest)| <[u8; 8]>::try_from(rest).ok());
    index.map(u64::from_be_bytes).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "raft log record key {:02x?} is not group {group} and an index",
            &raw[..raw.len().min(32)]
        ))
    })
}

/// The group id a state record key holds (see [`RAFT_STATE_KEYSPACE`]).
fn decode_raft_group(raw: &[u8]) -> Result<PartitionId, StoreError> {
    let group = <[u8; 4]>::try_from(raw).map(u32::from_be_bytes);
    group.map_err(|_| {
        StoreError::Corrupt(format!(
            "raft state record key {:02x?} is not a group id",
            &raw[..raw.len().min(32)]
        ))
    })
}

impl FjallStore {
    /// Remembers the first failed write (see `first_write_error`) and
    /// returns its error.
    fn write_failed(&mut self, e: StoreError) -> StoreError {
        if self.first_write_error.is_none() {
            self.first_write_error = Some(e.to_string());
        }
        e
    }

    /// A flush or sync error, with the first failed write appended: the
    /// engine's own error after one is only "Poisoned", which tells an
    /// operator nothing.
    fn with_cause(&self, e: StoreError) -> StoreError {
        match (&self.first_write_error, e) {
            (Some(first), StoreError::Engine(m)) => {
                StoreError::Engine(format!("{m} (after an earlier failed write: {first})"))
            }
            (_, e) => e,
        }
    }
}

/// Wraps a fjall error with what we were doing.
fn engine(what: &str, e: fjall::Error) -> StoreError {
    StoreError::Engine(format!("{what}: {e}"))
}

/// The options every partition keyspace is created with. fjall stores them
/// with the keyspace; a reopened keyspace keeps the options it was created
/// with.
fn keyspace_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .manual_journal_persist(true)
        .max_memtable_size(MEMTABLE_BYTES)
}

impl FjallStore {
    /// Opens (or creates) the store at `path` for a ring of `ring_size`
    /// partitions, recovering fjall's journal after a crash.
    ///
    /// Fails if another process has the store open, if `ring_size` is outside
    /// `1..=4096`, or if the directory holds partitions beyond `ring_size`
    /// (the node was started with a different ring size: refusing is better
    /// than silently hiding that data).
    pub fn open(path: &Path, ring_size: u32) -> Result<Self, StoreError> {
        Self::open_with_row_cache(path, ring_size, ROW_CACHE_BYTES)
    }

    /// Something that makes this store's flushed writes durable from another
    /// thread (see [`JournalSyncer`]).
    pub fn journal_syncer(&self) -> JournalSyncer {
        JournalSyncer {
            dir: self.path.clone(),
        }
    }

    /// [`FjallStore::open`] with a row cache of `row_cache_bytes` (tests use
    /// a tiny one so that eviction happens).
    fn open_with_row_cache(
        path: &Path,
        ring_size: u32,
        row_cache_bytes: u64,
    ) -> Result<Self, StoreError> {
        if ring_size == 0 || ring_size > RING_SIZE_MAX {
            return Err(StoreError::Engine(format!(
                "ring size {ring_size} is out of range: it must be from 1 to {RING_SIZE_MAX}"
            )));
        }
        let db = Database::builder(path)
            .worker_threads(WORKER_THREADS)
            .cache_size(CACHE_BYTES)
            .max_journaling_size(MAX_JOURNAL_BYTES)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| match e {
                fjall::Error::Locked => StoreError::Engine(format!(
                    "store {} is already open in another process; stop that process or use another data directory",
                    path.display()
                )),
                e => engine(&format!("opening store {}", path.display()), e),
            })?;

        for name in db.list_keyspace_names() {
            let name: &str = &name;
            let index = name.strip_prefix('p').and_then(|n| n.parse::<u32>().ok());
            if let Some(p) = index
                && p >= ring_size
            {
                return Err(StoreError::Engine(format!(
                    "store {} holds partition {p} (keyspace {name}) but the ring size is {ring_size}: \
                     start the node with the ring size its data was written with",
                    path.display()
                )));
            }
        }

        let mut keyspaces = Vec::with_capacity(ring_size as usize);
        for p in 0..ring_size {
            let name = keyspace_name(p);
            let ks = if db.keyspace_exists(&name) {
                Some(
                    db.keyspace(&name, keyspace_options)
                        .map_err(|e| engine(&format!("opening keyspace {name}"), e))?,
                )
            } else {
                None
            };
            keyspaces.push(ks);
        }

        let hints = db
            .keyspace(HINTS_KEYSPACE, keyspace_options)
            .map_err(|e| engine("opening the hints keyspace", e))?;
        let meta = db
            .keyspace(META_KEYSPACE, keyspace_options)
            .map_err(|e| engine("opening the metadata keyspace", e))?;
        let raft_state = db
            .keyspace(RAFT_STATE_KEYSPACE, keyspace_options)
            .map_err(|e| engine("opening the raft state keyspace", e))?;
        let raft_log = db
            .keyspace(RAFT_LOG_KEYSPACE, keyspace_options)
            .map_err(|e| engine("opening the raft log keyspace", e))?;

        Ok(Self {
            db,
            path: path.to_path_buf(),
            ring_size,
            keyspaces,
            hints,
            meta,
            raft_state,
            raft_log,
            rows: Mutex::new(row_cache(row_cache_bytes)),
            first_write_error: None,
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of partitions the store was opened for.
    pub fn ring_size(&self) -> u32 {
        self.ring_size
    }

    /// Checks that `partition` is in the ring.
    fn check(&self, partition: PartitionId) -> Result<usize, StoreError> {
        if partition >= self.ring_size {
            return Err(StoreError::Engine(format!(
                "partition {partition} is out of range for ring size {}",
                self.ring_size
            )));
        }
        Ok(partition as usize)
    }

    /// The row cache. A poisoned lock is taken over rather than turned into
    /// a panic: the store's one user is the node loop, and a panic there
    /// stops the loop, so no later call can meet a half-made change.
    fn rows(&self) -> MutexGuard<'_, RowCache> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The keyspace of `partition`, if it was ever written.
    fn existing(&self, partition: PartitionId) -> Result<Option<&Keyspace>, StoreError> {
        let i = self.check(partition)?;
        Ok(self.keyspaces[i].as_ref())
    }

    /// The keyspace of `partition`, created if needed.
    fn keyspace(&mut self, partition: PartitionId) -> Result<&Keyspace, StoreError> {
        let i = self.check(partition)?;
        if self.keyspaces[i].is_none() {
            let name = keyspace_name(partition);
            let ks = self
                .db
                .keyspace(&name, keyspace_options)
                .map_err(|e| engine(&format!("creating keyspace {name}"), e))?;
            self.keyspaces[i] = Some(ks);
        }
        // Just filled in above.
        self.keyspaces[i]
            .as_ref()
            .ok_or_else(|| StoreError::Engine(format!("keyspace of partition {partition} missing")))
    }

    /// The record keys of `group`'s stored log entries from index `from` to
    /// `to`, both included.
    fn raft_keys(
        &self,
        group: PartitionId,
        from: u64,
        to: u64,
    ) -> Result<Vec<fjall::UserKey>, StoreError> {
        if from > to {
            return Ok(Vec::new());
        }
        let range = raft_log_key(group, from)..=raft_log_key(group, to);
        let mut out = Vec::new();
        for guard in self.raft_log.range(range) {
            let k = guard
                .key()
                .map_err(|e| engine(&format!("reading the raft log of group {group}"), e))?;
            out.push(k);
        }
        Ok(out)
    }

    /// Commits a batch of raft log changes, remembering a failure as a
    /// failed write.
    fn commit_raft(&mut self, batch: fjall::OwnedWriteBatch, what: &str) -> Result<(), StoreError> {
        let result = batch.commit();
        result.map_err(|e| self.write_failed(engine(what, e)))
    }
}

impl Store for FjallStore {
    fn get(&self, partition: PartitionId, key: &BucketKey) -> Result<Option<Object>, StoreError> {
        let Some(ks) = self.existing(partition)? else {
            return Ok(None);
        };
        let row = (partition, encode_key(key)?);
        if let Some((object, _)) = self.rows().get(&row) {
            return Ok(Some(object.clone()));
        }
        let raw = ks
            .get(&row.1)
            .map_err(|e| engine(&format!("reading partition {partition}"), e))?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let object = decode_object(key, partition, &raw)?;
        self.rows().insert(row, (object.clone(), raw.len() as u64));
        Ok(Some(object))
    }

    fn put(
        &mut self,
        partition: PartitionId,
        key: &BucketKey,
        object: &Object,
    ) -> Result<(), StoreError> {
        let k = encode_key(key)?;
        let ks = self.keyspace(partition)?;
        let bytes = object.to_bytes();
        let weight = bytes.len() as u64;
        match ks.insert(&k, bytes) {
            Ok(()) => {
                self.rows().insert((partition, k), (object.clone(), weight));
                Ok(())
            }
            Err(e) => {
                // The engine may or may not hold the write: forget the row so
                // the next read asks the engine.
                self.rows().remove(&(partition, k));
                Err(self.write_failed(engine(&format!("writing partition {partition}"), e)))
            }
        }
    }

    fn delete(&mut self, partition: PartitionId, key: &BucketKey) -> Result<(), StoreError> {
        let k = encode_key(key)?;
        let Some(ks) = self.existing(partition)? else {
            return Ok(());
        };
        let result = ks
            .remove(&k)
            .map_err(|e| engine(&format!("deleting from partition {partition}"), e));
        self.rows().remove(&(partition, k));
        result.map_err(|e| self.write_failed(e))
    }

    fn put_hint(&mut self, hint: &Hint) -> Result<(), StoreError> {
        let result = self.hints.insert(hint.to_bytes(), []);
        result.map_err(|e| self.write_failed(engine("writing a hint", e)))
    }

    fn delete_hint(&mut self, hint: &Hint) -> Result<(), StoreError> {
        let result = self.hints.remove(hint.to_bytes());
        result.map_err(|e| self.write_failed(engine("deleting a hint", e)))
    }

    fn hints(&self) -> Result<Vec<Hint>, StoreError> {
        let mut out = Vec::new();
        for guard in self.hints.iter() {
            let k = guard.key().map_err(|e| engine("scanning hints", e))?;
            let hint = Hint::from_bytes(&k).map_err(|e| {
                StoreError::Corrupt(format!(
                    "a stored hint of {} bytes does not decode ({e})",
                    k.len()
                ))
            })?;
            out.push(hint);
        }
        out.sort();
        Ok(out)
    }

    fn put_meta(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let result = self.meta.insert(key, value);
        result.map_err(|e| self.write_failed(engine("writing metadata", e)))
    }

    fn metas(&self) -> Result<Vec<ringkv_storage::Meta>, StoreError> {
        let mut out = Vec::new();
        for guard in self.meta.iter() {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| engine("scanning metadata", e))?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        let result = self.db.persist(PersistMode::Buffer);
        result.map_err(|e| self.with_cause(engine("flushing the journal to the OS", e)))
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        let result = self.db.persist(PersistMode::SyncData);
        result.map_err(|e| self.with_cause(engine("syncing the journal to disk", e)))
    }

    /// Every key of `partition` in [`BucketKey`] order (bucket bytes, then key
    /// bytes), the same order as [`ringkv_storage::memory::MemStore`]. The records come
    /// back from fjall grouped by bucket length; a sort (which finds those
    /// sorted runs, so it is near linear) restores the key order.
    fn scan_partition(
        &self,
        partition: PartitionId,
    ) -> Result<Vec<(BucketKey, Object)>, StoreError> {
        let Some(ks) = self.existing(partition)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for guard in ks.iter() {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| engine(&format!("scanning partition {partition}"), e))?;
            let key = decode_key(&k)?;
            let object = decode_object(&key, partition, &v)?;
            out.push((key, object));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// A range scan from the first record key of `bucket` with `prefix`
    /// (or just after `after`): the keys of one bucket are one contiguous
    /// range of the partition's keyspace (length-prefixed bucket, then key),
    /// and those with a prefix one contiguous range within it.
    fn scan_bucket(
        &self,
        partition: PartitionId,
        bucket: &[u8],
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(bytes::Bytes, Object)>, StoreError> {
        use std::ops::Bound;
        let Some(ks) = self.existing(partition)? else {
            return Ok(Vec::new());
        };
        let start = encode_key(&BucketKey::new(
            bytes::Bytes::copy_from_slice(bucket),
            bytes::Bytes::copy_from_slice(prefix),
        ))?;
        let lower = match after {
            Some(a) if a >= prefix => Bound::Excluded(encode_key(&BucketKey::new(
                bytes::Bytes::copy_from_slice(bucket),
                bytes::Bytes::copy_from_slice(a),
            ))?),
            _ => Bound::Included(start.clone()),
        };
        let mut out = Vec::new();
        for guard in ks.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = guard
                .into_inner()
                .map_err(|e| engine(&format!("scanning partition {partition}"), e))?;
            if !k.starts_with(&start) {
                break;
            }
            let key = decode_key(&k)?;
            let object = decode_object(&key, partition, &v)?;
            out.push((key.key, object));
        }
        Ok(out)
    }

    /// One write batch: the entries, and the removal of every stored entry
    /// after the last of them (so a crash never keeps the new entries with
    /// stale ones after them, nor the truncation without the entries).
    fn raft_append(
        &mut self,
        group: PartitionId,
        first: u64,
        entries: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.check(group)?;
        let end = u64::try_from(entries.len())
            .ok()
            .and_then(|n| first.checked_add(n));
        let Some(end) = end else {
            return Err(StoreError::Engine(format!(
                "{} raft log entries from index {first} of group {group} run past the last index",
                entries.len()
            )));
        };
        // Neither removed nor inserted twice: the stale keys start at `end`.
        let stale = self.raft_keys(group, end, u64::MAX)?;
        let mut batch = self.db.batch();
        for k in stale {
            batch.remove(&self.raft_log, k);
        }
        for (entry, index) in entries.iter().zip(first..) {
            batch.insert(&self.raft_log, raft_log_key(group, index), entry);
        }
        self.commit_raft(
            batch,
            &format!("appending to the raft log of group {group}"),
        )
    }

    /// One write batch removing the entries below `below`.
    fn raft_compact(&mut self, group: PartitionId, below: u64) -> Result<(), StoreError> {
        self.check(group)?;
        let Some(last) = below.checked_sub(1) else {
            return Ok(());
        };
        let mut batch = self.db.batch();
        for k in self.raft_keys(group, 0, last)? {
            batch.remove(&self.raft_log, k);
        }
        self.commit_raft(batch, &format!("compacting the raft log of group {group}"))
    }

    fn raft_put_state(&mut self, group: PartitionId, state: &[u8]) -> Result<(), StoreError> {
        self.check(group)?;
        let result = self.raft_state.insert(group.to_be_bytes(), state);
        result.map_err(|e| {
            let what = format!("writing the raft state of group {group}");
            self.write_failed(engine(&what, e))
        })
    }

    fn raft_load(&self, group: PartitionId) -> Result<Option<RaftLog>, StoreError> {
        self.check(group)?;
        let reading = |e| engine(&format!("reading the raft log of group {group}"), e);
        let Some(state) = self.raft_state.get(group.to_be_bytes()).map_err(reading)? else {
            return Ok(None);
        };
        let mut entries = Vec::new();
        for guard in self.raft_log.prefix(group.to_be_bytes()) {
            let (k, v) = guard.into_inner().map_err(reading)?;
            entries.push((decode_raft_index(group, &k)?, v.to_vec()));
        }
        Ok(Some(RaftLog {
            state: state.to_vec(),
            entries,
        }))
    }

    fn raft_groups(&self) -> Result<Vec<PartitionId>, StoreError> {
        let mut out = Vec::new();
        for guard in self.raft_state.iter() {
            let k = guard
                .key()
                .map_err(|e| engine("scanning the raft groups", e))?;
            out.push(decode_raft_group(&k)?);
        }
        Ok(out)
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
            incarnation: 9,
        };
        Object::empty().update(
            &VersionVector::new(),
            Dot { actor, counter: 1 },
            Value::Data(Bytes::copy_from_slice(v.as_bytes())),
            42,
        )
    }

    fn key(b: &str, k: &str) -> BucketKey {
        BucketKey::new(b.as_bytes().to_vec(), k.as_bytes().to_vec())
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<FjallStore>();
    }

    #[test]
    fn key_encoding_roundtrips_and_keeps_boundaries() {
        for k in [
            key("ab", "c"),
            key("a", "bc"),
            key("", ""),
            key("", "x"),
            key("b", ""),
        ] {
            assert_eq!(decode_key(&encode_key(&k).unwrap()).unwrap(), k);
        }
        assert_ne!(
            encode_key(&key("ab", "c")).unwrap(),
            encode_key(&key("a", "bc")).unwrap()
        );
        assert!(matches!(decode_key(&[]), Err(StoreError::Corrupt(_))));
        assert!(matches!(decode_key(&[0]), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            decode_key(&[0, 5, b'a']),
            Err(StoreError::Corrupt(_))
        ));
        let huge = BucketKey::new(vec![b'b'; 10], vec![b'k'; 70_000]);
        assert!(matches!(encode_key(&huge), Err(StoreError::Engine(_))));
    }

    #[test]
    fn partitions_outside_the_ring_are_errors_and_keyspaces_are_made_on_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FjallStore::open(dir.path(), 64).unwrap();
        assert!(!s.db.keyspace_exists("p0007"));
        assert_eq!(s.get(7, &key("b", "k")).unwrap(), None);
        assert!(!s.db.keyspace_exists("p0007"), "a read makes no keyspace");
        s.put(7, &key("b", "k"), &obj("v1")).unwrap();
        assert!(s.db.keyspace_exists("p0007"));
        // Out of range partitions are errors, not panics.
        assert!(matches!(
            s.get(64, &key("b", "k")),
            Err(StoreError::Engine(_))
        ));
        assert!(matches!(
            s.put(64, &key("b", "k"), &obj("x")),
            Err(StoreError::Engine(_))
        ));
        assert!(matches!(s.scan_partition(99), Err(StoreError::Engine(_))));
    }

    /// One step of the row-cache model test.
    #[derive(Clone, Debug)]
    enum Step {
        Put(u32, u8, u8),
        Delete(u32, u8),
        Get(u32, u8),
        Reopen,
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0u32..3, 0u8..6, any::<u8>()).prop_map(|(p, k, v)| Step::Put(p, k, v)),
            2 => (0u32..3, 0u8..6).prop_map(|(p, k)| Step::Delete(p, k)),
            4 => (0u32..3, 0u8..6).prop_map(|(p, k)| Step::Get(p, k)),
            1 => Just(Step::Reopen),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever the row cache keeps or evicts, and across restarts (which
        /// empty it), every read answers what the last write left: the
        /// cache never disagrees with the engine.
        #[test]
        fn row_cache_never_disagrees_with_the_engine(
            steps in proptest::collection::vec(step(), 1..60),
            cache_bytes in proptest::prop_oneof![proptest::strategy::Just(1u64), 150u64..600, proptest::strategy::Just(ROW_CACHE_BYTES)],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut s = FjallStore::open_with_row_cache(dir.path(), 4, cache_bytes).unwrap();
            let mut model = std::collections::HashMap::new();
            for st in steps {
                match st {
                    Step::Put(p, k, v) => {
                        let o = obj(&format!("value {v}"));
                        s.put(p, &key("b", &k.to_string()), &o).unwrap();
                        model.insert((p, k), o);
                    }
                    Step::Delete(p, k) => {
                        s.delete(p, &key("b", &k.to_string())).unwrap();
                        model.remove(&(p, k));
                    }
                    Step::Get(p, k) => {
                        let got = s.get(p, &key("b", &k.to_string())).unwrap();
                        proptest::prop_assert_eq!(got.as_ref(), model.get(&(p, k)));
                    }
                    Step::Reopen => {
                        s.flush().unwrap();
                        drop(s);
                        s = FjallStore::open_with_row_cache(dir.path(), 4, cache_bytes).unwrap();
                    }
                }
            }
            for ((p, k), o) in &model {
                let got = s.get(*p, &key("b", &k.to_string())).unwrap();
                proptest::prop_assert_eq!(got.as_ref(), Some(o));
            }
        }
    }

    #[test]
    fn reopen_with_smaller_ring_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = FjallStore::open(dir.path(), 64).unwrap();
            s.put(40, &key("b", "k"), &obj("v")).unwrap();
            s.sync().unwrap();
        }
        let err = FjallStore::open(dir.path(), 8).unwrap_err().to_string();
        assert!(err.contains("ring size"), "{err}");
        assert!(FjallStore::open(dir.path(), 0).is_err());
    }

    #[test]
    fn second_open_of_same_store_fails() {
        let dir = tempfile::tempdir().unwrap();
        let _s = FjallStore::open(dir.path(), 8).unwrap();
        let err = FjallStore::open(dir.path(), 8).unwrap_err().to_string();
        assert!(err.contains("already open"), "{err}");
    }

    #[test]
    fn the_journal_syncer_syncs_the_file_that_holds_flushed_writes() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FjallStore::open(dir.path(), 8).unwrap();
        let value = "a value to find in the journal, 0123456789";
        s.put(2, &key("b", "k"), &obj(value)).unwrap();
        s.flush().unwrap();
        let active = active_journal(dir.path()).unwrap();
        let bytes = std::fs::read(&active).unwrap();
        assert!(
            bytes.windows(value.len()).any(|w| w == value.as_bytes()),
            "{} does not hold the flushed write",
            active.display()
        );
        s.journal_syncer().sync().unwrap();
    }

    #[test]
    fn the_active_journal_is_the_one_with_the_highest_id() {
        let dir = tempfile::tempdir().unwrap();
        let err = active_journal(dir.path()).unwrap_err();
        assert!(err.to_string().contains("no journal"), "{err}");
        for name in [
            "2.jnl",
            "10.jnl",
            "9.jnl",
            "x.jnl",
            "11.jnl.tmp",
            "12",
            "lock",
        ] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(
            active_journal(dir.path()).unwrap(),
            dir.path().join("10.jnl")
        );
        let gone = JournalSyncer {
            dir: dir.path().join("missing"),
        };
        let err = gone.sync().unwrap_err();
        assert!(err.to_string().contains("listing journals"), "{err}");
    }

    #[test]
    fn corrupt_record_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FjallStore::open(dir.path(), 8).unwrap();
        s.put(1, &key("b", "good"), &obj("v")).unwrap();
        let ks = s.keyspaces[1].clone().unwrap();
        // Garbage under a valid key.
        ks.insert(encode_key(&key("b", "bad")).unwrap(), vec![0xff; 7])
            .unwrap();
        assert_eq!(s.get(1, &key("b", "good")).unwrap(), Some(obj("v")));
        let err = s.get(1, &key("b", "bad")).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("bad"), "{err}");
        assert!(matches!(s.scan_partition(1), Err(StoreError::Corrupt(_))));
        // An empty value and a record key that is not ours are corrupt too.
        ks.insert(encode_key(&key("b", "bad")).unwrap(), Vec::<u8>::new())
            .unwrap();
        assert!(matches!(
            s.get(1, &key("b", "bad")),
            Err(StoreError::Corrupt(_))
        ));
        let ks2 = s.keyspace(2).unwrap().clone();
        ks2.insert(vec![0u8, 200, b'x'], obj("v").to_bytes())
            .unwrap();
        assert!(matches!(s.scan_partition(2), Err(StoreError::Corrupt(_))));
    }

    /// Child half of [`flushed_writes_survive_sigkill`]: opens the store named
    /// by the environment, writes, flushes, says so, and waits to be killed.
    #[test]
    #[ignore = "helper run as a child process by flushed_writes_survive_sigkill"]
    fn sigkill_child() {
        let Some(dir) = std::env::var_os("RINGKV_SIGKILL_CHILD_DIR") else {
            return;
        };
        let mut s = FjallStore::open(Path::new(&dir), 8).unwrap();
        for i in 0..100 {
            s.put(i % 8, &key("b", &format!("k{i}")), &obj(&format!("v{i}")))
                .unwrap();
        }
        // Raft writes share the journal: an append, its truncation, a
        // compaction and a state record, flushed with the objects.
        s.raft_put_state(3, b"state").unwrap();
        let entries: Vec<Vec<u8>> = (1..=5).map(|i| format!("e{i}").into_bytes()).collect();
        s.raft_append(3, 1, &entries).unwrap();
        s.raft_append(3, 4, &[b"x4".to_vec()]).unwrap();
        s.raft_compact(3, 2).unwrap();
        s.flush().unwrap();
        println!("FLUSHED");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[test]
    fn flushed_writes_survive_sigkill() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "fjall_store::tests::sigkill_child",
                "--ignored",
                "--nocapture",
            ])
            .env("RINGKV_SIGKILL_CHILD_DIR", dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut flushed = false;
        for line in std::io::BufReader::new(stdout).lines() {
            if line.unwrap().contains("FLUSHED") {
                flushed = true;
                break;
            }
        }
        // SIGKILL: no destructors run, so fjall cannot sync on drop.
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(flushed, "child did not reach the flush");
        let s = FjallStore::open(dir.path(), 8).unwrap();
        for i in 0..100u32 {
            assert_eq!(
                s.get(i % 8, &key("b", &format!("k{i}"))).unwrap(),
                Some(obj(&format!("v{i}"))),
                "write {i} lost"
            );
        }
        let want = RaftLog {
            state: b"state".to_vec(),
            entries: vec![
                (2, b"e2".to_vec()),
                (3, b"e3".to_vec()),
                (4, b"x4".to_vec()),
            ],
        };
        assert_eq!(s.raft_load(3).unwrap(), Some(want));
        assert_eq!(s.raft_groups().unwrap(), vec![3]);
    }

    #[test]
    fn raft_groups_outside_the_ring_are_errors_and_damaged_raft_records_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = FjallStore::open(dir.path(), 8).unwrap();
        assert!(matches!(
            s.raft_put_state(8, b"s"),
            Err(StoreError::Engine(_))
        ));
        assert!(matches!(
            s.raft_append(8, 1, &[vec![1]]),
            Err(StoreError::Engine(_))
        ));
        assert!(matches!(s.raft_compact(8, 1), Err(StoreError::Engine(_))));
        assert!(matches!(s.raft_load(8), Err(StoreError::Engine(_))));
        // An append whose indexes would pass u64::MAX is refused, not a panic.
        let err = s.raft_append(1, u64::MAX, &[vec![1], vec![2]]).unwrap_err();
        assert!(err.to_string().contains("past the last index"), "{err}");
        s.raft_append(1, u64::MAX - 1, &[vec![1]]).unwrap();

        s.raft_put_state(1, b"s").unwrap();
        s.raft_log.insert([0, 0, 0, 1, 9], b"short key").unwrap();
        let err = s.raft_load(1).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        s.raft_state.insert([0, 0, 2], b"s").unwrap();
        assert!(matches!(s.raft_groups(), Err(StoreError::Corrupt(_))));
        assert_eq!(decode_raft_group(&[0, 0, 1, 0]).unwrap(), 256);
        assert_eq!(decode_raft_index(7, &raft_log_key(7, 300)).unwrap(), 300);
        assert!(decode_raft_index(6, &raft_log_key(7, 300)).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// A record key from a damaged disk is refused as corrupt, or is the
        /// encoding of the key it decodes to; never a panic.
        #[test]
        fn arbitrary_record_keys_are_refused_or_exact(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            match decode_key(&raw) {
                Ok(k) => proptest::prop_assert_eq!(encode_key(&k).unwrap(), raw),
                Err(e) => proptest::prop_assert!(matches!(e, StoreError::Corrupt(_)), "{e}"),
            }
        }

        /// A record value from a damaged disk is refused as corrupt with the
        /// partition and key named, or is an object; never a panic.
        #[test]
        fn arbitrary_record_values_are_refused_as_corrupt(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
        ) {
            let key = BucketKey::new("b", "k");
            if let Err(e) = decode_object(&key, 9, &raw) {
                proptest::prop_assert!(matches!(e, StoreError::Corrupt(_)));
                proptest::prop_assert!(e.to_string().contains("partition 9"), "{e}");
            }
        }
    }
}
