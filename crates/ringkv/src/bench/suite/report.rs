//! The suite's figures as a Markdown section (the machine, throughput and
//! latency against the ceiling, the ceiling's own runs, per operation,
//! errors, goals, command lines) and as a short summary for the terminal.
//!
//! The section's headings and table columns are what docs/benchmarks.md is
//! organised around: change them only together with that page.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::cases::{CaseResult, case_results};
use super::format::{generator_cpu, latency_cells, percent, thousands, utc, workload_label};
use super::machine::Machine;
use crate::bench::stats::ms;
use crate::bench::{DistKind, Report, Settings, Target, Workload};

/// One generator run of the suite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SuiteRun {
    /// What was measured: `ceiling`, `ringkv 3 nodes` or `ringkv 1 node`.
    pub(crate) system: String,
    /// Round, from 1.
    pub(crate) round: u32,
    /// The generator's command line.
    pub(crate) command: String,
    /// ringkv runs: indices (in [`SuiteReport::runs`]) of the ceiling runs
    /// measured just before it, its reference.
    pub(crate) references: Vec<usize>,
    /// ringkv runs: the reference throughput (successful ops/s).
    pub(crate) reference: Option<f64>,
    /// ringkv runs: throughput divided by the reference.
    pub(crate) ratio: Option<f64>,
    /// The generator's report.
    pub(crate) report: Report,
}

/// What `ringkv bench suite --json` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SuiteReport {
    /// [`crate::bench::JSON_VERSION`].
    pub(crate) version: u32,
    /// The section label.
    pub(crate) label: String,
    /// Unix time at the start, in seconds.
    pub(crate) started_unix_s: u64,
    /// The suite's own command line.
    pub(crate) command: String,
    /// The other processes' command lines (servers, ceiling).
    pub(crate) server_commands: Vec<String>,
    /// The machine.
    pub(crate) machine: Machine,
    /// Rounds of the whole set.
    pub(crate) rounds: u32,
    /// Generator thread counts of the ceiling runs.
    pub(crate) ceiling_threads: Vec<u16>,
    /// Every run, in the order made.
    pub(crate) runs: Vec<SuiteRun>,
}

/// What the Markdown says about the ceiling server and the ratios, under
/// the throughput table.
const CEILING_NOTE: &str = "The ceiling is the HTTP ceiling server (`bench/http-ceiling`: axum, one \
     `Mutex<HashMap>`, no replication, no disk), measured with the same generator right \
     before each ringkv run: PUT only (workload W) when the workload writes, GET only \
     (workload C) when it reads, uniform keys. Reference of each ratio: W vs ceiling PUT, \
     C vs ceiling GET, A and B vs the mean of the two weighted by the mix (A: plain mean; \
     B: 95 % GET, 5 % PUT). ops/s counts successful operations; latency is that of the \
     successful operations; errors are any answer other than 2xx, 300 or 404, or a \
     transport failure. Generator CPU: the load generator's own CPU time during the \
     measurement, as a share of one core.";

/// The Markdown section of one suite run.
pub(super) fn markdown_section(
    rep: &SuiteReport,
    note: Option<&str>,
    duration: Duration,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "## {}\n", rep.label);
    if let Some(note) = note {
        let _ = writeln!(s, "{note}\n");
    }
    intro(&mut s, rep, duration);
    machine_table(&mut s, &rep.machine);
    let results = case_results(rep);
    throughput_table(&mut s, &results);
    ceiling_table(&mut s, rep);
    per_operation_table(&mut s, &results);
    errors_by_kind(&mut s, rep);
    goals(&mut s, &results);
    command_lines(&mut s, rep);
    s
}

