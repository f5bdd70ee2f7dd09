//! Coordinator behaviour on three or more in-process nodes with a scripted
//! message queue.

mod harness;

use harness::*;
use ringkv_core::msg::{ClientError, ClientReply, PeerMsg};
use ringkv_core::params::QuorumParam;
use ringkv_core::{Actor, Limits, NodeId, VersionVector};
use ringkv_node::Input;

#[test]
fn put_through_one_node_is_read_through_every_node() {
    let mut c = Cluster::new(3, 3, 2, 2);
    let p = c.client("n1", put("k", "v1", None));
    c.deliver_all();
    c.written_context(p);
    for n in ["n1", "n2", "n3"] {
        let g = c.client(n, get("k"));
        c.deliver_all();
        assert_eq!(values(&c.read_object(g)), vec!["v1"], "read through {n}");
    }
}

#[test]
fn writes_without_context_are_siblings_and_a_write_with_context_resolves_them() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.client("n1", put("k", "a", None));
    c.client("n2", put("k", "b", None));
    c.deliver_all();
    let g = c.client("n3", get("k"));
    c.deliver_all();
    let read = c.read_object(g);
    assert_eq!(values(&read), vec!["a", "b"]);
    let p = c.client("n3", put("k", "merged", Some(read.vv.clone())));
    c.deliver_all();
    c.written_context(p);
    for n in ["n1", "n2", "n3"] {
        let g = c.client(n, get_r("k", QuorumParam::All));
        c.deliver_all();
        assert_eq!(values(&c.read_object(g)), vec!["merged"]);
    }
}

#[test]
fn a_write_concurrent_with_a_read_survives_the_readers_write() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.client("n1", put("k", "a", None));
    c.deliver_all();
    let g = c.client("n2", get("k"));
    c.deliver_all();
    let ctx = c.read_object(g).vv;
    c.client("n3", put("k", "concurrent", None));
    c.client("n2", put("k", "from-read", Some(ctx)));
    c.deliver_all();
    let g = c.client("n1", get_r("k", QuorumParam::All));
    c.deliver_all();
    assert_eq!(values(&c.read_object(g)), vec!["concurrent", "from-read"]);
}

#[test]
fn delete_without_context_removes_every_value_the_quorum_knows() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.client("n1", put("k", "a", None));
    c.client("n2", put("k", "b", None));
    c.deliver_all();
    let d = c.client("n3", delete("k", None));
    c.deliver_all();
    c.written_context(d);
    for n in ["n1", "n2", "n3"] {
        let g = c.client(n, get("k"));
        c.deliver_all();
        let o = c.read_object(g);
        assert!(o.is_deleted(), "{n} still sees {:?}", values(&o));
        assert!(!o.vv.is_empty(), "a known tombstone keeps its context");
        assert!(c.stored(n, "k").unwrap().is_deleted());
    }
}

#[test]
fn a_reply_that_never_comes_times_out_with_counts() {
    let mut c = Cluster::new(3, 3, 2, 2);
    let p = c.client("n1", put_w("k", "v", QuorumParam::All));
    c.drop_node_msgs("n3");
    c.deliver_all();
    assert!(
        !c.replies.contains_key(&p),
        "answered before W acks or the deadline"
    );
    c.advance_to(999);
    assert!(!c.replies.contains_key(&p), "answered before the deadline");
    c.advance_to(1_000);
    assert_eq!(
        c.reply(p),
        &ClientReply::Error(ClientError::Unavailable {
            required: 3,
            acks: 2
        })
    );
    // Reads time out the same way when too few replicas answer.
    let g = c.client("n1", get_r("k", QuorumParam::All));
    c.drop_node_msgs("n3");
    c.deliver_all();
    c.advance_to(2_000);
    assert_eq!(
        c.reply(g),
        &ClientReply::Error(ClientError::Unavailable {
            required: 3,
            acks: 2
        })
    );
}

