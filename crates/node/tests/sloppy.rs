//! Sloppy quorum and hinted handoff on in-process nodes with a scripted
//! message queue: fallbacks stand in for unreachable primaries, keep hints,
//! and hand the writes back when the primaries return.

mod harness;

use harness::*;
use ringkv_core::msg::{ClientError, ClientReply};

/// The classic sloppy-quorum scenario, at the node level: 5 nodes, N=3, two of a
/// key's three primaries down.
#[test]
fn fallbacks_take_writes_for_down_primaries_and_hand_them_back() {
    let mut c = Cluster::new(5, 3, 2, 2);
    let pref = c.preference("k");
    let (a, b, cc) = (&pref[0], &pref[1], &pref[2]);
    let fallbacks = [&pref[3], &pref[4]];
    c.set_up(b, false);
    c.set_up(cc, false);

    // W=2 succeeds: the live primary plus a fallback.
    let p = c.client(a, put("k", "v1", None));
    c.deliver_all();
    match c.reply(p) {
        ClientReply::Written { fallback_acks, .. } => assert!(*fallback_acks >= 1),
        other => panic!("write failed: {other:?}"),
    }
    for f in fallbacks {
        assert_eq!(c.node(f).hints_len(), 1, "{f} keeps a hint");
        assert_eq!(values(&c.stored(f, "k").unwrap()), vec!["v1"]);
    }
    // PW=2 cannot be met with one live primary: refused before writing.
    let before = c.snapshot();
    let p = c.client(a, put_pw("k", "strict", 2, 2));
    c.deliver_all();
    assert_eq!(
        c.reply(p),
        &ClientReply::Error(ClientError::PrimariesUnavailable {
            required: 2,
            acks: 0
        })
    );
    assert_eq!(
        c.snapshot(),
        before,
        "a refused strict write changed nothing"
    );

    // R=2 reads through fallbacks; PR=3 cannot be met.
    let g = c.client(&pref[4], get("k"));
    c.deliver_all();
    assert_eq!(values(&c.read_object(g)), vec!["v1"]);
    let g = c.client(a, get_pr("k", 3, 3));
    c.deliver_all();
    assert!(matches!(
        c.reply(g),
        ClientReply::Error(ClientError::PrimariesUnavailable { required: 3, .. })
    ));

    // The primaries come back: the next handoff tick delivers the hints.
    c.set_up(b, true);
    c.set_up(cc, true);
    c.advance_to(c.now + 1_000);
    c.deliver_all();
    for f in fallbacks {
        assert_eq!(c.node(f).hints_len(), 0, "{f} delivered its hint");
        assert_eq!(c.stored(f, "k"), None, "{f} dropped its copy");
        assert!(c.node(f).stats().hints_delivered >= 1);
    }
    for primary in [b, cc] {
        assert_eq!(values(&c.stored(primary, "k").unwrap()), vec!["v1"]);
    }
    let g = c.client(b, get_pr("k", 3, 3));
    c.deliver_all();
    assert_eq!(values(&c.read_object(g)), vec!["v1"]);
}

/// A hint is deleted only once its primary confirmed it: a lost handoff is
/// sent again on a later tick, and a key written again meanwhile is sent in
/// its newer state.
#[test]
fn lost_handoffs_are_retried_and_newer_writes_resent() {
    let mut c = Cluster::new(4, 3, 2, 2);
    let pref = c.preference("k");
    let (a, b, f) = (&pref[0], &pref[1], &pref[3]);
    c.set_up(b, false);
    let p = c.client(a, put("k", "v1", None));
    c.deliver_all();
    let ctx = c.written_context(p);
    assert_eq!(c.node(f).hints_len(), 1);

    // b is back, but the handoff is lost on the way.
    c.set_up(b, true);
    c.advance_to(c.now + 1_000);
    c.drop_node_msgs(b);
    assert_eq!(c.node(f).hints_len(), 1, "no ack, no deletion");

    // A newer write while b is down again; then a tick past the timeout.
    c.set_up(b, false);
    let p = c.client(a, put("k", "v2", Some(ctx)));
    c.deliver_all();
    c.written_context(p);
    c.set_up(b, true);
    c.advance_to(c.now + 2_000);
    c.deliver_all();
    assert_eq!(c.node(f).hints_len(), 0);
    assert_eq!(values(&c.stored(b, "k").unwrap()), vec!["v2"]);
    assert_eq!(c.stored(f, "k"), None);
}

/// Past `hints_max` a node refuses writes as a fallback (and counts them),
/// rather than filling its disk; writes that still have W live replicas
/// succeed without it.
#[test]
fn a_full_fallback_refuses_hinted_writes() {
    let mut c = Cluster::with_hints(4, 3, 2, 3, 10_000, 1);
    // Two keys with the same primaries, so the same single fallback.
    let k1 = "k".to_string();
    let pref = c.preference(&k1);
    let k2 = (0..1_000)
        .map(|i| format!("key-{i}"))
        .find(|k| c.preference(k) == pref)
        .expect("a second key with the same preference list");
    let (a, b, f) = (&pref[0], &pref[1], &pref[3]);
    c.set_up(b, false);
    let p = c.client(a, put(&k1, "v1", None));
    c.deliver_all();
    c.written_context(p);
    assert!(c.node(f).hints_full());

    let p = c.client(a, put(&k2, "v2", None));
    c.deliver_all();
    assert_eq!(
        c.reply(p),
        &ClientReply::Error(ClientError::Unavailable {
            required: 3,
            acks: 2
        }),
        "the fallback refused, so W=3 is out of reach"
    );
    assert_eq!(
        c.stored(f, &k2),
        None,
        "nothing stored by the refusing fallback"
    );
    assert_eq!(c.node(f).stats().hints_refused, 1);
    assert_eq!(c.node(f).hints_len(), 1);
}

/// A fallback that coordinated a write keeps its copy after handing it off:
/// the copy is its memory of the dots it made for the key, so its next write
/// of the key takes a new dot instead of reusing one.
#[test]
fn a_fallback_coordinator_never_reuses_a_dot_after_handoff() {
    let mut c = Cluster::new(4, 3, 1, 1);
    let pref = c.preference("k");
    let f = pref[3].clone();
    let dot_of = |c: &Cluster, p| match c.reply(p) {
        ClientReply::Written { dot: Some(d), .. } => d.clone(),
        other => panic!("write failed: {other:?}"),
    };
    for p in &pref[..3] {
        c.set_up(p, false);
    }
    let p = c.client(&f, put("k", "v1", None));
    c.deliver_all();
    let first = dot_of(&c, p);
    assert_eq!(first.actor.node, id(&f), "{f} coordinated as the fallback");
    assert_eq!(c.node(&f).hints_len(), 1);

    for p in &pref[..3] {
        c.set_up(p, true);
    }
    c.advance_to(c.now + 1_000);
    c.deliver_all();
    assert_eq!(c.node(&f).hints_len(), 0, "hint delivered");
    assert!(c.stored(&f, "k").is_some(), "copy with own dots kept");

    for p in &pref[..3] {
        c.set_up(p, false);
    }
    let p = c.client(&f, put("k", "v2", None));
    c.deliver_all();
    let second = dot_of(&c, p);
    assert_eq!(second.actor, first.actor);
    assert!(
        second.counter > first.counter,
        "{first:?} reused as {second:?}"
    );
}
