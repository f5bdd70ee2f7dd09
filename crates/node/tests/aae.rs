//! Anti-entropy on in-process nodes with a scripted message queue: trees
//! find the keys a replica missed, only those keys travel, and a peer's
//! malformed or misaddressed messages change nothing.

mod harness;

use harness::*;
use ringkv_core::NodeId;
use ringkv_core::aae::BRANCHES;
use ringkv_core::msg::{ClientReply, PeerMsg};
use ringkv_node::Input;

fn without_hints() -> Cluster {
    Cluster::tweaked(3, 3, 2, 2, 10_000, 1_000, |c| {
        c.hinted_handoff = false;
        c.aae.interval_ms = 0;
    })
}

/// Writes `count` keys through `at` while `down` is unreachable; each
/// write is acknowledged by the two other replicas.
fn write_while_down(c: &mut Cluster, at: &str, down: &str, count: usize) {
    c.set_up(down, false);
    c.silenced.insert(id(down));
    for i in 0..count {
        let p = c.client(at, put(&format!("k{i}"), "v", None));
        c.deliver_all();
        assert!(
            matches!(c.reply(p), ClientReply::Written { .. }),
            "{:?}",
            c.reply(p)
        );
    }
    c.silenced.remove(&id(down));
    c.set_up(down, true);
}

#[test]
fn one_repair_pass_brings_back_every_missed_write_and_nothing_else_travels() {
    let mut c = without_hints();
    write_while_down(&mut c, "n1", "n3", 200);
    let missing = (0..200)
        .filter(|i| c.stored("n3", &format!("k{i}")).is_none())
        .count();
    assert_eq!(
        missing, 200,
        "n3 missed every write (hinted handoff is off)"
    );

    let queued = c.repair("n3", None);
    assert_eq!(queued, 2 * 16, "one exchange per partition and peer");
    c.settle();

    for i in 0..200 {
        let k = format!("k{i}");
        assert_eq!(c.stored("n3", &k), c.stored("n1", &k), "{k} repaired on n3");
    }
    let snap = c.snapshot();
    assert!(
        snap.windows(2).all(|w| w[0] == w[1]),
        "all three stores are equal"
    );
    let st = c.node("n3").stats();
    assert_eq!(st.aae_keys_repaired, 200, "found by the trees");
    assert_eq!(st.read_repairs, 0);
    // Only the missing keys travelled: n3 had nothing to send, and its
    // peers sent each missing key once (each key to n3 from one peer or
    // both, never more).
    let sent: u64 = ["n1", "n2"]
        .iter()
        .map(|n| c.node(n).stats().aae_keys_sent)
        .sum();
    assert!((200..=400).contains(&sent), "{sent} keys sent");
    assert_eq!(st.aae_keys_sent, 0);

    // Each exchange ended with a round that found equal trees.
    let in_sync = c.node("n3").stats().aae_exchanges_in_sync;
    assert_eq!(in_sync, 2 * 16);
    // A second pass finds equal trees everywhere and sends no key.
    let before: u64 = ["n1", "n2", "n3"]
        .iter()
        .map(|n| c.node(n).stats().aae_keys_sent)
        .sum();
    c.repair("n3", None);
    c.settle();
    let after: u64 = ["n1", "n2", "n3"]
        .iter()
        .map(|n| c.node(n).stats().aae_keys_sent)
        .sum();
    assert_eq!(before, after);
    assert_eq!(c.node("n3").stats().aae_exchanges_in_sync, in_sync + 2 * 16);
}

#[test]
fn a_repair_of_one_partition_touches_only_that_partition() {
    let mut c = without_hints();
    write_while_down(&mut c, "n1", "n3", 100);
    let p = key("k0").partition(16);
    assert_eq!(c.repair("n3", Some(p)), 2);
    c.settle();
    for i in 0..100 {
        let k = format!("k{i}");
        let here = key(&k).partition(16) == p;
        assert_eq!(c.stored("n3", &k).is_some(), here, "{k}");
    }
}

#[test]
fn writes_after_the_trees_are_built_keep_them_current() {
    let mut c = without_hints();
    // Build every tree, in step.
    c.repair("n1", None);
    c.settle();
    write_while_down(&mut c, "n1", "n3", 50);
    c.repair("n1", None);
    c.settle();
    for i in 0..50 {
        let k = format!("k{i}");
        assert_eq!(c.stored("n3", &k), c.stored("n1", &k), "{k}");
    }
}

