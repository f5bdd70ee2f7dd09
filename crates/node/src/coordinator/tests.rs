//! The coordinator machine on its own: one client request, peer reply or
//! deadline in, the exact outputs out (see [`crate::testing`]).

use bytes::Bytes;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest, PeerMsg, Stamps};
use ringkv_core::params::QuorumParam;
use ringkv_core::{Dot, NodeId, Object, Value, VersionVector};

use super::{Coordinator, Origin};
use crate::ctx::Clock;
use crate::replica::Replica;
use crate::testing::{Fixture, actor, id, key, object};
use crate::{ClientId, Output, Timer};

/// A fixture node with an idle coordinator and an empty replica.
struct Setup {
    fx: Fixture,
    coord: Coordinator,
    replica: Replica,
}

impl Setup {
    fn new(fx: Fixture) -> Self {
        Setup {
            fx,
            coord: Coordinator::default(),
            replica: Replica::new(),
        }
    }

    /// Feeds a request from `origin`; returns the outputs.
    fn request(&mut self, origin: Origin, req: ClientRequest) -> Vec<Output> {
        let Setup { fx, coord, replica } = self;
        fx.run(|ctx, view| coord.on_client(ctx, view, replica, origin, req));
        fx.take_out()
    }

    /// Feeds a request from client `client_id` of this node.
    fn client(&mut self, client_id: ClientId, req: ClientRequest) -> Vec<Output> {
        self.request(Origin::Client(client_id), req)
    }

    fn put_ack(&mut self, from: &NodeId, req_id: u64, ok: bool) -> Vec<Output> {
        let Setup { fx, coord, .. } = self;
        fx.run(|ctx, _| coord.on_put_ack(ctx, from.clone(), req_id, ok, Stamps::default()));
        fx.take_out()
    }

    fn get_reply(&mut self, from: &NodeId, req_id: u64, object: Option<Object>) -> Vec<Output> {
        let Setup { fx, coord, replica } = self;
        fx.run(|ctx, view| {
            coord.on_get_reply(
                ctx,
                view,
                replica,
                from.clone(),
                (req_id, Stamps::default()),
                object,
            )
        });
        fx.take_out()
    }

    /// Fires request `id`'s deadline; returns the silent targets and the
    /// outputs.
    fn deadline(&mut self, id: u64) -> (Vec<NodeId>, Vec<Output>) {
        let Setup { fx, coord, replica } = self;
        let silent = fx.run(|ctx, view| coord.on_timer(ctx, view, replica, id));
        (silent, fx.take_out())
    }
}

fn put(k: &BucketKey, v: &str) -> ClientRequest {
    ClientRequest {
        key: k.clone(),
        op: ClientOp::Put {
            value: Value::Data(Bytes::copy_from_slice(v.as_bytes())),
            context: None,
            w: None,
            pw: None,
        },
        timeout_ms: None,
    }
}

fn put_w(k: &BucketKey, v: &str, w: u32) -> ClientRequest {
    let mut req = put(k, v);
    if let ClientOp::Put { w: ref mut ww, .. } = req.op {
        *ww = Some(QuorumParam::Count(w));
    }
    req
}

fn delete(k: &BucketKey) -> ClientRequest {
    ClientRequest {
        key: k.clone(),
        op: ClientOp::Put {
            value: Value::Tombstone,
            context: None,
            w: None,
            pw: None,
        },
        timeout_ms: None,
    }
}

fn get(k: &BucketKey) -> ClientRequest {
    ClientRequest {
        key: k.clone(),
        op: ClientOp::Get { r: None, pr: None },
        timeout_ms: None,
    }
}

fn reply(client_id: ClientId, reply: ClientReply) -> Output {
    Output::Reply { client_id, reply }
}

fn send(to: &NodeId, msg: PeerMsg) -> Output {
    Output::Send {
        to: to.clone(),
        msg,
    }
}

