//! An in-process cluster of real nodes with a scripted message queue: tests
//! choose which message is delivered when, drop messages and fire timers.
//! Shared by several test binaries, each using a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientOp, ClientReply, ClientRequest, PeerMsg};
use ringkv_core::params::QuorumParam;
use ringkv_core::{Layout, Limits, Member, NodeId, Object, Value, VersionVector};
use ringkv_node::membership::GossipConfig;
use ringkv_node::{ClientId, Input, Node, NodeConfig, Output, Timer};
use ringkv_storage::Store;
use ringkv_storage::memory::MemStore;

/// A message in flight.
#[derive(Clone, Debug)]
pub(crate) struct InFlight {
    pub(crate) from: NodeId,
    pub(crate) to: NodeId,
    pub(crate) msg: PeerMsg,
}

pub(crate) struct Cluster {
    pub(crate) nodes: BTreeMap<NodeId, Node<MemStore>>,
    pub(crate) queue: Vec<InFlight>,
    /// Gossip packets in flight, apart from `queue` so that tests that do
    /// not pump gossip ([`Cluster::run_gossip`]) never see it: nodes that
    /// never hear each other's gossip hold everyone Alive.
    pub(crate) gossip: Vec<InFlight>,
    /// Nodes whose messages (gossip included) are all lost, in and out:
    /// a silent crash or an isolating partition, without `PeerStatus`.
    pub(crate) silenced: std::collections::BTreeSet<NodeId>,
    pub(crate) timers: Vec<(u64, NodeId, Timer)>,
    pub(crate) replies: BTreeMap<ClientId, ClientReply>,
    pub(crate) now: u64,
    next_client: ClientId,
}

pub(crate) fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

pub(crate) fn key(k: &str) -> BucketKey {
    BucketKey::new(
        Bytes::from_static(b"default"),
        Bytes::copy_from_slice(k.as_bytes()),
    )
}

pub(crate) fn put(k: &str, v: &str, context: Option<VersionVector>) -> ClientRequest {
    ClientRequest {
        key: key(k),
        op: ClientOp::Put {
            value: Value::Data(Bytes::copy_from_slice(v.as_bytes())),
            context,
            w: None,
            pw: None,
        },
        timeout_ms: None,
    }
}

pub(crate) fn put_w(k: &str, v: &str, w: QuorumParam) -> ClientRequest {
    let mut r = put(k, v, None);
    if let ClientOp::Put { w: ref mut ww, .. } = r.op {
        *ww = Some(w);
    }
    r
}

pub(crate) fn delete(k: &str, context: Option<VersionVector>) -> ClientRequest {
    ClientRequest {
        key: key(k),
        op: ClientOp::Put {
            value: Value::Tombstone,
            context,
            w: None,
            pw: None,
        },
        timeout_ms: None,
    }
}

pub(crate) fn get(k: &str) -> ClientRequest {
    ClientRequest {
        key: key(k),
        op: ClientOp::Get { r: None, pr: None },
        timeout_ms: None,
    }
}

pub(crate) fn get_r(k: &str, r: QuorumParam) -> ClientRequest {
    ClientRequest {
        key: key(k),
        op: ClientOp::Get {
            r: Some(r),
            pr: None,
        },
        timeout_ms: None,
    }
}

