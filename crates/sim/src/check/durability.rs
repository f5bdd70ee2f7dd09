//! Invariant 1: no acknowledged write is lost.
//!
//! Two checks, per key:
//!
//! 1. **Lost writes.** For every write or delete acknowledged with dot `d` at
//!    `t_ack` with quorum `w`, every successful read invoked after `t_ack`
//!    (strictly: simulated ms cannot order events within one ms) whose
//!    quorum `r` has `r + w > n` must return a context (vv) that covers `d`:
//!    it returned `d` or something that causally supersedes it. Reads with
//!    `r + w <= n` are not checked: eventual consistency allows them to be
//!    stale (the observations measure how stale). Neither are writes acked
//!    by, or reads answered by, fallbacks standing in for unreachable
//!    primaries: a sloppy quorum does not promise overlap (Dynamo's trade).
//! 2. **Vanished dots.** A context can cover `d` and still lose it, if the
//!    value was dropped without a write superseding it. So for every
//!    successful read (any `r`, any time) and every acknowledged dot `d` its
//!    vv covers but its siblings lack, some write the read has seen must have
//!    had `d` in its input context. Writes whose acknowledgement never came
//!    may have been applied under an unknown dot: one invoked before the read
//!    completed, whose context covers `d`, excuses `d` (and an unacknowledged
//!    DELETE without context excuses everything on its key from then on).
//!
//! The history does not say which replicas acknowledged a write, so the
//! checker cannot tell a bug from a loss the design allows (with
//! `sync = periodic`, a power cut may lose the last sync interval): run it
//! over scenarios where acknowledged writes must survive.
//!
//! A lost write shows once per later read that misses it; a read missing
//! several writes of one actor shows once per actor, naming the oldest and
//! newest it misses.
//!
//! Cost: `O(ops log ops)` to sort per key, then per read `O(a log w)` for
//! check 1 (`a` actors of the key) and `O(|vv| a + |siblings|)` for check 2.

use std::collections::BTreeMap;

use ringkv_core::{Actor, Sibling, VersionVector};

use super::{
    Bound, Checker, Ctx, DotFmt, Violation, VvFmt, WriteClass, WriteIndex, at, classify,
    input_context, ops_by_key,
};
use crate::history::{History, OpKind, Outcome};

/// Checks invariant 1 (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Durability;

/// The name in violations.
const NAME: &str = "durability";

impl Checker for Durability {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, h: &History) -> Vec<Violation> {
        let mut out = Vec::new();
        for (key, ops) in ops_by_key(h) {
            if out.len() >= super::VIOLATIONS_MAX {
                break;
            }
            lost_writes(h, key, &ops, &mut out);
            vanished_dots(h, key, &ops, &mut out);
        }
        out.sort_by_key(|v| v.op);
        out
    }
}

/// One acknowledged write a read misses, for the message.
#[derive(Clone, Copy)]
struct Missed {
    counter: u64,
    op: usize,
}

/// Check 1: acknowledged writes that later quorum reads do not cover.
fn lost_writes(h: &History, key: &str, ops: &[usize], out: &mut Vec<Violation>) {
    let (writes, reads) = strict_writes_and_reads(h, ops);
    let mut acked = Acked::new();
    let mut next = 0;
    for &((invoke_ms, _), ri) in &reads {
        while let Some(&((t_ack, _), wi)) = writes.get(next)
            && t_ack < invoke_ms
        {
            acked.add(h, wi);
            next += 1;
        }
        let read = &h.ops[ri];
        let Outcome::Read { object } = &read.outcome else {
            continue;
        };
        if let Some(v) = resurrected(h, key, &writes[..next], read, object) {
            out.push(v);
            continue;
        }
        let by_ms = read.complete_ms.unwrap_or(u64::MAX);
        let purged = purged_writes(h, &writes[..next], ops, by_ms);
        let missed = if purged.is_empty() {
            acked.missed_by(h, read.quorum, &object.vv)
        } else {
            let mut kept = Acked::new();
            for &(_, wi) in writes[..next]
                .iter()
                .filter(|(_, i)| purged.binary_search(i).is_err())
            {
                kept.add(h, wi);
            }
            kept.missed_by(h, read.quorum, &object.vv)
        };
        for (_, (lo, hi)) in missed {
            let what = describe_missed(h, lo, hi);
            out.push(Violation {
                checker: NAME,
                op: read.id,
                message: format!(
                    "key {key:?}: read op {} (invoked at {invoke_ms} ms, r={}, n={}) returned \
                     context {} that does not cover {what}; with r + w > n it must return \
                     the write or a value that supersedes it: the write is lost",
                    read.id,
                    read.quorum,
                    h.n,
                    VvFmt(&object.vv),
                ),
            });
        }
    }
}