fn replica_put(to: &NodeId, req_id: u64, k: &BucketKey, object: &Object) -> Output {
    send(
        to,
        PeerMsg::ReplicaPut {
            req_id,
            key: k.clone(),
            object: object.clone(),
            stands_in_for: None,
            sent_us: 0,
        },
    )
}

fn replica_get(to: &NodeId, req_id: u64, k: &BucketKey) -> Output {
    send(
        to,
        PeerMsg::ReplicaGet {
            req_id,
            key: k.clone(),
            sent_us: 0,
        },
    )
}

fn timer(id: u64, at_ms: u64) -> Output {
    Output::SetTimer {
        id: Timer::Request(id),
        at_ms,
    }
}

/// The client error of a single reply to client `client_id`.
fn only_error(out: &[Output], client_id: ClientId) -> &ClientError {
    match out {
        [
            Output::Reply {
                client_id: c,
                reply: ClientReply::Error(e),
            },
        ] if *c == client_id => e,
        _ => panic!("expected one error reply to client {client_id}: {out:?}"),
    }
}

/// `k`'s primaries other than `me`, in preference-list order.
fn others(fx: &Fixture, k: &BucketKey, n: usize) -> Vec<NodeId> {
    let me = fx.cfg.id.clone();
    fx.primaries(k, n)
        .into_iter()
        .filter(|p| p != &me)
        .collect()
}

/// What n1's first write of a key over nothing, at `now_ms`, stores.
fn first_write(v: &str, now_ms: u64) -> (Object, Dot) {
    // A fresh node's clock stamps its first write so.
    let timestamp_ms = Clock::default().now(now_ms).to_u64();
    let dot = Dot {
        actor: actor("n1"),
        counter: 1,
    };
    let value = Value::Data(Bytes::copy_from_slice(v.as_bytes()));
    let o = Object::empty().update(&VersionVector::new(), dot.clone(), value, timestamp_ms);
    (o, dot)
}

// Admission.

#[test]
fn an_oversized_key_is_refused_too_large_and_nothing_is_sent() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key(&"x".repeat(17));

    let out = s.client(1, put(&k, "v"));

    assert!(
        matches!(only_error(&out, 1), ClientError::TooLarge(_)),
        "{out:?}"
    );
    assert_eq!(s.fx.stats.rejected, 1);
    assert_eq!(s.coord.pending(), 0);
    assert_eq!(s.fx.stored(&k), None);
}

#[test]
fn an_oversized_value_is_refused_too_large() {
    let mut s = Setup::new(Fixture::new("n1"));

    let out = s.client(1, put(&key("k"), &"v".repeat(65)));

    assert!(
        matches!(only_error(&out, 1), ClientError::TooLarge(_)),
        "{out:?}"
    );
    assert_eq!(s.fx.stored(&key("k")), None);
}

#[test]
fn a_quorum_parameter_above_n_is_refused_as_a_bad_request() {
    let mut s = Setup::new(Fixture::new("n1"));

    let out = s.client(1, put_w(&key("k"), "v", 4));

    assert!(
        matches!(only_error(&out, 1), ClientError::BadRequest(_)),
        "{out:?}"
    );
    assert_eq!(s.fx.stats.rejected, 1);
    assert_eq!(s.fx.stored(&key("k")), None);
}

#[test]
fn a_zero_timeout_is_refused_as_a_bad_request() {
    let mut s = Setup::new(Fixture::new("n1"));
    let mut req = get(&key("k"));
    req.timeout_ms = Some(0);

    let out = s.client(1, req);

    assert!(
        matches!(only_error(&out, 1), ClientError::BadRequest(_)),
        "{out:?}"
    );
}

