//! Observations over a history: latency per operation, throughput, and how
//! stale reads are (the share of stale reads, k-staleness and the
//! t-visibility curve of Bailis et al.'s probabilistically bounded
//! staleness).
//!
//! Definitions, per successful read of a key:
//! - The *prior writes* are the writes and deletes to the key acknowledged
//!   (with a dot) strictly before the read was invoked; the *latest* is the
//!   one acknowledged last (ties: the higher op id).
//! - The read is *stale* if its context does not cover the latest prior
//!   write's dot. Reads with no prior write are not checked.
//! - Its *k-staleness* is how many prior writes its context does not cover
//!   (0 = it saw all of them). With concurrent writes a read can be fresh
//!   (it covers the latest) and still have k > 0.
//! - Its *t* is the time from the latest prior write's ack to the read's
//!   invocation; the t-visibility curve is the share of fresh reads per
//!   bucket of t.
//!
//! Deletes that found nothing (no dot) are not versions. Reads at any `r`
//! count: this measures what clients see, it judges nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ringkv_core::Actor;
use serde::Serialize;

use crate::check::{WriteClass, at, classify, ops_by_key};
use crate::history::{History, OpKind, Outcome};

/// The share of fresh reads that counts as consistent for
/// [`Observations::t_visibility_999_ms`].
pub const VISIBILITY_TARGET: f64 = 0.999;

/// What a run's clients saw, summarised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Observations {
    /// Per operation kind (`"get"`, `"put"`, `"delete"`; always all three).
    pub per_op: BTreeMap<String, OpStats>,
    /// Successful operations per simulated second of the workload
    /// (`duration_ms`), whenever they completed.
    pub throughput_ops_per_s: f64,
    /// Successful reads with a prior acknowledged write (the staleness
    /// denominator).
    pub reads_checked: u64,
    /// Of those, reads that missed the latest prior acknowledged write.
    pub stale_reads: u64,
    /// `stale_reads / reads_checked` (0 when nothing was checked).
    pub stale_share: f64,
    /// Prior acknowledged writes a read did not cover -> number of reads
    /// (over `reads_checked`).
    pub k_staleness: BTreeMap<u64, u64>,
    /// Share of fresh reads by time since the latest prior write's ack,
    /// non-empty buckets only, ascending.
    pub t_visibility: Vec<TVisPoint>,
    /// The lower edge of the first bucket from which every bucket has at
    /// least [`VISIBILITY_TARGET`] fresh reads (`None`: the last bucket does
    /// not, or nothing was checked).
    pub t_visibility_999_ms: Option<f64>,
    /// Operations that failed for want of a quorum.
    pub unavailable: u64,
    /// Operations that failed otherwise.
    pub errors: u64,
    /// Operations still running when the run ended.
    pub pending: u64,
}

/// Counts and latency of one operation kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OpStats {
    /// Operations invoked.
    pub count: u64,
    /// Of those, successful ones (a read that returned, an acknowledged write).
    pub ok: u64,
    /// Latency of the successful ones, invocation to completion.
    pub latency_ms: Percentiles,
}

/// Latency percentiles (nearest rank) and mean; all 0 when there is no
/// sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (any order).
    pub fn of(mut samples: Vec<u64>) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: f64| {
            let k = (p * n as f64).ceil() as usize;
            samples[k.clamp(1, n) - 1] as f64
        };
        let sum: f64 = samples.iter().map(|&s| s as f64).sum();
        Percentiles {
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            p999: rank(0.999),
            max: samples[n - 1] as f64,
            mean: sum / n as f64,
        }
    }
}

/// One point of the t-visibility curve.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TVisPoint {
    /// Lower edge of the bucket, in ms (see [`t_bucket`]: every ms up to
    /// 20, then the PBS model's points, then 1, 2, 5 per decade).
    pub t_ms: f64,
    /// Reads whose t fell in the bucket.
    pub reads: u64,
    /// Share of them that were fresh.
    pub consistent_share: f64,
}

