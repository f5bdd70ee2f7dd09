//! The behaviour every [`Store`] engine must have, written once and run
//! against each engine.
//!
//! An engine's tests implement [`Engine`] (how to open an empty store and how
//! to restart one) and invoke [`store_conformance_tests!`](crate::store_conformance_tests)
//! with it, which makes one `#[test]` per case below. The memory engine runs
//! the suite in this crate's own tests; another crate enables the cargo
//! feature `conformance` in its dev-dependency on `ringkv-storage`.
//!
//! Only what every engine promises is here: reads see writes at once, keys
//! are per partition and compared as (bucket, key), scans and listings are
//! ordered, deleting what is absent is not an error, and a write that was
//! flushed (or synced) survives a restart. What only one engine does stays
//! beside that engine: the memory engine's crash model (what a process kill
//! or a power cut loses), fjall's ring size checks, row cache, journal syncer
//! and data directory.
//!
//! To add a case: write a `pub fn` here that takes an [`Engine`], and list
//! its name in [`store_conformance_tests!`](crate::store_conformance_tests).

use ringkv_core::hash::BucketKey;
use ringkv_core::sloppy::Hint;
use ringkv_core::{Actor, Dot, NodeId, Object, PartitionId, Value, VersionVector};

use crate::{Meta, RaftLog, Store};

/// The ring size a conformance store must accept: every case uses partitions
/// below it.
pub const RING_SIZE: u32 = 8;

/// An engine under test: where its stores come from and what a restart is.
pub trait Engine {
    /// The store the engine makes.
    type Store: Store;

    /// A new, empty store for a ring of [`RING_SIZE`] partitions.
    fn open(&mut self) -> Self::Store;

    /// The store as the next process sees it after this one ended (stopped
    /// or killed) with `store` in use: every write flushed or synced before
    /// must be there.
    fn restart(&mut self, store: Self::Store) -> Self::Store;
}

/// Makes one `#[test]` per conformance case for the [`Engine`] that the given
/// expression builds (evaluated afresh in each test).
///
/// In an engine's test file (here the memory engine, whose restart keeps
/// what a killed process keeps):
///
/// ```
/// use ringkv_storage::conformance::Engine;
/// use ringkv_storage::memory::MemStore;
///
/// struct Memory;
///
/// impl Engine for Memory {
///     type Store = MemStore;
///
///     fn open(&mut self) -> MemStore {
///         MemStore::new()
///     }
///
///     fn restart(&mut self, mut store: MemStore) -> MemStore {
///         store.crash_process();
///         store
///     }
/// }
///
/// ringkv_storage::store_conformance_tests!(Memory);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($engine:expr) => {
        $crate::store_conformance_tests!(@cases $engine;
            a_new_store_is_empty,
            a_put_is_visible_at_once,
            a_put_replaces_the_stored_object,
            objects_round_trip_exactly,
            partitions_are_isolated,
            bucket_and_key_boundaries_do_not_collide,
            delete_removes_only_its_key,
            deleting_what_is_absent_is_not_an_error,
            scan_is_in_key_order_with_latest_values,
            scan_bucket_lists_one_bucket_by_prefix_after_and_limit,
            hints_are_a_set_listed_in_hint_order,
            hints_and_metas_are_apart_from_objects,
            metas_are_listed_in_key_order_and_replaced,
            flush_and_sync_change_nothing_visible,
            flushed_writes_survive_a_restart,
            synced_writes_survive_a_restart,
            raft_entries_load_in_index_order_with_the_state,
            raft_append_overwrites_and_drops_every_later_entry,
            raft_compact_removes_the_entries_below,
            raft_state_record_is_replaced,
            raft_groups_lists_groups_with_a_state_record_in_order,
            raft_groups_are_independent,
            raft_writes_survive_a_restart,
        );
    };
    (@cases $engine:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::$case($engine);
            }
        )+
    };
}

/// An object holding one value written by `n1`.
fn obj(v: &str) -> Object {
    let actor = Actor {
        node: NodeId::from("n1"),
        incarnation: 7,
    };
    Object::empty().update(
        &VersionVector::new(),
        Dot { actor, counter: 1 },
        Value::Data(v.as_bytes().to_vec().into()),
        42,
    )
}

