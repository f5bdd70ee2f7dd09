//! `ringkv sim`: run one scenario, sweep many seeds, or write an experiment
//! report. The binary crate only forwards to [`main`].

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use ringkv_node::InjectedBugs;

use crate::check::report_all;
use crate::experiment::{EXPERIMENTS, Options, run_experiment, write_report};
use crate::observe::observe;
use crate::scenario::Scenario;

/// What `ringkv sim` can do.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Run one scenario with one seed; print its summary and any invariant
    /// violations (exit 1 if there are any).
    Run(RunArgs),
    /// Run a scenario for a range of seeds; print each failing seed with the
    /// command that replays it (exit 1 if any failed).
    Sweep(SweepArgs),
    /// Run an experiment (or `all`) and write a report (markdown, SVG, JSON).
    Experiment(ExperimentArgs),
}

/// A deliberate node bug, to see the checkers fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Bug {
    /// Acknowledge writes before W acks.
    AckBeforeQuorum,
    /// Ignore the client's context on writes.
    IgnoreContext,
    /// Strong buckets: serve reads from any voter's store, without ReadIndex.
    StrongStaleReads,
    /// Strong buckets: acknowledge writes when proposed, before commit.
    StrongAckBeforeCommit,
    /// Anti-entropy: writes stop updating the hash trees once built.
    AaeStaleTrees,
    /// Purge old tombstones without checking every replica holds them.
    PurgeUnconfirmed,
    /// Cluster manager: write the document without compare-and-set.
    ClusterBlindWrites,
}

/// `ringkv sim run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The seed that decides everything.
    #[arg(long)]
    pub seed: u64,
    /// Scenario file (TOML).
    #[arg(long)]
    pub scenario: PathBuf,
    /// Inject a node bug (test the checkers).
    #[arg(long, value_enum)]
    pub bug: Vec<Bug>,
    /// Write the history and figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `ringkv sim sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Seeds, as `A..B` (B excluded) or a single number.
    #[arg(long)]
    pub seeds: String,
    /// Scenario file (TOML).
    #[arg(long)]
    pub scenario: PathBuf,
    /// Inject a node bug (test the checkers).
    #[arg(long, value_enum)]
    pub bug: Vec<Bug>,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    pub jobs: Option<usize>,
}

/// `ringkv sim experiment`.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Experiment name, or `all`: delay, crashes, loss, hotspot, tvisibility.
    pub name: String,
    /// Directory for report.md, the SVG charts and report.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Seeds per point, comma-separated.
    #[arg(long, default_value = "1,2,3")]
    pub seeds: String,
    /// Shorter runs (a smoke check; figures are noisier).
    #[arg(long)]
    pub quick: bool,
    /// Scenario whose latency legs the t-visibility experiment uses
    /// (default: the shipped scenarios/pbs.toml).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
}

fn bugs(list: &[Bug]) -> InjectedBugs {
    InjectedBugs {
        ack_before_quorum: list.contains(&Bug::AckBeforeQuorum),
        ignore_context: list.contains(&Bug::IgnoreContext),
        strong_stale_reads: list.contains(&Bug::StrongStaleReads),
        strong_ack_before_commit: list.contains(&Bug::StrongAckBeforeCommit),
        aae_stale_trees: list.contains(&Bug::AaeStaleTrees),
        purge_unconfirmed: list.contains(&Bug::PurgeUnconfirmed),
        cluster_blind_writes: list.contains(&Bug::ClusterBlindWrites),
    }
}

fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read scenario {}: {e}", path.display()))?;
    Scenario::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses `A..B` (B excluded) or `A`.
pub fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("--seeds {s:?}: use A..B (B excluded) or a single seed");
    match s.split_once("..") {
        Some((a, b)) => {
            let a: u64 = a.trim().parse().map_err(|_| bad())?;
            let b: u64 = b.trim().parse().map_err(|_| bad())?;
            if a >= b {
                return Err(bad());
            }
            Ok(a..b)
        }
        None => {
            let a: u64 = s.trim().parse().map_err(|_| bad())?;
            Ok(a..a.saturating_add(1))
        }
    }
}

