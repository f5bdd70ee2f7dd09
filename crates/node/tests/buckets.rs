//! Bucket properties on in-process nodes: set on one node, in force on all;
//! last-write-wins buckets keep one value; invalid properties change nothing.

mod harness;

use bytes::Bytes;
use harness::*;
use proptest::prelude::*;
use ringkv_core::bucket::{BucketEntry, BucketProps};
use ringkv_core::bucket::{BucketPatch, ConflictMode};
use ringkv_core::msg::{ClientError, ClientReply, PeerMsg};
use ringkv_core::{Hlc, NodeId};
use ringkv_node::io::Input;

fn set(c: &mut Cluster, at: &str, json: &str) -> Result<(), String> {
    let patch = BucketPatch::from_json(json.as_bytes()).map_err(|e| e.to_string())?;
    let mut outs = vec![];
    let now = c.now;
    let r = c.nodes.get_mut(&id(at)).unwrap().set_bucket(
        now,
        Bytes::from_static(b"default"),
        &patch,
        &mut outs,
    );
    c.route(&id(at), outs);
    c.deliver_all();
    r.map(|_| ()).map_err(|e| e.to_string())
}

#[test]
fn properties_set_on_one_node_hold_on_every_node() {
    let mut c = Cluster::new(3, 3, 2, 2);
    set(&mut c, "n2", r#"{"conflict": "lww", "w": "all"}"#).unwrap();
    for n in ["n1", "n2", "n3"] {
        let p = c.node(n).bucket_props(b"default");
        assert_eq!(p.conflict, ConflictMode::Lww, "{n}");
        assert_eq!(p.w, 3, "{n}");
    }
    // A later change wins everywhere, whichever node takes it.
    set(&mut c, "n3", r#"{"conflict": "siblings"}"#).unwrap();
    for n in ["n1", "n2", "n3"] {
        let p = c.node(n).bucket_props(b"default");
        assert_eq!((p.conflict, p.w), (ConflictMode::Siblings, 3), "{n}");
    }
}

#[test]
fn invalid_properties_are_refused_and_change_nothing() {
    let mut c = Cluster::new(3, 3, 2, 2);
    let before = c.node("n1").bucket_props(b"default");
    for (json, says) in [
        (r#"{"n": 0}"#, "n must be 1 to 3"),
        (r#"{"r": 4}"#, "r must be 1 to n = 3"),
        (r#"{"conflict": "newest"}"#, "\"siblings\" or \"lww\""),
    ] {
        let err = set(&mut c, "n1", json).unwrap_err();
        assert!(err.contains(says), "{json}: {err}");
    }
    for n in ["n1", "n2", "n3"] {
        assert_eq!(c.node(n).bucket_props(b"default"), before);
    }
}

#[test]
fn an_lww_bucket_keeps_one_value_for_concurrent_writes() {
    let mut c = Cluster::new(3, 3, 2, 2);
    set(&mut c, "n1", r#"{"conflict": "lww"}"#).unwrap();
    c.client("n1", put("k", "a", None));
    c.client("n2", put("k", "b", None));
    c.deliver_all();
    let g = c.client("n3", get_r("k", ringkv_core::params::QuorumParam::All));
    c.deliver_all();
    let v = values(&c.read_object(g));
    assert_eq!(v.len(), 1, "one winner: {v:?}");
    for n in ["n1", "n2", "n3"] {
        assert_eq!(values(&c.stored(n, "k").unwrap()), v, "{n} converged");
    }
    // The same writes in a siblings bucket keep both.
    set(&mut c, "n1", r#"{"conflict": "siblings"}"#).unwrap();
    c.client("n1", put("j", "a", None));
    c.client("n2", put("j", "b", None));
    c.deliver_all();
    let g = c.client("n3", get("j"));
    c.deliver_all();
    assert_eq!(values(&c.read_object(g)), vec!["a", "b"]);
}

#[test]
fn a_bucket_quorum_and_sibling_limit_apply_to_its_requests() {
    let mut c = Cluster::new(3, 3, 2, 2);
    set(
        &mut c,
        "n1",
        r#"{"w": 3, "pw": 3, "siblings_max": 2, "siblings_warn": 1}"#,
    )
    .unwrap();
    c.set_up("n3", false);
    let p = c.client("n1", put("k", "a", None));
    c.deliver_all();
    assert!(
        matches!(
            c.reply(p),
            ClientReply::Error(ClientError::PrimariesUnavailable { required: 3, .. })
        ),
        "{:?}",
        c.reply(p)
    );
    c.set_up("n3", true);
    for v in ["a", "b"] {
        let p = c.client("n1", put("k", v, None));
        c.deliver_all();
        c.written_context(p);
    }
    assert!(c.node("n1").stats().siblings_warned >= 1);
    let p = c.client("n1", put("k", "c", None));
    c.deliver_all();
    assert!(matches!(
        c.reply(p),
        ClientReply::Error(ClientError::TooLarge(_))
    ));
}

#[test]
fn properties_spread_by_gossip_alone() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.run_gossip(2_000);
    let patch = BucketPatch::from_json(br#"{"conflict": "lww"}"#).unwrap();
    let mut outs = vec![];
    let now = c.now;
    c.nodes
        .get_mut(&id("n1"))
        .unwrap()
        .set_bucket(now, Bytes::from_static(b"default"), &patch, &mut outs)
        .unwrap();
    c.route(&id("n1"), outs);
    // The direct sends are lost; only gossip is left to carry the change.
    let direct = |m: &InFlight| matches!(m.msg, ringkv_core::msg::PeerMsg::Bucket { .. });
    assert!(c.queue.iter().any(direct));
    c.queue.retain(|m| !direct(m));
    c.run_gossip(1_000);
    for n in ["n2", "n3"] {
        assert_eq!(
            c.node(n).bucket_props(b"default").conflict,
            ConflictMode::Lww,
            "{n}"
        );
    }
}

fn props() -> impl Strategy<Value = BucketProps> {
    let count = || prop_oneof![0usize..6, Just(usize::MAX), any::<usize>()];
    (
        (count(), count(), count(), count(), count()),
        prop_oneof![Just(ConflictMode::Siblings), Just(ConflictMode::Lww)],
        count(),
        count(),
    )
        .prop_map(
            |((n, r, w, pr, pw), conflict, siblings_warn, siblings_max)| BucketProps {
                n,
                r,
                w,
                pr,
                pw,
                conflict,
                siblings_warn,
                siblings_max,
                consistency: Default::default(),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A peer is trusted with nothing: bucket properties it sends are
    /// adopted only when they are valid for this cluster, whatever the
    /// numbers, name, stamp and origin; never a panic.
    #[test]
    fn bucket_entries_from_a_peer_are_checked(
        props in props(),
        bucket in prop_oneof![Just(b"default".to_vec()), prop::collection::vec(any::<u8>(), 0..300)],
        stamp in any::<u64>(),
        origin in "\\PC{0,12}",
    ) {
        let mut c = Cluster::new(3, 3, 2, 2);
        let before = c.node("n1").bucket_props(&bucket);
        let valid = props.validate(3).is_ok() && !bucket.is_empty() && bucket.len() <= 255;
        let entry = BucketEntry {
            bucket: bucket.clone(),
            props: props.clone(),
            stamp: Hlc::from_parts(stamp >> 16, stamp as u16),
            origin: NodeId::from(origin),
        };
        c.input(&id("n1"), Input::Peer { from: id("n2"), msg: PeerMsg::Bucket { entry } });
        c.deliver_all();
        let after = c.node("n1").bucket_props(&bucket);
        if valid {
            prop_assert!(after == props || after == before, "{after:?}");
        } else {
            prop_assert_eq!(after, before);
        }
    }
}