/// A (bucket, key) from strings.
fn key(b: &str, k: &str) -> BucketKey {
    BucketKey::new(b.as_bytes().to_vec(), k.as_bytes().to_vec())
}

/// A hint for `primary` about (`b`, `k`) in partition 3.
fn hint(primary: &str, k: &str) -> Hint {
    Hint {
        primary: NodeId::from(primary),
        partition: 3,
        key: key("b", k),
    }
}

/// The keys `scan_partition` lists, in its order.
fn scanned_keys(s: &impl Store, partition: PartitionId) -> Vec<BucketKey> {
    let scan = s.scan_partition(partition).expect("scan_partition");
    scan.into_iter().map(|(k, _)| k).collect()
}

/// Everything a store holds: each partition's scan, the hints, the metas.
type Contents = (Vec<Vec<(BucketKey, Object)>>, Vec<Hint>, Vec<Meta>);

/// Reads everything `s` holds.
fn contents(s: &impl Store) -> Contents {
    let scans = (0..RING_SIZE)
        .map(|p| s.scan_partition(p).expect("scan_partition"))
        .collect();
    (scans, s.hints().expect("hints"), s.metas().expect("metas"))
}

/// A new store holds nothing: no object in any partition, no hint, no meta.
pub fn a_new_store_is_empty<E: Engine>(mut engine: E) {
    let s = engine.open();
    for p in 0..RING_SIZE {
        assert_eq!(s.get(p, &key("b", "k")).unwrap(), None, "partition {p}");
        assert!(s.scan_partition(p).unwrap().is_empty(), "partition {p}");
    }
    assert!(s.hints().unwrap().is_empty());
    assert!(s.metas().unwrap().is_empty());
}

/// A put is visible to `get` and `scan_partition` before any flush or sync.
pub fn a_put_is_visible_at_once<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.put(3, &key("b", "k"), &obj("v")).unwrap();
    assert_eq!(s.get(3, &key("b", "k")).unwrap(), Some(obj("v")));
    assert_eq!(
        s.scan_partition(3).unwrap(),
        vec![(key("b", "k"), obj("v"))]
    );
}

/// A second put of a key replaces its object: reads and scans see the last.
pub fn a_put_replaces_the_stored_object<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.put(7, &key("b", "k"), &obj("v1")).unwrap();
    assert_eq!(s.get(7, &key("b", "k")).unwrap(), Some(obj("v1")));
    s.put(7, &key("b", "k"), &obj("v2")).unwrap();
    assert_eq!(s.get(7, &key("b", "k")).unwrap(), Some(obj("v2")));
    assert_eq!(
        s.scan_partition(7).unwrap(),
        vec![(key("b", "k"), obj("v2"))]
    );
}

/// Whatever an object holds (siblings, tombstones, empty or binary values)
/// and whatever bytes its bucket and key are, it reads back equal.
pub fn objects_round_trip_exactly<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    let n2 = Actor {
        node: NodeId::from("n2"),
        incarnation: 3,
    };
    let dot = |counter| Dot {
        actor: n2.clone(),
        counter,
    };
    // Two concurrent values (siblings), then a tombstone next to one of them.
    let siblings = obj("a").update(&VersionVector::new(), dot(1), Value::Data(vec![].into()), 9);
    let tombstone = siblings.update(&VersionVector::new(), dot(2), Value::Tombstone, 10);
    let binary = obj("").update(
        &VersionVector::new(),
        dot(1),
        Value::Data((0..=255u8).collect::<Vec<_>>().into()),
        u64::MAX,
    );
    let cases = [
        (BucketKey::new(vec![], vec![]), Object::empty()),
        (key("b", "siblings"), siblings),
        (key("b", "tombstone"), tombstone),
        (BucketKey::new(vec![0, 0xff], vec![0xff, 0, b'/']), binary),
        (key("b", "big"), obj(&"x".repeat(100_000))),
    ];
    for (k, o) in &cases {
        s.put(1, k, o).unwrap();
    }
    for (k, o) in &cases {
        assert_eq!(s.get(1, k).unwrap().as_ref(), Some(o), "{k:?}");
    }
    let scan = s.scan_partition(1).unwrap();
    assert_eq!(scan.len(), cases.len());
    for (k, o) in &cases {
        assert!(scan.contains(&(k.clone(), o.clone())), "{k:?} in the scan");
    }
}

