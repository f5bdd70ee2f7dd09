//! `ringkv bench suite`: the standard set of runs, against a 3-node cluster
//! (N=3, R=2, W=2), a 1-node cluster (N=1) and the HTTP ceiling server, all
//! on loopback with the same generator, written to `docs/benchmarks.md`.
//!
//! It builds nothing: the generator and the nodes are this executable (build
//! it with `cargo build --release`), the ceiling server is `--ceiling-bin`.
//! Every process it starts is a child, stopped by its pid when the suite
//! ends or fails; data directories are temporary and removed.
//!
//! # Layout
//! - [`cases`]: the standard set of measurements and what each is compared with.
//! - [`processes`]: the clusters and the ceiling server it starts and stops.
//! - [`measure`]: the generator runs, round by round.
//! - [`machine`]: facts about the machine, for the report.
//! - [`report`]: the figures as a Markdown section and a terminal summary
//!   ([`mod@format`]: the number and date formats of its tables).
//! - [`splice`]: replacing the section of one `--label` in the Markdown file.

mod cases;
mod format;
mod machine;
mod measure;
mod processes;
mod report;
#[cfg(test)]
mod sample;
mod splice;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Args;

use super::parse_duration;
use crate::signals::Signals;
use report::SuiteReport;

/// Where [`BUILD_CEILING`] puts the ceiling server, relative to the
/// repository's root (the suite runs from there, as `--out` assumes).
const DEFAULT_CEILING_BIN: &str = "bench/http-ceiling/target/release/http-ceiling";

/// How to build the ceiling server, from the repository's root.
const BUILD_CEILING: &str = "cargo build --release --manifest-path bench/http-ceiling/Cargo.toml";

/// `ringkv bench suite`.
#[derive(Debug, Args)]
pub(crate) struct SuiteArgs {
    /// Measured time of each run, e.g. 10s. [default: 10s]
    #[arg(long, value_parser = parse_duration, conflicts_with = "quick")]
    pub(crate) duration: Option<Duration>,
    /// Short runs (2 s each), to check that the suite works.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Repeat the whole set this many times; each figure reported is the
    /// round with the median ratio to the ceiling, with the range of ratios.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) rounds: u32,
    /// The HTTP ceiling server's binary (build it with `cargo build --release
    /// --manifest-path bench/http-ceiling/Cargo.toml`).
    #[arg(long, default_value = DEFAULT_CEILING_BIN)]
    pub(crate) ceiling_bin: PathBuf,
    /// The Markdown file to write. Its section with the same --label is
    /// replaced; other sections are kept.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub(crate) out: PathBuf,
    /// Name of this run's section, e.g. "before optimisation".
    #[arg(long, default_value = "latest")]
    pub(crate) label: String,
    /// A paragraph placed under the section's heading.
    #[arg(long)]
    pub(crate) note: Option<String>,
    /// Also write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// Keys of every run (loaded before measuring).
    #[arg(long, default_value_t = 1000)]
    pub(crate) keys: u64,
    /// Value size of every run.
    #[arg(long, default_value_t = 100)]
    pub(crate) value_bytes: usize,
    /// Clients of every run.
    #[arg(long, default_value_t = 64)]
    pub(crate) concurrency: usize,
    /// Unmeasured time each run spends on its workload before measuring.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub(crate) warmup: Duration,
    /// Runtime threads of the generator for the ringkv runs (see `ringkv
    /// bench --threads`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) threads: u16,
    /// Generator thread counts to measure the ceiling server with (comma
    /// list); the best of them is the reference. Each system gets the
    /// generator setting that serves it best, so no setting that suits
    /// ringkv more than the ceiling can flatter the ratios.
    #[arg(long, value_delimiter = ',', default_value = "2",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) ceiling_threads: Vec<u16>,
}

/// Runs the suite and writes the Markdown (and JSON).
pub(crate) async fn run(args: SuiteArgs) -> anyhow::Result<()> {
    let duration = run_duration(&args);
    check_args(&args)?;
    let exe = std::env::current_exe().context("cannot find this executable")?;
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: {} is a debug build; benchmark figures need `cargo build --release`",
            exe.display()
        );
    }
    let tmp = tempfile::Builder::new()
        .prefix("ringkv-bench-suite-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let mut signals = Signals::new().context("cannot install signal handlers")?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut machine = machine::machine().await;
    let mut procs = processes::Processes::default();
    let mut measured = measure::Measured::default();
    let result = measure::measure(
        &args,
        &exe,
        duration,
        tmp.path(),
        &mut procs,
        &mut signals,
        &mut measured,
    )
    .await;
    procs.stop(&mut signals).await;
    result?;
    machine.load_average.1 = machine::load_average();
    // The record names the temporary directory by a placeholder: its path
    // differs per run and is gone afterwards.
    let run_dir = tmp.path().display().to_string();
    let hide = |c: &str| c.replace(&run_dir, "$RUN_DIR");
    measured.server_commands = measured.server_commands.iter().map(|c| hide(c)).collect();
    for r in &mut measured.runs {
        r.command = hide(&r.command);
    }

    let report = SuiteReport {
        version: super::JSON_VERSION,
        label: args.label.clone(),
        started_unix_s: started,
        command: super::command_line(),
        server_commands: measured.server_commands,
        machine,
        rounds: args.rounds,
        ceiling_threads: args.ceiling_threads.clone(),
        runs: measured.runs,
    };
    write_outputs(&args, &report, duration)
}

/// The measured time of each run: `--duration`, else 2 s with `--quick`,
/// else 10 s.
fn run_duration(args: &SuiteArgs) -> Duration {
    match (args.duration, args.quick) {
        (Some(d), _) => d,
        (None, true) => Duration::from_secs(2),
        (None, false) => Duration::from_secs(10),
    }
}

/// Refuses options the suite cannot work with, before anything starts.
fn check_args(args: &SuiteArgs) -> anyhow::Result<()> {
    if !args.ceiling_bin.is_file() {
        bail!(
            "the ceiling server is not at {}: build it from the repository's root with \
             `{BUILD_CEILING}`, or pass --ceiling-bin with its path",
            args.ceiling_bin.display()
        );
    }
    splice::check_label(&args.label)?;
    if args.ceiling_threads.is_empty() {
        bail!("--ceiling-threads needs at least one thread count");
    }
    Ok(())
}

/// Writes the Markdown section (and the JSON if asked), then prints the
/// summary.
fn write_outputs(args: &SuiteArgs, report: &SuiteReport, duration: Duration) -> anyhow::Result<()> {
    let section = report::markdown_section(report, args.note.as_deref(), duration);
    splice::write_markdown(&args.out, &args.label, &section)?;
    eprintln!("wrote {}", args.out.display());
    if let Some(path) = &args.json {
        super::write_json(path, report)?;
        eprintln!("wrote {}", path.display());
    }
    print!("{}", report::summary(report));
    Ok(())
}
