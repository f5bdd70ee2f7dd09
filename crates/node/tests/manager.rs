//! The cluster manager on in-process nodes: operators' changes go through
//! the document's consensus group with compare-and-set, concurrent changes
//! all land, bad ones change nothing, and every node adopts the newest
//! document.

mod harness;

use bytes::Bytes;
use harness::{Cluster, id};
use ringkv_core::cluster::{CLUSTER_BUCKET, CLUSTER_KEY, ClusterOp, ClusterState};
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest};
use ringkv_core::plan::Change;
use ringkv_core::{NodeId, Value};

fn op(op: ClusterOp) -> ClientRequest {
    ClientRequest {
        key: BucketKey::new(
            Bytes::from_static(CLUSTER_BUCKET),
            Bytes::from_static(CLUSTER_KEY),
        ),
        op: ClientOp::Cluster(op),
        timeout_ms: None,
    }
}

fn join(n: &str) -> ClusterOp {
    ClusterOp::Stage(Change::Join {
        id: id(n),
        rpc_addr: format!("sim:{n}"),
        zone: String::new(),
        capacity: 1,
    })
}

/// Runs the cluster until `c`'s reply arrives (at most 5 s).
fn answer(cl: &mut Cluster, c: u64) -> ClientReply {
    let end = cl.now + 5_000;
    while cl.now < end && !cl.replies.contains_key(&c) {
        cl.run_gossip(10);
    }
    cl.reply(c).clone()
}

fn state(r: ClientReply) -> ClusterState {
    match r {
        ClientReply::Cluster(s) => *s,
        other => panic!("expected the cluster document, got {other:?}"),
    }
}

fn staged_nodes(s: &ClusterState) -> Vec<NodeId> {
    s.doc.staged.iter().map(|c| c.node().clone()).collect()
}

#[test]
fn staged_changes_are_seen_from_every_node() {
    let mut cl = Cluster::new(3, 3, 2, 2);
    cl.run_gossip(200);
    let c = cl.client("n1", op(ClusterOp::Get));
    let first = state(answer(&mut cl, c));
    assert_eq!(first.version, 0, "never written: layout version 1");
    assert_eq!(first.doc.layout.version, 1);

    let c = cl.client("n1", op(join("n4")));
    let staged = state(answer(&mut cl, c));
    assert!(staged.version > 0);
    assert_eq!(staged_nodes(&staged), vec![id("n4")]);

    let c = cl.client("n3", op(ClusterOp::Get));
    assert_eq!(state(answer(&mut cl, c)), staged, "a read anywhere sees it");
    cl.run_gossip(500);
    for n in ["n1", "n2", "n3"] {
        let held = cl.node(n).cluster_state().expect("adopted through gossip");
        assert_eq!(held, &staged, "{n}");
    }
}

#[test]
fn concurrent_changes_all_land() {
    let mut cl = Cluster::new(3, 3, 2, 2);
    cl.run_gossip(200);
    // Three operators at three nodes at once: each compare-and-set that
    // loses reads again and redoes its change on the winner's document.
    let clients: Vec<u64> = [("n1", "n4"), ("n2", "n5"), ("n3", "n6")]
        .iter()
        .map(|(at, n)| cl.client(at, op(join(n))))
        .collect();
    for c in &clients {
        state(answer(&mut cl, *c));
    }
    let c = cl.client("n2", op(ClusterOp::Get));
    let mut nodes = staged_nodes(&state(answer(&mut cl, c)));
    nodes.sort();
    assert_eq!(nodes, vec![id("n4"), id("n5"), id("n6")]);
}

#[test]
fn bad_changes_are_refused_and_change_nothing() {
    let mut cl = Cluster::new(3, 3, 2, 2);
    cl.run_gossip(200);
    let c = cl.client("n1", op(join("n4")));
    let before = state(answer(&mut cl, c));
    let refused = [
        (join("n1"), "already a member"),
        (join("n4"), "already has a staged change"),
        (
            ClusterOp::Stage(Change::Leave { id: id("n9") }),
            "not a member",
        ),
        (ClusterOp::Unstage(id("n2")), "no change is staged"),
        (
            ClusterOp::Commit { expected: 7 },
            "run `cluster plan` again",
        ),
    ];
    for (bad, why) in refused {
        let c = cl.client("n2", op(bad.clone()));
        match answer(&mut cl, c) {
            ClientReply::Error(ClientError::BadRequest(m) | ClientError::Conflict(m)) => {
                assert!(m.contains(why), "{bad:?}: {m}")
            }
            other => panic!("{bad:?} was not refused: {other:?}"),
        }
    }
    let c = cl.client("n3", op(ClusterOp::Get));
    assert_eq!(state(answer(&mut cl, c)), before);
}