#[test]
fn malformed_or_misaddressed_messages_are_refused_and_change_nothing() {
    let mut c = without_hints();
    let p = c.client("n1", put("k", "v", None));
    c.deliver_all();
    assert!(matches!(c.reply(p), ClientReply::Written { .. }));
    let before = c.snapshot();
    let obj = c.stored("n1", "k").unwrap();
    let part = key("k").partition(16);
    let bad: Vec<PeerMsg> = vec![
        // Wrong number of branch hashes.
        PeerMsg::AaeBranches {
            xid: 1,
            partition: part,
            n: 3,
            branches: vec![0; 3],
        },
        // A partition that does not exist.
        PeerMsg::AaeBranches {
            xid: 1,
            partition: 999,
            n: 3,
            branches: vec![0; BRANCHES],
        },
        // n out of range.
        PeerMsg::AaeBranches {
            xid: 1,
            partition: part,
            n: 9,
            branches: vec![0; BRANCHES],
        },
        // A key outside the partition named.
        PeerMsg::AaeKeys {
            xid: 1,
            partition: (part + 1) % 16,
            n: 3,
            segments: vec![0],
            keys: vec![(key("k"), 1)],
        },
        // A segment out of range.
        PeerMsg::AaeKeys {
            xid: 1,
            partition: part,
            n: 3,
            segments: vec![5_000],
            keys: vec![],
        },
    ];
    for msg in bad {
        c.input(
            &id("n2"),
            Input::Peer {
                from: id("n1"),
                msg,
            },
        );
    }
    assert_eq!(c.node("n2").stats().aae_refused, 5);
    // A repair from a node that is not a member of the layout is dropped
    // before anti-entropy sees it.
    c.input(
        &id("n2"),
        Input::Peer {
            from: NodeId::from("stranger"),
            msg: PeerMsg::AaePut {
                key: key("x"),
                object: obj,
            },
        },
    );
    c.deliver_all();
    assert_eq!(c.snapshot(), before, "nothing changed");
}

/// A measurement (run it in release: `cargo test --release -p ringkv-node
/// --test aae -- --ignored --nocapture`): one key differs among 1,000,000
/// on three nodes; one repair pass on one node finds it. Reports the bytes
/// of tree data and of objects sent, and asserts the bound the design
/// promises: at most 64 KB of tree data, and only the differing key's
/// objects.
#[test]
#[ignore = "a measurement: run it in release with --ignored --nocapture"]
fn one_differing_key_among_a_million_costs_little_tree_data() {
    use ringkv_core::{Actor, Object, Value, VersionVector};
    use ringkv_storage::Store;

    const KEYS: usize = 1_000_000;
    let mut c = without_hints();
    let actor = Actor {
        node: id("n1"),
        incarnation: 1,
    };
    let started = std::time::Instant::now();
    for i in 0..KEYS {
        let k = key(&format!("key{i:07}"));
        let p = k.partition(16);
        let o = Object::empty();
        let dot = o.next_dot(&actor, &VersionVector::new());
        let o = o.update(
            &VersionVector::new(),
            dot,
            Value::Data(format!("value {i}").into()),
            1,
        );
        for n in c.nodes.values_mut() {
            n.store_mut().put(p, &k, &o).unwrap();
        }
    }
    eprintln!("loaded {KEYS} keys on 3 nodes in {:?}", started.elapsed());
    // n3 misses the last write of one key.
    let odd = key("key0123456");
    let p = odd.partition(16);
    let stale = c.stored("n1", "key0123456").unwrap();
    let newer = stale.update(
        stale.context(),
        stale.next_dot(&actor, stale.context()),
        Value::Data("newer".into()),
        2,
    );
    for n in ["n1", "n2"] {
        c.nodes
            .get_mut(&id(n))
            .unwrap()
            .store_mut()
            .put(p, &odd, &newer)
            .unwrap();
    }

    let started = std::time::Instant::now();
    c.repair("n3", None);
    c.settle();
    let took = started.elapsed();
    assert_eq!(c.stored("n3", "key0123456"), Some(newer.clone()));
    let stats: Vec<_> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| c.node(n).stats().clone())
        .collect();
    let bytes: u64 = stats.iter().map(|s| s.aae_bytes_sent).sum();
    let keys_sent: u64 = stats.iter().map(|s| s.aae_keys_sent).sum();
    let object_bytes = keys_sent * newer.to_bytes().len() as u64;
    let tree_bytes = bytes - object_bytes;
    let builds: u64 = stats.iter().map(|s| s.aae_tree_builds).sum();
    eprintln!(
        "one repair pass on n3 (with trees built from scratch: {builds} builds) took {took:?}: \
         {tree_bytes} bytes of tree data and key lists, {keys_sent} object(s) of {} bytes sent",
        newer.to_bytes().len()
    );
    // Each of n3's two exchanges finds the key differs and sends it both
    // ways (a digest does not say which side is newer): four objects, all
    // of that key.
    assert!(keys_sent <= 4, "{keys_sent} keys sent");
    assert!(tree_bytes <= 64 * 1024, "{tree_bytes} bytes of tree data");

    // A second pass, trees already built: equal roots only.
    let before: u64 = ["n1", "n2", "n3"]
        .iter()
        .map(|n| c.node(n).stats().aae_bytes_sent)
        .sum();
    let started = std::time::Instant::now();
    c.repair("n3", None);
    c.settle();
    let after: u64 = ["n1", "n2", "n3"]
        .iter()
        .map(|n| c.node(n).stats().aae_bytes_sent)
        .sum();
    eprintln!(
        "a second pass, everything in step: {:?}, {} bytes",
        started.elapsed(),
        after - before
    );
}
