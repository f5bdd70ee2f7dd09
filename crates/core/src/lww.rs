//! Last-write-wins resolution for buckets with `conflict = "lww"`.
//!
//! An object in such a bucket keeps one value: the sibling with the highest
//! `(timestamp, dot)`. Timestamps are [`Hlc`](crate::hlc::Hlc) stamps packed
//! in [`Sibling::timestamp_ms`]; the dot breaks ties, so every replica picks
//! the same winner. The version vector is kept whole, so it still covers the
//! dropped siblings and no later merge brings them back.
//!
//! # What last-write-wins loses
//! Every write other than the winner is discarded silently: the client that
//! made it got an acknowledgement, yet nobody will ever read its value. The
//! stamps come from the coordinators' hybrid logical clocks, so a write whose
//! coordinator had seen an earlier write (stored it, or observed its stamp in
//! a message) gets a larger stamp and wins over it, whatever the wall clocks
//! say. What is lost is a write the later coordinator had *not* seen: a truly
//! concurrent write, or one whose only causal link is the client's own read at
//! another node. Among those, clock skew decides the winner. One exception to
//! "seen means later": a stamp observed from a clock more than the allowed
//! drift ahead is clamped (see [`hlc`](crate::hlc)), so until the local wall
//! clock catches up, writes after it lose to it.
//!
//! # How a node must use it
//! In an lww bucket, apply every write with an **empty** context
//! (`obj.update(&VersionVector::new(), dot, value, stamp)`), and store
//! `resolve_lww` of the result and of every merge. Then each replica's single
//! sibling is the highest `(timestamp, dot)` among all writes its version
//! vector covers, replicas converge to the global winner, and no merge can end
//! with no sibling at all. Honouring a client's context instead would let a
//! write drop a sibling with a *larger* stamp; two replicas can then each keep
//! a value the other has dropped, and their merge keeps neither, so the key
//! reads as deleted (the test `honouring_a_context_can_lose_every_value` shows
//! it). The client's context still matters for choosing the next dot.

use crate::version::{Object, Sibling};

/// The sibling last-write-wins keeps: the highest `(timestamp_ms, dot)`, or
/// `None` when there is no sibling.
pub fn lww_winner(obj: &Object) -> Option<&Sibling> {
    obj.siblings
        .iter()
        .max_by(|a, b| (a.timestamp_ms, &a.dot).cmp(&(b.timestamp_ms, &b.dot)))
}