/// The same key in two partitions is two keys: writes, deletes and scans of
/// one partition never touch another.
pub fn partitions_are_isolated<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.put(3, &key("b", "k"), &obj("three")).unwrap();
    assert_eq!(s.get(4, &key("b", "k")).unwrap(), None);
    s.put(4, &key("b", "k"), &obj("four")).unwrap();
    s.put(4, &key("b", "only-in-4"), &obj("x")).unwrap();
    assert_eq!(s.get(3, &key("b", "k")).unwrap(), Some(obj("three")));
    assert_eq!(s.get(4, &key("b", "k")).unwrap(), Some(obj("four")));
    assert_eq!(scanned_keys(&s, 3), vec![key("b", "k")]);
    assert_eq!(
        scanned_keys(&s, 4),
        vec![key("b", "k"), key("b", "only-in-4")]
    );
    s.delete(3, &key("b", "k")).unwrap();
    assert_eq!(s.get(3, &key("b", "k")).unwrap(), None);
    assert_eq!(s.get(4, &key("b", "k")).unwrap(), Some(obj("four")));
    assert!(s.scan_partition(3).unwrap().is_empty());
    assert!(s.scan_partition(5).unwrap().is_empty());
}

/// A key is the pair (bucket, key), not their concatenation: (`ab`, `c`) and
/// (`a`, `bc`) are different keys.
pub fn bucket_and_key_boundaries_do_not_collide<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    let keys = [
        key("ab", "c"),
        key("a", "bc"),
        key("abc", ""),
        key("", "abc"),
    ];
    for (i, k) in keys.iter().enumerate() {
        s.put(2, k, &obj(&i.to_string())).unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(s.get(2, k).unwrap(), Some(obj(&i.to_string())), "{k:?}");
    }
    assert_eq!(s.scan_partition(2).unwrap().len(), keys.len());
    s.delete(2, &key("ab", "c")).unwrap();
    assert_eq!(s.get(2, &key("a", "bc")).unwrap(), Some(obj("1")));
}

/// A delete removes its key from reads and scans, and nothing else; the key
/// can be written again afterwards.
pub fn delete_removes_only_its_key<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.put(5, &key("b", "gone"), &obj("v")).unwrap();
    s.put(5, &key("b", "kept"), &obj("w")).unwrap();
    s.delete(5, &key("b", "gone")).unwrap();
    assert_eq!(s.get(5, &key("b", "gone")).unwrap(), None);
    assert_eq!(s.get(5, &key("b", "kept")).unwrap(), Some(obj("w")));
    assert_eq!(scanned_keys(&s, 5), vec![key("b", "kept")]);
    s.put(5, &key("b", "gone"), &obj("back")).unwrap();
    assert_eq!(s.get(5, &key("b", "gone")).unwrap(), Some(obj("back")));
}

/// Deleting a key or a hint that is not stored succeeds and changes nothing,
/// in a partition never written as in one that was.
pub fn deleting_what_is_absent_is_not_an_error<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.delete(6, &key("b", "never")).unwrap();
    s.put(2, &key("b", "k"), &obj("v")).unwrap();
    s.delete(2, &key("b", "never")).unwrap();
    s.delete(2, &key("b", "k")).unwrap();
    s.delete(2, &key("b", "k")).unwrap();
    s.put_hint(&hint("n1", "k")).unwrap();
    s.delete_hint(&hint("n2", "k")).unwrap();
    assert_eq!(s.hints().unwrap(), vec![hint("n1", "k")]);
    assert!(s.scan_partition(2).unwrap().is_empty());
    assert!(s.scan_partition(6).unwrap().is_empty());
}

