//! History checkers: one module per invariant (README.md, "What it guarantees"), each a pure
//! function over a [`History`] that returns the violations it found.
//!
//! # Layout
//! - [`durability`]: invariant 1, no acknowledged write is lost.
//! - [`siblings`]: invariant 2, siblings only for truly concurrent writes, and
//!   a write with a read's context supersedes everything that read returned.
//! - [`linearizable`]: strong buckets, a linearizability checker over its own
//!   input types; [`strong`] is its [`Checker`] over the history's strong ops.
//!
//! The eventual checkers see only the eventual bucket's ops
//! (`ops_by_key` leaves out [`Op::strong`] ones); [`strong`] only the
//! strong bucket's.
//!
//! Adding an invariant (convergence, linearizability) is adding a module with
//! a type that implements [`Checker`] and listing it in [`all_checkers`].
//!
//! # What a history can tell, and what it cannot
//! A write's dot is known only when its acknowledgement arrived
//! ([`Outcome::Written`] with a dot). A write that timed out, failed or is
//! still pending may have been applied on some replicas, under a dot nobody
//! saw. Checkers never blame such writes, and where one of them could explain
//! what a read returned (it may have superseded a value), they assume it did.
//! So a checker may miss a bug that hides behind an unacknowledged write, but
//! it never reports a correct history.
//!
//! A DELETE without a context makes the coordinator read the key first and
//! delete with that read's context, which the history does not record: the
//! checkers take the empty context where blaming needs a lower bound and the
//! context the delete answered with where excusing needs an upper bound.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use ringkv_core::{Actor, Dot, VersionVector};
use serde::Serialize;

use crate::history::{History, Op, OpKind, Outcome};

pub mod convergence;
pub mod durability;
pub mod linearizable;
pub mod manager;
pub mod siblings;
pub mod strong;

/// One invariant, checked over a whole history.
///
/// Implementations are pure: the same history gives the same violations, in
/// the same order. `Send + Sync` so sweeps can check histories in parallel.
pub trait Checker: Send + Sync {
    /// A short stable name, used in [`Violation::checker`] and in reports.
    fn name(&self) -> &'static str;
    /// Every violation of the invariant the history shows (empty: none).
    fn check(&self, h: &History) -> Vec<Violation>;
    /// [`Checker::check`], and what the checker could not decide (a search
    /// out of budget): neither a pass nor a violation, reported apart.
    fn report(&self, h: &History) -> Report {
        Report {
            violations: self.check(h),
            inconclusive: vec![],
        }
    }
}

/// What the checkers found in one history.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Violations, grouped by checker in the order of [`all_checkers`].
    pub violations: Vec<Violation>,
    /// What a checker could not decide, as `[checker] what`: the history
    /// neither passed nor failed there.
    pub inconclusive: Vec<String>,
}

/// One place where a history breaks an invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The [`Checker::name`] that found it.
    pub checker: &'static str,
    /// Id of the operation that shows it (for reads: the read).
    pub op: u64,
    /// What was expected and what was seen, with op ids, keys and dots.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] op {}: {}", self.checker, self.op, self.message)
    }
}

/// Every checker this crate has, in a fixed order.
pub fn all_checkers() -> Vec<Box<dyn Checker>> {
    vec![
        Box::new(durability::Durability),
        Box::new(siblings::Siblings),
        Box::new(strong::Linearizable),
    ]
}

/// Each checker stops looking after this many violations: one is enough to
/// fail a run, and a broken node can produce millions.
pub const VIOLATIONS_MAX: usize = 1_000;

/// Runs [`all_checkers`] over `h`; violations come grouped by checker, in
/// the order of [`all_checkers`].
pub fn check_all(h: &History) -> Vec<Violation> {
    all_checkers().iter().flat_map(|c| c.check(h)).collect()
}

/// Runs [`all_checkers`] over `h`, keeping what they could not decide.
pub fn report_all(h: &History) -> Report {
    let mut all = Report::default();
    for c in all_checkers() {
        let r = c.report(h);
        all.violations.extend(r.violations);
        all.inconclusive.extend(r.inconclusive);
    }
    all
}

