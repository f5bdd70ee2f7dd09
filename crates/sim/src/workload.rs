//! Simulated clients: what they ask, of which node, when, and what they
//! record in the history.
//!
//! Each operation goes to a node picked uniformly at random; a client talks
//! to it directly (no network leg: the PBS legs are between nodes). A node
//! that is down refuses the connection: the operation ends 1 ms later with
//! `Error("node down")`. A node that crashes with the client's request in
//! flight resets the connection: the operation stays `Pending` (it may or may
//! not have been applied) and the client moves on.
//!
//! - get: a read at R.
//! - put: a blind write (no context) of a value unique in the run.
//! - rmw: a read, then (if it succeeded) a write with the read's context.
//! - delete: a read, then a delete with the read's context.
//!
//! Both halves of rmw and delete are separate operations in the history.
//! Closed loop: a client starts its next operation `think_ms` after the last
//! one ended, but never in the same simulated ms as the previous one started
//! (with N=1 an operation takes no time at all; the clock must still move,
//! and history times are whole ms). Open loop: Poisson arrivals, assigned to clients round-robin,
//! whatever is in flight. A client gives up on an operation after
//! `2 * timeout_ms + 1000` ms (a delete's read and write, plus the forward
//! margin): it stays `Pending`.

pub mod strong;

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest};
use ringkv_core::{QuorumParam, Value};
use ringkv_node::Input;

use crate::history::{Op, OpKind, Outcome};
use crate::keys::KeyChooser;
use crate::scenario::{Arrival, Scenario};
use crate::world::{Event, World};

/// The bucket every simulated key lives in.
pub const BUCKET: &[u8] = b"default";

/// The history name of key index `k`.
pub fn key_name(k: usize) -> String {
    format!("k{k}")
}

/// What a read is the first half of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// A plain operation.
    Nothing,
    /// Write a new value with the read's context.
    Put,
    /// Delete with the read's context.
    Delete,
}

/// What the engine remembers about one operation of the history.
#[derive(Clone, Copy, Debug)]
struct OpMeta {
    client: u32,
    node: u32,
    key: u32,
    then: Then,
}

/// The clients' state for one run.
#[derive(Debug)]
pub struct Clients {
    keys: KeyChooser,
    /// Cumulative shares of get, put, rmw (delete is the rest).
    mix: [f64; 3],
    count: u32,
    think_us: Option<u64>,
    mean_gap_us: f64,
    arrivals: u64,
    value_bytes: usize,
    timeout_us: u64,
    /// Next value number of each client.
    seq: Vec<u64>,
    /// When each client last started an operation, µs.
    last_start_us: Vec<u64>,
    /// Per operation id.
    meta: Vec<OpMeta>,
    /// Operations waiting for a reply, with their node.
    in_flight: BTreeMap<u64, usize>,
    /// The strong bucket's share of operations, if the scenario has one.
    strong: Option<strong::StrongClients>,
}

/// An operation about to be invoked.
struct Invoke {
    client: u32,
    node: usize,
    /// Key index (in the eventual or the strong bucket).
    key: usize,
    kind: OpKind,
    then: Then,
    quorum: usize,
    strong: bool,
}

impl Clients {
    /// The clients of a validated scenario.
    pub fn new(s: &Scenario) -> Self {
        let w = &s.workload;
        let m = &w.mix;
        let total = m.get + m.put + m.rmw + m.delete;
        let (think_us, mean_gap_us) = match w.arrival {
            Arrival::Closed { think_ms } => (Some(think_ms.saturating_mul(1_000)), 0.0),
            Arrival::Open { rate_per_s } => (None, 1e6 / rate_per_s),
        };
        Clients {
            keys: KeyChooser::new(&w.key_dist, w.keys),
            mix: [
                m.get / total,
                (m.get + m.put) / total,
                (m.get + m.put + m.rmw) / total,
            ],
            count: w.clients as u32,
            think_us,
            mean_gap_us,
            arrivals: 0,
            value_bytes: w.value_bytes,
            timeout_us: (2 * s.timeout_ms + 1_000) * 1_000,
            seq: vec![0; w.clients],
            last_start_us: vec![0; w.clients],
            meta: Vec::new(),
            in_flight: BTreeMap::new(),
            strong: w.strong.as_ref().map(strong::StrongClients::new),
        }
    }

    /// Operations waiting for a reply.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// A new value, unique in the run, padded with `.` to `value_bytes`.
    fn next_value(&mut self, client: u32) -> String {
        let seq = &mut self.seq[client as usize];
        *seq += 1;
        let v = format!("c{client}-{seq}");
        format!("{v:.<width$}", width = self.value_bytes)
    }
}