/// `scan_partition` lists every key of the partition once, with its latest
/// object, in [`BucketKey`] order (bucket bytes, then key bytes), whatever
/// the order of the writes and the buckets' lengths.
pub fn scan_is_in_key_order_with_latest_values<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    let keys = [
        key("b", "z"),
        key("ab", "c"),
        key("a", "bc"),
        key("b", ""),
        key("", "x"),
        key("b", "a"),
        key("bucket-long", "a"),
    ];
    for (i, k) in keys.iter().enumerate() {
        s.put(2, k, &obj(&i.to_string())).unwrap();
    }
    s.put(3, &key("b", "other"), &obj("x")).unwrap();
    s.put(2, &key("b", "z"), &obj("new")).unwrap();
    let scan = s.scan_partition(2).unwrap();
    let mut want: Vec<(BucketKey, Object)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), obj(&i.to_string())))
        .collect();
    want[0].1 = obj("new");
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(scan, want);
    assert_eq!(scan[0].0, key("", "x"));
    assert_eq!(scan[1].0, key("a", "bc"));
    assert_eq!(scan[2].0, key("ab", "c"));
}

/// `scan_bucket` lists the keys of one bucket in one partition that start
/// with the prefix and come after `after`, in key order, at most `limit`,
/// tombstones included; other buckets (also those whose name starts like
/// it) and other partitions are never listed.
pub fn scan_bucket_lists_one_bucket_by_prefix_after_and_limit<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    let keys = ["b", "abc", "a", "ab", "\u{ff}", "ac", "a\u{0}"];
    for k in keys {
        s.put(2, &key("b", k), &obj(k)).unwrap();
    }
    let mut gone = obj("ad");
    gone.siblings[0].value = Value::Tombstone;
    s.put(2, &key("b", "ad"), &gone).unwrap();
    s.put(2, &key("bb", "a"), &obj("x")).unwrap();
    s.put(2, &key("", "ba"), &obj("x")).unwrap();
    s.put(2, &key("c", "a"), &obj("x")).unwrap();
    s.put(3, &key("b", "aa"), &obj("x")).unwrap();
    let list = |prefix: &str, after: Option<&str>, limit: usize| -> Vec<String> {
        let got = s
            .scan_bucket(2, b"b", prefix.as_bytes(), after.map(str::as_bytes), limit)
            .unwrap();
        got.into_iter()
            .map(|(k, o)| {
                let what = if o.is_deleted() { "(deleted)" } else { "" };
                format!("{}{what}", String::from_utf8_lossy(&k))
            })
            .collect()
    };
    let all = [
        "a",
        "a\u{0}",
        "ab",
        "abc",
        "ac",
        "ad(deleted)",
        "b",
        "\u{ff}",
    ];
    assert_eq!(list("", None, 100), all);
    assert_eq!(list("", None, 3), all[..3]);
    assert_eq!(list("a", None, 100), all[..6]);
    assert_eq!(list("ab", None, 100), ["ab", "abc"]);
    assert_eq!(list("a", Some("ab"), 100), ["abc", "ac", "ad(deleted)"]);
    assert_eq!(list("a", Some("a"), 2), ["a\u{0}", "ab"]);
    assert_eq!(list("ab", Some("0"), 100), ["ab", "abc"]);
    assert_eq!(list("a", Some("b"), 100), Vec::<String>::new());
    assert_eq!(list("", Some("ad"), 100), ["b", "\u{ff}"]);
    assert_eq!(list("z", None, 100), Vec::<String>::new());
    assert!(s.scan_bucket(5, b"b", b"", None, 10).unwrap().is_empty());
    assert!(s.scan_bucket(2, b"nope", b"", None, 10).unwrap().is_empty());
    let full = s.scan_bucket(2, b"b", b"", None, 100).unwrap();
    assert_eq!(full[0].1, obj("a"));
    assert_eq!(full[5].1, gone);
}

