//! The history of a run: every client operation with its invocation and
//! completion times, outcome, values and contexts. Checkers and observations
//! read only this.

use ringkv_core::{Dot, Object, VersionVector};
use serde::{Deserialize, Serialize};

use crate::check::linearizable::Expect;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpKind {
    /// A read.
    Get,
    /// A write of `value` with the context the client had (`None` = blind).
    Put {
        /// The value written (unique per write in a run).
        value: String,
        /// The context handed with the write.
        context: Option<VersionVector>,
    },
    /// A delete with the context the client had.
    Delete {
        /// The context handed with the delete.
        context: Option<VersionVector>,
    },
    /// A compare-and-set of a strong bucket's key: writes `value` only if
    /// the key is as `expect` says (`If-None-Match: *` or `If-Match`).
    Cas {
        /// The value written (unique per write in a run).
        value: String,
        /// The precondition.
        expect: Expect,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Still running when the run ended (or its reply was lost with a crashed node).
    Pending,
    /// A write or delete was acknowledged; `dot` names it (`None`: a delete
    /// that found nothing to delete).
    Written {
        /// The context returned.
        context: VersionVector,
        /// The write's dot.
        dot: Option<Dot>,
    },
    /// A read returned this merged object (siblings and context).
    Read {
        /// What the read returned.
        object: Object,
    },
    /// The quorum was not reached.
    Unavailable {
        /// Replies needed.
        required: usize,
        /// Replies received.
        acks: usize,
    },
    /// A compare-and-set whose precondition did not hold: nothing changed;
    /// `current` names the key's version it found.
    PreconditionFailed {
        /// The key's context (its version) when the condition was tested.
        current: VersionVector,
    },
    /// A strong bucket's request that may or may not have taken effect
    /// (proposed, then no answer before the deadline).
    Unknown(String),
    /// Refused or failed for another reason: it did not take effect.
    Error(String),
}

/// One client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Op {
    /// Sequence number in the history.
    pub id: u64,
    /// The client.
    pub client: u32,
    /// The node the client sent it to.
    pub node: String,
    /// The key (bucket `default`, or `strong` when [`Op::strong`]).
    pub key: String,
    /// Whether the key is in the strong bucket (served by a consensus
    /// group, checked for linearizability; the other checkers skip it).
    #[serde(default)]
    pub strong: bool,
    /// What was asked.
    pub kind: OpKind,
    /// Replies the read waited for, or acks the write waited for.
    pub quorum: usize,
    /// When the client sent it, simulated ms.
    pub invoke_ms: u64,
    /// When the client got the answer, simulated ms (`None` while pending).
    pub complete_ms: Option<u64>,
    /// Acks (of a write) or replies (of a read) that came from fallbacks
    /// standing in for unreachable primaries: a sloppy quorum, which does
    /// not promise that reads and writes overlap.
    #[serde(default)]
    pub fallbacks: usize,
    /// How it ended.
    pub outcome: Outcome,
}

/// Everything that happened to clients in one run, plus the settings the
/// checkers need.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Replicas per key.
    pub n: usize,
    /// Operations in invocation order.
    pub ops: Vec<Op>,
}

impl History {
    /// A byte encoding, for comparing runs exactly.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("history encodes")
    }
}