// ---------------------------------------------------------------------------
// Shared by the checkers (and observations): how to read ops.

/// Shows a dot as `node#incarnation:counter`.
pub(crate) struct DotFmt<'a>(pub(crate) &'a Dot);

impl fmt::Display for DotFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        write!(f, "{}#{}:{}", d.actor.node, d.actor.incarnation, d.counter)
    }
}

/// Shows a version vector as `{node#incarnation:counter, ...}`.
pub(crate) struct VvFmt<'a>(pub(crate) &'a VersionVector);

impl fmt::Display for VvFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (a, c)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}#{}:{}", a.node, a.incarnation, c)?;
        }
        f.write_str("}")
    }
}

/// The indexes (into `h.ops`) of each eventual key's operations, in history
/// order (strong ops are left out).
pub(crate) fn ops_by_key(h: &History) -> BTreeMap<&str, Vec<usize>> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in h.ops.iter().enumerate().filter(|(_, op)| !op.strong) {
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    by_key
}

/// What the history says about an operation as a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WriteClass<'h> {
    /// A read.
    NotWrite,
    /// Acknowledged, with its dot; `ack_ms` is when the client got the ack.
    Known {
        /// The write's dot.
        dot: &'h Dot,
        /// When the client got the ack (`None` only in a malformed history).
        ack_ms: Option<u64>,
    },
    /// An acknowledged DELETE that found nothing to delete: it wrote nothing.
    Nothing,
    /// May or may not have been applied; its dot is unknown.
    Unknown,
}

/// Classifies `op` as a write.
pub(crate) fn classify(op: &Op) -> WriteClass<'_> {
    if op.kind == OpKind::Get {
        return WriteClass::NotWrite;
    }
    match &op.outcome {
        Outcome::Written { dot: Some(dot), .. } => WriteClass::Known {
            dot,
            ack_ms: op.complete_ms,
        },
        Outcome::Written { dot: None, .. } if matches!(op.kind, OpKind::Delete { .. }) => {
            WriteClass::Nothing
        }
        _ => WriteClass::Unknown,
    }
}

/// What a write's input context may have been, as far as a check needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ctx<'h> {
    /// Covers exactly (or, as a bound, at least / at most) this.
    Vv(&'h VersionVector),
    /// Covers nothing.
    Nothing,
    /// May cover anything (an unacknowledged DELETE without context).
    Everything,
}

/// Which side of an unrecorded context a check needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// What the context covered at least: to blame a write for what it
    /// should have superseded.
    Lower,
    /// What the context covered at most: to excuse a value's disappearance.
    Upper,
}

/// The input context of write `op` (reads: [`Ctx::Nothing`]), bounded as
/// `bound` asks where the history does not record it.
pub(crate) fn input_context(op: &Op, bound: Bound) -> Ctx<'_> {
    match (&op.kind, bound) {
        (OpKind::Get | OpKind::Cas { .. }, _) => Ctx::Nothing,
        (OpKind::Put { context, .. }, _) => context.as_ref().map_or(Ctx::Nothing, Ctx::Vv),
        (OpKind::Delete { context: Some(c) }, _) => Ctx::Vv(c),
        (OpKind::Delete { context: None }, Bound::Lower) => Ctx::Nothing,
        // The coordinator deleted with the context of its own read, which
        // the answer's context covers (it is the stored vv after the write).
        (OpKind::Delete { context: None }, Bound::Upper) => match &op.outcome {
            Outcome::Written { context, .. } => Ctx::Vv(context),
            _ => Ctx::Everything,
        },
    }
}

/// The ordering key of an op on a time line: time, then id.
pub(crate) fn at(ms: u64, op: &Op) -> (u64, u64) {
    (ms, op.id)
}

/// A write that superseded values: its context covered up to `counter` of
/// some actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cover {
    /// Highest counter covered.
    pub(crate) counter: u64,
    /// Index (into `h.ops`) of the write whose context covered it.
    pub(crate) op: usize,
}