#[test]
fn a_known_down_peer_fails_the_write_at_once() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.input(
        &id("n1"),
        Input::PeerStatus {
            peer: id("n3"),
            up: false,
        },
    );
    let p = c.client("n1", put_w("k", "v", QuorumParam::All));
    assert_eq!(c.queue.len(), 1, "nothing is sent to a peer known down");
    c.deliver_all();
    // It fails as soon as the live replica answered, without waiting for the
    // deadline, and reports every ack it got.
    assert_eq!(
        c.reply(p),
        &ClientReply::Error(ClientError::Unavailable {
            required: 3,
            acks: 2
        })
    );
    let ok = c.client("n1", put("k", "v", None));
    c.deliver_all();
    c.written_context(ok);
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = vec![];
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// Delivers the two queued requests in `order`, then their two replies in
/// `order` again: together every order in which replies can arrive.
fn deliver_pairs(c: &mut Cluster, order: &[usize]) {
    assert_eq!(c.queue.len(), 2);
    let first = c.queue[order[0]].clone();
    let second = c.queue[order[1]].clone();
    c.queue.clear();
    c.queue.push(first);
    c.queue.push(second);
    c.deliver(0);
    c.deliver(0);
    assert_eq!(c.queue.len(), 2, "each request got one reply");
    let (a, b) = (c.queue[order[0]].clone(), c.queue[order[1]].clone());
    c.queue.clear();
    c.queue.push(a);
    c.queue.push(b);
    c.deliver_all();
}

#[test]
fn writes_and_reads_agree_whatever_order_replies_arrive_in() {
    for w in 1..=3usize {
        for order in permutations(2) {
            let mut c = Cluster::new(3, 3, 2, 2);
            c.client("n1", put("k", "a", None));
            c.client("n2", put("k", "b", None));
            c.deliver_all();
            let p = c.client("n1", put_w("k", "c", QuorumParam::Count(w as u32)));
            if w == 1 {
                c.written_context(p); // its own ack is enough
            } else {
                assert!(!c.replies.contains_key(&p));
            }
            deliver_pairs(&mut c, &order);
            c.written_context(p);
            for n in ["n1", "n2", "n3"] {
                assert_eq!(values(&c.stored(n, "k").unwrap()), vec!["a", "b", "c"]);
            }
        }
    }
    for r in 2..=3usize {
        for order in permutations(2) {
            let mut c = Cluster::new(3, 3, 2, 2);
            c.client("n1", put("k", "a", None));
            c.drop_node_msgs("n3");
            c.deliver_all();
            c.client("n3", put_w("k", "b", QuorumParam::One));
            c.drop_node_msgs("n1");
            c.deliver_all();
            // n1: {a}, n2: {a, b}, n3: {b}.
            assert_eq!(values(&c.stored("n2", "k").unwrap()), vec!["a", "b"]);
            let g = c.client("n1", get_r("k", QuorumParam::Count(r as u32)));
            deliver_pairs(&mut c, &order);
            assert_eq!(
                values(&c.read_object(g)),
                vec!["a", "b"],
                "r={r} order={order:?}"
            );
            // After every reply arrived, read repair made all replicas equal.
            let s1 = c.stored("n1", "k").unwrap();
            assert_eq!(Some(s1.clone()), c.stored("n2", "k"));
            assert_eq!(Some(s1.clone()), c.stored("n3", "k"));
            assert_eq!(values(&s1), vec!["a", "b"]);
        }
    }
}

#[test]
fn read_repair_fixes_a_stale_replica() {
    let mut c = Cluster::new(3, 3, 2, 2);
    let p = c.client("n1", put("k", "v", None));
    c.drop_node_msgs("n3");
    c.deliver_all();
    c.written_context(p);
    assert_eq!(c.stored("n3", "k"), None);
    let g = c.client("n2", get("k"));
    c.deliver_all();
    assert_eq!(values(&c.read_object(g)), vec!["v"]);
    assert_eq!(
        c.stored("n3", "k"),
        c.stored("n1", "k"),
        "n3 was repaired by the read"
    );
    assert_eq!(c.nodes[&id("n2")].stats().read_repairs, 1);
}