#[test]
fn a_commit_that_moves_nothing_is_in_force_everywhere_and_one_that_moves_data_is_refused() {
    let mut cl = Cluster::new(3, 3, 2, 2);
    cl.run_gossip(200);
    // With 3 nodes and N = 3 every node holds every partition: a zone
    // change moves no replica and comes into force at once.
    let zone = ClusterOp::Stage(Change::Zone {
        id: id("n2"),
        zone: "rack-b".into(),
        capacity: None,
    });
    let c = cl.client("n1", op(zone));
    state(answer(&mut cl, c));
    let c = cl.client("n1", op(ClusterOp::Commit { expected: 1 }));
    let s = state(answer(&mut cl, c));
    assert_eq!(s.doc.layout.version, 2);
    assert!(s.doc.target.is_none());
    cl.run_gossip(500);
    for n in ["n1", "n2", "n3"] {
        let layout = cl.node(n).layout();
        assert_eq!(layout.version, 2, "{n}");
        assert_eq!(layout.member(&id("n2")).unwrap().zone, "rack-b");
    }
    // A join moves data, which this version cannot stream yet: refused,
    // and nothing changes.
    let c = cl.client("n3", op(join("n4")));
    let before = state(answer(&mut cl, c));
    let c = cl.client("n3", op(ClusterOp::Commit { expected: 2 }));
    assert!(matches!(
        answer(&mut cl, c),
        ClientReply::Error(ClientError::Conflict(m)) if m.contains("cannot stream data")
    ));
    let c = cl.client("n1", op(ClusterOp::Get));
    assert_eq!(state(answer(&mut cl, c)), before);
}

#[test]
fn clients_cannot_touch_reserved_buckets() {
    let mut cl = Cluster::new(3, 3, 2, 2);
    cl.run_gossip(200);
    let write = ClientRequest {
        key: BucketKey::new(
            Bytes::from_static(CLUSTER_BUCKET),
            Bytes::from_static(CLUSTER_KEY),
        ),
        op: ClientOp::Put {
            value: Value::Data(Bytes::from_static(b"garbage")),
            context: None,
            w: None,
            pw: None,
        },
        timeout_ms: None,
    };
    let c = cl.client("n1", write);
    assert!(matches!(
        answer(&mut cl, c),
        ClientReply::Error(ClientError::BadRequest(m)) if m.contains("'~'")
    ));
    let c = cl.client("n1", op(ClusterOp::Get));
    assert_eq!(state(answer(&mut cl, c)).version, 0);
}

#[test]
fn a_node_away_during_a_change_adopts_it_when_back() {
    let mut cl = Cluster::new(3, 3, 2, 2);
    cl.run_gossip(200);
    cl.silenced.insert(id("n3"));
    let c = cl.client("n1", op(join("n4")));
    let staged = state(answer(&mut cl, c));
    cl.run_gossip(3_000);
    assert!(cl.node("n3").cluster_state().is_none(), "n3 heard nothing");
    cl.silenced.clear();
    cl.run_gossip(5_000);
    assert_eq!(cl.node("n3").cluster_state(), Some(&staged));
}

#[test]
fn a_malformed_document_from_a_peer_changes_nothing() {
    use ringkv_core::msg::PeerMsg;
    use ringkv_node::Input;
    let mut cl = Cluster::new(3, 3, 2, 2);
    cl.run_gossip(200);
    for doc in [vec![], vec![1, 2, 3], vec![9; 64]] {
        cl.input(
            &id("n1"),
            Input::Peer {
                from: id("n2"),
                msg: PeerMsg::ClusterDoc { version: 99, doc },
            },
        );
    }
    assert!(cl.node("n1").cluster_state().is_none());
    assert_eq!(cl.node("n1").layout().version, 1);
}
