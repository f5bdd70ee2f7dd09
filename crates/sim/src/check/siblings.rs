//! Invariant 2: siblings appear only for truly concurrent writes, and a
//! write made with the context of a read supersedes every value that read
//! returned.
//!
//! For every successful read returning siblings `S` with context `V`:
//!
//! 1. **Ordered siblings.** No two siblings may be causally ordered: if the
//!    write of `s1` was made with a context covering `s2`'s dot, `s2` must
//!    not be returned next to it.
//! 2. **Superseded siblings.** If the read has seen a write `W` (`V` covers
//!    `W`'s dot) whose input context covers a sibling's dot, that sibling
//!    must be gone. (Check 1 is the special case `W` = a sibling's write; it
//!    is reported on its own because it names the pair.)
//!
//! Limits: only acknowledged writes link a dot to an op and its context, so
//! a write whose acknowledgement never came (pending, unavailable, failed)
//! is never the `W` of either check: a bug that only such writes show goes
//! unseen. A DELETE without context used a context the history does not
//! record; it counts as having covered nothing. Both limits can hide a
//! violation, neither can invent one.
//!
//! Cost: per read, `O(|V| a)` (`a` actors of the key) plus `O(|S|^2)` for
//! check 1; siblings per key are bounded by the node's `siblings_max`.

use super::{
    Bound, Checker, Ctx, DotFmt, Violation, VvFmt, WriteClass, WriteIndex, classify, input_context,
    ops_by_key,
};
use crate::history::{History, Op, Outcome};

/// Checks invariant 2 (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Siblings;

/// The name in violations.
const NAME: &str = "siblings";

impl Checker for Siblings {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, h: &History) -> Vec<Violation> {
        let mut out = Vec::new();
        for (key, ops) in ops_by_key(h) {
            if out.len() >= super::VIOLATIONS_MAX {
                break;
            }
            check_key(h, key, &ops, &mut out);
        }
        out.sort_by_key(|v| v.op);
        out
    }
}

/// `op id` for a write known to the index, else a phrase saying it is not.
fn writer(h: &History, i: Option<usize>) -> String {
    match i {
        Some(i) => format!("op {}", h.ops[i].id),
        None => "a write whose acknowledgement was not seen".into(),
    }
}

/// The context a write was made with, when the history records it.
fn recorded_context(op: &Op) -> Option<&ringkv_core::VersionVector> {
    match input_context(op, Bound::Lower) {
        Ctx::Vv(c) => Some(c),
        Ctx::Nothing | Ctx::Everything => None,
    }
}

