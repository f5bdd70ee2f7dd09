//! Experiments: sweeps of simulated runs whose figures go into a report
//! (markdown tables and SVG charts) under `docs/experiments/`.
//!
//! They measure how latency, throughput and stale reads change with R and W,
//! message delay, failures, loss and key skew, on the real node code. Every
//! point is the mean over several seeds; the report gives the spread across
//! seeds so a reader can judge how stable each figure is.

mod tvis;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ringkv_core::legs::LegHistograms;
use ringkv_node::InjectedBugs;

use crate::observe::{Observations, observe};
use crate::plot::{Figure, Series, svg};
use crate::scenario::{Arrival, Fault, FaultKind, KeyDist, Latency, Mix, Scenario};

/// Names accepted by [`run_experiment`], in report order.
pub const EXPERIMENTS: [&str; 5] = ["delay", "crashes", "loss", "hotspot", "tvisibility"];

/// The (R, W) pairs of the N=5 experiments.
const RW_N5: [(usize, usize); 3] = [(1, 1), (2, 2), (3, 3)];

/// A table of a report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Table {
    /// Caption.
    pub title: String,
    /// Column names.
    pub headers: Vec<String>,
    /// Cells.
    pub rows: Vec<Vec<String>>,
}

/// The outcome of one experiment.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Experiment {
    /// Short name (see [`EXPERIMENTS`]).
    pub name: String,
    /// Heading.
    pub title: String,
    /// What was run, in a sentence or two.
    pub setup: String,
    /// Charts.
    pub figures: Vec<Figure>,
    /// Tables.
    pub tables: Vec<Table>,
    /// Largest relative spread across seeds of the headline figure.
    pub spread: f64,
    /// Simulated operations in all runs.
    pub ops: u64,
}

/// How hard to run the experiments.
#[derive(Clone, Debug)]
pub struct Options {
    /// Seeds per point (figures are their mean).
    pub seeds: Vec<u64>,
    /// Shorter runs, for tests and smoke checks.
    pub quick: bool,
    /// Scenario whose latency legs the t-visibility experiment uses.
    pub tvis_scenario: Scenario,
}

impl Options {
    /// Three seeds, full length, the shipped PBS scenario.
    pub fn standard() -> Self {
        Options {
            seeds: vec![1, 2, 3],
            quick: false,
            tvis_scenario: pbs_scenario(),
        }
    }
}

/// The shipped `scenarios/pbs.toml`.
pub fn pbs_scenario() -> Scenario {
    Scenario::from_toml(include_str!("../../../scenarios/pbs.toml"))
        .expect("shipped scenario parses")
}

/// The N=5 on 10 nodes setup with exponential message delay of mean `delay_ms`.
fn n5(delay_ms: f64, r: usize, w: usize, quick: bool) -> Scenario {
    // Simulated time in proportion to the delay, so every point gets about
    // the same number of operations: some 100,000 or more per run (a fifth
    // with `quick`). Fewer made the p99 figures move between seeds.
    let per_ms = if quick { 200.0 } else { 1_000.0 };
    let duration_ms = (per_ms * delay_ms.max(1.0)).max(2_000.0) as u64;
    Scenario {
        name: format!("n5-d{delay_ms}-r{r}w{w}"),
        nodes: 10,
        ring_size: 64,
        n: 5,
        r,
        w,
        timeout_ms: 2_000,
        duration_ms,
        network: crate::scenario::Network {
            latency: crate::scenario::Legs {
                default: Latency::Exponential {
                    mean_ms: delay_ms,
                    min_ms: 0.0,
                },
                ..Default::default()
            },
            ..Default::default()
        },
        workload: crate::scenario::Workload {
            clients: 50,
            arrival: Arrival::Closed { think_ms: 0 },
            keys: 100,
            key_dist: KeyDist::Uniform,
            mix: Mix {
                get: 0.5,
                put: 0.0,
                rmw: 0.5,
                delete: 0.0,
            },
            value_bytes: 16,
            strong: None,
        },
        ..Scenario::default()
    }
}