#[test]
fn a_non_primary_forwards_writes_to_a_primary() {
    let mut c = Cluster::new(4, 3, 2, 2);
    // Find a key whose primaries do not include n4.
    let k = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| {
            let n = &c.nodes[&id("n4")];
            let p = key(k).partition(n.layout().ring_size);
            !n.primaries(p).contains(&id("n4"))
        })
        .unwrap();
    let p = c.client("n4", put(&k, "v", None));
    assert!(matches!(c.queue[0].msg, PeerMsg::Forward { .. }));
    c.deliver_all();
    c.written_context(p);
    assert_eq!(c.stored("n4", &k), None, "a non-primary stores nothing");
    let g = c.client("n4", get(&k));
    c.deliver_all();
    assert_eq!(values(&c.read_object(g)), vec!["v"]);
    assert_eq!(c.nodes[&id("n4")].stats().forwarded, 1);

    // A primary that never answers the forward: the client gets a 503 after the timeout.
    let p = c.client("n4", put(&k, "w", None));
    c.queue.clear();
    c.advance_to(10_000);
    assert!(matches!(
        c.reply(p),
        ClientReply::Error(ClientError::Unavailable { .. })
    ));
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.client("n1", put("k", "v", None));
    c.deliver_all();
    let before = c.snapshot();
    let bad_r = c.client("n1", get_r("k", QuorumParam::Count(4)));
    let bad_w = c.client("n2", put_w("k", "x", QuorumParam::Count(0)));
    let big = c.client("n2", put("k", &"x".repeat(65), None));
    let empty_key = c.client("n3", put("", "x", None));
    let long_key = c.client("n3", put(&"k".repeat(1025), "x", None));
    let mut bad_timeout = get("k");
    bad_timeout.timeout_ms = Some(0);
    let bad_timeout = c.client("n1", bad_timeout);
    c.deliver_all();
    for r in [bad_r, bad_w, empty_key, bad_timeout] {
        assert!(
            matches!(c.reply(r), ClientReply::Error(ClientError::BadRequest(_))),
            "{:?}",
            c.reply(r)
        );
    }
    for r in [big, long_key] {
        assert!(
            matches!(c.reply(r), ClientReply::Error(ClientError::TooLarge(_))),
            "{:?}",
            c.reply(r)
        );
    }
    assert_eq!(c.snapshot(), before);
}

#[test]
fn too_many_pending_requests_are_refused() {
    let mut c = Cluster::with(3, 3, 2, 2, 1);
    let first = c.client("n1", put("k", "v", None));
    let second = c.client("n1", put("k", "w", None));
    assert!(matches!(
        c.reply(second),
        ClientReply::Error(ClientError::Overloaded(_))
    ));
    c.deliver_all();
    c.written_context(first);
    let third = c.client("n1", get("k"));
    c.deliver_all();
    assert_eq!(values(&c.read_object(third)), vec!["v"]);
}

#[test]
fn a_context_read_from_another_key_is_refused() {
    let mut c = Cluster::new(3, 3, 2, 2);
    for v in ["a", "b", "c"] {
        let g = c.client("n1", get("k1"));
        c.deliver_all();
        let ctx = c.read_object(g).vv;
        c.client("n1", put("k1", v, Some(ctx)));
        c.deliver_all();
    }
    let g = c.client("n1", get("k1"));
    c.deliver_all();
    let foreign = c.read_object(g).vv;
    let before = c.snapshot();
    let p = c.client("n1", put("k2", "x", Some(foreign)));
    c.deliver_all();
    assert!(
        matches!(c.reply(p), ClientReply::Error(ClientError::BadRequest(m)) if m.contains("this same key")),
        "{:?}",
        c.reply(p)
    );
    assert_eq!(c.snapshot(), before);
}

/// A context with `fakes` made-up writers (`tag` keeps them apart between
/// calls) added to `vv`: what a client that forges tokens could send.
fn with_fake_writers(vv: &VersionVector, tag: &str, fakes: usize) -> VersionVector {
    let fake = (0..fakes).map(|i| {
        let actor = Actor {
            node: NodeId::from(format!("fake-{tag}-{i}")),
            incarnation: 1,
        };
        (actor, 1)
    });
    vv.iter().map(|(a, c)| (a.clone(), c)).chain(fake).collect()
}