/// Resolves `obj` by last-write-wins: keeps exactly the sibling with the
/// highest `(timestamp_ms, dot)` and the whole version vector, so the result
/// still covers every dropped sibling (see the [module docs](self) for what
/// this loses and how a node must apply writes for it to be safe).
pub fn resolve_lww(obj: &Object) -> Object {
    Object {
        vv: obj.vv.clone(),
        siblings: lww_winner(obj).cloned().into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::NodeId;
    use crate::version::{Actor, Dot, Value, VersionVector};
    use bytes::Bytes;
    use proptest::prelude::*;

    fn actor(i: usize) -> Actor {
        Actor {
            node: NodeId::from(format!("n{i}")),
            incarnation: 7,
        }
    }

    fn data(s: &str) -> Value {
        Value::Data(Bytes::from(s.to_string()))
    }

    /// Writes without context at replica `r` with stamp `ts`.
    fn blind(o: &Object, r: usize, v: Value, ts: u64) -> Object {
        let ctx = VersionVector::new();
        let dot = o.next_dot(&actor(r), &ctx);
        o.update(&ctx, dot, v, ts)
    }

    #[test]
    fn keeps_the_highest_stamp_and_the_whole_vector() {
        let o = blind(&Object::empty(), 0, data("a"), 5);
        let o = blind(&o, 1, data("b"), 9);
        let o = blind(&o, 2, data("c"), 7);
        let r = resolve_lww(&o);
        assert_eq!(r.siblings.len(), 1);
        assert_eq!(r.siblings[0].value, data("b"));
        assert_eq!(r.vv, o.vv);
        // A dropped sibling does not come back from a replica that still has it.
        assert_eq!(resolve_lww(&r.merge(&o)), r);
        assert_eq!(r.merge(&o), r);
    }

    #[test]
    fn equal_stamps_are_decided_by_the_dot() {
        let o = blind(&Object::empty(), 0, data("a"), 5);
        let o = blind(&o, 1, data("b"), 5);
        assert_eq!(resolve_lww(&o).siblings[0].dot.actor, actor(1));
    }

    #[test]
    fn empty_stays_empty() {
        assert_eq!(resolve_lww(&Object::empty()), Object::empty());
        assert!(lww_winner(&Object::empty()).is_none());
    }

    #[test]
    fn a_winning_tombstone_deletes() {
        let o = blind(&Object::empty(), 0, data("a"), 5);
        let o = blind(&o, 1, Value::Tombstone, 6);
        let r = resolve_lww(&o);
        assert!(r.is_deleted());
        assert!(!resolve_lww(&blind(&o, 2, data("c"), 7)).is_deleted());
    }

    /// Why lww writes use an empty context: with a context, a write can drop
    /// a sibling stamped later than itself (its coordinator never saw that
    /// stamp), and two replicas end up each holding what the other dropped.
    #[test]
    fn honouring_a_context_can_lose_every_value() {
        // y is written at replica 2 with a clock far ahead.
        let y_rep = resolve_lww(&blind(&Object::empty(), 2, data("y"), 9));
        // A client reads y at replica 3 and writes z with that context at
        // replica 1, whose clock is behind: z is stamped 2.
        let ctx = y_rep.vv.clone();
        let z_dot = Object::empty().next_dot(&actor(1), &ctx);
        let b = Object::empty().update(&ctx, z_dot, data("z"), 2);
        // Replica 1 gets x (stamp 5) and keeps it over z.
        let x_rep = blind(&Object::empty(), 0, data("x"), 5);
        let b = resolve_lww(&b.merge(&x_rep));
        assert_eq!(b.siblings[0].value, data("x"));
        // Replica 2 gets x too and keeps y.
        let a = resolve_lww(&y_rep.merge(&x_rep));
        assert_eq!(a.siblings[0].value, data("y"));
        // Each covers the other's winner: the merge keeps nothing.
        let m = resolve_lww(&a.merge(&b));
        assert!(m.siblings.is_empty(), "{m:?}");
        assert!(m.is_deleted());

        // The same history with empty contexts keeps the highest stamp, y.
        let b = blind(&Object::empty(), 1, data("z"), 2);
        let b = resolve_lww(&b.merge(&x_rep));
        let m = resolve_lww(&a.merge(&b));
        assert_eq!(m.siblings.len(), 1);
        assert_eq!(m.siblings[0].value, data("y"));
    }

    /// One step of a random history over 3 replicas of one key.
    #[derive(Clone, Debug)]
    enum Step {
        /// Replica `r` coordinates a write stamped `ts`; the context is what
        /// replica `ctx_from` held, or none.
        Write {
            r: usize,
            ctx_from: Option<usize>,
            delete: bool,
            ts: u64,
        },
        /// Replica `to` merges in the state of replica `from`.
        Sync { from: usize, to: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (
                0..3usize,
                proptest::option::of(0..3usize),
                any::<bool>(),
                0u64..8
            )
                .prop_map(|(r, ctx_from, delete, ts)| Step::Write {
                    r,
                    ctx_from,
                    delete,
                    ts
                }),
            (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Sync { from, to }),
        ]
    }

    /// Runs a history. With `lww`, writes use an empty context and every
    /// stored state is resolved, as a node does in an lww bucket; otherwise
    /// contexts are honoured and siblings kept. Returns the replicas' final
    /// states, every state seen, and every write made.
    fn run(steps: &[Step], lww: bool) -> (Vec<Object>, Vec<Object>, Vec<Sibling>) {
        let mut reps = vec![Object::empty(); 3];
        let mut seen = vec![];
        let mut writes = vec![];
        for (i, st) in steps.iter().enumerate() {
            match st {
                Step::Write {
                    r,
                    ctx_from,
                    delete,
                    ts,
                } => {
                    let read = ctx_from.map(|c| reps[c].vv.clone()).unwrap_or_default();
                    let dot = reps[*r].next_dot(&actor(*r), &read);
                    let ctx = if lww { VersionVector::new() } else { read };
                    let v = if *delete {
                        Value::Tombstone
                    } else {
                        data(&format!("v{i}"))
                    };
                    writes.push(Sibling {
                        dot: dot.clone(),
                        value: v.clone(),
                        timestamp_ms: *ts,
                    });
                    reps[*r] = reps[*r].update(&ctx, dot, v, *ts);
                }
                Step::Sync { from, to } => {
                    reps[*to] = reps[*to].merge(&reps[*from]);
                }
            }
            if lww {
                for o in reps.iter_mut() {
                    *o = resolve_lww(o);
                }
            }
            seen.extend(reps.iter().cloned());
        }
        (reps, seen, writes)
    }

    fn key(s: &Sibling) -> (u64, &Dot) {
        (s.timestamp_ms, &s.dot)
    }

    proptest! {
        #[test]
        fn resolving_a_merge_does_not_depend_on_merge_order(steps in proptest::collection::vec(step(), 0..40), i in 0usize..1000, j in 0usize..1000, k in 0usize..1000) {
            let (_, seen, _) = run(&steps, false);
            prop_assume!(!seen.is_empty());
            let a = &seen[i % seen.len()];
            let b = &seen[j % seen.len()];
            let c = &seen[k % seen.len()];
            let want = resolve_lww(&a.merge(b).merge(c));
            for got in [a.merge(&c.merge(b)), b.merge(a).merge(c), c.merge(b).merge(a), b.merge(&c.merge(a))] {
                prop_assert_eq!(resolve_lww(&got), want.clone());
            }
            // Resolving the inputs first gives the same as a fold of resolved merges.
            prop_assert_eq!(resolve_lww(&a.merge(b)), resolve_lww(&b.merge(a)));
        }

        #[test]
        fn resolution_is_idempotent_keeps_the_vector_and_picks_the_highest(steps in proptest::collection::vec(step(), 0..40), i in 0usize..1000) {
            let (_, seen, _) = run(&steps, false);
            prop_assume!(!seen.is_empty());
            let o = &seen[i % seen.len()];
            let r = resolve_lww(o);
            prop_assert_eq!(resolve_lww(&r), r.clone());
            prop_assert_eq!(&r.vv, &o.vv);
            for s in &o.siblings {
                prop_assert!(r.vv.covers(&s.dot));
            }
            prop_assert_eq!(r.siblings.len(), o.siblings.len().min(1));
            if let Some(w) = r.siblings.first() {
                prop_assert!(o.siblings.contains(w));
                prop_assert!(o.siblings.iter().all(|s| key(s) <= key(w)));
                prop_assert_eq!(r.is_deleted(), w.value.is_tombstone());
            }
            // Merging the dropped siblings back changes nothing.
            prop_assert_eq!(resolve_lww(&r.merge(o)), r);
        }

        /// A node's lww discipline (empty contexts, resolve everything stored)
        /// under arbitrary stamps, even ones that contradict causality.
        #[test]
        fn lww_replicas_hold_the_highest_write_they_cover_and_converge(steps in proptest::collection::vec(step(), 0..60)) {
            let (reps, seen, writes) = run(&steps, true);
            for o in &seen {
                let covered: Vec<&Sibling> = writes.iter().filter(|w| o.vv.covers(&w.dot)).collect();
                match covered.iter().max_by(|a, b| key(a).cmp(&key(b))) {
                    None => prop_assert!(o.siblings.is_empty()),
                    Some(best) => prop_assert_eq!(&o.siblings, &vec![(*best).clone()]),
                }
            }
            let all = reps[0].merge(&reps[1]).merge(&reps[2]);
            let all = resolve_lww(&all);
            for o in &reps {
                let synced = resolve_lww(&o.merge(&reps[0]).merge(&reps[1]).merge(&reps[2]));
                prop_assert_eq!(&synced, &all);
            }
            if let Some(best) = writes.iter().max_by(|a, b| key(a).cmp(&key(b))) {
                prop_assert_eq!(&all.siblings, &vec![best.clone()]);
            }
        }
    }
}
