//! Key listing on three in-process nodes: pages merged across partitions
//! and replicas, deletes decided on the merged state, a replica down or
//! silent, and malformed listing messages refused.

mod harness;

use bytes::Bytes;
use harness::*;
use ringkv_core::list::{KeyPage, ListEntry, ListQuery, ReplicaPage};
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest, PeerMsg};
use ringkv_core::params::QuorumParam;
use ringkv_core::{Object, PartitionId, key_hash, partition_of};
use ringkv_node::Input;

fn list_req(
    prefix: &str,
    after: Option<&Bytes>,
    limit: u32,
    r: Option<QuorumParam>,
) -> ClientRequest {
    ClientRequest {
        key: ringkv_core::hash::BucketKey::new(Bytes::from_static(b"default"), Bytes::new()),
        op: ClientOp::List(ListQuery {
            prefix: Bytes::copy_from_slice(prefix.as_bytes()),
            after: after.cloned(),
            limit,
            r,
        }),
        timeout_ms: None,
    }
}

fn page(c: &Cluster, client: u64) -> KeyPage {
    match c.reply(client) {
        ClientReply::Keys(p) => p.clone(),
        other => panic!("expected a page of keys, got {other:?}"),
    }
}

/// Pages through every key through `at`, checking each page's bound and
/// order; returns the keys.
fn list_all(c: &mut Cluster, at: &str, prefix: &str, limit: u32) -> Vec<String> {
    let mut after = None;
    let mut out: Vec<String> = Vec::new();
    for _ in 0..1_000 {
        let l = c.client(at, list_req(prefix, after.as_ref(), limit, None));
        c.deliver_all();
        let p = page(c, l);
        assert!(p.keys.len() <= limit as usize);
        out.extend(
            p.keys
                .iter()
                .map(|k| String::from_utf8(k.to_vec()).unwrap()),
        );
        match p.next {
            Some(n) => after = Some(n),
            None => {
                assert!(out.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
                return out;
            }
        }
    }
    panic!("the listing never ended");
}

/// Writes keys `k000`.. and deletes every fifth; returns the keys left.
fn write_and_delete(c: &mut Cluster, count: usize) -> Vec<String> {
    let mut left = Vec::new();
    for i in 0..count {
        let k = format!("k{i:03}");
        c.client(["n1", "n2", "n3"][i % 3], put(&k, "v", None));
        left.push(k);
    }
    c.deliver_all();
    for i in (0..count).step_by(5) {
        c.client("n2", delete(&format!("k{i:03}"), None));
    }
    c.deliver_all();
    left.into_iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 0)
        .map(|(_, k)| k)
        .collect()
}

#[test]
fn paging_lists_every_live_key_once_in_order_through_any_node() {
    let mut c = Cluster::new(3, 3, 2, 2);
    let want = write_and_delete(&mut c, 120);
    for (at, limit) in [("n1", 7), ("n2", 50), ("n3", 1000)] {
        assert_eq!(
            list_all(&mut c, at, "", limit),
            want,
            "through {at}, limit {limit}"
        );
    }
    let k01: Vec<String> = want
        .iter()
        .filter(|k| k.starts_with("k01"))
        .cloned()
        .collect();
    assert_eq!(list_all(&mut c, "n1", "k01", 3), k01);
    // The last page of exactly `limit` keys says so (no `next`).
    let l = c.client("n1", list_req("", None, want.len() as u32, None));
    c.deliver_all();
    assert_eq!(page(&c, l).next, None);
}

#[test]
fn a_down_replica_is_not_needed_at_r_2_and_a_silent_one_fails_r_all_naming_partitions() {
    let mut c = Cluster::new(3, 3, 2, 2);
    let want = write_and_delete(&mut c, 60);
    c.set_up("n3", false);
    assert_eq!(list_all(&mut c, "n1", "", 25), want);
    // r=all with n3 down: no partition has 3 live primaries.
    let l = c.client("n1", list_req("", None, 10, Some(QuorumParam::All)));
    c.deliver_all();
    match c.reply(l) {
        ClientReply::Error(ClientError::PartitionsUnavailable { required: 3, short }) => {
            assert_eq!(short.len(), 16, "every partition is short: {short:?}");
        }
        other => panic!("expected 503 naming partitions, got {other:?}"),
    }
    // Up in n1's view but silent: the deadline fails it, naming each partition.
    c.set_up("n3", true);
    c.silenced.insert(id("n3"));
    let l = c.client("n1", list_req("", None, 10, Some(QuorumParam::All)));
    c.deliver_all();
    assert!(!c.replies.contains_key(&l), "waits for the deadline");
    c.advance_to(c.now + 1_001);
    match c.reply(l) {
        ClientReply::Error(ClientError::PartitionsUnavailable { required: 3, short }) => {
            assert_eq!(short.len(), 16);
            assert!(short.iter().all(|&(_, got)| got == 2), "{short:?}");
        }
        other => panic!("expected 503 naming partitions, got {other:?}"),
    }
    assert_eq!(c.node("n1").listings_pending(), 0);
}

