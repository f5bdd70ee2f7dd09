//! Counting and timing operations, and the report: a table per operation on
//! stdout and the same figures as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::keys::Op;

/// Latencies are recorded in microseconds, from 1 µs; the histogram grows
/// past this bound when it must (open-loop backlogs can be long).
const HIST_HIGH_US: u64 = 60_000_000;
/// Three significant digits: p99.9 of 1.234 ms is told from 1.235 ms.
const HIST_SIGFIG: u8 = 3;

/// A fresh latency histogram.
fn histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, HIST_HIGH_US, HIST_SIGFIG)
        .expect("constant histogram bounds are valid");
    h.auto(true);
    h
}

/// What one client saw of one kind of operation.
#[derive(Debug, Default)]
pub(super) struct OpStats {
    /// Latency of the successful operations (µs); made at the first one.
    hist: Option<Histogram<u64>>,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations by kind (`http 503`, `timeout`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Reads that found no value (404): successes.
    pub not_found: u64,
    /// Reads that found siblings (300): successes.
    pub siblings: u64,
}

impl OpStats {
    /// Records a success that took `latency`.
    pub(super) fn ok(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let h = self.hist.get_or_insert_with(histogram);
        // Grows the histogram past its bound; clamps only if even that fails.
        if h.record(us).is_err() {
            h.saturating_record(us);
        }
        self.ok += 1;
    }