/// Hints form a set: listed in [`Hint`] order (primary first), a second put
/// of the same hint keeps one, and a delete removes only that hint.
pub fn hints_are_a_set_listed_in_hint_order<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.put_hint(&hint("n3", "a")).unwrap();
    s.put_hint(&hint("n2", "k")).unwrap();
    s.put_hint(&hint("n1", "k")).unwrap();
    s.put_hint(&hint("n2", "a")).unwrap();
    s.put_hint(&hint("n2", "k")).unwrap();
    let mut want = vec![
        hint("n1", "k"),
        hint("n2", "a"),
        hint("n2", "k"),
        hint("n3", "a"),
    ];
    want.sort();
    assert_eq!(want[0], hint("n1", "k"), "hints sort by primary first");
    assert_eq!(s.hints().unwrap(), want);
    s.delete_hint(&hint("n2", "k")).unwrap();
    assert_eq!(
        s.hints().unwrap(),
        vec![hint("n1", "k"), hint("n2", "a"), hint("n3", "a")]
    );
}

/// Hints and metas are kept apart from objects: no scan lists them, and
/// deleting an object leaves the hint about it.
pub fn hints_and_metas_are_apart_from_objects<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.put(3, &key("b", "k"), &obj("v")).unwrap();
    s.put_hint(&hint("n2", "k")).unwrap();
    s.put_meta(b"bucket/b", b"{}").unwrap();
    for p in 0..RING_SIZE {
        let want = if p == 3 { vec![key("b", "k")] } else { vec![] };
        assert_eq!(scanned_keys(&s, p), want, "partition {p}");
    }
    s.delete(3, &key("b", "k")).unwrap();
    assert_eq!(s.hints().unwrap(), vec![hint("n2", "k")]);
    assert_eq!(s.metas().unwrap().len(), 1);
}

/// Metadata is listed in key byte order, one entry per key with its last
/// value (empty values included).
pub fn metas_are_listed_in_key_order_and_replaced<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.put_meta(b"bucket/z", b"1").unwrap();
    s.put_meta(b"bucket/a", b"2").unwrap();
    s.put_meta(&[0xff, 0], b"").unwrap();
    s.put_meta(b"bucket", b"3").unwrap();
    s.put_meta(b"bucket/z", b"4").unwrap();
    let want: Vec<Meta> = vec![
        (b"bucket".to_vec(), b"3".to_vec()),
        (b"bucket/a".to_vec(), b"2".to_vec()),
        (b"bucket/z".to_vec(), b"4".to_vec()),
        (vec![0xff, 0], vec![]),
    ];
    assert_eq!(s.metas().unwrap(), want);
}

/// `flush` and `sync` decide durability only: they change nothing a read
/// sees, and calling them with nothing to do, or twice, succeeds.
pub fn flush_and_sync_change_nothing_visible<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.flush().unwrap();
    s.sync().unwrap();
    write_a_mix(&mut s);
    let before = contents(&s);
    s.flush().unwrap();
    s.flush().unwrap();
    assert_eq!(contents(&s), before);
    s.sync().unwrap();
    s.sync().unwrap();
    assert_eq!(contents(&s), before);
}

/// Puts, deletes, hints and metas over several partitions, the way a batch
/// of the node's work mixes them.
fn write_a_mix(s: &mut impl Store) {
    s.put(0, &key("b", "k"), &obj("zero")).unwrap();
    s.put(3, &key("b", "k"), &obj("v")).unwrap();
    s.put(3, &key("b", "gone"), &obj("v")).unwrap();
    s.put(RING_SIZE - 1, &key("c", "k"), &obj("w")).unwrap();
    s.put_hint(&hint("n2", "k")).unwrap();
    s.put_hint(&hint("n1", "k")).unwrap();
    s.put_hint(&hint("n3", "gone")).unwrap();
    s.put_meta(b"bucket/b", b"{\"n\":3}").unwrap();
    s.put(0, &key("b", "k"), &obj("zero again")).unwrap();
    s.delete_hint(&hint("n3", "gone")).unwrap();
    s.delete(3, &key("b", "gone")).unwrap();
    s.delete(5, &key("b", "never")).unwrap();
    s.put_meta(b"bucket/b", b"{\"n\":5}").unwrap();
}

