//! Invariant 5: in strong buckets every history of GET, PUT, DELETE and
//! compare-and-set is linearizable. The history's strong ops become
//! [`LinEvent`]s and go through [`linearizable::check`], key by key.
//!
//! How outcomes translate (the node's contract, DESIGN.md "strong bucket"):
//! - `Written`: applied at version `version_of(context)` (a raft log index).
//! - `Read`: the object's single sibling (absent when empty or deleted) at
//!   `version_of(vv)` (0: never written).
//! - `PreconditionFailed`: the CAS did not apply; `current` names the
//!   version it found.
//! - `Unknown` (the node said `OutcomeUnknown`) and `Pending` (the client
//!   timed out, or the node crashed with the request): may have applied.
//! - `Error` (no quorum, refused, node down) and `Unavailable`: did not apply.
//!
//! A key whose search runs out of budget is reported in
//! [`Report::inconclusive`], never as a pass nor as a violation.

use ringkv_core::strong::version_of;
use ringkv_core::{Object, Value};

use super::linearizable::{self, LinEvent, LinOp, LinResult, LinVerdict};
use super::{Checker, Report, Violation};
use crate::history::{History, Op, OpKind, Outcome};

/// The [`Checker`] of invariant 5.
pub struct Linearizable;

const NAME: &str = "linearizable";

impl Checker for Linearizable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, h: &History) -> Vec<Violation> {
        self.report(h).violations
    }

    fn report(&self, h: &History) -> Report {
        let events = events(h);
        let mut report = Report::default();
        if events.is_empty() {
            return report;
        }
        for (key, verdict) in linearizable::check(&events) {
            match verdict {
                LinVerdict::Ok => {}
                LinVerdict::Violation { explanation } => report.violations.push(Violation {
                    checker: NAME,
                    op: first_op_named(&explanation).unwrap_or(0),
                    message: format!("key {key:?}: {explanation}"),
                }),
                LinVerdict::Inconclusive => report.inconclusive.push(format!(
                    "[{NAME}] key {key:?}: search out of budget ({} steps)",
                    linearizable::DEFAULT_BUDGET
                )),
            }
        }
        report
    }
}