    /// Records a failure of kind `kind`.
    pub(super) fn error(&mut self, kind: &str) {
        match self.errors.get_mut(kind) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(kind.to_string(), 1);
            }
        }
    }

    /// Failed operations.
    pub(super) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other` into `self`.
    pub(super) fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        self.not_found += other.not_found;
        self.siblings += other.siblings;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        if let Some(h) = &other.hist {
            // Both grow automatically, so adding cannot fail on range.
            let _ = self.hist.get_or_insert_with(histogram).add(h);
        }
    }

    /// The report row, for a phase of `elapsed`.
    pub(super) fn report(&self, elapsed: Duration) -> OpReport {
        let errors = self.error_count();
        let secs = elapsed.as_secs_f64();
        OpReport {
            count: self.ok + errors,
            ok: self.ok,
            errors,
            errors_by_kind: self.errors.clone(),
            throughput: if secs > 0.0 {
                self.ok as f64 / secs
            } else {
                0.0
            },
            not_found: self.not_found,
            siblings: self.siblings,
            latency_ms: self.hist.as_ref().filter(|h| !h.is_empty()).map(|h| {
                let ms = |us: u64| us as f64 / 1000.0;
                Latency {
                    p50: ms(h.value_at_quantile(0.50)),
                    p90: ms(h.value_at_quantile(0.90)),
                    p99: ms(h.value_at_quantile(0.99)),
                    p99_9: ms(h.value_at_quantile(0.999)),
                    max: ms(h.max()),
                    mean: h.mean() / 1000.0,
                }
            }),
        }
    }
}

/// Per-operation stats of one client (or of all, merged).
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Indexed by [`Op::index`].
    pub ops: [OpStats; 4],
    /// Open loop: operations scheduled before the end but never sent,
    /// because the client was still behind.
    pub unsent: u64,
}

impl Stats {
    /// The stats of `op`.
    pub(super) fn op(&mut self, op: Op) -> &mut OpStats {
        &mut self.ops[op.index()]
    }

    /// Adds `other` into `self`.
    pub(super) fn merge(&mut self, other: &Stats) {
        for (a, b) in self.ops.iter_mut().zip(&other.ops) {
            a.merge(b);
        }
        self.unsent += other.unsent;
    }

    /// The report of a phase that took `elapsed`.
    pub(super) fn report(&self, elapsed: Duration) -> PhaseReport {
        let mut total = OpStats::default();
        let mut ops = BTreeMap::new();
        for op in Op::ALL {
            let s = &self.ops[op.index()];
            if s.ok + s.error_count() > 0 {
                ops.insert(op.name().to_string(), s.report(elapsed));
                total.merge(s);
            }
        }
        PhaseReport {
            elapsed_s: elapsed.as_secs_f64(),
            total: total.report(elapsed),
            ops,
            unsent: self.unsent,
            generator_cpu_s: None,
        }
    }
}

/// Latency percentiles of the successful operations, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// One row of the report: one kind of operation (or all of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OpReport {
    /// Operations completed: successes plus errors.
    pub count: u64,
    /// Successful operations (including reads that found nothing or siblings).
    pub ok: u64,
    /// Failed operations.
    pub errors: u64,
    /// Failed operations by kind: `http <status>` or a transport failure.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Successful operations per second of the phase.
    pub throughput: f64,
    /// Reads answered 404 (no value).
    pub not_found: u64,
    /// Reads answered 300 (siblings).
    pub siblings: u64,
    /// Latency of the successful operations; absent when there were none.
    pub latency_ms: Option<Latency>,
}

/// The figures of one phase (load or run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct PhaseReport {
    /// From the start of the phase to the last answer, in seconds.
    pub elapsed_s: f64,
    /// All operations together.
    pub total: OpReport,
    /// Per operation (`read`, `update`, `insert`, `rmw`), only those that ran.
    pub ops: BTreeMap<String, OpReport>,
    /// Open loop only: operations scheduled before the end that were never
    /// sent because the generator was behind schedule.
    pub unsent: u64,
    /// CPU time (user + system) the generator process used during the
    /// phase, in seconds, where the OS tells (Linux): shows whether the
    /// generator itself was near its limit.
    #[serde(default)]
    pub generator_cpu_s: Option<f64>,
}

/// Formats milliseconds for a table: three significant decimals.
pub(super) fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Formats a throughput.
pub(super) fn rate(v: f64) -> String {
    format!("{v:.0}")
}

/// A table with the first column left-aligned and the others right-aligned.
pub(super) fn table(rows: &[Vec<String>]) -> String {
    crate::kv::table_aligned(rows, true)
}

/// The human-readable table of a phase.
pub(super) fn phase_table(phase: &PhaseReport) -> String {
    let mut rows = vec![
        [
            "op", "count", "errors", "ok/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    let mut add = |name: &str, r: &OpReport| {
        let mut row = vec![
            name.to_string(),
            r.count.to_string(),
            r.errors.to_string(),
            rate(r.throughput),
        ];
        match &r.latency_ms {
            Some(l) => {
                for v in [l.p50, l.p90, l.p99, l.p99_9, l.max] {
                    row.push(ms(v));
                }
            }
            None => row.extend(std::iter::repeat_n("-".to_string(), 5)),
        }
        rows.push(row);
    };
    for (name, r) in &phase.ops {
        add(name, r);
    }
    if phase.ops.len() > 1 {
        add("total", &phase.total);
    }
    let mut out = table(&rows);
    for (name, r) in &phase.ops {
        if r.errors > 0 {
            let kinds: Vec<String> = r
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            let _ = writeln!(out, "{name} errors: {}", kinds.join(", "));
        }
        let mut notes = Vec::new();
        if r.not_found > 0 {
            notes.push(format!("{} not found (404)", r.not_found));
        }
        if r.siblings > 0 {
            notes.push(format!("{} with siblings (300)", r.siblings));
        }
        if !notes.is_empty() {
            let _ = writeln!(out, "{name}: {}", notes.join(", "));
        }
    }
    if let Some(cpu) = phase.generator_cpu_s
        && phase.elapsed_s > 0.0
    {
        let _ = writeln!(
            out,
            "generator CPU: {cpu:.2} s ({:.0} % of one core)",
            cpu / phase.elapsed_s * 100.0
        );
    }
    if phase.unsent > 0 {
        let _ = writeln!(
            out,
            "behind schedule: {} scheduled operations were not sent before the end \
             (the target could not keep up with --rate)",
            phase.unsent
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_stats_report_counts_and_ordered_percentiles() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        for i in 1..=1000u64 {
            a.op(Op::Read).ok(Duration::from_micros(i));
        }
        b.op(Op::Read).ok(Duration::from_millis(50));
        b.op(Op::Update).ok(Duration::from_micros(300));
        b.op(Op::Update).error("http 503");
        b.op(Op::Update).error("http 503");
        b.op(Op::Update).error("timeout");
        a.merge(&b);
        let r = a.report(Duration::from_secs(2));
        let read = &r.ops["read"];
        assert_eq!((read.count, read.ok, read.errors), (1001, 1001, 0));
        assert!((read.throughput - 500.5).abs() < 1e-9);
        let l = read.latency_ms.as_ref().unwrap();
        assert!(l.p50 > 0.45 && l.p50 < 0.55, "{l:?}");
        assert!(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p99_9 && l.p99_9 <= l.max);
        assert!((l.max - 50.0).abs() < 0.1, "{l:?}");
        let upd = &r.ops["update"];
        assert_eq!((upd.count, upd.ok, upd.errors), (4, 1, 3));
        assert_eq!(upd.errors_by_kind["http 503"], 2);
        assert_eq!(r.total.count, 1005);
        assert!(!r.ops.contains_key("rmw"));
        let text = phase_table(&r);
        assert!(
            text.contains("update errors: http 503: 2, timeout: 1"),
            "{text}"
        );
        // Round trip through JSON.
        let back: PhaseReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn huge_latencies_are_kept() {
        let mut s = OpStats::default();
        s.ok(Duration::from_secs(600));
        let l = s.report(Duration::from_secs(1)).latency_ms.unwrap();
        assert!(l.max > 590_000.0, "{l:?}");
    }
}