/// The paragraph on how everything was measured.
fn intro(s: &mut String, rep: &SuiteReport, duration: Duration) {
    let m = &rep.machine;
    let ringkv: Option<&Settings> = rep
        .runs
        .iter()
        .find(|r| r.report.settings.target == Target::Ringkv)
        .map(|r| &r.report.settings);
    let threads = |v: &[u16]| {
        v.iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let _ = writeln!(
        s,
        "Measured by `ringkv bench suite` on {}, commit {}{}. Every run: {} keys written once \
         before measuring (`--load`), {}-byte values, {} clients (one keep-alive HTTP/1.1 \
         connection each, spread round-robin over the nodes), closed loop, {} s of warm-up, \
         then {} s measured. The generator (`ringkv bench`, hyper client) ran on {} runtime \
         thread(s) for ringkv and on {} for the ceiling server. The nodes use their defaults \
         otherwise (`--sync periodic`: fsync every 100 ms; 64 partitions), and every ringkv run \
         has a fresh bucket. {} round(s): each figure below is from the round with the median \
         ratio. All processes share the machine, the generator included, and so does other \
         work: absolute figures move, the ratios to the ceiling server measured right before \
         each run much less.\n",
        utc(rep.started_unix_s),
        m.commit,
        if m.release_build {
            ""
        } else {
            " (**debug build**)"
        },
        ringkv.map_or(0, |f| f.keys),
        ringkv.map_or(0, |f| f.value_bytes),
        ringkv.map_or(0, |f| f.concurrency),
        ringkv.and_then(|f| f.warmup_s).unwrap_or(0.0),
        duration.as_secs_f64(),
        ringkv.map_or(0, |f| f.threads),
        threads(&rep.ceiling_threads),
        rep.rounds,
    );
}

/// The table of machine facts.
fn machine_table(s: &mut String, m: &Machine) {
    let _ = writeln!(s, "| machine | |\n| --- | --- |");
    let _ = writeln!(s, "| CPUs (nproc) | {} |", m.nproc);
    let _ = writeln!(s, "| CPU model | {} |", m.cpu);
    let _ = writeln!(s, "| memory | {} |", m.memory);
    let _ = writeln!(s, "| kernel | {} |", m.kernel);
    let _ = writeln!(s, "| rustc | {} |", m.rustc);
    let _ = writeln!(
        s,
        "| load average (1/5/15 min) | {} at the start, {} at the end |\n",
        m.load_average.0, m.load_average.1
    );
}

/// "Throughput and latency": one row per case (its median round), then
/// what the ceiling is.
fn throughput_table(s: &mut String, results: &[CaseResult<'_>]) {
    let _ = writeln!(s, "### Throughput and latency\n");
    let _ = writeln!(
        s,
        "| system | workload | key choice | ops/s | ceiling ops/s | vs ceiling | p50 ms | p99 ms \
         | p99.9 ms | max ms | errors | generator CPU |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for c in results {
        let r = c.median;
        let t = &r.report.run.total;
        let mut ratio = r.ratio.map_or("-".into(), percent);
        if c.rounds > 1 {
            ratio = format!(
                "{ratio} ({:.1}–{:.1})",
                c.range.0 * 100.0,
                c.range.1 * 100.0
            );
        }
        let lat = latency_cells(
            t.latency_ms.as_ref(),
            &[|l| l.p50, |l| l.p99, |l| l.p99_9, |l| l.max],
        );
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {ratio} | {} | {} | {} |",
            r.system,
            workload_label(r),
            r.report.settings.dist.name(),
            thousands(t.throughput),
            r.reference.map_or("-".into(), thousands),
            lat.join(" | "),
            t.errors,
            generator_cpu(r)
        );
    }
    let _ = writeln!(s, "\n{CEILING_NOTE}\n");
}

/// "The ceiling server's own runs": per request kind and generator thread
/// count, the median, lowest and highest run.
fn ceiling_table(s: &mut String, rep: &SuiteReport) {
    let _ = writeln!(s, "### The ceiling server's own runs\n");
    let _ = writeln!(
        s,
        "| requests | generator threads | runs | median ops/s | lowest | highest | p50 ms | p99 ms \
         | p99.9 ms | generator CPU |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for w in [Workload::W, Workload::C] {
        for &t in &rep.ceiling_threads {
            let mut of: Vec<&SuiteRun> = rep
                .runs
                .iter()
                .filter(|r| {
                    r.report.settings.target == Target::Ceiling
                        && r.report.settings.workload == w
                        && r.report.settings.threads == t
                })
                .collect();
            if of.is_empty() {
                continue;
            }
            of.sort_by(|a, b| {
                a.report
                    .run
                    .total
                    .throughput
                    .total_cmp(&b.report.run.total.throughput)
            });
            let med = of[(of.len() - 1) / 2];
            let lat = latency_cells(
                med.report.run.total.latency_ms.as_ref(),
                &[|l| l.p50, |l| l.p99, |l| l.p99_9],
            );
            let _ = writeln!(
                s,
                "| {} | {t} | {} | {} | {} | {} | {} | {} |",
                workload_label(med),
                of.len(),
                thousands(med.report.run.total.throughput),
                thousands(of[0].report.run.total.throughput),
                thousands(of[of.len() - 1].report.run.total.throughput),
                lat.join(" | "),
                generator_cpu(med)
            );
        }
    }
}

/// "Per operation": each case's median round, one row per operation.
fn per_operation_table(s: &mut String, results: &[CaseResult<'_>]) {
    let _ = writeln!(s, "\n### Per operation\n");
    let _ = writeln!(
        s,
        "| system | workload | key choice | op | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms \
         | errors | siblings read |\n\
         | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for c in results {
        let r = c.median;
        for (op, o) in &r.report.run.ops {
            let lat = latency_cells(
                o.latency_ms.as_ref(),
                &[|l| l.p50, |l| l.p90, |l| l.p99, |l| l.p99_9, |l| l.max],
            );
            let _ = writeln!(
                s,
                "| {} | {} | {} | {op} | {} | {} | {} | {} |",
                r.system,
                workload_label(r),
                r.report.settings.dist.name(),
                thousands(o.throughput),
                lat.join(" | "),
                o.errors,
                if op == "read" {
                    o.siblings.to_string()
                } else {
                    "-".into()
                }
            );
        }
    }
    let _ = writeln!(
        s,
        "\nsiblings read: reads answered 300 (concurrent updates of a key by different \
         clients; each update carries the latest context the generator saw for its key)."
    );
}

/// "Errors by kind", for every run (of any round) that had errors.
fn errors_by_kind(s: &mut String, rep: &SuiteReport) {
    let errors: Vec<String> = rep
        .runs
        .iter()
        .filter(|r| r.report.run.total.errors > 0)
        .map(|r| {
            let kinds: Vec<String> = r
                .report
                .run
                .total
                .errors_by_kind
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            format!(
                "- round {}, {} {} {}: {}",
                r.round,
                r.system,
                workload_label(r),
                r.report.settings.dist.name(),
                kinds.join(", ")
            )
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(s, "\nErrors by kind:\n\n{}", errors.join("\n"));
    }
}

/// The performance goals (workload A, uniform keys): 3 nodes at least 30 %
/// of the ceiling with p99 under 10 ms; 1 node at least 60 %.
fn goals(s: &mut String, results: &[CaseResult<'_>]) {
    let _ = writeln!(s, "\n### Goals\n");
    let find = |system: &str| {
        results.iter().find(|c| {
            c.median.system == system
                && c.median.report.settings.workload == Workload::A
                && c.median.report.settings.dist == DistKind::Uniform
        })
    };
    let verdict = |ok: bool| if ok { "met" } else { "not met" };
    if let Some(c) = find("ringkv 3 nodes") {
        let ratio = c.median.ratio.unwrap_or(0.0);
        let p99 = c
            .median
            .report
            .run
            .total
            .latency_ms
            .as_ref()
            .map_or(f64::INFINITY, |l| l.p99);
        let _ = writeln!(
            s,
            "- Workload A, 3 nodes, {} clients, uniform: {} of the ceiling (goal at least 30 %: \
             {}), p99 {} ms (goal under 10 ms: {}).",
            c.median.report.settings.concurrency,
            percent(ratio),
            verdict(ratio >= 0.30),
            ms(p99),
            verdict(p99 < 10.0)
        );
    }
    if let Some(c) = find("ringkv 1 node") {
        let ratio = c.median.ratio.unwrap_or(0.0);
        let _ = writeln!(
            s,
            "- Workload A, 1 node (N=1), uniform: {} of the ceiling (goal at least 60 %: {}).",
            percent(ratio),
            verdict(ratio >= 0.60)
        );
    }
}

/// "Command lines": the suite's, the processes it started, and the
/// generator runs of round 1.
fn command_lines(s: &mut String, rep: &SuiteReport) {
    let _ = writeln!(s, "\n### Command lines\n\n```sh");
    let _ = writeln!(s, "{}", rep.command);
    let _ = writeln!(
        s,
        "# processes it started ($RUN_DIR: the suite's temporary directory; ports differ per run):"
    );
    for c in &rep.server_commands {
        let _ = writeln!(s, "{c}");
    }
    let _ = writeln!(
        s,
        "# the generator runs of round 1, in order (later rounds differ in bucket and JSON file):"
    );
    for r in rep.runs.iter().filter(|r| r.round == 1) {
        let _ = writeln!(s, "{}", r.command);
    }
    let _ = writeln!(s, "```");
}

/// A few lines for the terminal at the end.
pub(super) fn summary(rep: &SuiteReport) -> String {
    let mut s =
        String::from("\nsuite summary (median round: ops/s, ceiling ops/s, ratio, p99 ms):\n");
    for c in case_results(rep) {
        let r = c.median;
        let t = &r.report.run.total;
        let _ = writeln!(
            s,
            "  {:<16} {:<3} {:<8} {:>9} {:>9}  {:>7}  p99 {}",
            r.system,
            workload_label(r),
            r.report.settings.dist.name(),
            thousands(t.throughput),
            r.reference.map_or("-".into(), thousands),
            r.ratio.map_or("-".into(), percent),
            t.latency_ms.as_ref().map_or("-".into(), |l| ms(l.p99))
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::sample::suite_report;
    use super::super::splice::splice;
    use super::*;

    /// The section, summary and new file the sample report makes, as
    /// docs/benchmarks.md depends on them.
    const EXPECTED: &str = include_str!("testdata/report.md");

    fn rendered() -> String {
        let rep = suite_report();
        let s = markdown_section(&rep, Some("A note."), Duration::from_secs(2));
        let s2 = markdown_section(&rep, None, Duration::from_millis(1500));
        format!(
            "{s}=====\n{s2}=====\n{}=====\n{}",
            summary(&rep),
            splice(None, "sample", &s)
        )
    }

    #[test]
    fn the_markdown_is_unchanged() {
        let got = rendered();
        if got != EXPECTED {
            // Show the first difference, not two walls of text.
            let line = got
                .lines()
                .zip(EXPECTED.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(got.lines().count().min(EXPECTED.lines().count()));
            panic!(
                "the Markdown differs from testdata/report.md at line {}:\n got: {:?}\nwant: {:?}",
                line + 1,
                got.lines().nth(line),
                EXPECTED.lines().nth(line)
            );
        }
    }

    #[test]
    fn the_json_keeps_every_run() {
        let rep = suite_report();
        let back: SuiteReport =
            serde_json::from_str(&serde_json::to_string(&rep).unwrap()).unwrap();
        assert_eq!(back.runs.len(), rep.runs.len());
        assert_eq!((back.label, back.rounds), (rep.label, rep.rounds));
        assert_eq!(back.runs[4].references, rep.runs[4].references);
        assert_eq!(back.machine.commit, rep.machine.commit);
    }
}