/// The writes among `acked` (the key's writes acknowledged so far) that a
/// purge may have removed before a read that completed at `by_ms`: every
/// delete (a tombstone is purged once every replica holds it and its grace
/// period is over) and every write a delete among `all` (the key's ops)
/// that may have been applied, started before `by_ms`, removed (see
/// [`deleted_later`]). A value written after the
/// purge starts the key afresh, so a read may cover only that.
fn purged_writes(h: &History, acked: &[Timed], all: &[usize], by_ms: u64) -> Vec<usize> {
    let mut out: Vec<usize> = acked
        .iter()
        .map(|&(_, i)| i)
        .filter(|&wi| deleted_later(h, all, wi, by_ms))
        .collect();
    // Sorted by index, for the binary searches of the caller.
    out.sort_unstable();
    out
}

/// A read, started after a delete among `acked` was acknowledged, that
/// returns a value that delete removed: the deleted value came back.
fn resurrected(
    h: &History,
    key: &str,
    acked: &[Timed],
    read: &crate::history::Op,
    object: &ringkv_core::Object,
) -> Option<Violation> {
    for &(_, di) in acked {
        let d = &h.ops[di];
        let OpKind::Delete { context } = &d.kind else {
            continue;
        };
        // Only a read whose quorum overlaps the delete's must see it.
        if !matches!(d.outcome, Outcome::Written { dot: Some(_), .. })
            || read.quorum + d.quorum <= h.n
        {
            continue;
        }
        for &(_, wi) in acked.iter().filter(|(_, i)| *i != di) {
            let Outcome::Written { dot: Some(dot), .. } = &h.ops[wi].outcome else {
                continue;
            };
            if removed_by(h, wi, context.as_ref()) && object.siblings.iter().any(|s| &s.dot == dot)
            {
                return Some(Violation {
                    checker: NAME,
                    op: read.id,
                    message: format!(
                        "key {key:?}: read op {} returned the value of write op {} (dot {}), \
                         which acknowledged delete op {} had removed: a deleted value came back",
                        read.id,
                        h.ops[wi].id,
                        DotFmt(dot),
                        d.id
                    ),
                });
            }
        }
    }
    None
}

/// Whether a delete with input `context` removed write `wi`: the
/// delete's context covers the write's dot, so the delete supersedes it
/// whenever it was applied. (A delete without a context deletes what its
/// own read found, which the history does not record: it removes nothing
/// provably.)
fn removed_by(h: &History, wi: usize, context: Option<&VersionVector>) -> bool {
    match (context, &h.ops[wi].outcome) {
        (Some(ctx), Outcome::Written { dot: Some(dot), .. }) => ctx.covers(dot),
        _ => false,
    }
}

/// Whether a delete among `ops` that may have been applied, started
/// before `by_ms`, removed write `wi` (see [`removed_by`]): its value may be gone for good,
/// the tombstone purged. A delete's own tombstone may be purged too.
fn deleted_later(h: &History, ops: &[usize], wi: usize, by_ms: u64) -> bool {
    if matches!(h.ops[wi].kind, OpKind::Delete { .. }) {
        return true;
    }
    ops.iter().any(|&di| {
        let d = &h.ops[di];
        if d.invoke_ms >= by_ms {
            return false;
        }
        // Any delete that may have been applied: acknowledged, or with
        // an outcome unknown to its client.
        let applied = matches!(
            d.outcome,
            Outcome::Written { dot: Some(_), .. }
                | Outcome::Unavailable { .. }
                | Outcome::Pending
                | Outcome::Unknown(_)
        );
        match &d.kind {
            OpKind::Delete { context } if applied => {
                di != wi && removed_by(h, wi, context.as_ref())
            }
            _ => false,
        }
    })
}