/// The acknowledged writes of one key, indexed by dot, answering two
/// questions fast: which op made a dot, and what the writes a version
/// vector covers had in their contexts.
///
/// For each actor, its writes are sorted by counter with the running
/// pointwise maximum of their contexts (and the write that holds each
/// maximum). Because version vectors are downward closed per actor, the
/// writes a vector `V` covers are, per actor `b`, a prefix of `b`'s writes,
/// so "the join of the contexts of every write `V` covers" is one binary
/// search and one row maximum per actor of `V`. Memory: one row of
/// `actors` entries per write.
pub(crate) struct WriteIndex<'h> {
    /// Every actor named by a dot or a context of the key, sorted.
    actors: Vec<&'h Actor>,
    /// Per actor (same order): its acknowledged writes.
    lines: Vec<Line>,
}

/// The acknowledged writes of one actor to one key.
#[derive(Default)]
struct Line {
    /// Counters, ascending.
    counters: Vec<u64>,
    /// The write of each counter (index into `h.ops`).
    ops: Vec<usize>,
    /// `counters.len()` rows of `actors.len()`: row `i` is the pointwise max
    /// of the contexts of writes `0..=i`.
    prefix: Vec<Option<Cover>>,
}

impl<'h> WriteIndex<'h> {
    /// Indexes the acknowledged writes among `ops` (indexes into `h.ops`, all
    /// of one key), taking unrecorded contexts at `bound`.
    pub(crate) fn build(h: &'h History, ops: &[usize], bound: Bound) -> Self {
        let mut known: Vec<(&'h Dot, usize, Option<&'h VersionVector>)> = Vec::new();
        let mut names: BTreeSet<&'h Actor> = BTreeSet::new();
        for &i in ops {
            let op = &h.ops[i];
            if let WriteClass::Known { dot, .. } = classify(op) {
                // An acknowledged write always has a recorded or answered
                // context, so `Everything` cannot happen here.
                let ctx = match input_context(op, bound) {
                    Ctx::Vv(c) => Some(c),
                    Ctx::Nothing | Ctx::Everything => None,
                };
                names.insert(&dot.actor);
                if let Some(c) = ctx {
                    names.extend(c.iter().map(|(a, _)| a));
                }
                known.push((dot, i, ctx));
            }
        }
        let actors: Vec<&'h Actor> = names.into_iter().collect();
        let width = actors.len();
        let mut per_actor: Vec<Vec<(u64, usize, Option<&'h VersionVector>)>> =
            vec![Vec::new(); width];
        for (dot, i, ctx) in known {
            if let Ok(a) = actors.binary_search(&&dot.actor) {
                per_actor[a].push((dot.counter, i, ctx));
            }
        }
        let lines = per_actor
            .into_iter()
            .map(|mut writes| {
                writes.sort_by_key(|&(c, i, _)| (c, i));
                let mut line = Line {
                    counters: Vec::with_capacity(writes.len()),
                    ops: Vec::with_capacity(writes.len()),
                    prefix: Vec::with_capacity(writes.len() * width),
                };
                let mut row: Vec<Option<Cover>> = vec![None; width];
                for (c, i, ctx) in writes {
                    for (a, n) in ctx.into_iter().flat_map(VersionVector::iter) {
                        if let Ok(ai) = actors.binary_search(&a)
                            && n > 0
                            && row[ai].is_none_or(|cv| n > cv.counter)
                        {
                            row[ai] = Some(Cover { counter: n, op: i });
                        }
                    }
                    line.counters.push(c);
                    line.ops.push(i);
                    line.prefix.extend_from_slice(&row);
                }
                line
            })
            .collect();
        WriteIndex { actors, lines }
    }

    /// The position of `a` among the indexed actors.
    pub(crate) fn actor(&self, a: &Actor) -> Option<usize> {
        self.actors.binary_search(&a).ok()
    }

    /// The acknowledged write that made `dot` (index into `h.ops`).
    pub(crate) fn writer_of(&self, dot: &Dot) -> Option<usize> {
        let line = &self.lines[self.actor(&dot.actor)?];
        let at = line.counters.binary_search(&dot.counter).ok()?;
        Some(line.ops[at])
    }

    /// Actor `a`'s acknowledged writes with counter at most `max`, newest
    /// first, as (counter, index into `h.ops`).
    pub(crate) fn writes_up_to(
        &self,
        a: usize,
        max: u64,
    ) -> impl Iterator<Item = (u64, usize)> + '_ {
        let line = &self.lines[a];
        let end = line.counters.partition_point(|&c| c <= max);
        (0..end).rev().map(|k| (line.counters[k], line.ops[k]))
    }

