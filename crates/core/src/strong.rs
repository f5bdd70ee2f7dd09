//! Strong buckets' pure part: what a consensus log entry asks, and how a
//! committed entry changes a key.
//!
//! A strong key has one value at a time (never siblings). Its version is the
//! index of the log entry that last wrote it: unique, increasing, and the
//! same on every voter. Clients see it as an ordinary context (a version
//! vector with one entry, for the [`strong_actor`]), so context tokens,
//! their MAC and the client libraries stay as they are; `If-Match` hands one
//! back to name the version a compare-and-set expects.
//!
//! Applying an entry is idempotent: an entry whose index is not above the
//! key's version was applied already and changes nothing, so a node that
//! restarts may replay its log over a store that has newer writes.

use serde::{Deserialize, Serialize};

use crate::hash::BucketKey;
use crate::layout::NodeId;
use crate::version::{Actor, Dot, Object, Sibling, Value, VersionVector};

/// The writer named in strong keys' versions. Node ids cannot start with
/// `~`, so it never collides with a real node's actor.
pub fn strong_actor() -> Actor {
    Actor {
        node: NodeId::from("~raft"),
        incarnation: 0,
    }
}

/// The version a context names for a strong key (0: never written).
pub fn version_of(context: &VersionVector) -> u64 {
    context.get(&strong_actor())
}

/// The context that names `version`.
pub fn context_of(version: u64) -> VersionVector {
    let mut vv = VersionVector::new();
    if version > 0 {
        vv.add(&Dot {
            actor: strong_actor(),
            counter: version,
        });
    }
    vv
}

/// The version of a stored strong object (0: none).
pub fn stored_version(object: Option<&Object>) -> u64 {
    object.map_or(0, |o| version_of(&o.vv))
}

/// When a strong write applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    /// `If-None-Match: *`: only if the key is absent (never written, or
    /// deleted).
    IfAbsent,
    /// `If-Match: <context>`: only if the key is still at the version that
    /// context names.
    IfVersion(u64),
}

/// Who proposed an entry, so the proposer can answer its client when the
/// entry is applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposer {
    /// The node.
    pub node: NodeId,
    /// Its incarnation: ids restart with a process, incarnations do not repeat.
    pub incarnation: u32,
    /// The proposer's id for the request.
    pub id: u64,
}

/// What one log entry of a partition's consensus group asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Who proposed it.
    pub proposer: Proposer,
    /// The key.
    pub key: BucketKey,
    /// The new value ([`Value::Tombstone`] deletes).
    pub value: Value,
    /// When it applies (`None`: always).
    pub condition: Option<Condition>,
    /// The proposer's clock, in ms (shown to operators; never for order).
    pub timestamp_ms: u64,
}

impl Command {
    /// The entry's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("command encoding cannot fail")
    }

    /// Decodes an entry's bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Command, postcard::Error> {
        postcard::from_bytes(b)
    }
}

/// What applying an entry did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The key now holds the entry's value; its version is the entry's index.
    Written(Object),
    /// The condition did not hold; the key keeps `current` (its version).
    Mismatch {
        /// The key's version (0: never written).
        current: u64,
    },
    /// The entry was applied before (a replay after a restart): nothing
    /// changes, and nobody waits for its answer.
    Replayed,
}