/// The data values of an object, sorted.
pub(crate) fn values(o: &Object) -> Vec<String> {
    let mut v: Vec<String> = o
        .siblings
        .iter()
        .filter_map(|s| match &s.value {
            Value::Data(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Tombstone => None,
        })
        .collect();
    v.sort();
    v
}

impl Cluster {
    /// `size` nodes `n1..`, with the given n/r/w, timeout 1000 ms.
    pub(crate) fn new(size: usize, n: usize, r: usize, w: usize) -> Self {
        Self::with(size, n, r, w, 10_000)
    }

    pub(crate) fn with(size: usize, n: usize, r: usize, w: usize, pending_max: usize) -> Self {
        Self::with_hints(size, n, r, w, pending_max, 1_000)
    }

    /// Like [`Cluster::with`], with a bound on each node's hints.
    pub(crate) fn with_hints(
        size: usize,
        n: usize,
        r: usize,
        w: usize,
        pending_max: usize,
        hints_max: usize,
    ) -> Self {
        Self::tweaked(size, n, r, w, pending_max, hints_max, |_| {})
    }

    /// Like [`Cluster::with_hints`], with every node's config changed by `tweak`.
    pub(crate) fn tweaked(
        size: usize,
        n: usize,
        r: usize,
        w: usize,
        pending_max: usize,
        hints_max: usize,
        tweak: impl Fn(&mut NodeConfig),
    ) -> Self {
        let members: Vec<Member> = (1..=size)
            .map(|i| Member::new(id(&format!("n{i}")), format!("sim:{i}")))
            .collect();
        let layout = Layout::initial(members.clone(), 16).unwrap();
        let nodes = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let cfg = NodeConfig {
                    id: m.id.clone(),
                    incarnation: 100 + i as u32,
                    n,
                    r,
                    w,
                    timeout_ms: 1_000,
                    limits: Limits {
                        value_bytes_max: 64,
                        siblings_max: 3,
                        ..Limits::default()
                    },
                    pending_max,
                    bugs: Default::default(),
                    request_id_base: 0,
                    hints_max,
                    buckets_max: ringkv_node::BUCKETS_MAX_DEFAULT,
                    handoff_interval_ms: 500,
                    handoff_window: 4,
                    gossip: GossipConfig::fast(),
                    rpc_addr: m.rpc_addr.clone(),
                    http_addr: String::new(),
                    generation: 1,
                    gossip_seed: 7 + i as u64,
                    join: vec![],
                    consensus: Default::default(),
                    aae: Default::default(),
                    hinted_handoff: true,
                };
                let mut cfg = cfg;
                tweak(&mut cfg);
                (
                    m.id.clone(),
                    Node::new(cfg, layout.clone(), MemStore::new()).expect("valid config"),
                )
            })
            .collect();
        Cluster {
            nodes,
            queue: vec![],
            gossip: vec![],
            silenced: Default::default(),
            timers: vec![],
            replies: BTreeMap::new(),
            now: 0,
            next_client: 1,
        }
    }

    pub(crate) fn route(&mut self, at: &NodeId, outs: Vec<Output>) {
        for o in outs.into_iter().map(Output::unnest) {
            match o {
                Output::Send { to, msg } => {
                    if self.silenced.contains(at) || self.silenced.contains(&to) {
                        continue;
                    }
                    let m = InFlight {
                        from: at.clone(),
                        to,
                        msg,
                    };
                    if matches!(m.msg, PeerMsg::Gossip { .. }) {
                        self.gossip.push(m);
                    } else {
                        self.queue.push(m);
                    }
                }
                // Every node is known by id here.
                Output::SendAddr { .. }
                | Output::PeerAddr { .. }
                | Output::Sync
                | Output::Now(_) => {}
                Output::Reply { client_id, reply } => {
                    assert!(
                        self.replies.insert(client_id, reply).is_none(),
                        "two replies for one request"
                    );
                }
                Output::SetTimer { id, at_ms } => self.timers.push((at_ms, at.clone(), id)),
            }
        }
    }

    pub(crate) fn input(&mut self, at: &NodeId, input: Input) {
        let mut outs = vec![];
        let now = self.now;
        self.nodes
            .get_mut(at)
            .expect("known node")
            .handle(now, input, &mut outs);
        self.route(at, outs);
    }

    /// Sends a client request to node `at`; returns its id.
    pub(crate) fn client(&mut self, at: &str, request: ClientRequest) -> ClientId {
        let client_id = self.next_client;
        self.next_client += 1;
        self.input(&id(at), Input::Client { client_id, request });
        client_id
    }

    /// Delivers the message at `idx` in the queue.
    pub(crate) fn deliver(&mut self, idx: usize) {
        let m = self.queue.remove(idx);
        self.input(
            &m.to.clone(),
            Input::Peer {
                from: m.from,
                msg: m.msg,
            },
        );
    }

    /// Delivers messages first-in first-out until none are left.
    pub(crate) fn deliver_all(&mut self) {
        let mut steps = 0;
        while !self.queue.is_empty() {
            self.deliver(0);
            steps += 1;
            assert!(steps < 100_000, "message storm");
        }
    }

    /// Runs gossip (and everything else) for `ms` of simulated time, in
    /// 10 ms steps: each step fires the due timers and delivers every
    /// message. Messages of [`Cluster::silenced`] nodes are lost.
    pub(crate) fn run_gossip(&mut self, ms: u64) {
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for n in ids {
            let mut outs = vec![];
            let now = self.now;
            self.nodes.get_mut(&n).unwrap().start(now, &mut outs);
            self.route(&n, outs);
        }
        let end = self.now + ms;
        while self.now < end {
            let t = (self.now + 10).min(end);
            self.advance_to(t);
            let mut steps = 0;
            while !(self.queue.is_empty() && self.gossip.is_empty()) {
                let silenced = self.silenced.clone();
                let lost = |m: &InFlight| silenced.contains(&m.from) || silenced.contains(&m.to);
                self.queue.retain(|m| !lost(m));
                self.gossip.retain(|m| !lost(m));
                if !self.gossip.is_empty() {
                    let m = self.gossip.remove(0);
                    self.input(
                        &m.to.clone(),
                        Input::Peer {
                            from: m.from,
                            msg: m.msg,
                        },
                    );
                } else if !self.queue.is_empty() {
                    self.deliver(0);
                }
                steps += 1;
                assert!(steps < 100_000, "message storm");
            }
        }
    }

    /// Drops every queued message to or from `node`.
    pub(crate) fn drop_node_msgs(&mut self, node: &str) {
        let n = id(node);
        self.queue.retain(|m| m.to != n && m.from != n);
    }

    /// Advances the clock to `t` and fires the timers due by then.
    pub(crate) fn advance_to(&mut self, t: u64) {
        self.now = t;
        let mut due: Vec<_> = self
            .timers
            .iter()
            .filter(|(at, _, _)| *at <= t)
            .cloned()
            .collect();
        self.timers.retain(|(at, _, _)| *at > t);
        due.sort();
        for (_, node, tid) in due {
            self.input(&node, Input::Timer(tid));
        }
    }

    pub(crate) fn reply(&self, c: ClientId) -> &ClientReply {
        self.replies
            .get(&c)
            .unwrap_or_else(|| panic!("no reply for request {c}"))
    }

    pub(crate) fn read_object(&self, c: ClientId) -> Object {
        match self.reply(c) {
            ClientReply::Read { object, .. } => object.clone(),
            other => panic!("expected a read, got {other:?}"),
        }
    }

    pub(crate) fn written_context(&self, c: ClientId) -> VersionVector {
        match self.reply(c) {
            ClientReply::Written { context, .. } => context.clone(),
            other => panic!("expected a write ack, got {other:?}"),
        }
    }

    /// What node `n` has stored for key `k`.
    pub(crate) fn stored(&self, n: &str, k: &str) -> Option<Object> {
        let node = &self.nodes[&id(n)];
        let bk = key(k);
        node.store()
            .get(bk.partition(node.layout().ring_size), &bk)
            .unwrap()
    }

    /// Every node's whole store, for "nothing changed" checks.
    pub(crate) fn snapshot(&self) -> Vec<Vec<(BucketKey, Object)>> {
        self.nodes
            .values()
            .map(|n| {
                (0..16)
                    .flat_map(|p| n.store().scan_partition(p).unwrap())
                    .collect()
            })
            .collect()
    }
}