/// The acknowledged writes (by time of ack) and successful reads (by time
/// of invocation) among `ops` that check 1 judges, each sorted by
/// (time, id): only those no fallback took part in.
fn strict_writes_and_reads(h: &History, ops: &[usize]) -> (Vec<Timed>, Vec<Timed>) {
    let mut writes: Vec<Timed> = Vec::new();
    let mut reads: Vec<Timed> = Vec::new();
    for &i in ops {
        let op = &h.ops[i];
        // A sloppy quorum (acks or replies from fallbacks) does not promise
        // that a read overlaps a write: only strict pairs are checked here.
        // Check 2 covers every read.
        match classify(op) {
            WriteClass::Known {
                ack_ms: Some(t), ..
            } if op.fallbacks == 0 => writes.push((at(t, op), i)),
            WriteClass::NotWrite
                if op.fallbacks == 0 && matches!(op.outcome, Outcome::Read { .. }) =>
            {
                reads.push((at(op.invoke_ms, op), i))
            }
            _ => {}
        }
    }
    writes.sort_unstable();
    reads.sort_unstable();
    (writes, reads)
}

/// An op on a time line: ((time, id), index into `h.ops`).
type Timed = ((u64, u64), usize);

/// The acknowledged writes so far of one key: by write quorum, by actor,
/// counter -> index into `h.ops`.
struct Acked<'h>(BTreeMap<usize, BTreeMap<&'h Actor, BTreeMap<u64, usize>>>);

impl<'h> Acked<'h> {
    /// No write acknowledged yet.
    fn new() -> Self {
        Acked(BTreeMap::new())
    }

    /// Adds write `wi` (index into `h.ops`), if its dot is known.
    fn add(&mut self, h: &'h History, wi: usize) {
        if let WriteClass::Known { dot, .. } = classify(&h.ops[wi]) {
            self.0
                .entry(h.ops[wi].quorum)
                .or_default()
                .entry(&dot.actor)
                .or_default()
                .insert(dot.counter, wi);
        }
    }

    /// Per actor: the oldest and newest acknowledged write whose quorum
    /// overlaps a read at quorum `r` (`r + w > n`) and that context `vv`
    /// does not cover.
    fn missed_by(&self, h: &History, r: usize, vv: &VersionVector) -> MissedByActor<'h> {
        let mut missed = MissedByActor::new();
        for (&w, by_actor) in &self.0 {
            if r.saturating_add(w) <= h.n {
                continue;
            }
            for (&actor, line) in by_actor {
                let Some((lo, hi)) = missed_of_line(line, vv.get(actor)) else {
                    continue;
                };
                let e = missed.entry(actor).or_insert((lo, hi));
                if lo.counter < e.0.counter {
                    e.0 = lo;
                }
                if hi.counter > e.1.counter {
                    e.1 = hi;
                }
            }
        }
        missed
    }
}

/// Per actor: the oldest and newest acknowledged write a read misses.
type MissedByActor<'h> = BTreeMap<&'h Actor, (Missed, Missed)>;

/// The oldest and newest of one actor's acknowledged writes (`line`: counter
/// -> op) above counter `have`, the one a read's context covers; `None` if
/// it covers them all.
fn missed_of_line(line: &BTreeMap<u64, usize>, have: u64) -> Option<(Missed, Missed)> {
    let (&newest, &newest_op) = line.last_key_value()?;
    if newest <= have {
        return None;
    }
    let (&oldest, &oldest_op) = line.range(have + 1..).next()?;
    Some((
        Missed {
            counter: oldest,
            op: oldest_op,
        },
        Missed {
            counter: newest,
            op: newest_op,
        },
    ))
}

/// Names the missed writes from `lo` to `hi` (one write if they are the
/// same) for a violation's message.
fn describe_missed(h: &History, lo: Missed, hi: Missed) -> String {
    let describe = |m: Missed| {
        let w = &h.ops[m.op];
        let dot = match classify(w) {
            WriteClass::Known { dot, .. } => DotFmt(dot).to_string(),
            _ => "?".into(),
        };
        format!(
            "op {} (dot {dot}, acked at {} ms, w={})",
            w.id,
            w.complete_ms.unwrap_or_default(),
            w.quorum
        )
    };
    if lo.op == hi.op {
        format!("acknowledged write {}", describe(lo))
    } else {
        format!(
            "acknowledged writes from {} to {}",
            describe(lo),
            describe(hi)
        )
    }
}