/// After `flush`, a restart keeps every write: objects, deletes, hints and
/// metas, each with its last value.
pub fn flushed_writes_survive_a_restart<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    write_a_mix(&mut s);
    let before = contents(&s);
    s.flush().unwrap();
    let s = engine.restart(s);
    assert_eq!(contents(&s), before);
    assert_eq!(s.get(0, &key("b", "k")).unwrap(), Some(obj("zero again")));
    assert_eq!(s.get(3, &key("b", "gone")).unwrap(), None);
    assert_eq!(s.hints().unwrap(), vec![hint("n1", "k"), hint("n2", "k")]);
}

/// `sync` without a `flush` first covers every write too.
pub fn synced_writes_survive_a_restart<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    write_a_mix(&mut s);
    let before = contents(&s);
    s.sync().unwrap();
    let mut s = engine.restart(s);
    assert_eq!(contents(&s), before);
    // A restarted store takes writes like a new one.
    s.put(3, &key("b", "after"), &obj("x")).unwrap();
    s.sync().unwrap();
    let s = engine.restart(s);
    assert_eq!(s.get(3, &key("b", "after")).unwrap(), Some(obj("x")));
    assert_eq!(s.get(3, &key("b", "k")).unwrap(), Some(obj("v")));
}

/// `n` raft log entries from index `first`, each naming its index and `tag`.
fn raft_entries(tag: &str, first: u64, n: u64) -> Vec<Vec<u8>> {
    (first..first + n)
        .map(|i| format!("{tag}{i}").into_bytes())
        .collect()
}

/// What [`Store::raft_load`] should return: `state`, and the entries as
/// [`raft_entries`] made them, from index `first`.
fn raft_log(state: &[u8], first: u64, entries: &[Vec<u8>]) -> RaftLog {
    RaftLog {
        state: state.to_vec(),
        entries: (first..).zip(entries.iter().cloned()).collect(),
    }
}

/// The indexes of `group`'s stored log entries, in the order loaded.
fn raft_indexes(s: &impl Store, group: PartitionId) -> Vec<u64> {
    let log = s
        .raft_load(group)
        .expect("raft_load")
        .expect("a state record");
    log.entries.into_iter().map(|(i, _)| i).collect()
}

/// Appended entries load back with the state record, in index order and
/// consecutive, across appends and across the byte boundaries of the index
/// (255 to 256, 2^32 - 1 to 2^32). A group without a state record loads as
/// `None`, even with entries.
pub fn raft_entries_load_in_index_order_with_the_state<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    assert_eq!(s.raft_load(1).unwrap(), None);
    assert!(s.raft_groups().unwrap().is_empty());
    let first = raft_entries("e", 250, 4);
    s.raft_append(1, 250, &first).unwrap();
    assert_eq!(s.raft_load(1).unwrap(), None, "entries but no state record");
    s.raft_put_state(1, b"term 1").unwrap();
    assert_eq!(
        s.raft_load(1).unwrap(),
        Some(raft_log(b"term 1", 250, &first))
    );
    // A second append continues the log.
    let more = raft_entries("e", 254, 6);
    s.raft_append(1, 254, &more).unwrap();
    let all = raft_entries("e", 250, 10);
    assert_eq!(
        s.raft_load(1).unwrap(),
        Some(raft_log(b"term 1", 250, &all))
    );
    assert_eq!(raft_indexes(&s, 1), (250..260).collect::<Vec<_>>());
    // Indexes past 32 bits, and empty or binary entries.
    let high = (1u64 << 32) - 2;
    let odd = vec![vec![], vec![0, 0xff], b"x".repeat(10_000)];
    s.raft_put_state(2, b"").unwrap();
    s.raft_append(2, high, &odd).unwrap();
    assert_eq!(s.raft_load(2).unwrap(), Some(raft_log(b"", high, &odd)));
}