#[test]
fn a_request_over_pending_max_is_refused_as_overloaded() {
    let mut s = Setup::new(Fixture::with("n1", |c| c.pending_max = 1));
    s.client(1, get(&key("a")));
    assert_eq!(s.coord.pending(), 1);

    let out = s.client(2, put(&key("b"), "v"));

    assert!(
        matches!(only_error(&out, 2), ClientError::Overloaded(_)),
        "{out:?}"
    );
    assert_eq!((s.fx.stats.overloaded, s.fx.stats.rejected), (1, 0));
    assert_eq!(s.coord.pending(), 1);
    assert_eq!(s.fx.stored(&key("b")), None);
}

#[test]
fn a_refused_forward_is_answered_to_the_forwarder() {
    let mut s = Setup::new(Fixture::new("n1"));
    let origin = Origin::Forward {
        from: id("n2"),
        fwd_id: 9,
    };

    let out = s.request(origin, put_w(&key("k"), "v", 4));

    match &out[..] {
        [
            Output::Send {
                to,
                msg:
                    PeerMsg::ForwardReply {
                        fwd_id: 9,
                        reply: ClientReply::Error(ClientError::BadRequest(_)),
                    },
            },
        ] if to == &id("n2") => {}
        _ => panic!("expected a BadRequest forward reply to n2: {out:?}"),
    }
}

// Writes.

#[test]
fn a_put_at_a_target_stores_sends_to_the_other_targets_and_arms_one_timer() {
    let mut s = Setup::new(Fixture::new("n1"));
    s.fx.now_ms = 10;
    let k = key("k");

    let out = s.client(1, put(&k, "v"));

    let (object, _) = first_write("v", 10);
    let mut want: Vec<Output> = others(&s.fx, &k, 3)
        .iter()
        .map(|t| replica_put(t, 1, &k, &object))
        .collect();
    for o in &mut want {
        if let Output::Send {
            msg: PeerMsg::ReplicaPut { sent_us, .. },
            ..
        } = o
        {
            // The send stamp, for the W leg: without a wall clock, now_ms.
            *sent_us = 10_000;
        }
    }
    want.push(timer(1, 1_010));
    assert_eq!(out, want);
    assert_eq!(s.fx.stored(&k), Some(object));
    assert_eq!(s.coord.pending(), 1, "w = 2: waits for one more ack");
    assert_eq!(s.fx.stats.puts_coordinated, 1);
}

#[test]
fn a_put_answers_once_after_w_acks() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    s.client(1, put(&k, "v"));
    let (object, dot) = first_write("v", 0);
    let (a, b) = (id("n2"), id("n3"));

    let out = s.put_ack(&a, 1, true);

    let written = ClientReply::Written {
        context: object.vv.clone(),
        dot: Some(dot),
        fallback_acks: 0,
    };
    assert_eq!(out, vec![reply(1, written)]);
    assert_eq!(s.coord.pending(), 0);
    assert_eq!(s.put_ack(&b, 1, true), vec![], "a late ack is ignored");
}

#[test]
fn a_put_with_a_primary_down_sends_a_hinted_write_to_a_fallback() {
    let mut s = Setup::new(Fixture::with("n1", |c| c.n = 2));
    let k = s.fx.key_where(2, |p| p[0] == id("n1"));
    let down = s.fx.primaries(&k, 2)[1].clone();
    let fallback = [id("n2"), id("n3")]
        .into_iter()
        .find(|n| n != &down)
        .unwrap();
    s.fx.set_down(down.as_str());

    let out = s.client(1, put(&k, "v"));

    let (object, _) = first_write("v", 0);
    let hinted = send(
        &fallback,
        PeerMsg::ReplicaPut {
            req_id: 1,
            key: k.clone(),
            object,
            stands_in_for: Some(down),
            sent_us: 0,
        },
    );
    assert_eq!(out, vec![hinted, timer(1, 1_000)]);
}

