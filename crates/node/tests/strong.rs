//! Strong buckets on in-process nodes: writes and reads through the key's
//! consensus group, compare-and-set, forwarding to the leader, no answer
//! without a majority, and state that survives a restart.

mod harness;

use bytes::Bytes;
use harness::{Cluster, get, id, key, put};
use ringkv_core::bucket::BucketPatch;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest};
use ringkv_core::strong::{Condition, version_of};
use ringkv_core::{Consistency, Value};

fn strong_cluster() -> Cluster {
    make_strong(Cluster::new(3, 3, 2, 2))
}

fn make_strong(mut c: Cluster) -> Cluster {
    let patch = BucketPatch {
        consistency: Some(Consistency::Strong),
        ..BucketPatch::default()
    };
    let ids: Vec<_> = c.nodes.keys().cloned().collect();
    for n in ids {
        let mut outs = vec![];
        let now = c.now;
        c.nodes
            .get_mut(&n)
            .unwrap()
            .set_bucket(now, Bytes::from_static(b"default"), &patch, &mut outs)
            .expect("a new bucket may be strong");
        c.route(&n, outs);
    }
    c.run_gossip(200);
    c
}

fn put_if(k: &str, v: &str, condition: Condition) -> ClientRequest {
    ClientRequest {
        key: key(k),
        op: ClientOp::PutIf {
            value: Value::Data(Bytes::copy_from_slice(v.as_bytes())),
            condition,
        },
        timeout_ms: None,
    }
}

/// Runs the cluster until `c`'s reply arrives (at most `ms`).
fn settle(cl: &mut Cluster, c: u64, ms: u64) -> ClientReply {
    let end = cl.now + ms;
    while cl.now < end && !cl.replies.contains_key(&c) {
        cl.run_gossip(10);
    }
    cl.reply(c).clone()
}

fn inner(r: ClientReply) -> (Option<String>, ClientReply) {
    match r {
        ClientReply::Strong { leader, reply } => (Some(leader.to_string()), *reply),
        other => (None, other),
    }
}

fn version(r: &ClientReply) -> u64 {
    match r {
        ClientReply::Written { context, .. } => version_of(context),
        ClientReply::Read { object, .. } => version_of(&object.vv),
        other => panic!("expected a write or read, got {other:?}"),
    }
}