/// An append at an index already stored replaces the entry there and drops
/// every entry after the last one given (a new leader overwrote them), even
/// where the new entries end before the old log did.
pub fn raft_append_overwrites_and_drops_every_later_entry<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.raft_put_state(3, b"s").unwrap();
    s.raft_append(3, 1, &raft_entries("old", 1, 8)).unwrap();
    // Overwrite 4 and 5; 6, 7 and 8 go.
    s.raft_append(3, 4, &raft_entries("new", 4, 2)).unwrap();
    let mut want = raft_entries("old", 1, 3);
    want.extend(raft_entries("new", 4, 2));
    assert_eq!(s.raft_load(3).unwrap(), Some(raft_log(b"s", 1, &want)));
    // Overwrite the last entry only, with one entry: nothing else changes.
    s.raft_append(3, 5, &[b"newer5".to_vec()]).unwrap();
    want[4] = b"newer5".to_vec();
    assert_eq!(s.raft_load(3).unwrap(), Some(raft_log(b"s", 1, &want)));
    // Overwrite the first entry: everything after it goes.
    s.raft_append(3, 1, &[b"first".to_vec()]).unwrap();
    assert_eq!(
        s.raft_load(3).unwrap(),
        Some(raft_log(b"s", 1, &[b"first".to_vec()]))
    );
    // The log grows again from there.
    s.raft_append(3, 2, &raft_entries("again", 2, 2)).unwrap();
    assert_eq!(raft_indexes(&s, 3), vec![1, 2, 3]);
}

/// A compaction removes the entries below its index and keeps the rest;
/// compacting below what is stored, or a group without entries, is not an
/// error; a compacted log takes appends after its end.
pub fn raft_compact_removes_the_entries_below<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.raft_compact(4, 10).unwrap();
    s.raft_put_state(4, b"s").unwrap();
    s.raft_append(4, 1, &raft_entries("e", 1, 6)).unwrap();
    s.raft_compact(4, 4).unwrap();
    assert_eq!(
        s.raft_load(4).unwrap(),
        Some(raft_log(b"s", 4, &raft_entries("e", 4, 3)))
    );
    s.raft_compact(4, 2).unwrap();
    s.raft_compact(4, 0).unwrap();
    assert_eq!(raft_indexes(&s, 4), vec![4, 5, 6]);
    // Everything, and then some: the state record stays.
    s.raft_compact(4, 100).unwrap();
    assert_eq!(s.raft_load(4).unwrap(), Some(raft_log(b"s", 1, &[])));
    s.raft_append(4, 100, &raft_entries("e", 100, 2)).unwrap();
    assert_eq!(raft_indexes(&s, 4), vec![100, 101]);
}

/// A second state record replaces the first, whatever their lengths, and
/// leaves the log alone.
pub fn raft_state_record_is_replaced<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.raft_put_state(5, b"a longer first state record").unwrap();
    s.raft_append(5, 7, &raft_entries("e", 7, 2)).unwrap();
    s.raft_put_state(5, b"second").unwrap();
    let entries = raft_entries("e", 7, 2);
    assert_eq!(
        s.raft_load(5).unwrap(),
        Some(raft_log(b"second", 7, &entries))
    );
    s.raft_put_state(5, b"").unwrap();
    assert_eq!(s.raft_load(5).unwrap(), Some(raft_log(b"", 7, &entries)));
    assert_eq!(s.raft_groups().unwrap(), vec![5]);
}

/// `raft_groups` lists each group with a state record once, in group order,
/// whatever the order of the writes; a group with entries only is not one.
pub fn raft_groups_lists_groups_with_a_state_record_in_order<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.raft_put_state(RING_SIZE - 1, b"7").unwrap();
    s.raft_put_state(0, b"0").unwrap();
    s.raft_put_state(3, b"3").unwrap();
    s.raft_put_state(0, b"0 again").unwrap();
    s.raft_append(6, 1, &raft_entries("e", 1, 2)).unwrap();
    s.raft_compact(2, 5).unwrap();
    assert_eq!(s.raft_groups().unwrap(), vec![0, 3, RING_SIZE - 1]);
}