    /// Per indexed actor (positions as [`WriteIndex::actor`]): the highest
    /// counter that the context of some acknowledged write covered by `vv`
    /// covers, with that write. A dot `d` is superseded by a write `vv` has
    /// seen exactly when `result[actor(d)]` reaches `d.counter`.
    pub(crate) fn superseded_within(&self, vv: &VersionVector) -> Vec<Option<Cover>> {
        let width = self.actors.len();
        let mut best: Vec<Option<Cover>> = vec![None; width];
        for (b, seen) in vv.iter() {
            let Some(bi) = self.actor(b) else { continue };
            let line = &self.lines[bi];
            let n = line.counters.partition_point(|&c| c <= seen);
            if n == 0 {
                continue;
            }
            let row = &line.prefix[(n - 1) * width..n * width];
            for (slot, cover) in best.iter_mut().zip(row) {
                if let Some(c) = cover
                    && slot.is_none_or(|s| c.counter > s.counter)
                {
                    *slot = Some(*c);
                }
            }
        }
        best
    }
}

#[cfg(test)]
pub(crate) mod testkit {
    //! Hand-built histories with realistic objects, for the checkers' tests.

    use bytes::Bytes;
    use ringkv_core::{Actor, Dot, NodeId, Object, Value, VersionVector};

    use crate::history::{History, Op, OpKind, Outcome};

    /// Actor of node `n{i}`.
    pub(crate) fn actor(i: u32) -> Actor {
        Actor {
            node: NodeId::from(format!("n{i}")),
            incarnation: 1,
        }
    }

    /// The dot `(n{i}, counter)`.
    pub(crate) fn dot(i: u32, counter: u64) -> Dot {
        Dot {
            actor: actor(i),
            counter,
        }
    }

    /// `obj` after a write of `value` under `dot` with `ctx`, as a coordinator
    /// makes it.
    pub(crate) fn write(obj: &Object, ctx: &VersionVector, dot: &Dot, value: &str) -> Object {
        obj.update(
            ctx,
            dot.clone(),
            Value::Data(Bytes::from(value.to_string())),
            0,
        )
    }

    /// Builds a history op by op; ids are positions.
    pub(crate) struct Builder {
        /// The history so far.
        pub(crate) h: History,
    }

    impl Builder {
        /// An empty history with `n` replicas per key.
        pub(crate) fn new(n: usize) -> Self {
            Builder {
                h: History { n, ops: vec![] },
            }
        }

        fn push(
            &mut self,
            key: &str,
            kind: OpKind,
            quorum: usize,
            t: (u64, u64),
            outcome: Outcome,
        ) -> u64 {
            let id = self.h.ops.len() as u64;
            self.h.ops.push(Op {
                id,
                client: 0,
                node: "n1".into(),
                key: key.into(),
                strong: false,
                kind,
                quorum,
                invoke_ms: t.0,
                complete_ms: Some(t.1),
                fallbacks: 0,
                outcome,
            });
            id
        }

        /// An acknowledged put of `value` with `ctx` (`None`: blind), that
        /// produced `after` under `dot`, over `t = (invoke, ack)`.
        pub(crate) fn put(
            &mut self,
            key: &str,
            ctx: Option<&VersionVector>,
            dot: &Dot,
            w: usize,
            t: (u64, u64),
            after: &Object,
        ) -> u64 {
            let kind = OpKind::Put {
                value: format!("v{}", self.h.ops.len()),
                context: ctx.cloned(),
            };
            let outcome = Outcome::Written {
                context: after.vv.clone(),
                dot: Some(dot.clone()),
            };
            self.push(key, kind, w, t, outcome)
        }