fn check_key(h: &History, key: &str, ops: &[usize], out: &mut Vec<Violation>) {
    let index = WriteIndex::build(h, ops, Bound::Lower);
    for &ri in ops {
        if out.len() >= super::VIOLATIONS_MAX {
            return;
        }
        let read = &h.ops[ri];
        if classify(read) != WriteClass::NotWrite {
            continue;
        }
        let Outcome::Read { object } = &read.outcome else {
            continue;
        };
        let sibs = &object.siblings;
        let mut reported = vec![false; sibs.len()];

        // 1. Pairs of siblings where one's write had the other in its context.
        for s1 in sibs {
            let w1 = index.writer_of(&s1.dot);
            let Some(ctx) = w1.and_then(|i| recorded_context(&h.ops[i])) else {
                continue;
            };
            for (y, s2) in sibs.iter().enumerate() {
                if s2.dot == s1.dot || !ctx.covers(&s2.dot) {
                    continue;
                }
                reported[y] = true;
                out.push(Violation {
                    checker: NAME,
                    op: read.id,
                    message: format!(
                        "key {key:?}: read op {} returned siblings {} ({}) and {} ({}) as \
                         concurrent, but the first was written with context {} that covers \
                         the second: they are causally ordered and only the first may survive",
                        read.id,
                        DotFmt(&s1.dot),
                        writer(h, w1),
                        DotFmt(&s2.dot),
                        writer(h, index.writer_of(&s2.dot)),
                        VvFmt(ctx),
                    ),
                });
            }
        }

        // 2. Siblings superseded by a write the read has seen.
        let superseded = index.superseded_within(&object.vv);
        for (y, s) in sibs.iter().enumerate() {
            if reported[y] {
                continue;
            }
            let Some(cover) = index
                .actor(&s.dot.actor)
                .and_then(|a| superseded[a])
                .filter(|c| c.counter >= s.dot.counter)
            else {
                continue;
            };
            let w = &h.ops[cover.op];
            let (w_dot, w_ctx) = match (classify(w), recorded_context(w)) {
                (WriteClass::Known { dot, .. }, Some(ctx)) => (DotFmt(dot).to_string(), ctx),
                // The index only covers known writes with recorded contexts.
                _ => continue,
            };
            out.push(Violation {
                checker: NAME,
                op: read.id,
                message: format!(
                    "key {key:?}: sibling {} ({}) survives in read op {} although write op {} \
                     (dot {w_dot}), seen by this read (its context {} covers it), superseded \
                     it: op {} was made with context {} that covers {}",
                    DotFmt(&s.dot),
                    writer(h, index.writer_of(&s.dot)),
                    read.id,
                    w.id,
                    VvFmt(&object.vv),
                    w.id,
                    VvFmt(w_ctx),
                    DotFmt(&s.dot),
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::*;
    use crate::history::OpKind;
    use ringkv_core::{Object, VersionVector};

    fn check(h: &History) -> Vec<Violation> {
        Siblings.check(h)
    }

    /// Two blind writes are truly concurrent: both may be siblings; a
    /// read-modify-write then resolves them.
    #[test]
    fn concurrent_siblings_pass() {
        let mut b = Builder::new(3);
        let none = VersionVector::new();
        let a = write(&Object::empty(), &none, &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let ab = write(&a, &none, &dot(2, 1), "b");
        b.put("k", None, &dot(2, 1), 2, (1, 6), &ab);
        b.get("k", 2, (7, 9), &ab);
        assert_eq!(ab.siblings.len(), 2);
        // A write with the context of a read that saw only `a` leaves `b`.
        let ab2 = write(&ab, &a.vv, &dot(1, 2), "a2");
        b.put("k", Some(&a.vv), &dot(1, 2), 2, (10, 12), &ab2);
        b.get("k", 2, (13, 14), &ab2);
        assert_eq!(ab2.siblings.len(), 2);
        let c = write(&ab2, &ab2.vv, &dot(3, 1), "c");
        b.put("k", Some(&ab2.vv), &dot(3, 1), 2, (15, 18), &c);
        b.get("k", 2, (19, 20), &c);
        assert_eq!(check(&b.h), vec![]);
    }

    /// A write with a read's context that left the read's value in place
    /// (the coordinator ignored the context) is caught, once.
    #[test]
    fn superseded_sibling_still_present_fails() {
        let mut b = Builder::new(3);
        let none = VersionVector::new();
        let a = write(&Object::empty(), &none, &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        b.get("k", 2, (6, 7), &a);
        // The client writes with `a`'s context; the buggy coordinator
        // applies it without (so `a` stays as a sibling).
        let wrong = write(&a, &none, &dot(2, 1), "b");
        b.put("k", Some(&a.vv), &dot(2, 1), 2, (8, 10), &wrong);
        let r = b.get("k", 2, (11, 12), &wrong);
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "reported once: {v:?}");
        assert_eq!((v[0].op, v[0].checker), (r, "siblings"));
        // The pair check names it (the superseding write is the other sibling).
        assert!(
            v[0].message.contains("n2#1:1 (op 2) and n1#1:1 (op 0)"),
            "{}",
            v[0]
        );
    }

    /// The superseding write need not be a sibling: here the write that
    /// superseded `c` (and so `a`) was never acknowledged, so only the
    /// acknowledged `c`, seen by the read, links `a` to a superseding write.
    #[test]
    fn sibling_superseded_by_a_non_sibling_write_fails() {
        let mut b = Builder::new(3);
        let none = VersionVector::new();
        let a = write(&Object::empty(), &none, &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let c = write(&a, &a.vv, &dot(2, 1), "c");
        let w = b.put("k", Some(&a.vv), &dot(2, 1), 2, (6, 8), &c);
        // Supersedes `c`; its ack is lost, so its dot is unknown.
        b.put_unacked("k", Some(&c.vv), 2, (9, 1009));
        let x = write(&c, &c.vv, &dot(3, 1), "x");
        // A read that returns `x`, but `a` is back next to it.
        let mut wrong = x.clone();
        wrong.siblings.push(a.siblings[0].clone());
        wrong.siblings.sort_by(|p, q| p.dot.cmp(&q.dot));
        let r = b.get("k", 2, (11, 12), &wrong);
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].op, r);
        let expected =
            format!("sibling n1#1:1 (op 0) survives in read op {r} although write op {w}");
        assert!(v[0].message.contains(&expected), "{}", v[0]);
    }

    /// Two siblings where one's write had the other in its context.
    #[test]
    fn causally_ordered_siblings_fail() {
        let mut b = Builder::new(3);
        let none = VersionVector::new();
        let a = write(&Object::empty(), &none, &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let ab = write(&a, &a.vv, &dot(2, 1), "b");
        b.put("k", Some(&a.vv), &dot(2, 1), 2, (6, 8), &ab);
        // Both returned, with a vv that does not even cover n2:1 (so only
        // the pair check can see it).
        let mut wrong = ab.clone();
        wrong.siblings.push(a.siblings[0].clone());
        wrong.siblings.sort_by(|x, y| x.dot.cmp(&y.dot));
        wrong.vv = a.vv.clone();
        let r = b.get("k", 2, (9, 10), &wrong);
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].op, r);
        assert!(v[0].message.contains("causally ordered"), "{}", v[0]);
    }

    /// A write whose ack never came has no known dot: it is not blamed.
    #[test]
    fn writes_without_known_dots_are_skipped() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        b.put_unacked("k", Some(&a.vv), 2, (6, 1006));
        let wrong = write(&a, &VersionVector::new(), &dot(2, 1), "b");
        b.get("k", 2, (11, 12), &wrong);
        assert_eq!(check(&b.h), vec![]);
    }

    /// A DELETE without context is never blamed (its context is unknown);
    /// one with a context is.
    #[test]
    fn deletes_with_context_are_checked() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let t = a.update(
            &VersionVector::new(),
            dot(2, 1),
            ringkv_core::Value::Tombstone,
            0,
        );
        let outcome = Outcome::Written {
            context: t.vv.clone(),
            dot: Some(dot(2, 1)),
        };
        let i = b.raw("k", OpKind::Delete { context: None }, 2, (6, 8), outcome);
        b.get("k", 2, (9, 10), &t);
        assert_eq!(check(&b.h), vec![]);
        b.h.ops[i as usize].kind = OpKind::Delete {
            context: Some(a.vv.clone()),
        };
        assert_eq!(check(&b.h).len(), 1);
    }
}