/// Applies `command`, committed at log `index`, to the key's stored state.
pub fn apply(current: Option<&Object>, index: u64, command: &Command) -> Applied {
    let version = stored_version(current);
    if version >= index {
        return Applied::Replayed;
    }
    let absent = current.is_none_or(Object::is_deleted);
    let holds = match &command.condition {
        None => true,
        Some(Condition::IfAbsent) => absent,
        Some(Condition::IfVersion(v)) => *v == version,
    };
    if !holds {
        return Applied::Mismatch { current: version };
    }
    let dot = Dot {
        actor: strong_actor(),
        counter: index,
    };
    let mut vv = VersionVector::new();
    vv.add(&dot);
    Applied::Written(Object {
        vv,
        siblings: vec![Sibling {
            dot,
            value: command.value.clone(),
            timestamp_ms: command.timestamp_ms,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn cmd(value: Option<&str>, condition: Option<Condition>) -> Command {
        Command {
            proposer: Proposer {
                node: NodeId::from("n1"),
                incarnation: 1,
                id: 7,
            },
            key: BucketKey::new("b", "k"),
            value: value.map_or(Value::Tombstone, |v| {
                Value::Data(Bytes::from(v.to_string()))
            }),
            condition,
            timestamp_ms: 5,
        }
    }

    fn written(a: Applied) -> Object {
        match a {
            Applied::Written(o) => o,
            other => panic!("expected a write, got {other:?}"),
        }
    }

    #[test]
    fn a_write_takes_the_entry_index_as_version() {
        let o = written(apply(None, 3, &cmd(Some("a"), None)));
        assert_eq!(stored_version(Some(&o)), 3);
        assert_eq!(o.context(), &context_of(3));
        let o2 = written(apply(Some(&o), 9, &cmd(Some("b"), None)));
        assert_eq!(stored_version(Some(&o2)), 9);
        assert_eq!(o2.siblings.len(), 1, "a strong key never has siblings");
    }

    #[test]
    fn if_absent_holds_for_missing_and_deleted_keys_only() {
        let c = cmd(Some("a"), Some(Condition::IfAbsent));
        let o = written(apply(None, 1, &c));
        assert_eq!(apply(Some(&o), 2, &c), Applied::Mismatch { current: 1 });
        let deleted = written(apply(Some(&o), 3, &cmd(None, None)));
        assert!(deleted.is_deleted());
        written(apply(Some(&deleted), 4, &c));
    }

    #[test]
    fn if_version_holds_only_at_that_version() {
        let o = written(apply(None, 4, &cmd(Some("a"), None)));
        written(apply(
            Some(&o),
            5,
            &cmd(Some("b"), Some(Condition::IfVersion(4))),
        ));
        assert_eq!(
            apply(Some(&o), 5, &cmd(Some("b"), Some(Condition::IfVersion(3)))),
            Applied::Mismatch { current: 4 }
        );
        // Version 0 names "never written".
        written(apply(
            None,
            1,
            &cmd(Some("b"), Some(Condition::IfVersion(0))),
        ));
    }

    #[test]
    fn a_replayed_entry_changes_nothing() {
        let o = written(apply(None, 4, &cmd(Some("a"), None)));
        assert_eq!(apply(Some(&o), 4, &cmd(Some("x"), None)), Applied::Replayed);
        assert_eq!(apply(Some(&o), 2, &cmd(Some("x"), None)), Applied::Replayed);
    }

    #[test]
    fn commands_round_trip() {
        let c = cmd(Some("v"), Some(Condition::IfVersion(12)));
        assert_eq!(Command::from_bytes(&c.to_bytes()).unwrap(), c);
    }

    proptest! {
        /// Replaying any suffix of a log over the state it produced changes
        /// nothing: a restart may re-apply entries.
        #[test]
        fn replay_is_idempotent(ops in proptest::collection::vec((any::<bool>(), 0u64..6, any::<u8>()), 1..30), from in 0usize..30) {
            let log: Vec<Command> = ops.iter().map(|(cas, v, x)| {
                let cond = cas.then_some(Condition::IfVersion(*v));
                cmd(Some(&x.to_string()), cond)
            }).collect();
            let mut state: Option<Object> = None;
            for (i, c) in log.iter().enumerate() {
                if let Applied::Written(o) = apply(state.as_ref(), i as u64 + 1, c) {
                    state = Some(o);
                }
            }
            let before = state.clone();
            for (i, c) in log.iter().enumerate().skip(from.min(log.len())) {
                if let Applied::Written(o) = apply(state.as_ref(), i as u64 + 1, c) {
                    state = Some(o);
                }
            }
            prop_assert_eq!(before, state);
        }
    }
}