        /// A put whose ack never came (`Unavailable`).
        pub(crate) fn put_unacked(
            &mut self,
            key: &str,
            ctx: Option<&VersionVector>,
            w: usize,
            t: (u64, u64),
        ) -> u64 {
            let kind = OpKind::Put {
                value: format!("v{}", self.h.ops.len()),
                context: ctx.cloned(),
            };
            let outcome = Outcome::Unavailable {
                required: w,
                acks: 1,
            };
            self.push(key, kind, w, t, outcome)
        }

        /// A successful read at `r` that returned `obj`.
        pub(crate) fn get(&mut self, key: &str, r: usize, t: (u64, u64), obj: &Object) -> u64 {
            let outcome = Outcome::Read {
                object: obj.clone(),
            };
            self.push(key, OpKind::Get, r, t, outcome)
        }

        /// An operation with any outcome.
        pub(crate) fn raw(
            &mut self,
            key: &str,
            kind: OpKind,
            quorum: usize,
            t: (u64, u64),
            outcome: Outcome,
        ) -> u64 {
            self.push(key, kind, quorum, t, outcome)
        }
    }
}

#[cfg(test)]
pub(crate) mod model {
    //! A toy cluster that runs the real [`Object`] update and merge over `n`
    //! replicas, with random quorums, lost acks, blind and contextual writes,
    //! deletes and anti-entropy, and records what its clients saw. Correct,
    //! it must pass every checker; with an injected bug, the checker for the
    //! broken invariant must fail.

    use std::collections::BTreeMap;

    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use ringkv_core::{Object, Value, VersionVector};

    use super::testkit::{Builder, actor};
    use crate::history::{History, OpKind, Outcome};