/// The history outcome of a node's reply.
fn outcome(reply: ClientReply) -> Outcome {
    match reply {
        ClientReply::Written { context, dot, .. } => Outcome::Written { context, dot },
        ClientReply::Read { object, .. } => Outcome::Read { object },
        ClientReply::Strong { reply, .. } => outcome(*reply),
        // The workload lists no keys.
        ClientReply::Keys(_) => Outcome::Error("a page of keys for a key operation".into()),
        ClientReply::Cluster(_) => Outcome::Error("a cluster document for a key operation".into()),
        ClientReply::Error(e) => match e {
            ClientError::Unavailable { required, acks }
            | ClientError::PrimariesUnavailable { required, acks } => {
                Outcome::Unavailable { required, acks }
            }
            ClientError::BadRequest(m) => Outcome::Error(format!("bad request: {m}")),
            ClientError::Conflict(m) => Outcome::Error(format!("conflict: {m}")),
            ClientError::TooLarge(m) => Outcome::Error(format!("too large: {m}")),
            ClientError::Overloaded(m) => Outcome::Error(format!("overloaded: {m}")),
            ClientError::Internal(m) => Outcome::Error(format!("internal: {m}")),
            ClientError::PreconditionFailed { current } => Outcome::PreconditionFailed { current },
            ClientError::NoQuorum { reason } => Outcome::Error(format!("no quorum: {reason}")),
            ClientError::OutcomeUnknown { reason } => Outcome::Unknown(reason),
            ClientError::PartitionsUnavailable { required, short } => Outcome::Unavailable {
                required,
                acks: short.iter().map(|&(_, got)| got).min().unwrap_or(0),
            },
        },
    }
}