#[test]
fn a_strong_write_is_read_back_from_every_node() {
    let mut cl = strong_cluster();
    let w = cl.client("n1", put("k", "v1", None));
    let (leader, reply) = inner(settle(&mut cl, w, 5_000));
    assert!(leader.is_some(), "the answer names the leader: {reply:?}");
    let v1 = version(&reply);
    assert!(v1 > 0);
    for n in ["n1", "n2", "n3"] {
        let r = cl.client(n, get("k"));
        let (_, reply) = inner(settle(&mut cl, r, 5_000));
        assert_eq!(version(&reply), v1, "read at {n}");
        match reply {
            ClientReply::Read { object, .. } => assert_eq!(harness::values(&object), vec!["v1"]),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn compare_and_set_applies_only_at_the_named_version() {
    let mut cl = strong_cluster();
    let a = cl.client("n2", put_if("c", "0", Condition::IfAbsent));
    let (_, ra) = inner(settle(&mut cl, a, 5_000));
    let v0 = version(&ra);
    // Creating it again fails with the current version.
    let b = cl.client("n3", put_if("c", "x", Condition::IfAbsent));
    match inner(settle(&mut cl, b, 5_000)).1 {
        ClientReply::Error(ClientError::PreconditionFailed { current }) => {
            assert_eq!(version_of(&current), v0)
        }
        other => panic!("expected 412, got {other:?}"),
    }
    let c = cl.client("n1", put_if("c", "1", Condition::IfVersion(v0)));
    let v1 = version(&inner(settle(&mut cl, c, 5_000)).1);
    assert!(v1 > v0);
    // A second CAS from the old version loses.
    let d = cl.client("n2", put_if("c", "2", Condition::IfVersion(v0)));
    assert!(matches!(
        inner(settle(&mut cl, d, 5_000)).1,
        ClientReply::Error(ClientError::PreconditionFailed { .. })
    ));
    let r = cl.client("n3", get("c"));
    match inner(settle(&mut cl, r, 5_000)).1 {
        ClientReply::Read { object, .. } => assert_eq!(harness::values(&object), vec!["1"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn eventual_options_and_conditions_are_refused_where_they_do_not_belong() {
    let mut cl = strong_cluster();
    let r = cl.client(
        "n1",
        harness::get_r("k", ringkv_core::params::QuorumParam::One),
    );
    assert!(matches!(
        inner(settle(&mut cl, r, 100)).1,
        ClientReply::Error(ClientError::BadRequest(m)) if m.contains("strong bucket")
    ));
    let mut eventual = Cluster::new(3, 3, 2, 2);
    let c = eventual.client("n1", put_if("k", "v", Condition::IfAbsent));
    assert!(matches!(
        settle(&mut eventual, c, 100),
        ClientReply::Error(ClientError::BadRequest(m)) if m.contains("only for strong buckets")
    ));
}

#[test]
fn without_a_majority_a_write_says_no_quorum_and_changes_nothing() {
    let mut cl = strong_cluster();
    let w = cl.client("n1", put("k", "v1", None));
    settle(&mut cl, w, 5_000);
    cl.silenced.insert(id("n2"));
    cl.silenced.insert(id("n3"));
    cl.run_gossip(5_000);
    let w2 = cl.client("n1", put("k", "v2", None));
    match inner(settle(&mut cl, w2, 5_000)).1 {
        ClientReply::Error(ClientError::NoQuorum { reason }) => {
            assert!(reason.contains("no majority"), "{reason}")
        }
        other => panic!("expected no quorum, got {other:?}"),
    }
}

/// Keys whose partition (of 16) is `k`'s, `k` first.
fn same_partition(k: &str, count: usize) -> Vec<String> {
    let p = key(k).partition(16);
    std::iter::once(k.to_string())
        .chain((0..10_000).map(|i| format!("x{i}")))
        .filter(|x| key(x).partition(16) == p)
        .take(count)
        .collect()
}

#[test]
fn a_voter_that_missed_compacted_entries_catches_up_from_a_snapshot() {
    let cl = Cluster::tweaked(3, 3, 2, 2, 10_000, 1_000, |cfg| {
        cfg.consensus.log_keep = 20;
        cfg.timeout_ms = 5_000;
    });
    let mut cl = make_strong(cl);
    let keys = same_partition("k", 4);
    let w = cl.client("n1", put(&keys[0], "first", None));
    settle(&mut cl, w, 5_000);
    cl.silenced.insert(id("n3"));
    for i in 0..120 {
        let k = &keys[i % keys.len()];
        let w = cl.client("n1", put(k, &format!("v{i}"), None));
        let (_, reply) = inner(settle(&mut cl, w, 5_000));
        assert!(matches!(reply, ClientReply::Written { .. }), "{reply:?}");
    }
    let p = key(&keys[0]).partition(16);
    let status = |cl: &Cluster, n: &str| {
        cl.node(n)
            .groups()
            .into_iter()
            .find(|g| g.partition == p)
            .expect("group opened")
    };
    let g1 = status(&cl, "n1");
    assert!(
        g1.log_entries <= 40,
        "the log is compacted behind the applied index: {g1:?}"
    );
    assert!(status(&cl, "n3").applied < 10, "n3 missed the writes");
    cl.silenced.clear();
    cl.run_gossip(10_000);
    let g3 = status(&cl, "n3");
    assert!(g3.applied >= g1.applied, "n3 caught up: {g3:?} vs {g1:?}");
    for (i, k) in keys.iter().enumerate() {
        let last = (0..120).filter(|j| j % keys.len() == i).max().unwrap();
        let o = cl.stored("n3", k).expect("n3 has the key");
        assert_eq!(harness::values(&o), vec![format!("v{last}")], "{k} on n3");
        assert_eq!(cl.stored("n1", k), Some(o));
    }
}

#[test]
fn idle_groups_stop_ticking() {
    let mut cl = strong_cluster();
    let w = cl.client("n1", put("k", "v", None));
    settle(&mut cl, w, 5_000);
    assert!(cl.node("n1").groups().iter().any(|g| g.active));
    cl.run_gossip(10_000);
    for n in ["n1", "n2", "n3"] {
        let groups = cl.node(n).groups();
        assert!(!groups.is_empty());
        assert!(groups.iter().all(|g| !g.active), "{n}: {groups:?}");
    }
    let ticks = cl
        .timers
        .iter()
        .filter(|(_, _, t)| *t == ringkv_node::Timer::RaftTick)
        .count();
    assert_eq!(
        ticks, 0,
        "no tick timer is armed while every group hibernates"
    );
    // A request wakes the group and is served.
    let r = cl.client("n2", get("k"));
    let (_, reply) = inner(settle(&mut cl, r, 5_000));
    assert!(version(&reply) > 0, "{reply:?}");
}

#[test]
fn a_one_voter_group_answers_only_after_the_batch_is_durable() {
    // One voter commits in the Ready that appends, before the fsync: its
    // answer must not leave early (Output::Now), or a crash would lose an
    // acknowledged write.
    let mut cl = make_strong(Cluster::new(1, 1, 1, 1));
    let mut outs = vec![];
    let now = cl.now;
    let input = ringkv_node::Input::Client {
        client_id: 99,
        request: put("k", "v", None),
    };
    cl.nodes
        .get_mut(&id("n1"))
        .unwrap()
        .handle(now, input, &mut outs);
    let reply = outs
        .iter()
        .position(|o| matches!(o, ringkv_node::Output::Reply { client_id: 99, .. }));
    let sync = outs
        .iter()
        .position(|o| matches!(o, ringkv_node::Output::Sync));
    assert!(
        !outs
            .iter()
            .any(|o| matches!(o, ringkv_node::Output::Now(inner)
            if matches!(**inner, ringkv_node::Output::Reply { .. }))),
        "{outs:?}"
    );
    assert!(
        reply.is_some() && sync.is_some(),
        "answered in one step, with a sync: {outs:?}"
    );
}