/// Check 2: acknowledged dots a read's context covers but whose value is
/// gone although no write the read saw superseded it.
fn vanished_dots(h: &History, key: &str, ops: &[usize], out: &mut Vec<Violation>) {
    let index = WriteIndex::build(h, ops, Bound::Upper);
    let (unknown, reads) = unknown_writes_and_reads(h, ops);
    // The join of the contexts of unknown writes invoked so far.
    let mut unknown_join = VersionVector::new();
    let mut unknown_all = false;
    let mut next = 0;
    for &((complete_ms, _), ri) in &reads {
        while let Some(&((invoke_ms, _), wi)) = unknown.get(next)
            && invoke_ms <= complete_ms
        {
            match input_context(&h.ops[wi], Bound::Upper) {
                Ctx::Vv(c) => unknown_join.join(c),
                Ctx::Nothing => {}
                Ctx::Everything => unknown_all = true,
            }
            next += 1;
        }
        if unknown_all {
            // An unacknowledged DELETE without context may have removed
            // anything on this key: nothing vanished provably any more.
            break;
        }
        let read = &h.ops[ri];
        let Outcome::Read { object } = &read.outcome else {
            continue;
        };
        let superseded = index.superseded_within(&object.vv);
        for (actor, seen) in object.vv.iter() {
            let Some(ai) = index.actor(actor) else {
                continue;
            };
            let returned = sibling_counters(&object.siblings, actor);
            // The newest acknowledged write of this actor the read covers but
            // did not return; if it was superseded, so were all older ones.
            let Some((counter, wi)) = index
                .writes_up_to(ai, seen)
                .find(|(c, _)| returned.binary_search(c).is_err())
            else {
                continue;
            };
            let by_known = superseded[ai].is_some_and(|c| c.counter >= counter);
            if by_known
                || unknown_join.get(actor) >= counter
                || deleted_later(h, ops, wi, read.complete_ms.unwrap_or(u64::MAX))
            {
                continue;
            }
            let w = &h.ops[wi];
            let dot = match classify(w) {
                WriteClass::Known { dot, .. } => DotFmt(dot).to_string(),
                _ => "?".into(),
            };
            out.push(Violation {
                checker: NAME,
                op: read.id,
                message: format!(
                    "key {key:?}: dot {dot} of acknowledged write op {} vanished without a \
                     superseding write: read op {} (r={}) returned context {} that covers it \
                     but not among its {} sibling(s), and no write this read has seen (nor \
                     any unacknowledged one) had it in its context",
                    w.id,
                    read.id,
                    read.quorum,
                    VvFmt(&object.vv),
                    object.siblings.len(),
                ),
            });
        }
    }
}

/// The writes among `ops` that may have been applied under unknown dots (by
/// time of invocation) and the successful reads (by time of completion, a
/// pending one last), each sorted by (time, id): what check 2 walks.
fn unknown_writes_and_reads(h: &History, ops: &[usize]) -> (Vec<Timed>, Vec<Timed>) {
    let mut unknown: Vec<Timed> = Vec::new();
    let mut reads: Vec<Timed> = Vec::new();
    for &i in ops {
        let op = &h.ops[i];
        match classify(op) {
            WriteClass::Unknown => unknown.push((at(op.invoke_ms, op), i)),
            WriteClass::NotWrite if matches!(op.outcome, Outcome::Read { .. }) => {
                reads.push((at(op.complete_ms.unwrap_or(u64::MAX), op), i))
            }
            _ => {}
        }
    }
    unknown.sort_unstable();
    reads.sort_unstable();
    (unknown, reads)
}