/// Each group has its own log and state: an append, truncation or compaction
/// of one never touches its neighbours; and raft records are apart from
/// objects, hints and metas.
pub fn raft_groups_are_independent<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    s.put(2, &key("b", "k"), &obj("v")).unwrap();
    for g in 1..=3 {
        s.raft_put_state(g, format!("state {g}").as_bytes())
            .unwrap();
        s.raft_append(g, 1, &raft_entries(&format!("g{g}-"), 1, 5))
            .unwrap();
    }
    // Truncate group 2 to one entry, compact it away; rewrite group 1's log.
    s.raft_append(2, 1, &[b"only".to_vec()]).unwrap();
    s.raft_compact(2, 2).unwrap();
    s.raft_append(1, 3, &raft_entries("g1-new", 3, 1)).unwrap();
    s.raft_put_state(2, b"state 2b").unwrap();
    let mut one = raft_entries("g1-", 1, 2);
    one.extend(raft_entries("g1-new", 3, 1));
    assert_eq!(s.raft_load(1).unwrap(), Some(raft_log(b"state 1", 1, &one)));
    assert_eq!(s.raft_load(2).unwrap(), Some(raft_log(b"state 2b", 1, &[])));
    let three = raft_entries("g3-", 1, 5);
    assert_eq!(
        s.raft_load(3).unwrap(),
        Some(raft_log(b"state 3", 1, &three))
    );
    assert_eq!(s.raft_load(0).unwrap(), None);
    assert_eq!(s.raft_load(4).unwrap(), None);
    assert_eq!(scanned_keys(&s, 2), vec![key("b", "k")]);
    assert!(s.scan_partition(1).unwrap().is_empty());
    assert!(s.hints().unwrap().is_empty());
    assert!(s.metas().unwrap().is_empty());
}

/// Every group's state and log.
fn raft_contents(s: &impl Store) -> Vec<(PartitionId, Option<RaftLog>)> {
    (0..RING_SIZE)
        .map(|g| (g, s.raft_load(g).expect("raft_load")))
        .collect()
}

/// Appends, truncations, compactions and state records mixed with objects,
/// in the order a node's batch makes them.
fn write_a_raft_mix(s: &mut impl Store) {
    s.raft_put_state(1, b"one").unwrap();
    s.raft_append(1, 1, &raft_entries("a", 1, 6)).unwrap();
    s.put(1, &key("b", "k"), &obj("v")).unwrap();
    s.raft_append(1, 4, &raft_entries("b", 4, 1)).unwrap();
    s.raft_compact(1, 2).unwrap();
    s.raft_put_state(6, b"six").unwrap();
    s.raft_append(6, 300, &raft_entries("c", 300, 3)).unwrap();
    s.raft_put_state(1, b"one, later").unwrap();
}

/// Raft writes flushed (or synced) survive a restart like objects do, each
/// with its last value, truncations and compactions included; a restarted
/// store keeps appending and truncating.
pub fn raft_writes_survive_a_restart<E: Engine>(mut engine: E) {
    let mut s = engine.open();
    write_a_raft_mix(&mut s);
    let before = raft_contents(&s);
    let mut one = raft_entries("a", 2, 2);
    one.extend(raft_entries("b", 4, 1));
    assert_eq!(before[1].1, Some(raft_log(b"one, later", 2, &one)));
    s.flush().unwrap();
    let mut s = engine.restart(s);
    assert_eq!(raft_contents(&s), before);
    assert_eq!(s.raft_groups().unwrap(), vec![1, 6]);
    assert_eq!(s.get(1, &key("b", "k")).unwrap(), Some(obj("v")));
    // After the restart: truncate group 6, compact group 1, sync only.
    s.raft_append(6, 301, &[b"new".to_vec()]).unwrap();
    s.raft_compact(1, 4).unwrap();
    s.raft_put_state(2, b"two").unwrap();
    s.sync().unwrap();
    let before = raft_contents(&s);
    let s = engine.restart(s);
    assert_eq!(raft_contents(&s), before);
    assert_eq!(raft_indexes(&s, 6), vec![300, 301]);
    assert_eq!(raft_indexes(&s, 1), vec![4]);
    assert_eq!(s.raft_groups().unwrap(), vec![1, 2, 6]);
}