impl Cluster {
    /// Tells every node but `peer` itself that `peer` is up or down, and
    /// (when down) drops what is queued to and from it: a crashed node.
    pub(crate) fn set_up(&mut self, peer: &str, up: bool) {
        let ids: Vec<NodeId> = self.nodes.keys().cloned().collect();
        for at in ids.iter().filter(|x| x.as_str() != peer) {
            self.input(at, Input::PeerStatus { peer: id(peer), up });
        }
        if !up {
            self.drop_node_msgs(peer);
        }
    }

    /// The extended preference list of key `k` (primaries first), as ids.
    pub(crate) fn preference(&self, k: &str) -> Vec<String> {
        let node = self.nodes.values().next().expect("a node");
        let layout = node.layout();
        let p = key(k).partition(layout.ring_size);
        layout
            .preference_list(p, layout.members.len())
            .into_iter()
            .map(|x| x.to_string())
            .collect()
    }

    pub(crate) fn node(&self, n: &str) -> &Node<MemStore> {
        &self.nodes[&id(n)]
    }

    /// Delivers messages and lets time pass, a tick at a time, until no
    /// node has anti-entropy work queued or in flight.
    #[allow(dead_code)]
    pub(crate) fn settle(&mut self) {
        for _ in 0..10_000 {
            self.deliver_all();
            let idle = self.nodes.values().all(|n| {
                let s = n.aae_status();
                s.queued == 0 && s.active == 0
            });
            if idle {
                return;
            }
            let t = self.now + 100;
            self.advance_to(t);
        }
        panic!("anti-entropy did not settle in 1,000 simulated seconds");
    }

    /// An operator's `ringkv repair` on node `at` (every partition when
    /// `partition` is `None`); returns how many exchanges were queued.
    #[allow(dead_code)]
    pub(crate) fn repair(&mut self, at: &str, partition: Option<u32>) -> usize {
        let mut outs = vec![];
        let now = self.now;
        let queued = self
            .nodes
            .get_mut(&id(at))
            .expect("known node")
            .repair(now, partition, None, &mut outs);
        self.route(&id(at), outs);
        queued
    }
}

/// A write of `v` to `k` asking for `w` acks, `pw` of them from primaries.
pub(crate) fn put_pw(k: &str, v: &str, w: u32, pw: u32) -> ClientRequest {
    let mut r = put(k, v, None);
    if let ClientOp::Put {
        w: ref mut ww,
        pw: ref mut pp,
        ..
    } = r.op
    {
        *ww = Some(QuorumParam::Count(w));
        *pp = Some(QuorumParam::Count(pw));
    }
    r
}

/// A read of `k` asking for `r` replies, `pr` of them from primaries.
pub(crate) fn get_pr(k: &str, r: u32, pr: u32) -> ClientRequest {
    ClientRequest {
        key: key(k),
        op: ClientOp::Get {
            r: Some(QuorumParam::Count(r)),
            pr: Some(QuorumParam::Count(pr)),
        },
        timeout_ms: None,
    }
}