impl World<'_> {
    /// Schedules the first operations: closed-loop clients start within the
    /// first millisecond, out of step; open loop gets its first arrival.
    pub fn start_clients(&mut self) {
        if self.clients.think_us.is_some() {
            for client in 0..self.clients.count {
                let at = self.rng_work.below(1_000);
                self.queue.push(at, Event::ClientNext { client });
            }
        } else {
            self.schedule_arrival();
        }
    }

    fn schedule_arrival(&mut self) {
        let gap = self.rng_work.exponential(self.clients.mean_gap_us);
        let at = self.now_us.saturating_add(gap.min(1e15) as u64);
        if at < self.scenario.duration_ms * 1_000 {
            self.queue.push(at, Event::Arrival);
        }
    }

    /// An open-loop arrival: the next client in turn starts an operation.
    pub fn arrival(&mut self) {
        if self.over {
            return;
        }
        let client = (self.clients.arrivals % u64::from(self.clients.count)) as u32;
        self.clients.arrivals += 1;
        self.schedule_arrival();
        self.start_op(client);
    }

    /// A closed-loop client's turn.
    pub fn client_next(&mut self, client: u32) {
        if !self.over {
            self.start_op(client);
        }
    }

    /// Picks a node, a key and an operation from the mix, and invokes it.
    fn start_op(&mut self, client: u32) {
        self.clients.last_start_us[client as usize] = self.now_us;
        let node = self.rng_work.below(self.cluster.len() as u64) as usize;
        if let Some(share) = self.clients.strong.as_ref().map(|s| s.share)
            && self.rng_work.unit() < share
        {
            return self.start_strong_op(client, node);
        }
        let key = self.clients.keys.pick(&mut self.rng_work);
        let u = self.rng_work.unit();
        let [get, put, rmw] = self.clients.mix;
        if u < get {
            self.invoke(client, node, key, OpKind::Get, Then::Nothing);
        } else if u < put {
            let value = self.clients.next_value(client);
            let kind = OpKind::Put {
                value,
                context: None,
            };
            self.invoke(client, node, key, kind, Then::Nothing);
        } else if u < rmw {
            self.invoke(client, node, key, OpKind::Get, Then::Put);
        } else {
            self.invoke(client, node, key, OpKind::Get, Then::Delete);
        }
    }

    /// Records an operation on the eventual bucket and sends it to `node`.
    fn invoke(&mut self, client: u32, node: usize, key: usize, kind: OpKind, then: Then) {
        let (r, w) = (self.scenario.r, self.scenario.w);
        let quorum = if kind == OpKind::Get { r } else { w };
        let key_str = key_name(key);
        let request = ClientRequest {
            key: BucketKey::new(Bytes::from_static(BUCKET), Bytes::from(key_str)),
            op: match &kind {
                OpKind::Get => ClientOp::Get {
                    r: Some(QuorumParam::Count(quorum as u32)),
                    pr: None,
                },
                OpKind::Put { value, context } => ClientOp::Put {
                    value: Value::Data(Bytes::from(value.clone())),
                    context: context.clone(),
                    w: Some(QuorumParam::Count(quorum as u32)),
                    pw: None,
                },
                OpKind::Delete { context } => ClientOp::Put {
                    value: Value::Tombstone,
                    context: context.clone(),
                    w: Some(QuorumParam::Count(quorum as u32)),
                    pw: None,
                },
                OpKind::Cas { .. } => unreachable!("compare-and-set is for strong keys"),
            },
            timeout_ms: None,
        };
        let op = Invoke {
            client,
            node,
            key,
            kind,
            then,
            quorum,
            strong: false,
        };
        self.submit(op, request);
    }

    /// Records operation `o` in the history and sends `request` to its node
    /// (or fails it at once if the node is down).
    fn submit(&mut self, o: Invoke, request: ClientRequest) {
        let Invoke {
            client,
            node,
            key,
            kind,
            then,
            quorum,
            strong,
        } = o;
        let id = self.history.ops.len() as u64;
        let invoke_ms = self.now_ms();
        let up = self.cluster.is_up(node);
        self.history.ops.push(Op {
            id,
            client,
            node: self.cluster.id(node).to_string(),
            key: if strong {
                strong::key_name(key)
            } else {
                key_name(key)
            },
            strong,
            kind,
            quorum,
            invoke_ms,
            complete_ms: (!up).then_some(invoke_ms + 1),
            fallbacks: 0,
            outcome: if up {
                Outcome::Pending
            } else {
                Outcome::Error("node down".into())
            },
        });
        self.clients.meta.push(OpMeta {
            client,
            node: node as u32,
            key: key as u32,
            then,
        });
        self.stats.ops_invoked += 1;
        if !up {
            self.stats.ops_completed += 1;
            return self.client_done(client, self.now_us + 1_000);
        }
        self.clients.in_flight.insert(id, node);
        let at = self.now_us + self.clients.timeout_us;
        // Always the same delay: a FIFO lane of its own.
        self.queue
            .push_fifo(u64::MAX, at, Event::ClientTimeout { op: id });
        self.step(
            node,
            Input::Client {
                client_id: id,
                request,
            },
        );
    }

    /// A node answered operation `id` (ignored if the client gave up).
    pub fn on_reply(&mut self, id: u64, reply: ClientReply) {
        if self.clients.in_flight.remove(&id).is_none() {
            return;
        }
        let now_ms = self.now_ms();
        let op = &mut self.history.ops[id as usize];
        op.complete_ms = Some(now_ms);
        op.fallbacks = match &reply {
            ClientReply::Written { fallback_acks, .. } => *fallback_acks,
            ClientReply::Read {
                fallback_replies, ..
            } => *fallback_replies,
            ClientReply::Error(_)
            | ClientReply::Strong { .. }
            | ClientReply::Keys(_)
            | ClientReply::Cluster(_) => 0,
        };
        op.outcome = outcome(reply);
        if op.strong {
            self.strong_reply(id);
        }
        let op = &self.history.ops[id as usize];
        let read_ok = matches!(op.outcome, Outcome::Read { .. });
        self.stats.ops_completed += 1;
        let meta = self.clients.meta[id as usize];
        if read_ok && meta.then != Then::Nothing && !self.over {
            self.queue.push(self.now_us, Event::SecondPhase { op: id });
        } else {
            self.client_done(meta.client, self.now_us);
        }
    }

    /// The write half of a read-modify-write or delete: same client, node
    /// and key, with the context the read returned.
    pub fn second_phase(&mut self, read: u64) {
        let meta = self.clients.meta[read as usize];
        if self.over {
            return self.client_done(meta.client, self.now_us);
        }
        let Outcome::Read { object } = &self.history.ops[read as usize].outcome else {
            unreachable!("a second phase follows a successful read");
        };
        let context = Some(object.vv.clone());
        let kind = match meta.then {
            Then::Put => OpKind::Put {
                value: self.clients.next_value(meta.client),
                context,
            },
            Then::Delete => OpKind::Delete { context },
            Then::Nothing => unreachable!("plain reads have no second phase"),
        };
        let (node, key) = (meta.node as usize, meta.key as usize);
        self.invoke(meta.client, node, key, kind, Then::Nothing);
    }

    /// The client gives up on `op` if it is still waiting: it stays pending.
    pub fn client_timeout(&mut self, op: u64) {
        if self.clients.in_flight.remove(&op).is_some() {
            self.stats.ops_timed_out += 1;
            let client = self.clients.meta[op as usize].client;
            self.client_done(client, self.now_us);
        }
    }

    /// Node `node` crashed: the connections of its clients reset. Their
    /// operations stay pending (they may have been applied) and the clients
    /// move on.
    pub fn abandon_ops_at(&mut self, node: usize) {
        let lost: Vec<u64> = self
            .clients
            .in_flight
            .iter()
            .filter(|(_, n)| **n == node)
            .map(|(op, _)| *op)
            .collect();
        for op in lost {
            self.clients.in_flight.remove(&op);
            self.stats.ops_abandoned += 1;
            let client = self.clients.meta[op as usize].client;
            self.client_done(client, self.now_us);
        }
    }

    /// A client's operation ended at `at_us`: a closed-loop client thinks,
    /// then goes on (at least 1 ms after it started the last one).
    fn client_done(&mut self, client: u32, at_us: u64) {
        if let Some(think_us) = self.clients.think_us {
            let earliest = self.clients.last_start_us[client as usize] + 1_000;
            let at = at_us.saturating_add(think_us).max(earliest);
            self.queue.push(at, Event::ClientNext { client });
        }
        self.maybe_stop();
    }
}