    /// A coordinator bug to inject.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Bug {
        /// None: a correct cluster.
        None,
        /// Writes are applied without the client's context.
        IgnoreContext,
        /// Writes are acknowledged after the coordinator's own store only.
        AckBeforeQuorum,
    }

    /// A history of `ops` operations over `keys` keys on 3 replicas.
    pub(crate) fn history(seed: u64, ops: usize, keys: usize, bug: Bug) -> History {
        let mut m = Model::new(seed, bug);
        let mut t = 0u64;
        for _ in 0..ops {
            t += 2;
            let key = format!("k{}", m.rng.random_range(0..keys));
            let client = m.rng.random_range(0..4u32);
            let mut order: Vec<usize> = (0..m.n).collect();
            order.shuffle(&mut m.rng);
            match m.rng.random_range(0..10) {
                0..=3 => m.get(&key, client, &order, t),
                4..=8 => m.write(&key, client, &order, t),
                _ => m.anti_entropy(key, &order),
            }
        }
        m.b.h
    }

    /// The toy cluster's state while it makes a history.
    struct Model {
        /// Replicas per key (and in the cluster).
        n: usize,
        /// Decides everything.
        rng: ChaCha8Rng,
        /// Each replica's objects, by key.
        reps: Vec<BTreeMap<String, Object>>,
        /// The context each client's last read of each key returned.
        last_read: BTreeMap<(u32, String), VersionVector>,
        /// The history so far.
        b: Builder,
        /// The injected bug.
        bug: Bug,
    }

    impl Model {
        /// Empty replicas and history, a generator seeded with `seed`.
        fn new(seed: u64, bug: Bug) -> Self {
            let n = 3usize;
            Model {
                n,
                rng: ChaCha8Rng::seed_from_u64(seed),
                reps: vec![BTreeMap::new(); n],
                last_read: BTreeMap::new(),
                b: Builder::new(n),
                bug,
            }
        }

        /// The merge of `key` on replicas `who`.
        fn read(&self, key: &str, who: &[usize]) -> Object {
            who.iter().fold(Object::empty(), |acc, &i| {
                acc.merge(self.reps[i].get(key).unwrap_or(&Object::empty()))
            })
        }

        /// A read by `client` at a random quorum, from the first replicas of
        /// `order`, at time `t`.
        fn get(&mut self, key: &str, client: u32, order: &[usize], t: u64) {
            let r = self.rng.random_range(1..=self.n);
            let merged = self.read(key, &order[..r]);
            self.last_read
                .insert((client, key.to_string()), merged.vv.clone());
            self.b.get(key, r, (t, t + 1), &merged);
        }

        /// A put or delete by `client`, blind or with its last read's
        /// context, coordinated by `order[0]`, at time `t`.
        fn write(&mut self, key: &str, client: u32, order: &[usize], t: u64) {
            let delete = self.rng.random_bool(0.2);
            let ctx = if self.rng.random_bool(0.7) {
                self.last_read.get(&(client, key.to_string())).cloned()
            } else {
                None
            };
            let w = self.rng.random_range(1..=self.n);
            let kind = if delete {
                OpKind::Delete {
                    context: ctx.clone(),
                }
            } else {
                OpKind::Put {
                    value: format!("v{t}"),
                    context: ctx.clone(),
                }
            };
            let mut applied = match (&ctx, delete) {
                (Some(vv), _) => vv.clone(),
                (None, false) => VersionVector::new(),
                (None, true) => {
                    // A DELETE without context reads at r = 2 first.
                    let merged = self.read(key, &order[..2]);
                    if merged.is_deleted() {
                        let outcome = Outcome::Written {
                            context: merged.vv,
                            dot: None,
                        };
                        self.b.raw(key, kind, w, (t, t + 1), outcome);
                        return;
                    }
                    merged.vv
                }
            };
            if self.bug == Bug::IgnoreContext {
                applied = VersionVector::new();
            }
            let value = if delete {
                Value::Tombstone
            } else {
                Value::Data(format!("v{t}").into())
            };
            let outcome = self.apply(key, order, &applied, value, w, t);
            let done = if matches!(outcome, Outcome::Written { .. }) {
                t + 1
            } else {
                t + 1000
            };
            self.b.raw(key, kind, w, (t, done), outcome);
        }

        /// Applies a write of `value` over `applied` at coordinator
        /// `order[0]`, copies it to some of the other replicas (as many as
        /// the ack, the loss of it, or the bug allows) and returns what the
        /// client saw.
        fn apply(
            &mut self,
            key: &str,
            order: &[usize],
            applied: &VersionVector,
            value: Value,
            w: usize,
            t: u64,
        ) -> Outcome {
            let (n, c) = (self.n, order[0]);
            let local = self.reps[c].get(key).cloned().unwrap_or_default();
            let dot = local.next_dot(&actor(c as u32 + 1), applied);
            let new = local.update(applied, dot.clone(), value, t);
            self.reps[c].insert(key.to_string(), new.clone());
            let acked = self.rng.random_bool(0.9);
            // Replicas that get the write besides the coordinator.
            let copies = match (acked, self.bug) {
                (true, Bug::AckBeforeQuorum) => 0,
                (true, _) => self.rng.random_range(w - 1..n),
                (false, _) => self.rng.random_range(0..w),
            };
            for &i in &order[1..1 + copies.min(n - 1)] {
                let merged = self.reps[i]
                    .get(key)
                    .cloned()
                    .unwrap_or_default()
                    .merge(&new);
                self.reps[i].insert(key.to_string(), merged);
            }
            if acked {
                Outcome::Written {
                    context: new.vv.clone(),
                    dot: Some(dot),
                }
            } else {
                Outcome::Unavailable {
                    required: w,
                    acks: copies + 1,
                }
            }
        }

        /// Anti-entropy between replicas `order[0]` and `order[1]`, both ways.
        fn anti_entropy(&mut self, key: String, order: &[usize]) {
            let (x, y) = (order[0], order[1]);
            let merged = self.read(&key, &[x, y]);
            self.reps[x].insert(key.clone(), merged.clone());
            self.reps[y].insert(key, merged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use ringkv_core::Object;

    #[test]
    fn index_finds_writers_and_what_seen_writes_superseded() {
        let mut b = Builder::new(3);
        let o1 = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 5), &o1);
        let o2 = write(&o1, &o1.vv, &dot(2, 1), "b");
        b.put("k", Some(&o1.vv), &dot(2, 1), 2, (10, 15), &o2);
        let ops = ops_by_key(&b.h)["k"].clone();
        let idx = WriteIndex::build(&b.h, &ops, Bound::Lower);
        assert_eq!(idx.writer_of(&dot(1, 1)), Some(0));
        assert_eq!(idx.writer_of(&dot(2, 1)), Some(1));
        assert_eq!(idx.writer_of(&dot(2, 2)), None);
        // A vector that saw only the first write: nothing superseded.
        let sup = idx.superseded_within(&o1.vv);
        assert!(sup.iter().all(Option::is_none));
        // One that saw the second: it superseded n1:1.
        let sup = idx.superseded_within(&o2.vv);
        let a1 = idx.actor(&actor(1)).unwrap();
        assert_eq!(sup[a1], Some(Cover { counter: 1, op: 1 }));
        let newest: Vec<_> = idx.writes_up_to(a1, 5).collect();
        assert_eq!(newest, vec![(1, 0)]);
    }

    #[test]
    fn all_checkers_have_distinct_names_and_pass_the_empty_history() {
        let names: BTreeSet<_> = all_checkers().iter().map(|c| c.name()).collect();
        assert_eq!(names.len(), all_checkers().len());
        assert!(check_all(&History::default()).is_empty());
    }

    #[test]
    fn correct_model_runs_pass_every_checker() {
        for seed in 0..300 {
            let h = model::history(seed, 300, 3, model::Bug::None);
            let v = check_all(&h);
            assert!(
                v.is_empty(),
                "seed {seed}: {} violations, first: {}",
                v.len(),
                v[0]
            );
        }
    }

    /// Each injected bug is caught by its checker, and only by the
    /// checkers it really breaks the invariants of. (A delete that ignores
    /// its context leaves the values it deleted beside its tombstone: they
    /// come back, which durability reports too.)
    #[test]
    fn injected_bugs_are_caught_by_their_checker() {
        for (bug, name, also) in [
            (model::Bug::IgnoreContext, "siblings", Some("durability")),
            (model::Bug::AckBeforeQuorum, "durability", None),
        ] {
            let mut caught = 0;
            for seed in 0..50 {
                let v = check_all(&model::history(seed, 300, 3, bug));
                assert!(
                    v.iter().all(|x| x.checker == name
                        || (Some(x.checker) == also && x.message.contains("came back"))),
                    "{bug:?}: {v:?}"
                );
                caught += usize::from(v.iter().any(|x| x.checker == name));
            }
            assert!(caught >= 45, "{bug:?} caught in only {caught} of 50 seeds");
        }
    }

    /// Scale: `cargo test --release -p ringkv-sim -- --ignored --nocapture scale`.
    /// Many keys, and one hot key (no per-key quadratic cost).
    #[test]
    #[ignore = "a measurement: run in release with --ignored --nocapture"]
    fn scale_one_million_ops() {
        for (ops, keys) in [(1_000_000, 100), (200_000, 1)] {
            let t0 = std::time::Instant::now();
            let h = model::history(1, ops, keys, model::Bug::None);
            let t1 = std::time::Instant::now();
            let v = check_all(&h);
            let t2 = std::time::Instant::now();
            let o = crate::observe::observe(&h, 1_000_000);
            let t3 = std::time::Instant::now();
            println!(
                "{ops} ops on {keys} keys: built {:?}, checked {:?} ({} violations), \
                 observed {:?}\n{}",
                t1 - t0,
                t2 - t1,
                v.len(),
                t3 - t2,
                o.summary()
            );
            assert!(v.is_empty());
        }
    }
}