#[test]
fn a_forged_context_cannot_grow_a_keys_version_vector_past_the_limit() {
    let mut c = Cluster::new(3, 3, 2, 2);
    let max = Limits::default().actors_max;
    c.client("n1", put("k", "a", None));
    c.deliver_all();
    let read = |c: &mut Cluster| {
        let g = c.client("n2", get("k"));
        c.deliver_all();
        c.read_object(g).vv
    };
    // One forged write with more writers than the limit: refused, nothing
    // changes.
    let ctx = read(&mut c);
    let before = c.snapshot();
    let p = c.client("n1", put("k", "b", Some(with_fake_writers(&ctx, "x", max))));
    c.deliver_all();
    assert!(
        matches!(c.reply(p), ClientReply::Error(ClientError::BadRequest(m)) if m.contains("never had")),
        "{:?}",
        c.reply(p)
    );
    assert_eq!(c.snapshot(), before);
    // Forged writes under the limit pass (a token is not signed), but
    // repeating them cannot grow the vector past it.
    let mut refused = 0;
    for round in 0..4 {
        let ctx = read(&mut c);
        let p = c.client(
            "n1",
            put(
                "k",
                "c",
                Some(with_fake_writers(&ctx, &round.to_string(), 100)),
            ),
        );
        c.deliver_all();
        if matches!(c.reply(p), ClientReply::Error(ClientError::BadRequest(_))) {
            refused += 1;
        } else {
            c.written_context(p);
        }
        for n in ["n1", "n2", "n3"] {
            let actors = c.stored(n, "k").unwrap().vv.actors();
            assert!(actors <= max, "{n} holds {actors} actors");
        }
    }
    // 1 real writer + 100, + 200 pass; + 300 would be over 256, twice.
    assert_eq!(max, 256);
    assert_eq!(refused, 2);
    // Fill the vector to the limit; the key stays writable with the context
    // of a real read from any node, though each new coordinator adds itself.
    let ctx = read(&mut c);
    let fill = max - ctx.actors();
    let p = c.client(
        "n1",
        put("k", "d", Some(with_fake_writers(&ctx, "fill", fill))),
    );
    c.deliver_all();
    c.written_context(p);
    for n in ["n1", "n2", "n3"] {
        let ctx = read(&mut c);
        let p = c.client(n, put("k", n, Some(ctx)));
        c.deliver_all();
        c.written_context(p);
    }
    let g = c.client("n1", get("k"));
    c.deliver_all();
    assert_eq!(values(&c.read_object(g)), vec!["n3"]);
}

#[test]
fn writes_past_the_sibling_limit_are_refused_until_resolved() {
    let mut c = Cluster::new(3, 3, 2, 2);
    for v in ["a", "b", "c"] {
        let p = c.client("n1", put("k", v, None));
        c.deliver_all();
        c.written_context(p);
    }
    let p = c.client("n1", put("k", "d", None));
    c.deliver_all();
    assert!(
        matches!(c.reply(p), ClientReply::Error(ClientError::TooLarge(_))),
        "{:?}",
        c.reply(p)
    );
    let g = c.client("n2", get("k"));
    c.deliver_all();
    let read = c.read_object(g);
    assert_eq!(values(&read), vec!["a", "b", "c"]);
    let p = c.client("n1", put("k", "resolved", Some(read.vv)));
    c.deliver_all();
    c.written_context(p);
}

#[test]
fn a_delete_without_context_answers_within_its_one_timeout() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.client("n1", put("k", "v", None));
    c.deliver_all();
    // The read phase gets its replies only at t=900; the tombstone write then
    // has what is left of the 1000 ms, not a fresh timeout.
    let d = c.client("n1", delete("k", None));
    c.advance_to(900);
    c.deliver(0); // n2 gets the read
    c.deliver(1); // n1 gets n2's reply: read quorum met, tombstone sent
    assert!(matches!(c.queue[1].msg, PeerMsg::ReplicaPut { .. }));
    c.queue.clear(); // the tombstone writes are lost
    c.advance_to(999);
    assert!(!c.replies.contains_key(&d));
    c.advance_to(1_000);
    assert_eq!(
        c.reply(d),
        &ClientReply::Error(ClientError::Unavailable {
            required: 2,
            acks: 1
        }),
        "the delete must answer by its one deadline"
    );
}

#[test]
fn a_duplicated_forward_is_coordinated_once() {
    let mut c = Cluster::new(4, 3, 2, 2);
    let k = (0..1000)
        .map(|i| format!("k{i}"))
        .find(|k| {
            let n = &c.nodes[&id("n4")];
            !n.primaries(key(k).partition(n.layout().ring_size))
                .contains(&id("n4"))
        })
        .unwrap();
    let p = c.client("n4", put(&k, "v", None));
    let dup = c.queue[0].clone();
    assert!(matches!(dup.msg, PeerMsg::Forward { .. }));
    c.queue.push(dup);
    c.deliver_all();
    c.written_context(p);
    let g = c.client("n4", get_r(&k, QuorumParam::All));
    c.deliver_all();
    let o = c.read_object(g);
    assert_eq!(values(&o), vec!["v"]);
    assert_eq!(
        o.siblings.len(),
        1,
        "the duplicate made a second write: {o:?}"
    );
}
