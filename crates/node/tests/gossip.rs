//! Gossip wired into the node: failure detection without any word from the
//! transport (a partition, or a process that died silently) moves writes to
//! fallbacks, request timeouts feed suspicion, a returning node gets its
//! hints back, and garbage gossip is counted and dropped.

mod harness;

use harness::*;
use ringkv_core::msg::{ClientError, ClientReply, PeerMsg};
use ringkv_core::params::QuorumParam;
use ringkv_node::Timer;
use ringkv_node::membership::Liveness;
use ringkv_node::peers::SILENT_TIMEOUTS;
use ringkv_node::{Input, Output};

#[test]
fn gossip_down_makes_writes_use_fallbacks_and_the_return_delivers_hints() {
    let mut c = Cluster::new(5, 3, 2, 2);
    c.run_gossip(1_000);
    let ids: Vec<_> = c.nodes.keys().cloned().collect();
    for n in &ids {
        for other in ids.iter().filter(|o| *o != n) {
            assert_eq!(
                c.node(n.as_str()).gossip_liveness(other),
                Some(Liveness::Alive),
                "{n} does not know {other} through gossip"
            );
        }
    }
    let pref = c.preference("k");
    let (a, b) = (pref[0].clone(), pref[1].clone());

    // b goes silent: no PeerStatus, only gossip can tell.
    c.silenced.insert(id(&b));
    c.run_gossip(3_000);
    for n in ids.iter().filter(|n| n.as_str() != b) {
        assert_eq!(
            c.node(n.as_str()).liveness(&id(&b)),
            Liveness::Down,
            "at {n}"
        );
        assert!(!c.node(n.as_str()).is_live(&id(&b)));
    }
    // W=3: the two live primaries and the fallback standing in for b.
    let p = c.client(&a, put_w("k", "v1", QuorumParam::All));
    c.deliver_all();
    match c.reply(p) {
        ClientReply::Written { fallback_acks, .. } => assert_eq!(*fallback_acks, 1),
        other => panic!("write failed: {other:?}"),
    }
    let fallback = &pref[3];
    assert_eq!(c.node(fallback).hints_len(), 1, "{fallback} keeps a hint");
    assert_eq!(c.stored(&b, "k"), None);

    // b is heard again: gossip says Alive, handoff gives the write back.
    c.silenced.clear();
    c.run_gossip(8_000);
    for n in ids.iter().filter(|n| n.as_str() != b) {
        assert_eq!(
            c.node(n.as_str()).liveness(&id(&b)),
            Liveness::Alive,
            "at {n}"
        );
    }
    assert_eq!(c.node(fallback).hints_len(), 0, "hint delivered");
    assert_eq!(values(&c.stored(&b, "k").unwrap()), vec!["v1"]);
}

#[test]
fn a_timed_out_request_makes_its_silent_targets_suspect() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.run_gossip(1_000);
    let pref = c.preference("k");
    let (a, b) = (pref[0].clone(), pref[1].clone());
    assert_eq!(c.node(&a).gossip_liveness(&id(&b)), Some(Liveness::Alive));
    c.silenced.insert(id(&b));
    // One lost message is not a failure: only the third request in a row
    // that b leaves unanswered makes a suspect it.
    for round in 1..=SILENT_TIMEOUTS {
        let p = c.client(&a, put_w("k", &format!("v{round}"), QuorumParam::All));
        c.deliver_all();
        // Fire only the write's own deadline: gossip's probe timers stay put,
        // so what suspects b here is the request timeouts alone.
        let request_timers: Vec<Timer> = c
            .timers
            .iter()
            .filter(|(_, at, tid)| *at == id(&a) && matches!(tid, Timer::Request(_)))
            .map(|(_, _, tid)| *tid)
            .collect();
        c.timers.retain(|(_, _, tid)| !request_timers.contains(tid));
        for tid in request_timers {
            c.input(&id(&a), Input::Timer(tid));
        }
        assert_eq!(
            c.reply(p),
            &ClientReply::Error(ClientError::Unavailable {
                required: 3,
                acks: 2
            })
        );
        let want = if round < SILENT_TIMEOUTS {
            Liveness::Alive
        } else {
            Liveness::Suspect
        };
        assert_eq!(
            c.node(&a).gossip_liveness(&id(&b)),
            Some(want),
            "after {round} silent requests"
        );
    }
    assert!(!c.node(&a).is_live(&id(&b)));
    // Heard again, b refutes the suspicion.
    c.silenced.clear();
    c.run_gossip(2_000);
    assert_eq!(c.node(&a).liveness(&id(&b)), Liveness::Alive);
}

#[test]
fn garbage_gossip_is_counted_and_dropped() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.run_gossip(500);
    let before = c.snapshot();
    let members = c.node("n1").members();
    for data in [vec![], vec![0xff; 64], b"not a gossip packet".to_vec()] {
        c.input(
            &id("n1"),
            Input::Peer {
                from: id("n2"),
                msg: PeerMsg::Gossip { data },
            },
        );
    }
    assert_eq!(c.node("n1").stats().gossip_errors, 3);
    assert_eq!(c.node("n1").members(), members);
    assert_eq!(c.snapshot(), before);
}

#[test]
fn gossip_sets_timers_of_its_own_kind() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.run_gossip(300);
    let gossip = c
        .timers
        .iter()
        .filter(|(_, _, t)| matches!(t, Timer::Gossip(_)))
        .count();
    assert!(gossip > 0, "gossip sets timers");
    // Every node knows the others through gossip, with their info.
    let m = c.node("n1").members();
    assert_eq!(m.len(), 3);
    assert!(m.iter().all(|(_, l)| *l == Liveness::Alive));
    let mut out = Vec::new();
    let n1 = c.nodes.get_mut(&id("n1")).unwrap();
    n1.start(c.now, &mut out);
    assert!(
        out.iter().all(|o| !matches!(o, Output::SetTimer { .. })),
        "start runs once"
    );
}