#[test]
fn a_put_deadline_answers_unavailable_and_returns_the_silent_targets() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    s.client(1, put_w(&k, "v", 3));
    let targets = others(&s.fx, &k, 3);
    assert_eq!(s.put_ack(&targets[0], 1, true), vec![]);

    let (silent, out) = s.deadline(1);

    assert_eq!(silent, vec![targets[1].clone()]);
    let err = ClientError::Unavailable {
        required: 3,
        acks: 2,
    };
    assert_eq!(out, vec![reply(1, ClientReply::Error(err))]);
    assert_eq!(s.fx.stats.unavailable, 1);
    assert_eq!(s.coord.pending(), 0);
    assert_eq!(s.deadline(1), (vec![], vec![]), "a deadline fires once");
}

// Forwarding.

/// A fixture node with n = 2, and a key it is not a primary of, with that
/// key's primaries.
fn non_target_key() -> (Setup, BucketKey, Vec<NodeId>) {
    let fx = Fixture::with("n1", |c| c.n = 2);
    let k = fx.key_where(2, |p| !p.contains(&id("n1")));
    let primaries = fx.primaries(&k, 2);
    (Setup::new(fx), k, primaries)
}

#[test]
fn a_put_at_a_non_target_is_forwarded_to_the_first_target() {
    let (mut s, k, primaries) = non_target_key();

    let out = s.client(1, put(&k, "v"));

    let request = ClientRequest {
        key: k.clone(),
        op: ClientOp::Put {
            value: Value::Data(Bytes::from_static(b"v")),
            context: None,
            w: Some(QuorumParam::Count(2)),
            pw: Some(QuorumParam::Count(0)),
        },
        timeout_ms: Some(1_000),
    };
    let forward = send(&primaries[0], PeerMsg::Forward { fwd_id: 1, request });
    assert_eq!(out, vec![forward, timer(1, 2_000)]);
    assert_eq!(s.fx.stored(&k), None);
    assert_eq!(s.fx.stats.forwarded, 1);
    assert_eq!(s.coord.pending(), 1);
}

#[test]
fn a_forward_reply_is_relayed_to_the_client_once() {
    let (mut s, k, _) = non_target_key();
    s.client(7, put(&k, "v"));
    let answer = ClientReply::Written {
        context: VersionVector::new(),
        dot: None,
        fallback_acks: 0,
    };
    let relay = |s: &mut Setup| {
        let Setup { fx, coord, .. } = s;
        fx.run(|ctx, _| coord.on_forward_reply(ctx, 1, answer.clone()));
        fx.take_out()
    };

    assert_eq!(relay(&mut s), vec![reply(7, answer.clone())]);
    assert_eq!(relay(&mut s), vec![]);
    assert_eq!(s.coord.pending(), 0);
}

#[test]
fn a_forward_deadline_answers_unavailable_and_suspects_nobody() {
    let (mut s, k, _) = non_target_key();
    s.client(7, put(&k, "v"));

    let (silent, out) = s.deadline(1);

    assert_eq!(silent, vec![]);
    let err = ClientError::Unavailable {
        required: 2,
        acks: 0,
    };
    assert_eq!(out, vec![reply(7, ClientReply::Error(err))]);
}

#[test]
fn a_forwarded_put_at_a_non_target_answers_internal_and_is_not_forwarded_again() {
    let (mut s, k, _) = non_target_key();
    let origin = Origin::Forward {
        from: id("n2"),
        fwd_id: 9,
    };

    let out = s.request(origin, put(&k, "v"));

    match &out[..] {
        [
            Output::Send {
                to,
                msg:
                    PeerMsg::ForwardReply {
                        fwd_id: 9,
                        reply: ClientReply::Error(ClientError::Internal(_)),
                    },
            },
        ] if to == &id("n2") => {}
        _ => panic!("expected one Internal forward reply to n2: {out:?}"),
    }
    assert_eq!(s.fx.stats.forwarded, 0);
    assert_eq!(s.coord.pending(), 0);
    assert_eq!(s.fx.stored(&k), None);
}