/// Mean and relative spread ((max - min) / mean) of `xs`.
fn mean_spread(xs: &[f64]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / xs.len() as f64;
    let max = xs.iter().cloned().fold(f64::MIN, f64::max);
    let min = xs.iter().cloned().fold(f64::MAX, f64::min);
    let spread = if mean.abs() > 1e-9 {
        (max - min) / mean
    } else {
        0.0
    };
    (mean, spread)
}

/// Runs `s` once per seed, the seeds on parallel threads (each run is a
/// pure function of its seed, so the figures do not depend on the
/// threads); returns the observations in seed order.
fn runs(s: &Scenario, opts: &Options, ops: &mut u64) -> Result<Vec<Observations>, String> {
    let with_legs = runs_with_legs(s, opts, ops)?;
    Ok(with_legs.into_iter().map(|(o, _)| o).collect())
}

/// As [`runs`], with the latency legs each run's nodes measured.
fn runs_with_legs(
    s: &Scenario,
    opts: &Options,
    ops: &mut u64,
) -> Result<Vec<(Observations, LegHistograms)>, String> {
    s.validate().map_err(|e| e.to_string())?;
    let results: Vec<(u64, Observations, LegHistograms)> = std::thread::scope(|scope| {
        let handles: Vec<_> = opts
            .seeds
            .iter()
            .map(|&seed| {
                scope.spawn(move || {
                    let r = crate::run(s, seed, &InjectedBugs::default());
                    let obs = observe(&r.history, s.duration_ms);
                    (r.stats.ops_invoked, obs, r.legs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("experiment run"))
            .collect()
    });
    *ops += results.iter().map(|(n, _, _)| n).sum::<u64>();
    Ok(results.into_iter().map(|(_, o, l)| (o, l)).collect())
}

/// One figure per seed run, reduced by `f` to mean and spread.
fn agg(obs: &[Observations], f: impl Fn(&Observations) -> f64) -> (f64, f64) {
    mean_spread(&obs.iter().map(f).collect::<Vec<_>>())
}

fn p50(o: &Observations, op: &str) -> f64 {
    o.per_op.get(op).map(|s| s.latency_ms.p50).unwrap_or(0.0)
}

/// Mean latency: the headline figure. The median of R=1 reads and W=1
/// writes sits between two modes (answered by the coordinator's own replica
/// in 0 ms, or by a peer after a round trip), so it jumps between seeds.
fn mean(o: &Observations, op: &str) -> f64 {
    o.per_op.get(op).map(|s| s.latency_ms.mean).unwrap_or(0.0)
}

fn p99(o: &Observations, op: &str) -> f64 {
    o.per_op.get(op).map(|s| s.latency_ms.p99).unwrap_or(0.0)
}

fn rw_label(r: usize, w: usize) -> String {
    format!("R={r} W={w}")
}

fn fig(id: &str, title: &str, x: &str, y: &str, series: Vec<Series>) -> Figure {
    Figure {
        id: id.into(),
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        log_x: false,
        series,
    }
}

/// Runs the experiment `name`.
pub fn run_experiment(name: &str, opts: &Options) -> Result<Experiment, String> {
    match name {
        "delay" => delay(opts),
        "crashes" => crashes(opts),
        "loss" => loss(opts),
        "hotspot" => hotspot(opts),
        "tvisibility" => tvis::tvisibility(opts),
        other => Err(format!(
            "unknown experiment {other:?}; known: {}",
            EXPERIMENTS.join(", ")
        )),
    }
}

/// Read and write latency, and throughput, against message delay.
fn delay(opts: &Options) -> Result<Experiment, String> {
    let delays = [5.0, 10.0, 20.0, 40.0, 80.0];
    let mut ops = 0;
    let mut spread = 0.0f64;
    let (mut read, mut write, mut tput) = (vec![], vec![], vec![]);
    let mut rows = vec![];
    for (r, w) in RW_N5 {
        let (mut rs, mut ws, mut ts) = (vec![], vec![], vec![]);
        for d in delays {
            let obs = runs(&n5(d, r, w, opts.quick), opts, &mut ops)?;
            let p = DelayPoint::of(&obs);
            spread = p.spreads.iter().fold(spread, |acc, &s| acc.max(s));
            rs.push((d, p.read_mean));
            ws.push((d, p.write_mean));
            ts.push((d, p.throughput));
            rows.push(p.row(r, w, d));
        }
        read.push(Series {
            label: rw_label(r, w),
            points: rs,
        });
        write.push(Series {
            label: rw_label(r, w),
            points: ws,
        });
        tput.push(Series {
            label: rw_label(r, w),
            points: ts,
        });
    }
    Ok(Experiment {
        name: "delay".into(),
        title: "Latency and throughput against message delay".into(),
        setup: "10 nodes, N=5, 50 closed-loop clients, 100 keys, half reads and half \
                read-modify-writes; every message delayed by an exponential with the given mean."
            .into(),
        figures: delay_figures(read, write, tput),
        tables: vec![Table {
            title: "Latency (ms) and throughput per (R, W) and delay".into(),
            headers: [
                "R/W",
                "delay ms",
                "read mean",
                "read p50",
                "read p99",
                "write mean",
                "write p50",
                "write p99",
                "ops/s",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }],
        spread,
        ops,
    })
}

/// The figures of one point of the delay experiment (one (R, W), one
/// delay): means over the seeds.
struct DelayPoint {
    read_mean: f64,
    read_p50: f64,
    read_p99: f64,
    write_mean: f64,
    write_p50: f64,
    write_p99: f64,
    throughput: f64,
    /// Spread across seeds of the headline figures: read mean, write mean
    /// and throughput.
    spreads: [f64; 3],
}

impl DelayPoint {
    /// Reduces the observations of the point's seed runs.
    fn of(obs: &[Observations]) -> Self {
        let (read_mean, s1) = agg(obs, |o| mean(o, "get"));
        let (write_mean, s2) = agg(obs, |o| mean(o, "put"));
        let (read_p50, _) = agg(obs, |o| p50(o, "get"));
        let (write_p50, _) = agg(obs, |o| p50(o, "put"));
        let (read_p99, _) = agg(obs, |o| p99(o, "get"));
        let (write_p99, _) = agg(obs, |o| p99(o, "put"));
        let (throughput, s3) = agg(obs, |o| o.throughput_ops_per_s);
        DelayPoint {
            read_mean,
            read_p50,
            read_p99,
            write_mean,
            write_p50,
            write_p99,
            throughput,
            spreads: [s1, s2, s3],
        }
    }

    /// The point's row of the delay table, at (`r`, `w`) and delay `d` ms.
    fn row(&self, r: usize, w: usize, d: f64) -> Vec<String> {
        vec![
            rw_label(r, w),
            format!("{d}"),
            format!("{:.1}", self.read_mean),
            format!("{:.1}", self.read_p50),
            format!("{:.1}", self.read_p99),
            format!("{:.1}", self.write_mean),
            format!("{:.1}", self.write_p50),
            format!("{:.1}", self.write_p99),
            format!("{:.0}", self.throughput),
        ]
    }
}

/// The delay experiment's charts: read latency, write latency and
/// throughput, one series per (R, W).
fn delay_figures(read: Vec<Series>, write: Vec<Series>, tput: Vec<Series>) -> Vec<Figure> {
    vec![
        fig(
            "delay-read-latency",
            "Read latency (mean) vs message delay",
            "mean message delay (ms)",
            "mean read latency (ms)",
            read,
        ),
        fig(
            "delay-write-latency",
            "Write latency (mean) vs message delay",
            "mean message delay (ms)",
            "mean write latency (ms)",
            write,
        ),
        fig(
            "delay-throughput",
            "Throughput vs message delay",
            "mean message delay (ms)",
            "operations/s",
            tput,
        ),
    ]
}

/// Read latency with 0, 1 and 2 crashed nodes.
fn crashes(opts: &Options) -> Result<Experiment, String> {
    let mut ops = 0;
    let mut spread = 0.0f64;
    let mut series = vec![];
    let mut rows = vec![];
    for (r, w) in RW_N5 {
        let mut pts = vec![];
        for down in 0..=2usize {
            let mut s = n5(10.0, r, w, opts.quick);
            s.faults = (0..down)
                .map(|i| Fault {
                    at_ms: 0,
                    kind: FaultKind::Crash {
                        node: format!("n{}", 10 - i),
                    },
                })
                .collect();
            let obs = runs(&s, opts, &mut ops)?;
            let (rmean, s1) = agg(&obs, |o| mean(o, "get"));
            let (rp50, _) = agg(&obs, |o| p50(o, "get"));
            let (rp99, _) = agg(&obs, |o| p99(o, "get"));
            let (unavail, _) = agg(&obs, |o| o.unavailable as f64);
            spread = spread.max(s1);
            pts.push((down as f64, rmean));
            rows.push(vec![
                rw_label(r, w),
                down.to_string(),
                format!("{rmean:.1}"),
                format!("{rp50:.1}"),
                format!("{rp99:.1}"),
                format!("{unavail:.0}"),
            ]);
        }
        series.push(Series {
            label: rw_label(r, w),
            points: pts,
        });
    }
    Ok(Experiment {
        name: "crashes".into(),
        title: "Read latency with crashed nodes".into(),
        setup: "As the delay experiment at 10 ms mean delay; 0, 1 or 2 of the 10 nodes crash at \
                the start. Clients that pick a crashed node get an error at once (not counted in \
                latency)."
            .into(),
        figures: vec![fig(
            "crashes-read-latency",
            "Read latency (mean) vs crashed nodes",
            "crashed nodes",
            "mean read latency (ms)",
            series,
        )],
        tables: vec![Table {
            title: "Read latency (ms) and unavailable operations per run".into(),
            headers: [
                "R/W",
                "crashed",
                "read mean",
                "read p50",
                "read p99",
                "unavailable",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }],
        spread,
        ops,
    })
}

/// Stale-read share against message loss.
fn loss(opts: &Options) -> Result<Experiment, String> {
    let losses = [0.0, 0.01, 0.05, 0.10];
    let mut ops = 0;
    let mut series = vec![];
    let mut rows = vec![];
    let mut spread = 0.0f64;
    for (r, w) in RW_N5 {
        let mut pts = vec![];
        for l in losses {
            let mut s = n5(10.0, r, w, opts.quick);
            s.network.loss = l;
            let obs = runs(&s, opts, &mut ops)?;
            let (stale, s1) = agg(&obs, |o| o.stale_share * 100.0);
            let (unavail, _) = agg(&obs, |o| o.unavailable as f64);
            if stale > 0.5 {
                spread = spread.max(s1);
            }
            pts.push((l * 100.0, stale));
            rows.push(vec![
                rw_label(r, w),
                format!("{}", l * 100.0),
                format!("{stale:.2}"),
                format!("{unavail:.0}"),
            ]);
        }
        series.push(Series {
            label: rw_label(r, w),
            points: pts,
        });
    }
    Ok(Experiment {
        name: "loss".into(),
        title: "Stale reads against message loss".into(),
        setup: "As the delay experiment at 10 ms mean delay, with each message lost with the \
                given probability. A read is stale when it misses the latest write acknowledged \
                before it began."
            .into(),
        figures: vec![fig(
            "loss-stale-reads",
            "Stale reads vs message loss",
            "message loss (%)",
            "stale reads (%)",
            series,
        )],
        tables: vec![Table {
            title: "Stale reads (% of successful reads) and unavailable operations per run".into(),
            headers: ["R/W", "loss %", "stale %", "unavailable"]
                .map(String::from)
                .to_vec(),
            rows,
        }],
        spread,
        ops,
    })
}

/// Uniform against hotspot keys: latency and staleness.
fn hotspot(opts: &Options) -> Result<Experiment, String> {
    let mut ops = 0;
    let mut rows = vec![];
    let mut spread = 0.0f64;
    for (r, w) in RW_N5 {
        for (label, dist) in [
            ("uniform", KeyDist::Uniform),
            (
                "hotspot 90/10",
                KeyDist::Hotspot {
                    hot_keys: 0.1,
                    hot_ops: 0.9,
                },
            ),
        ] {
            let mut s = n5(10.0, r, w, opts.quick);
            s.workload.key_dist = dist;
            let obs = runs(&s, opts, &mut ops)?;
            let (rmean, s1) = agg(&obs, |o| mean(o, "get"));
            let (rp50, _) = agg(&obs, |o| p50(o, "get"));
            let (wp50, _) = agg(&obs, |o| p50(o, "put"));
            let (rp99, _) = agg(&obs, |o| p99(o, "get"));
            let (stale, _) = agg(&obs, |o| o.stale_share * 100.0);
            spread = spread.max(s1);
            rows.push(vec![
                rw_label(r, w),
                label.into(),
                format!("{rmean:.1}"),
                format!("{rp50:.1}"),
                format!("{rp99:.1}"),
                format!("{wp50:.1}"),
                format!("{stale:.2}"),
            ]);
        }
    }
    Ok(Experiment {
        name: "hotspot".into(),
        title: "Uniform against hotspot keys".into(),
        setup: "As the delay experiment at 10 ms mean delay; keys uniform, or 90 % of operations \
                on 10 % of the keys."
            .into(),
        figures: vec![],
        tables: vec![Table {
            title: "Latency (ms) and stale reads (%)".into(),
            headers: [
                "R/W",
                "keys",
                "read mean",
                "read p50",
                "read p99",
                "write p50",
                "stale %",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        }],
        spread,
        ops,
    })
}

/// The report as markdown, charts referenced as `ID.svg`.
pub fn markdown(exps: &[Experiment], opts: &Options, command: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Experiments\n");
    let _ = writeln!(
        md,
        "Made by `{command}` with seeds {:?}; every figure is the mean over the seeds. \
         The spread is (max - min) / mean across seeds of each experiment's headline figure, \
         the largest over its points.\n",
        opts.seeds
    );
    for e in exps {
        let _ = writeln!(md, "## {}\n\n{}\n", e.title, e.setup);
        let _ = writeln!(
            md,
            "Simulated operations: {}; largest spread across seeds: {:.1} %.\n",
            e.ops,
            e.spread * 100.0
        );
        for f in &e.figures {
            let _ = writeln!(md, "![{}]({}.svg)\n", f.title, f.id);
        }
        for t in &e.tables {
            let _ = writeln!(md, "{}\n", t.title);
            let _ = writeln!(md, "| {} |", t.headers.join(" | "));
            let _ = writeln!(md, "|{}", " --- |".repeat(t.headers.len()));
            for r in &t.rows {
                let _ = writeln!(md, "| {} |", r.join(" | "));
            }
            md.push('\n');
        }
    }
    md
}

/// Writes `report.md`, one SVG per figure and `report.json` into `dir`.
pub fn write_report(
    exps: &[Experiment],
    opts: &Options,
    command: &str,
    dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut written = vec![];
    let mut put = |name: String, text: String| -> Result<(), String> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))?;
        written.push(p);
        Ok(())
    };
    for e in exps {
        for f in &e.figures {
            put(format!("{}.svg", f.id), svg(f)?)?;
        }
    }
    put("report.md".into(), markdown(exps, opts, command))?;
    put(
        "report.json".into(),
        serde_json::to_string_pretty(exps).map_err(|e| e.to_string())?,
    )?;
    Ok(written)
}
