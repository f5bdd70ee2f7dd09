//! The worst merge a peer can ask of a node, timed: 150,000 tombstone
//! siblings merged into a key holding as many others, into the same ones,
//! and into an empty key (the frame that froze a node before merges were
//! linear). A measurement, kept out of the tests: timing never decides a
//! test.
//!
//! `cargo run --release -p ringkv-core --example merge_worst_case`

use std::time::Instant;

use ringkv_core::{Actor, Dot, NodeId, Object, Sibling, Value};

/// `n` tombstone siblings of one actor, counters `1..=n`, with a vector
/// covering exactly them.
fn tombstones(node: &str, n: u64) -> Object {
    let a = Actor {
        node: NodeId::from(node),
        incarnation: 7,
    };
    let siblings: Vec<Sibling> = (1..=n)
        .map(|counter| Sibling {
            dot: Dot {
                actor: a.clone(),
                counter,
            },
            value: Value::Tombstone,
            timestamp_ms: counter,
        })
        .collect();
    let vv = [(a, n)].into_iter().collect();
    Object { vv, siblings }
}

fn main() {
    let n = 150_000;
    let local = tombstones("n1", n);
    let theirs = tombstones("n2", n);
    let t = Instant::now();
    let m = local.merge(&theirs);
    println!("{n} + {n} concurrent tombstones: {:?}", t.elapsed());
    assert_eq!(m.siblings.len(), 2 * n as usize);
    let t = Instant::now();
    let again = m.merge(&m);
    println!("{} into the same: {:?}", m.siblings.len(), t.elapsed());
    assert_eq!(again, m);
    let t = Instant::now();
    let empty = Object::empty().merge(&theirs);
    println!("{n} into an empty key: {:?}", t.elapsed());
    assert_eq!(empty, theirs);
}