#[test]
fn a_forward_is_taken_once_per_sender_and_id() {
    let mut coord = Coordinator::default();
    let (n2, n3) = (id("n2"), id("n3"));

    assert!(coord.first_forward(&n2, 5));
    assert!(!coord.first_forward(&n2, 5), "a duplicate");
    assert!(coord.first_forward(&n3, 5), "another sender's id");
    assert!(coord.first_forward(&n2, 6));
}

// Reads.

#[test]
fn a_get_asks_the_other_targets_and_answers_once_after_r_replies() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    let a = object("n2", 1, "a");
    s.fx.store_object(&k, &a);
    let peers = others(&s.fx, &k, 3);

    let out = s.client(1, get(&k));
    let mut want: Vec<Output> = peers.iter().map(|p| replica_get(p, 1, &k)).collect();
    want.push(timer(1, 1_000));
    assert_eq!(out, want);

    let read = ClientReply::Read {
        object: a.clone(),
        fallback_replies: 0,
    };
    assert_eq!(
        s.get_reply(&peers[0], 1, Some(a.clone())),
        vec![reply(1, read)]
    );
    assert_eq!(s.coord.pending(), 1, "listens on for read repair");
    assert_eq!(s.fx.stats.gets_coordinated, 1);
}

#[test]
fn a_get_repairs_a_stale_replica_after_every_target_replied() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    let a = object("n2", 1, "a");
    s.fx.store_object(&k, &a);
    let peers = others(&s.fx, &k, 3);
    s.client(1, get(&k));
    s.get_reply(&peers[0], 1, Some(a.clone()));

    let out = s.get_reply(&peers[1], 1, Some(Object::empty()));

    assert_eq!(out, vec![replica_put(&peers[1], 0, &k, &a)]);
    assert_eq!(s.fx.stats.read_repairs, 1);
    assert_eq!(s.coord.pending(), 0);
    assert_eq!(s.get_reply(&peers[1], 1, Some(Object::empty())), vec![]);
}

#[test]
fn a_get_repairs_this_nodes_own_stale_copy_in_place() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    let a = object("n2", 1, "a");
    let peers = others(&s.fx, &k, 3);
    s.client(1, get(&k));
    s.get_reply(&peers[0], 1, Some(a.clone()));

    let out = s.get_reply(&peers[1], 1, Some(a.clone()));

    assert_eq!(out, vec![], "no message: the repair is local");
    assert_eq!(s.fx.stored(&k), Some(a));
    assert_eq!(s.fx.stats.read_repairs, 1);
}

#[test]
fn a_read_reply_over_the_limits_counts_as_failed_and_is_neither_merged_nor_repaired() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    let a = object("n2", 1, "a");
    s.fx.store_object(&k, &a);
    let peers = others(&s.fx, &k, 3);
    s.client(1, get(&k));
    // A value over value_bytes_max (64) in a peer's reply.
    let forged = object("n3", 1, &"x".repeat(65));

    assert_eq!(s.get_reply(&peers[0], 1, Some(forged)), vec![]);
    assert_eq!(s.fx.stats.peer_refused, 1);

    let read = ClientReply::Read {
        object: a.clone(),
        fallback_replies: 0,
    };
    let out = s.get_reply(&peers[1], 1, Some(a.clone()));
    assert_eq!(out, vec![reply(1, read)], "answered with no repair");
    assert_eq!(s.coord.pending(), 0);
    assert_eq!(s.fx.stored(&k), Some(a));
}

#[test]
fn a_get_deadline_returns_the_silent_targets() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    let peers = others(&s.fx, &k, 3);
    s.client(1, get(&k));
    s.get_reply(&peers[0], 1, Some(Object::empty()));

    let (silent, out) = s.deadline(1);

    assert_eq!(silent, vec![peers[1].clone()]);
    assert_eq!(out, vec![], "answered already; nothing to repair");
    assert_eq!(s.coord.pending(), 0);
}