fn replay_command(seed: u64, scenario: &Path, bug: &[Bug]) -> String {
    let mut cmd = format!(
        "ringkv sim run --seed {seed} --scenario {}",
        scenario.display()
    );
    for b in bug {
        let name = b
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        cmd.push_str(&format!(" --bug {name}"));
    }
    cmd
}

/// Runs a `ringkv sim` command; errors are messages for the user.
pub fn main(cmd: SimCommand) -> Result<ExitCode, String> {
    match cmd {
        SimCommand::Run(a) => sim_run(a),
        SimCommand::Sweep(a) => sim_sweep(a),
        SimCommand::Experiment(a) => sim_experiment(a),
    }
}

fn sim_run(a: RunArgs) -> Result<ExitCode, String> {
    let scenario = load(&a.scenario)?;
    let started = std::time::Instant::now();
    let result = crate::run(&scenario, a.seed, &bugs(&a.bug));
    let wall = started.elapsed();
    let obs = observe(&result.history, scenario.duration_ms);
    let report = report_all(&result.history);
    let mut violations: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    violations.extend(result.convergence_violation());
    violations.extend(result.manager_violation());
    let violations = &violations;
    println!("scenario {:?}, seed {}", scenario.name, a.seed);
    for line in &result.stats.fault_log {
        println!("  {line}");
    }
    println!(
        "simulated {} ms in {:.2} s wall: {} ops, {} events, {} messages ({} dropped)",
        result.stats.sim_ms,
        wall.as_secs_f64(),
        result.stats.ops_invoked,
        result.stats.events,
        result.stats.messages_sent,
        result.stats.messages_dropped
    );
    let st = &result.stats;
    println!(
        "hinted writes {}, hints delivered {}, hints left at the end {}, read repairs {}, \
         keys repaired by anti-entropy {} (counters of the nodes running at the end)",
        st.hinted_writes, st.hints_delivered, st.hints_left, st.read_repairs, st.aae_keys_repaired
    );
    if let Some(c) = &result.convergence {
        println!(
            "convergence: {} keys checked, {} divergent; {} deleted keys checked, {} came back; \
             {} tombstones purged",
            c.keys, c.divergent, c.deleted_keys, c.resurrected, st.tombstones_purged
        );
    }
    println!("{}", obs.summary());
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "seed": a.seed,
            "scenario": scenario,
            "stats": result.stats,
            "observations": obs,
            "violations": violations,
            "convergence": result.convergence,
            "inconclusive": report.inconclusive,
            "history": result.history,
        });
        std::fs::write(
            path,
            serde_json::to_string(&doc).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    for i in &report.inconclusive {
        println!("inconclusive (neither passed nor failed): {i}");
    }
    if violations.is_empty() {
        println!(
            "invariants: ok (no acknowledged write lost; siblings only for concurrent writes; \
             strong keys linearizable{}{})",
            if result.convergence.is_some() {
                "; every replica converged"
            } else {
                ""
            },
            if report.inconclusive.is_empty() {
                ""
            } else {
                ", except the inconclusive keys above"
            }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!("invariants: {} violation(s)", violations.len());
        for v in violations.iter().take(20) {
            println!("  {v}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// The outcome of one seed of a sweep.
struct SeedResult {
    seed: u64,
    ops: u64,
    violations: Vec<String>,
    /// What the checkers could not decide.
    inconclusive: Vec<String>,
}

/// Runs one seed of a sweep and checks its history.
fn run_seed(scenario: &Scenario, seed: u64, injected: &InjectedBugs) -> SeedResult {
    let r = crate::run(scenario, seed, injected);
    let report = report_all(&r.history);
    let mut violations: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    violations.extend(r.convergence_violation());
    violations.extend(r.manager_violation());
    SeedResult {
        seed,
        ops: r.stats.ops_invoked,
        violations,
        inconclusive: report.inconclusive,
    }
}

fn sim_sweep(a: SweepArgs) -> Result<ExitCode, String> {
    let scenario = load(&a.scenario)?;
    let seeds = parse_seeds(&a.seeds)?;
    let jobs = a
        .jobs
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .max(1);
    let injected = bugs(&a.bug);
    let started = std::time::Instant::now();
    let all: Vec<u64> = seeds.clone().collect();
    let mut results: Vec<SeedResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..jobs)
            .map(|j| {
                let mine: Vec<u64> = all.iter().copied().skip(j).step_by(jobs).collect();
                let scenario = &scenario;
                let injected = &injected;
                scope.spawn(move || {
                    mine.into_iter()
                        .map(|seed| run_seed(scenario, seed, injected))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("sweep worker"))
            .collect()
    });
    results.sort_by_key(|r| r.seed);
    let failed: Vec<&SeedResult> = results
        .iter()
        .filter(|r| !r.violations.is_empty())
        .collect();
    let inconclusive: Vec<&SeedResult> = results
        .iter()
        .filter(|r| r.violations.is_empty() && !r.inconclusive.is_empty())
        .collect();
    let ops: u64 = results.iter().map(|r| r.ops).sum();
    let wall = started.elapsed().as_secs_f64();
    println!(
        "sweep of {:?}: {} seeds, {} simulated ops in {:.1} s ({:.0} ops/s), {} failed, \
         {} inconclusive",
        scenario.name,
        results.len(),
        ops,
        wall,
        ops as f64 / wall.max(1e-9),
        failed.len(),
        inconclusive.len()
    );
    for r in &inconclusive {
        println!(
            "seed {} inconclusive: {}",
            r.seed,
            r.inconclusive.join("; ")
        );
        println!("  replay: {}", replay_command(r.seed, &a.scenario, &a.bug));
    }
    for r in &failed {
        println!("seed {} failed: {}", r.seed, r.violations[0]);
        if r.violations.len() > 1 {
            println!("  (and {} more)", r.violations.len() - 1);
        }
        println!("  replay: {}", replay_command(r.seed, &a.scenario, &a.bug));
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn sim_experiment(a: ExperimentArgs) -> Result<ExitCode, String> {
    let seeds: Vec<u64> = a
        .seeds
        .split(',')
        .map(|s| {
            s.trim().parse::<u64>().map_err(|_| {
                format!(
                    "--seeds {:?}: use a comma-separated list of numbers",
                    a.seeds
                )
            })
        })
        .collect::<Result<_, _>>()?;
    if seeds.is_empty() {
        return Err("--seeds needs at least one seed".into());
    }
    let mut opts = Options::standard();
    opts.seeds = seeds;
    opts.quick = a.quick;
    if let Some(p) = &a.scenario {
        opts.tvis_scenario = load(p)?;
    }
    let names: Vec<&str> = if a.name == "all" {
        EXPERIMENTS.to_vec()
    } else if EXPERIMENTS.contains(&a.name.as_str()) {
        vec![a.name.as_str()]
    } else {
        return Err(format!(
            "unknown experiment {:?}; known: all, {}",
            a.name,
            EXPERIMENTS.join(", ")
        ));
    };
    let mut exps = vec![];
    for name in names {
        let started = std::time::Instant::now();
        eprintln!("experiment {name}: running");
        let e = run_experiment(name, &opts)?;
        eprintln!(
            "experiment {name}: {} simulated ops in {:.1} s, largest spread across seeds {:.1} %",
            e.ops,
            started.elapsed().as_secs_f64(),
            e.spread * 100.0
        );
        exps.push(e);
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let command = command
        .rsplit_once("/ringkv ")
        .map(|(_, c)| format!("ringkv {c}"))
        .unwrap_or(command);
    let files = write_report(&exps, &opts, &command, &a.out)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse() {
        assert_eq!(parse_seeds("3..7"), Ok(3..7));
        assert_eq!(parse_seeds("5"), Ok(5..6));
        assert!(parse_seeds("7..3").is_err());
        assert!(parse_seeds("a..b").is_err());
    }

    #[test]
    fn replay_command_names_seed_scenario_and_bugs() {
        let c = replay_command(
            42,
            Path::new("scenarios/faults.toml"),
            &[Bug::AckBeforeQuorum],
        );
        assert_eq!(
            c,
            "ringkv sim run --seed 42 --scenario scenarios/faults.toml --bug ack-before-quorum"
        );
    }
}