#[test]
fn a_key_deleted_on_two_replicas_is_not_listed_though_the_third_holds_its_value() {
    let mut c = Cluster::new(3, 3, 2, 2);
    for k in ["a", "b", "c"] {
        c.client("n1", put(k, "v", None));
    }
    c.deliver_all();
    c.set_up("n3", false);
    c.client("n1", delete("b", None));
    c.deliver_all();
    c.set_up("n3", true);
    assert!(
        !c.stored("n3", "b").unwrap().is_deleted(),
        "n3 missed the delete"
    );
    for r in [None, Some(QuorumParam::All)] {
        let l = c.client("n3", list_req("", None, 10, r));
        c.deliver_all();
        let keys: Vec<Bytes> = page(&c, l).keys;
        assert_eq!(keys, vec![Bytes::from("a"), Bytes::from("c")]);
    }
}

#[test]
fn bad_listing_requests_and_malformed_peer_messages_are_refused_and_change_nothing() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.client("n1", put("a", "v", None));
    c.deliver_all();
    let before = c.snapshot();
    for bad in [0, ringkv_core::list::LIMIT_MAX + 1] {
        let l = c.client("n1", list_req("", None, bad, None));
        assert!(matches!(
            c.reply(l),
            ClientReply::Error(ClientError::BadRequest(_))
        ));
    }
    let long = "x".repeat(2000);
    let l = c.client("n1", list_req(&long, None, 10, None));
    assert!(matches!(
        c.reply(l),
        ClientReply::Error(ClientError::TooLarge(_))
    ));

    // A question about a partition out of range, or too large a limit: the
    // replica answers "no page" and counts a refusal.
    let refused = c.node("n1").stats().peer_refused;
    for (partition, limit) in [(9_999, 10), (0, 1_000_000)] {
        let msg = PeerMsg::List {
            req_id: 77,
            partition,
            bucket: Bytes::from_static(b"default"),
            query: ListQuery {
                prefix: Bytes::new(),
                after: None,
                limit,
                r: None,
            },
        };
        c.input(
            &id("n1"),
            Input::Peer {
                from: id("n2"),
                msg,
            },
        );
    }
    assert_eq!(c.node("n1").stats().peer_refused, refused + 2);
    let replies: Vec<_> = c.queue.drain(..).map(|m| m.msg).collect();
    assert!(
        replies
            .iter()
            .all(|m| matches!(m, PeerMsg::ListReply { page: None, .. }))
    );
    assert_eq!(c.snapshot(), before, "refused input changed nothing");
}

#[test]
fn forged_list_replies_are_refused_and_change_nothing() {
    let mut c = Cluster::new(3, 3, 2, 2);
    c.client("n1", put("a", "v", None));
    c.deliver_all();
    let before = c.snapshot();

    // A listing in flight gets forged replies: unsorted keys, a key of
    // another partition, a node not asked. Each is refused; the listing
    // still completes right from the honest replies.
    let l = c.client("n1", list_req("", None, 10, Some(QuorumParam::All)));
    let (req_id, partition) = c
        .queue
        .iter()
        .find_map(|m| match &m.msg {
            PeerMsg::List {
                req_id, partition, ..
            } if m.to == id("n2") => Some((*req_id, *partition)),
            _ => None,
        })
        .expect("n1 asks n2");
    let entry = |k: &str| ListEntry {
        key: Bytes::copy_from_slice(k.as_bytes()),
        object: Object::empty(),
    };
    let other_partition = (0..100)
        .map(|i| format!("z{i}"))
        .find(|k| partition_of(key_hash(b"default", k.as_bytes()), 16) != partition as PartitionId)
        .unwrap();
    let forged = [
        ("n2", vec![entry("b"), entry("a")]),
        ("n2", vec![entry(&other_partition)]),
        ("n4", vec![]),
    ];
    let refused = c.node("n1").stats().peer_refused;
    for (from, entries) in forged {
        let msg = PeerMsg::ListReply {
            req_id,
            partition,
            page: Some(ReplicaPage {
                entries,
                complete: true,
            }),
        };
        c.input(
            &id("n1"),
            Input::Peer {
                from: id(from),
                msg,
            },
        );
    }
    // The first forged reply from n2 counts as its failed reply (r=all
    // fails at once); later ones are from a node no longer awaited.
    assert!(c.node("n1").stats().peer_refused > refused);
    c.deliver_all();
    assert!(matches!(
        c.reply(l),
        ClientReply::Error(ClientError::PartitionsUnavailable { .. })
    ));
    assert_eq!(c.snapshot(), before, "refused input changed nothing");
    // And an honest listing still works.
    assert_eq!(list_all(&mut c, "n1", "", 10), vec!["a".to_string()]);
}

#[test]
fn replicas_asked_for_a_share_of_the_page_still_fill_pages() {
    let mut c = Cluster::new(3, 3, 2, 2);
    for i in 0..1_500 {
        c.client(
            ["n1", "n2", "n3"][i % 3],
            put(&format!("k{i:05}"), "v", None),
        );
        if i % 100 == 99 {
            c.deliver_all();
        }
    }
    c.deliver_all();
    let mut after = None;
    let mut sizes = Vec::new();
    loop {
        let l = c.client("n2", list_req("", after.as_ref(), 200, None));
        c.deliver_all();
        let p = page(&c, l);
        sizes.push(p.keys.len());
        match p.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    // 16 partitions asked for 2 × 13 + 8 = 34 keys each: every page but
    // the last is full.
    assert_eq!(sizes, [200, 200, 200, 200, 200, 200, 200, 100]);
    assert_eq!(c.node("n2").stats().lists_coordinated, 8);
}