/// The op id an explanation starts with (`op 12 (...)`), for
/// [`Violation::op`].
fn first_op_named(explanation: &str) -> Option<u64> {
    let rest = explanation.split("op ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The strong ops of `h` as [`LinEvent`]s.
pub fn events(h: &History) -> Vec<LinEvent> {
    h.ops.iter().filter(|op| op.strong).map(event).collect()
}

/// The value a strong read returned: its single sibling's, or absent.
/// Several live siblings (a strong key never has them) read as their join,
/// a value nobody wrote: a violation.
fn read_value(object: &Object) -> Option<String> {
    let live: Vec<String> = object
        .siblings
        .iter()
        .filter_map(|s| match &s.value {
            Value::Data(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Tombstone => None,
        })
        .collect();
    match live.len() {
        0 => None,
        1 => live.into_iter().next(),
        _ => Some(format!("siblings [{}]", live.join(", "))),
    }
}

/// A version as the checker takes it: 0 is "never written".
fn nonzero(v: u64) -> Option<u64> {
    (v > 0).then_some(v)
}

/// One strong op as a [`LinEvent`].
fn event(op: &Op) -> LinEvent {
    let lin_op = match &op.kind {
        OpKind::Get => LinOp::Read,
        OpKind::Put { value, .. } => LinOp::Write {
            value: value.clone(),
        },
        OpKind::Delete { .. } => LinOp::Delete,
        OpKind::Cas { value, expect } => LinOp::Cas {
            expect: *expect,
            value: Some(value.clone()),
        },
    };
    let result = match &op.outcome {
        Outcome::Written { context, .. } => LinResult::Written {
            version: version_of(context),
        },
        Outcome::Read { object } => LinResult::Read {
            value: read_value(object),
            version: nonzero(version_of(&object.vv)),
        },
        Outcome::PreconditionFailed { current } => LinResult::PreconditionFailed {
            current_version: nonzero(version_of(current)),
        },
        Outcome::Pending | Outcome::Unknown(_) => LinResult::Unknown,
        Outcome::Unavailable { .. } | Outcome::Error(_) => LinResult::Failed,
    };
    let definite = !matches!(result, LinResult::Unknown);
    LinEvent {
        id: op.id,
        key: op.key.clone(),
        op: lin_op,
        invoke: op.invoke_ms,
        complete: if definite { op.complete_ms } else { None },
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::linearizable::Expect;
    use crate::check::testkit::Builder;
    use bytes::Bytes;
    use ringkv_core::Dot;
    use ringkv_core::strong::context_of;

    /// A strong object holding `value` (`None`: deleted) at `version`.
    fn object(value: Option<&str>, version: u64) -> Object {
        let v = match value {
            Some(s) => Value::Data(Bytes::from(s.to_string())),
            None => Value::Tombstone,
        };
        let dot = Dot {
            actor: ringkv_core::strong::strong_actor(),
            counter: version,
        };
        Object::empty().update(&context_of(version - 1), dot, v, 0)
    }

    fn strong(mut b: Builder) -> History {
        for op in &mut b.h.ops {
            op.strong = true;
        }
        b.h
    }

    fn written(version: u64) -> Outcome {
        Outcome::Written {
            context: context_of(version),
            dot: None,
        }
    }

    fn put(b: &mut Builder, value: &str, t: (u64, u64), outcome: Outcome) {
        let kind = OpKind::Put {
            value: value.into(),
            context: None,
        };
        b.raw("s0", kind, 2, t, outcome);
    }

    fn get(b: &mut Builder, t: (u64, u64), object: Object) {
        b.raw("s0", OpKind::Get, 2, t, Outcome::Read { object });
    }

    #[test]
    fn a_sequential_strong_history_passes_and_eventual_ops_are_ignored() {
        let mut b = Builder::new(3);
        put(&mut b, "a", (0, 5), written(3));
        get(&mut b, (6, 7), object(Some("a"), 3));
        let cas = OpKind::Cas {
            value: "b".into(),
            expect: Expect::Version(3),
        };
        b.raw("s0", cas, 2, (8, 9), written(7));
        let cas = OpKind::Cas {
            value: "c".into(),
            expect: Expect::Version(3),
        };
        let refused = Outcome::PreconditionFailed {
            current: context_of(7),
        };
        b.raw("s0", cas, 2, (10, 11), refused);
        b.raw(
            "s0",
            OpKind::Delete { context: None },
            2,
            (12, 13),
            written(9),
        );
        get(&mut b, (14, 15), object(None, 9));
        put(&mut b, "x", (16, 17), Outcome::Unknown("timeout".into()));
        put(&mut b, "y", (18, 19), Outcome::Error("no quorum".into()));
        let mut h = strong(b);
        assert_eq!(Linearizable.report(&h), Report::default());
        // The same ops as eventual ones are none of this checker's business.
        for op in &mut h.ops {
            op.strong = false;
        }
        assert!(events(&h).is_empty());
    }

    #[test]
    fn a_stale_strong_read_is_a_violation_naming_the_read() {
        let mut b = Builder::new(3);
        put(&mut b, "a", (0, 5), written(3));
        put(&mut b, "b", (6, 10), written(4));
        get(&mut b, (11, 12), object(Some("a"), 3));
        let r = Linearizable.report(&strong(b));
        assert_eq!(r.violations.len(), 1, "{r:?}");
        assert_eq!(r.violations[0].op, 2, "{}", r.violations[0]);
        assert!(r.violations[0].message.starts_with("key \"s0\""));
    }

    #[test]
    fn an_unknown_write_may_explain_a_read_and_a_failed_one_may_not() {
        let mut b = Builder::new(3);
        put(&mut b, "a", (0, 5), Outcome::Pending);
        get(&mut b, (6, 7), object(Some("a"), 2));
        assert!(Linearizable.check(&strong(b)).is_empty());
        let mut b = Builder::new(3);
        put(&mut b, "a", (0, 5), Outcome::Error("no quorum".into()));
        get(&mut b, (6, 7), object(Some("a"), 2));
        assert_eq!(Linearizable.check(&strong(b)).len(), 1);
    }
}