/// The lower edge of `t`'s bucket: every ms up to 20, then the points of
/// the PBS model's curve ([`ringkv_core::pbs::T_GRID_MS`]: 25, 30, 40, 50,
/// 75, 100, 150, 200, 500, 1000), then 2000, 5000, 10000, ... So the
/// measured curve and the model's can be compared point by point.
pub fn t_bucket(t: u64) -> u64 {
    use ringkv_core::pbs::T_GRID_MS;
    let last = T_GRID_MS[T_GRID_MS.len() - 1];
    if t < last {
        let k = T_GRID_MS.partition_point(|&edge| edge <= t);
        return T_GRID_MS[k.saturating_sub(1)];
    }
    let mut decade = 1u64;
    while let Some(next) = decade.checked_mul(10)
        && next <= t
    {
        decade = next;
    }
    // decade <= t < 10 * decade: the largest of 5, 2, 1 times it that fits.
    [5, 2, 1]
        .into_iter()
        .filter_map(|m| decade.checked_mul(m))
        .find(|&edge| edge <= t)
        .unwrap_or(decade)
}

/// The name of an operation kind in [`Observations::per_op`].
fn kind_name(kind: &OpKind) -> &'static str {
    match kind {
        OpKind::Get => "get",
        OpKind::Put { .. } => "put",
        OpKind::Delete { .. } => "delete",
        OpKind::Cas { .. } => "cas",
    }
}

/// Observes `h`, a run whose workload lasted `duration_ms` of simulated time.
pub fn observe(h: &History, duration_ms: u64) -> Observations {
    let (per_op, failures) = per_op_stats(h);
    let throughput_ops_per_s = throughput(&per_op, duration_ms);
    let mut st = Staleness::default();
    for ops in ops_by_key(h).values() {
        st.key(h, ops);
    }
    let (t_visibility, t_visibility_999_ms) = t_visibility(&st);
    Observations {
        per_op,
        throughput_ops_per_s,
        reads_checked: st.checked,
        stale_reads: st.stale,
        stale_share: if st.checked == 0 {
            0.0
        } else {
            st.stale as f64 / st.checked as f64
        },
        k_staleness: st.k,
        t_visibility,
        t_visibility_999_ms,
        unavailable: failures.unavailable,
        errors: failures.errors,
        pending: failures.pending,
    }
}

/// Operations that did not succeed, by why (see the same-named fields of
/// [`Observations`]).
#[derive(Default)]
struct Failures {
    unavailable: u64,
    errors: u64,
    pending: u64,
}

impl Failures {
    /// Whether an op of `kind` that ended in `outcome` succeeded; if not,
    /// counts it under its reason.
    fn tally(&mut self, kind: &OpKind, outcome: &Outcome) -> bool {
        match (kind, outcome) {
            (OpKind::Get, Outcome::Read { .. }) => true,
            (
                OpKind::Put { .. } | OpKind::Delete { .. } | OpKind::Cas { .. },
                Outcome::Written { .. },
            ) => true,
            // A refused compare-and-set is an answer, not a failure.
            (OpKind::Cas { .. }, Outcome::PreconditionFailed { .. }) => true,
            (_, Outcome::Unavailable { .. }) => {
                self.unavailable += 1;
                false
            }
            (_, Outcome::Pending | Outcome::Unknown(_)) => {
                self.pending += 1;
                false
            }
            // A read with a write's outcome (or the reverse) is malformed:
            // count it as an error.
            _ => {
                self.errors += 1;
                false
            }
        }
    }
}

/// Counts and latency per operation kind (always all three kinds), and the
/// operations that failed: the latency half of [`Observations`].
fn per_op_stats(h: &History) -> (BTreeMap<String, OpStats>, Failures) {
    let mut latencies: BTreeMap<&'static str, (u64, Vec<u64>)> = ["get", "put", "delete"]
        .into_iter()
        .map(|k| (k, (0, Vec::new())))
        .collect();
    let mut failures = Failures::default();
    for op in &h.ops {
        let entry = latencies.entry(kind_name(&op.kind)).or_default();
        entry.0 += 1;
        if failures.tally(&op.kind, &op.outcome) {
            let done = op.complete_ms.unwrap_or(op.invoke_ms);
            entry.1.push(done.saturating_sub(op.invoke_ms));
        }
    }
    let per_op = latencies
        .into_iter()
        .map(|(k, (count, samples))| {
            let stats = OpStats {
                count,
                ok: samples.len() as u64,
                latency_ms: Percentiles::of(samples),
            };
            (k.to_string(), stats)
        })
        .collect();
    (per_op, failures)
}

