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
    let mut c = Cluster::new(3, 3, 2, 2);
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