#[test]
fn a_delete_without_context_reads_then_writes_a_tombstone_over_what_it_read() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    let a = object("n2", 1, "a");
    s.fx.store_object(&k, &a);
    let peers = others(&s.fx, &k, 3);

    let out = s.client(1, delete(&k));
    assert!(
        out.iter().all(|o| !matches!(
            o,
            Output::Send {
                msg: PeerMsg::ReplicaPut { .. },
                ..
            }
        )),
        "reads first: {out:?}"
    );

    let out = s.get_reply(&peers[0], 1, Some(a.clone()));

    let tombstone = match &out[..] {
        [
            Output::Send {
                msg:
                    PeerMsg::ReplicaPut {
                        req_id: 2, object, ..
                    },
                ..
            },
            ..,
        ] => object.clone(),
        _ => panic!("expected the tombstone write: {out:?}"),
    };
    assert!(tombstone.is_deleted());
    assert!(tombstone.vv.descends(&a.vv), "covers what the read found");
    assert_eq!(s.fx.stored(&k), Some(tombstone));
}

// Latency legs.

/// The req id of the first replica write or read among `out`.
fn sent_req_id(out: &[Output]) -> u64 {
    out.iter()
        .find_map(|o| match o {
            Output::Send {
                msg: PeerMsg::ReplicaPut { req_id, .. } | PeerMsg::ReplicaGet { req_id, .. },
                ..
            } => Some(*req_id),
            _ => None,
        })
        .expect("a replica request was sent")
}

#[test]
fn replies_measure_the_four_legs_from_the_replicas_stamps() {
    let mut s = Setup::new(Fixture::new("n1"));
    let k = key("k");
    let peer = others(&s.fx, &k, 3)[0].clone();
    s.fx.now_ms = 1_000;
    let id = sent_req_id(&s.client(1, put_w(&k, "v", 3)));
    // The replica got it 4 ms later and acked at once; the ack took 2 ms.
    s.fx.now_ms = 1_006;
    let stamps = Stamps {
        req_sent_us: 1_000_000,
        recv_us: 1_004_000,
        sent_us: 1_004_000,
    };
    let Setup { fx, coord, .. } = &mut s;
    fx.run(|ctx, _| coord.on_put_ack(ctx, peer.clone(), id, true, stamps));
    assert_eq!(s.fx.legs.counts(), [1, 1, 0, 0]);
    let near = |got: u64, want: u64| got.abs_diff(want) * 100 <= want;
    assert!(near(s.fx.legs.write.quantile_us(0.5), 4_000));
    assert!(near(s.fx.legs.ack.quantile_us(0.5), 2_000));

    s.fx.take_out();
    let id = sent_req_id(&s.client(2, get(&k)));
    s.fx.now_ms = 1_010;
    let stamps = Stamps {
        req_sent_us: 1_006_000,
        recv_us: 1_007_000,
        sent_us: 1_008_000,
    };
    let Setup { fx, coord, replica } = &mut s;
    fx.run(|ctx, view| coord.on_get_reply(ctx, view, replica, peer.clone(), (id, stamps), None));
    assert_eq!(s.fx.legs.counts(), [1, 1, 1, 1]);
    assert!(near(s.fx.legs.read.quantile_us(0.5), 1_000));
    assert!(near(s.fx.legs.response.quantile_us(0.5), 2_000));
    // An ack after the write was answered still measures (its stamps say
    // when the write was sent); one without stamps does not.
    let Setup { fx, coord, .. } = &mut s;
    fx.run(|ctx, _| coord.on_put_ack(ctx, peer.clone(), 999, true, stamps));
    assert_eq!(fx.legs.counts(), [2, 2, 1, 1]);
    fx.run(|ctx, _| coord.on_put_ack(ctx, peer.clone(), 999, true, Stamps::default()));
    assert_eq!(s.fx.legs.counts(), [2, 2, 1, 1]);
}