/// Successful operations (of every kind in `per_op`) per simulated second
/// of a workload that lasted `duration_ms` (0 for an empty workload).
fn throughput(per_op: &BTreeMap<String, OpStats>, duration_ms: u64) -> f64 {
    let ok_total: u64 = per_op.values().map(|s| s.ok).sum();
    if duration_ms == 0 {
        0.0
    } else {
        ok_total as f64 * 1000.0 / duration_ms as f64
    }
}

/// The t-visibility curve of the tallies `st` (non-empty buckets,
/// ascending) and the lower edge of the first bucket from which every
/// bucket reaches [`VISIBILITY_TARGET`].
fn t_visibility(st: &Staleness) -> (Vec<TVisPoint>, Option<f64>) {
    let curve: Vec<TVisPoint> = st
        .buckets
        .iter()
        .map(|(&t, &(reads, fresh))| TVisPoint {
            t_ms: t as f64,
            reads,
            consistent_share: fresh as f64 / reads as f64,
        })
        .collect();
    let from_ms = curve
        .iter()
        .rev()
        .take_while(|p| p.consistent_share >= VISIBILITY_TARGET)
        .last()
        .map(|p| p.t_ms);
    (curve, from_ms)
}

/// Staleness tallies over all keys.
#[derive(Default)]
struct Staleness {
    checked: u64,
    stale: u64,
    k: BTreeMap<u64, u64>,
    /// Bucket lower edge -> (reads, fresh reads).
    buckets: BTreeMap<u64, (u64, u64)>,
}

/// The acknowledged writes of one actor to one key, for counting how many of
/// those acknowledged so far a read misses: a Fenwick tree over the actor's
/// counters in ascending order.
struct ActorCounts {
    /// Every counter of the actor's acknowledged writes, ascending, unique.
    counters: Vec<u64>,
    /// Fenwick tree: how many writes were acknowledged so far, by counter.
    tree: Vec<u64>,
    /// Total acknowledged so far.
    total: u64,
}

impl ActorCounts {
    fn add(&mut self, counter: u64) {
        let Ok(mut i) = self.counters.binary_search(&counter) else {
            return;
        };
        i += 1;
        while i <= self.tree.len() {
            self.tree[i - 1] += 1;
            i += i & i.wrapping_neg();
        }
        self.total += 1;
    }

    /// Acknowledged so far with a counter above `seen`.
    fn above(&self, seen: u64) -> u64 {
        let mut i = self.counters.partition_point(|&c| c <= seen);
        let mut le = 0;
        while i > 0 {
            le += self.tree[i - 1];
            i &= i - 1;
        }
        self.total - le
    }
}

impl Staleness {
    /// Tallies the reads of one key (`ops`: indexes into `h.ops`).
    fn key(&mut self, h: &History, ops: &[usize]) {
        let mut writes: Vec<((u64, u64), usize)> = Vec::new();
        let mut reads: Vec<((u64, u64), usize)> = Vec::new();
        let mut by_actor: BTreeMap<&Actor, Vec<u64>> = BTreeMap::new();
        for &i in ops {
            let op = &h.ops[i];
            match classify(op) {
                WriteClass::Known {
                    dot,
                    ack_ms: Some(t),
                } => {
                    writes.push((at(t, op), i));
                    by_actor.entry(&dot.actor).or_default().push(dot.counter);
                }
                WriteClass::NotWrite if matches!(op.outcome, Outcome::Read { .. }) => {
                    reads.push((at(op.invoke_ms, op), i));
                }
                _ => {}
            }
        }
        if writes.is_empty() || reads.is_empty() {
            return;
        }
        writes.sort_unstable();
        reads.sort_unstable();
        let mut counts: BTreeMap<&Actor, ActorCounts> = by_actor
            .into_iter()
            .map(|(a, mut counters)| {
                counters.sort_unstable();
                counters.dedup();
                let tree = vec![0; counters.len()];
                (
                    a,
                    ActorCounts {
                        counters,
                        tree,
                        total: 0,
                    },
                )
            })
            .collect();
        let mut next = 0;
        let mut latest: Option<(u64, &ringkv_core::Dot)> = None;
        for &((invoke_ms, _), ri) in &reads {
            while let Some(&((t_ack, _), wi)) = writes.get(next)
                && t_ack < invoke_ms
            {
                if let WriteClass::Known { dot, .. } = classify(&h.ops[wi]) {
                    if let Some(c) = counts.get_mut(&dot.actor) {
                        c.add(dot.counter);
                    }
                    latest = Some((t_ack, dot));
                }
                next += 1;
            }
            let Some((t_ack, dot)) = latest else {
                continue;
            };
            let Outcome::Read { object } = &h.ops[ri].outcome else {
                continue;
            };
            let fresh = object.vv.covers(dot);
            let k: u64 = counts.iter().map(|(a, c)| c.above(object.vv.get(a))).sum();
            self.checked += 1;
            if !fresh {
                self.stale += 1;
            }
            *self.k.entry(k).or_default() += 1;
            let bucket = self.buckets.entry(t_bucket(invoke_ms - t_ack)).or_default();
            bucket.0 += 1;
            if fresh {
                bucket.1 += 1;
            }
        }
    }
}