/// The counters of `actor`'s dots among `siblings` (sorted by dot, as an
/// object keeps them), ascending: the values of that actor a read returned.
fn sibling_counters(siblings: &[Sibling], actor: &Actor) -> Vec<u64> {
    let from = siblings.partition_point(|s| s.dot.actor < *actor);
    let to = siblings.partition_point(|s| s.dot.actor <= *actor);
    siblings[from.min(to)..to]
        .iter()
        .map(|s| s.dot.counter)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::*;
    use crate::history::OpKind;
    use ringkv_core::Object;

    fn check(h: &History) -> Vec<Violation> {
        Durability.check(h)
    }

    /// Two clients write, a read-modify-write supersedes both, reads see it.
    #[test]
    fn clean_history_passes() {
        let mut b = Builder::new(3);
        let none = VersionVector::new();
        let a = write(&Object::empty(), &none, &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let ab = write(&a, &none, &dot(2, 1), "b"); // blind: concurrent
        b.put("k", None, &dot(2, 1), 2, (6, 10), &ab);
        b.get("k", 2, (11, 14), &ab);
        let c = write(&ab, &ab.vv, &dot(1, 2), "c"); // supersedes both
        b.put("k", Some(&ab.vv), &dot(1, 2), 2, (15, 20), &c);
        b.get("k", 2, (21, 25), &c);
        b.get("other", 2, (21, 25), &Object::empty());
        assert_eq!(check(&b.h), vec![]);
    }

    /// A quorum read after the ack whose vv misses the dot: the write is lost.
    #[test]
    fn read_after_ack_missing_the_dot_is_a_lost_write() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        let w = b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let r = b.get("k", 2, (6, 9), &Object::empty());
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].op, r);
        assert_eq!(v[0].checker, "durability");
        assert!(
            v[0].message.contains(&format!("op {w} (dot n1#1:1")),
            "{}",
            v[0]
        );
        assert!(v[0].message.contains("lost"), "{}", v[0]);
    }

    /// A read invoked before (or in the same ms as) the ack may miss it.
    #[test]
    fn reads_not_after_the_ack_are_not_checked() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        b.get("k", 2, (3, 9), &Object::empty());
        b.get("k", 2, (5, 9), &Object::empty());
        assert_eq!(check(&b.h), vec![]);
    }

    /// r + w <= n: stale reads are allowed; r + w > n via a larger write
    /// quorum is checked.
    #[test]
    fn only_overlapping_quorums_are_checked() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        b.get("k", 1, (6, 9), &Object::empty()); // 1 + 2 = 3 <= 3
        assert_eq!(check(&b.h), vec![]);
        let ab = write(&a, &VersionVector::new(), &dot(2, 1), "b");
        b.put("k", None, &dot(2, 1), 3, (10, 15), &ab); // w = 3
        let r = b.get("k", 1, (16, 19), &a); // 1 + 3 > 3, misses n2:1
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].op, r);
        assert!(v[0].message.contains("n2#1:1"), "{}", v[0]);
    }

    /// A read that misses several writes of one actor reports them once.
    #[test]
    fn several_missed_writes_of_one_actor_are_one_violation() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let a2 = write(&a, &a.vv, &dot(1, 2), "a2");
        b.put("k", Some(&a.vv), &dot(1, 2), 2, (6, 8), &a2);
        let a3 = write(&a2, &a2.vv, &dot(1, 3), "a3");
        b.put("k", Some(&a2.vv), &dot(1, 3), 2, (9, 10), &a3);
        b.get("k", 2, (11, 12), &a);
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("from op 1 (dot n1#1:2"), "{}", v[0]);
        assert!(v[0].message.contains("to op 2 (dot n1#1:3"), "{}", v[0]);
    }

    /// The vv claims the write but its value is gone, and nothing superseded
    /// it: a lying context must not hide a loss.
    #[test]
    fn vanished_dot_is_reported() {
        let mut b = Builder::new(3);
        let none = VersionVector::new();
        let a = write(&Object::empty(), &none, &dot(1, 1), "a");
        let w = b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let ab = write(&a, &none, &dot(2, 1), "b");
        b.put("k", None, &dot(2, 1), 2, (6, 10), &ab);
        // The read covers both dots but only n2:1 is there, and n2:1 was blind.
        let mut lying = ab.clone();
        lying.siblings.retain(|s| s.dot == dot(2, 1));
        let r = b.get("k", 1, (11, 12), &lying);
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].op, r);
        assert!(
            v[0].message
                .contains(&format!("dot n1#1:1 of acknowledged write op {w}"))
        );
        assert!(v[0].message.contains("vanished"));
    }

    /// A value superseded by a write the read saw is allowed to be gone.
    #[test]
    fn superseded_dot_may_be_gone() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let c = write(&a, &a.vv, &dot(2, 1), "c");
        b.put("k", Some(&a.vv), &dot(2, 1), 2, (6, 10), &c);
        b.get("k", 1, (11, 12), &c);
        assert_eq!(check(&b.h), vec![]);
    }

    /// An unacknowledged write with the right context may have superseded
    /// the value under a dot nobody saw: no alarm.
    #[test]
    fn unacknowledged_write_may_explain_a_gone_value() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        b.put_unacked("k", Some(&a.vv), 2, (6, 1006));
        let c = write(&a, &a.vv, &dot(2, 1), "c"); // what it did, unseen
        b.get("k", 2, (20, 22), &c);
        assert_eq!(check(&b.h), vec![]);
        // Without it, the same read is a vanished dot.
        b.h.ops.remove(1);
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("vanished"));
    }

    /// An unacknowledged DELETE without context may have deleted anything.
    #[test]
    fn unacknowledged_contextless_delete_excuses_gone_values() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let unavailable = Outcome::Unavailable {
            required: 2,
            acks: 1,
        };
        b.raw(
            "k",
            OpKind::Delete { context: None },
            2,
            (6, 1006),
            unavailable,
        );
        let mut gone = a.clone();
        gone.siblings.clear();
        b.get("k", 1, (20, 22), &gone);
        assert_eq!(check(&b.h), vec![]);
    }

    /// Deletes are writes too: a quorum read must cover the tombstone.
    #[test]
    fn acknowledged_delete_must_not_be_lost() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let t = a.update(&a.vv, dot(1, 2), ringkv_core::Value::Tombstone, 0);
        let outcome = Outcome::Written {
            context: t.vv.clone(),
            dot: Some(dot(1, 2)),
        };
        let kind = OpKind::Delete {
            context: Some(a.vv.clone()),
        };
        b.raw("k", kind, 2, (6, 10), outcome);
        b.get("k", 2, (11, 12), &t);
        assert_eq!(check(&b.h), vec![]);
        let r = b.get("k", 2, (13, 14), &a); // the value is back
        let v = check(&b.h);
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].op, r);
    }

    /// A key whose acknowledged delete removed every earlier write may be
    /// purged: a later read finding it empty lost nothing. A write
    /// acknowledged after the delete started is not excused.
    #[test]
    fn a_purged_key_may_read_empty_but_only_after_a_covering_delete() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let t = a.update(&a.vv, dot(1, 2), ringkv_core::Value::Tombstone, 0);
        let outcome = Outcome::Written {
            context: t.vv.clone(),
            dot: Some(dot(1, 2)),
        };
        let kind = OpKind::Delete {
            context: Some(a.vv.clone()),
        };
        b.raw("k", kind.clone(), 2, (6, 10), outcome.clone());
        b.get("k", 2, (100, 102), &Object::empty());
        assert_eq!(check(&b.h), vec![]);

        // A write the delete did not cover (acked while it ran): its loss
        // is a lost write.
        let mut b = Builder::new(3);
        b.put("k", None, &dot(1, 1), 2, (0, 5), &a);
        let c = write(&Object::empty(), &VersionVector::new(), &dot(2, 1), "c");
        b.put("k", None, &dot(2, 1), 2, (6, 8), &c);
        b.raw("k", kind, 2, (7, 10), outcome);
        let r = b.get("k", 2, (100, 102), &Object::empty());
        let v = check(&b.h);
        assert!(v.iter().any(|v| v.op == r), "{v:?}");
    }

    /// Malformed histories (pending ops, missing times, odd quorums) do not
    /// panic.
    #[test]
    fn odd_histories_do_not_panic() {
        let mut b = Builder::new(0);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), usize::MAX, (0, 5), &a);
        b.put("k", None, &dot(1, 1), 0, (0, 5), &a); // the same dot twice
        b.raw("k", OpKind::Get, 2, (1, 2), Outcome::Pending);
        let r = b.get("k", usize::MAX, (6, 9), &Object::empty());
        b.h.ops[r as usize].complete_ms = None;
        b.h.ops[0].complete_ms = None;
        b.raw("k", OpKind::Get, 2, (1, 2), Outcome::Error("x".into()));
        let _ = check(&b.h);
    }
}
