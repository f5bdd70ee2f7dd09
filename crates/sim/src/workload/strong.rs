//! Clients of the strong bucket (`[workload.strong]`): reads, unconditional
//! writes and deletes, and compare-and-sets over a few keys `s0..`, picked
//! uniformly so that clients contend.
//!
//! A compare-and-set names the version this client last saw of the key (in
//! a read, its own write, or a refusal): `If-Match` that version, or
//! `If-None-Match: *` when it saw none or saw the key deleted (then half of
//! the time `If-Match` the tombstone's version). Every write's value is
//! unique in the run, so a read tells which write it saw.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientOp, ClientRequest};
use ringkv_core::strong::{Condition, version_of};
use ringkv_core::{Value, bucket::BucketPatch};

use super::{Invoke, Then};
use crate::check::linearizable::Expect;
use crate::history::{OpKind, Outcome};
use crate::scenario::StrongWorkload;
use crate::world::World;

/// The strong bucket every strong key lives in.
pub const STRONG_BUCKET: &[u8] = b"strong";

/// The history name of strong key index `k`.
pub fn key_name(k: usize) -> String {
    format!("s{k}")
}

/// The bucket properties that make [`STRONG_BUCKET`] strong.
pub fn strong_patch() -> BucketPatch {
    BucketPatch {
        consistency: Some(ringkv_core::Consistency::Strong),
        ..BucketPatch::default()
    }
}

/// What a client last saw of a strong key.
#[derive(Clone, Copy, Debug)]
struct Seen {
    version: u64,
    absent: bool,
}

/// The strong clients' state.
#[derive(Debug)]
pub(super) struct StrongClients {
    /// Share of operations that go to the strong bucket.
    pub(super) share: f64,
    keys: u64,
    /// Cumulative shares of get, put, cas (delete is the rest).
    mix: [f64; 3],
    /// Per (client, key index).
    seen: BTreeMap<(u32, u32), Seen>,
}

impl StrongClients {
    /// The clients of a validated `[workload.strong]`.
    pub(super) fn new(w: &StrongWorkload) -> Self {
        let m = &w.mix;
        let total = m.get + m.put + m.cas + m.delete;
        StrongClients {
            share: w.share,
            keys: w.keys as u64,
            mix: [
                m.get / total,
                (m.get + m.put) / total,
                (m.get + m.put + m.cas) / total,
            ],
            seen: BTreeMap::new(),
        }
    }
}

impl World<'_> {
    /// Picks a strong key and an operation from the strong mix, and invokes
    /// it at `node`.
    pub(super) fn start_strong_op(&mut self, client: u32, node: usize) {
        let sc = self.clients.strong.as_ref().expect("a strong workload");
        let (keys, [get, put, cas]) = (sc.keys, sc.mix);
        let key = self.rng_work.below(keys) as usize;
        let u = self.rng_work.unit();
        let kind = if u < get {
            OpKind::Get
        } else if u < put {
            OpKind::Put {
                value: self.clients.next_value(client),
                context: None,
            }
        } else if u < cas {
            let expect = self.expect(client, key);
            OpKind::Cas {
                value: self.clients.next_value(client),
                expect,
            }
        } else {
            OpKind::Delete { context: None }
        };
        let op = match &kind {
            OpKind::Get => ClientOp::Get { r: None, pr: None },
            OpKind::Put { value, .. } => put_op(Value::Data(Bytes::from(value.clone()))),
            OpKind::Delete { .. } => put_op(Value::Tombstone),
            OpKind::Cas { value, expect } => ClientOp::PutIf {
                value: Value::Data(Bytes::from(value.clone())),
                condition: match expect {
                    Expect::Absent => Condition::IfAbsent,
                    Expect::Version(v) => Condition::IfVersion(*v),
                },
            },
        };
        let request = ClientRequest {
            key: BucketKey::new(
                Bytes::from_static(STRONG_BUCKET),
                Bytes::from(key_name(key)),
            ),
            op,
            timeout_ms: None,
        };
        let o = Invoke {
            client,
            node,
            key,
            kind,
            then: Then::Nothing,
            quorum: self.scenario.n / 2 + 1,
            strong: true,
        };
        self.submit(o, request);
    }

    /// The precondition of `client`'s next compare-and-set on `key`.
    fn expect(&mut self, client: u32, key: usize) -> Expect {
        let sc = self.clients.strong.as_ref().expect("a strong workload");
        match sc.seen.get(&(client, key as u32)) {
            None => Expect::Absent,
            Some(s) if !s.absent => Expect::Version(s.version),
            Some(s) => {
                if s.version > 0 && self.rng_work.unit() < 0.5 {
                    Expect::Version(s.version)
                } else {
                    Expect::Absent
                }
            }
        }
    }

    /// Strong op `id` got its answer: remember the version it showed.
    pub(super) fn strong_reply(&mut self, id: u64) {
        let op = &self.history.ops[id as usize];
        let seen = match (&op.kind, &op.outcome) {
            (_, Outcome::Read { object }) => Some(Seen {
                version: version_of(&object.vv),
                absent: object.is_deleted(),
            }),
            (kind, Outcome::Written { context, .. }) => Some(Seen {
                version: version_of(context),
                absent: matches!(kind, OpKind::Delete { .. }),
            }),
            (_, Outcome::PreconditionFailed { current }) => Some(Seen {
                version: version_of(current),
                absent: version_of(current) == 0,
            }),
            _ => None,
        };
        let meta = self.clients.meta[id as usize];
        if let (Some(seen), Some(sc)) = (seen, self.clients.strong.as_mut()) {
            sc.seen.insert((meta.client, meta.key), seen);
        }
    }
}

/// An unconditional strong write of `value`.
fn put_op(value: Value) -> ClientOp {
    ClientOp::Put {
        value,
        context: None,
        w: None,
        pw: None,
    }
}