impl Observations {
    /// A short human-readable summary, one topic a line.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (kind, st) in &self.per_op {
            let l = &st.latency_ms;
            let _ = writeln!(
                s,
                "{kind:<6} {:>8} ops, {:>8} ok; latency ms p50 {:.1} p90 {:.1} p99 {:.1} \
                 p99.9 {:.1} max {:.1} mean {:.2}",
                st.count, st.ok, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            );
        }
        let _ = writeln!(s, "throughput {:.1} ops/s", self.throughput_ops_per_s);
        let _ = writeln!(
            s,
            "stale reads {} of {} checked ({:.3} %)",
            self.stale_reads,
            self.reads_checked,
            self.stale_share * 100.0
        );
        let k: Vec<String> = self
            .k_staleness
            .iter()
            .map(|(k, n)| format!("{k}:{n}"))
            .collect();
        let _ = writeln!(s, "k-staleness (versions behind:reads) {}", k.join(" "));
        let _ = match self.t_visibility_999_ms {
            Some(t) => writeln!(
                s,
                "t-visibility: >= {:.1} % fresh from t = {t} ms on",
                VISIBILITY_TARGET * 100.0
            ),
            None => writeln!(
                s,
                "t-visibility: never >= {:.1} % fresh for good",
                VISIBILITY_TARGET * 100.0
            ),
        };
        let _ = writeln!(
            s,
            "failed: {} unavailable, {} errors, {} pending",
            self.unavailable, self.errors, self.pending
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testkit::*;
    use ringkv_core::{Object, VersionVector};

    #[test]
    fn buckets_are_every_ms_to_20_then_the_model_grid() {
        let edges: Vec<u64> = [
            0, 1, 2, 3, 4, 5, 9, 10, 19, 20, 24, 49, 50, 99, 100, 250, 999, 1000, 7000,
        ]
        .into_iter()
        .map(t_bucket)
        .collect();
        assert_eq!(
            edges,
            vec![
                0, 1, 2, 3, 4, 5, 9, 10, 19, 20, 20, 40, 50, 75, 100, 200, 500, 1000, 5000
            ]
        );
        assert_eq!(t_bucket(u64::MAX), 10_000_000_000_000_000_000);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=1000).rev().collect());
        assert_eq!(
            (p.p50, p.p90, p.p99, p.p999, p.max),
            (500.0, 900.0, 990.0, 999.0, 1000.0)
        );
        assert_eq!(p.mean, 500.5);
        let one = Percentiles::of(vec![7]);
        assert_eq!((one.p50, one.p999, one.max, one.mean), (7.0, 7.0, 7.0, 7.0));
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
    }

    /// Latency, counts, failures and throughput of a small history.
    #[test]
    fn counts_latency_and_throughput() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 2, (0, 4), &a);
        b.put_unacked("k", None, 2, (0, 1000));
        b.get("k", 2, (10, 12), &a);
        b.get("k", 2, (10, 16), &a);
        b.raw("k", OpKind::Get, 2, (20, 20), Outcome::Pending);
        b.raw("k", OpKind::Get, 2, (20, 21), Outcome::Error("x".into()));
        let o = observe(&b.h, 2000);
        assert_eq!(o.per_op["put"].count, 2);
        assert_eq!(o.per_op["put"].ok, 1);
        assert_eq!(o.per_op["put"].latency_ms.max, 4.0);
        assert_eq!(o.per_op["get"].count, 4);
        assert_eq!(o.per_op["get"].ok, 2);
        assert_eq!(o.per_op["get"].latency_ms.p50, 2.0);
        assert_eq!(o.per_op["get"].latency_ms.mean, 4.0);
        assert_eq!(o.per_op["delete"], OpStats::default());
        assert_eq!((o.unavailable, o.errors, o.pending), (1, 1, 1));
        assert_eq!(o.throughput_ops_per_s, 1.5); // 3 ok in 2 s
        assert_eq!(observe(&b.h, 0).throughput_ops_per_s, 0.0);
    }

    /// Three writes by two actors; reads at known distances behind.
    #[test]
    fn staleness_k_and_t_visibility() {
        let mut b = Builder::new(3);
        let none = VersionVector::new();
        let a = write(&Object::empty(), &none, &dot(1, 1), "a");
        // A read before any ack is not checked.
        b.get("k", 1, (0, 1), &Object::empty());
        b.put("k", None, &dot(1, 1), 1, (0, 10), &a);
        // Fresh at t = 1 and t = 2.
        b.get("k", 1, (11, 12), &a);
        b.get("k", 1, (12, 13), &a);
        let ab = write(&a, &none, &dot(2, 1), "b");
        b.put("k", None, &dot(2, 1), 1, (20, 30), &ab);
        let c = write(&ab, &ab.vv, &dot(1, 2), "c");
        b.put("k", Some(&ab.vv), &dot(1, 2), 1, (31, 40), &c);
        // At t = 1 after c: sees nothing (k = 3), sees a only (k = 2),
        // sees a and b (k = 1, stale), sees c (fresh).
        b.get("k", 1, (41, 42), &Object::empty());
        b.get("k", 1, (41, 42), &a);
        b.get("k", 1, (41, 42), &ab);
        b.get("k", 1, (41, 42), &c);
        // Covers the latest (n1:2, so n1:1 too) but not n2:1: fresh, k = 1.
        let mut partial = c.clone();
        partial.vv = partial
            .vv
            .iter()
            .filter(|(a, _)| **a != actor(2))
            .map(|(a, c)| (a.clone(), c))
            .collect();
        b.get("k", 1, (45, 46), &partial); // t = 5, fresh, k = 1
        b.get("k", 1, (140, 141), &c); // t = 100, fresh
        let o = observe(&b.h, 1000);
        assert_eq!(o.reads_checked, 8);
        assert_eq!(o.stale_reads, 3);
        assert_eq!(o.stale_share, 3.0 / 8.0);
        let k: Vec<(u64, u64)> = o.k_staleness.iter().map(|(&k, &n)| (k, n)).collect();
        assert_eq!(k, vec![(0, 4), (1, 2), (2, 1), (3, 1)]);
        let pts: Vec<(f64, u64, f64)> = o
            .t_visibility
            .iter()
            .map(|p| (p.t_ms, p.reads, p.consistent_share))
            .collect();
        assert_eq!(
            pts,
            vec![
                (1.0, 5, 2.0 / 5.0),
                (2.0, 1, 1.0),
                (5.0, 1, 1.0),
                (100.0, 1, 1.0)
            ]
        );
        assert_eq!(o.t_visibility_999_ms, Some(2.0));
        let s = o.summary();
        assert!(s.contains("stale reads 3 of 8 checked (37.500 %)"), "{s}");
        assert!(s.contains("from t = 2 ms on"), "{s}");
    }

    /// If the last bucket is below the target, the 99.9 % point is None.
    #[test]
    fn visibility_point_is_none_when_never_reached_for_good() {
        let mut b = Builder::new(3);
        let a = write(&Object::empty(), &VersionVector::new(), &dot(1, 1), "a");
        b.put("k", None, &dot(1, 1), 1, (0, 10), &a);
        b.get("k", 1, (11, 12), &a);
        b.get("k", 1, (60, 61), &Object::empty()); // stale at t = 50
        let o = observe(&b.h, 100);
        assert_eq!(o.t_visibility_999_ms, None);
        assert!(o.summary().contains("never"));
        // No history at all: nothing checked, nothing divided by zero.
        let empty = observe(&History::default(), 0);
        assert_eq!(empty.reads_checked, 0);
        assert_eq!(empty.stale_share, 0.0);
        assert_eq!(empty.t_visibility_999_ms, None);
        assert!(empty.t_visibility.is_empty());
    }
}
