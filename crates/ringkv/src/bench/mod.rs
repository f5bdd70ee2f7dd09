//! `ringkv bench`: a load generator for ringkv's HTTP API (and, with
//! `--target ceiling`, for the HTTP ceiling server), and `ringkv bench
//! suite`, the standard set of runs that writes `docs/benchmarks.md`.
//!
//! Workloads follow YCSB (A: 50 % reads / 50 % updates, B: 95/5, C: reads,
//! W: updates, RMW: read then write with the read's context), over uniform,
//! zipfian or hotspot key choices. Closed loop by default (each client sends
//! its next request when the previous one is answered); with `--rate` open
//! loop: requests are due at fixed intervals and latency counts from when a
//! request was due, so a slow server cannot hide its queueing (no
//! coordinated omission).

mod http;
mod keys;
mod plan;
mod run;
mod stats;
mod suite;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::cli::{DEFAULT_ENDPOINT, parse_quorum};
pub(crate) use http::HttpClient;
pub(crate) use keys::{DistKind, Workload};
use plan::{describe, plan};
pub(crate) use run::Target;
use stats::PhaseReport;

/// Exit code of a failed benchmark (as every other failure of the binary).
const EXIT_ERROR: u8 = 2;

/// Version of the JSON documents written with `--json`.
pub(crate) const JSON_VERSION: u32 = 1;

/// `ringkv bench`: run a workload, or `ringkv bench suite`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct BenchArgs {
    /// `suite`: the standard set of runs, written to docs/benchmarks.md.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// The options of one run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands of `ringkv bench`.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Start a 3-node and a 1-node cluster and the HTTP ceiling server on
    /// loopback, run the standard workloads against each with the same
    /// generator, and write the figures to docs/benchmarks.md.
    Suite(suite::SuiteArgs),
}

/// The options of one `ringkv bench` run.
#[derive(Clone, Debug, Args)]
pub(crate) struct RunArgs {
    /// HTTP endpoint(s), comma-separated; client i uses endpoint i mod count.
    /// https:// needs --ca.
    #[arg(long, env = "RINGKV_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Bearer token sent with every request (servers started with
    /// --token-file require one). Never written to the --json report.
    #[arg(long, env = "RINGKV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster's CA certificate (PEM, DIR/ca.crt of `ringkv cert
    /// init`), for https:// endpoints.
    #[arg(long, env = "RINGKV_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Which API to speak: ringkv's, or the HTTP ceiling server's
    /// (`PUT/GET /kv/{key}`, no contexts).
    #[arg(long, value_enum, default_value = "ringkv")]
    pub target: Target,
    /// a: 50% read / 50% update; b: 95/5; c: read only; w: update only;
    /// rmw: read, then write with the read's context.
    #[arg(long, value_enum, default_value = "a")]
    pub workload: Workload,
    /// How keys are chosen.
    #[arg(long, value_enum, default_value = "uniform")]
    pub dist: DistKind,
    /// Skew of --dist zipfian, in (0, 1).
    #[arg(long, default_value_t = 0.99)]
    pub zipf_theta: f64,
    /// --dist hotspot: fraction of the keys that are hot.
    #[arg(long, default_value_t = 0.1)]
    pub hot_keys: f64,
    /// --dist hotspot: fraction of the operations that go to hot keys.
    #[arg(long, default_value_t = 0.9)]
    pub hot_ops: f64,
    /// Number of keys (key0 .. key{N-1}).
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Size of every written value, in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// How long to measure, e.g. 10s, 500ms, 2m. [default: 10s]
    #[arg(long, value_parser = parse_duration, conflicts_with = "ops")]
    pub duration: Option<Duration>,
    /// Measure this many operations instead of a duration.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Open loop: send this many operations per second in all, on a fixed
    /// schedule, and time each from when it was due. Closed loop without it.
    #[arg(long, value_name = "OPS_PER_S")]
    pub rate: Option<f64>,
    /// Replies a read waits for (sent as ?r=): a number, one, quorum or all.
    #[arg(long, value_parser = parse_quorum)]
    pub r: Option<String>,
    /// Acks a write waits for (sent as ?w=): a number, one, quorum or all.
    #[arg(long, value_parser = parse_quorum)]
    pub w: Option<String>,
    /// Bucket of the keys (ringkv target).
    #[arg(long, default_value = "bench")]
    pub bucket: String,
    /// Write every key once before measuring.
    #[arg(long)]
    pub load: bool,
    /// Run the workload this long before measuring (after the load phase),
    /// on the same connections, and discard its figures.
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// Send updates without a context (each adds a sibling until the
    /// server's limit); by default an update carries the latest context the
    /// generator saw for its key.
    #[arg(long)]
    pub blind_updates: bool,
    /// Longest wait for one request before it counts as a timeout.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Runtime threads of the generator: 1 is tokio's current-thread
    /// runtime, more a multi-thread runtime with that many workers.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// HTTP client library (hyper is leaner; reqwest is there to compare).
    #[arg(long, value_enum, default_value = "hyper")]
    pub http_client: HttpClient,
    /// Seed of the key and operation choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The settings of a run, as recorded in its JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Settings {
    /// See [`RunArgs::target`].
    pub target: Target,
    /// Endpoints, normalized.
    pub endpoints: Vec<String>,
    /// See [`RunArgs::workload`].
    pub workload: Workload,
    /// See [`RunArgs::dist`].
    pub dist: DistKind,
    /// Zipfian skew, when zipfian.
    pub zipf_theta: Option<f64>,
    /// Hot key and operation fractions, when hotspot.
    pub hotspot: Option<(f64, f64)>,
    /// See [`RunArgs::keys`].
    pub keys: u64,
    /// See [`RunArgs::value_bytes`].
    pub value_bytes: usize,
    /// See [`RunArgs::concurrency`].
    pub concurrency: usize,
    /// Measured duration asked for, in seconds (when not by count).
    pub duration_s: Option<f64>,
    /// Operations asked for (when not by duration).
    pub ops: Option<u64>,
    /// Open-loop rate, when open loop.
    pub rate: Option<f64>,
    /// See [`RunArgs::r`].
    pub r: Option<String>,
    /// See [`RunArgs::w`].
    pub w: Option<String>,
    /// Bucket (ringkv target).
    pub bucket: Option<String>,
    /// See [`RunArgs::load`].
    pub load: bool,
    /// See [`RunArgs::warmup`], in seconds.
    #[serde(default)]
    pub warmup_s: Option<f64>,
    /// See [`RunArgs::blind_updates`].
    pub blind_updates: bool,
    /// See [`RunArgs::threads`].
    pub threads: u16,
    /// See [`RunArgs::http_client`].
    pub http_client: HttpClient,
    /// See [`RunArgs::seed`].
    pub seed: u64,
}

/// What `--json` writes for one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Report {
    /// [`JSON_VERSION`].
    pub version: u32,
    /// The command line of the run.
    pub command: String,
    /// The settings.
    pub settings: Settings,
    /// The load phase, when `--load` was given.
    pub load: Option<PhaseReport>,
    /// The measured phase.
    pub run: PhaseReport,
}

/// Parses `10s`, `500ms`, `2m`, `1h` or a number of seconds (`2.5`).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration; use e.g. 10s, 500ms, 2m"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "sec" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {s:?}; use ms, s, m or h"
            ));
        }
    };
    if !(secs > 0.0 && secs < 1e9) {
        return Err(format!("{s:?} must be a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The command line of this process, quoted where needed, with the value
/// of `--token` hidden.
pub(crate) fn command_line() -> String {
    redact_token(std::env::args())
}

/// Joins `args` as [`command_line`] does.
fn redact_token(args: impl Iterator<Item = String>) -> String {
    let mut out = Vec::new();
    let mut hide_next = false;
    for a in args {
        if std::mem::take(&mut hide_next) {
            out.push("REDACTED".to_string());
        } else if a.starts_with("--token=") {
            out.push("--token=REDACTED".to_string());
        } else {
            hide_next = a == "--token";
            out.push(shell_quote(&a));
        }
    }
    out.join(" ")
}

/// Quotes `s` for a POSIX shell when it needs it.
pub(crate) fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs one benchmark; prints the table; writes the JSON if asked.
async fn bench(args: RunArgs) -> anyhow::Result<()> {
    let (plan, settings) = plan(&args).await?;
    println!("ringkv bench: {}", describe(&settings));
    let _ = std::io::stdout().flush();
    let outcome = run::execute(plan).await?;
    print!("{}", stats::phase_table(&outcome.run));
    println!(
        "measured {:.2} s; throughput counts successful operations; latency in ms",
        outcome.run.elapsed_s
    );
    let report = Report {
        version: JSON_VERSION,
        command: command_line(),
        settings,
        load: outcome.load,
        run: outcome.run,
    };
    if let Some(path) = &args.json {
        write_json(path, &report)?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON to `path`.
pub(crate) fn write_json<T: Serialize>(path: &std::path::Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("cannot encode the JSON report")?;
    std::fs::write(path, text + "\n")
        .with_context(|| format!("cannot write --json file {}", path.display()))
}

/// `ringkv bench ...`: builds the runtime the options ask for and runs.
pub(crate) fn main(args: BenchArgs) -> ExitCode {
    let result = match args.command {
        Some(BenchCommand::Suite(suite)) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
            .and_then(|rt| rt.block_on(suite::run(suite))),
        None => {
            let threads = usize::from(args.run.threads);
            let rt = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .enable_all()
                    .build()
            };
            rt.context("cannot start the async runtime")
                .and_then(|rt| rt.block_on(bench(args.run)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn tokens_are_not_recorded() {
        let args = [
            "ringkv",
            "bench",
            "--token",
            "s3cret",
            "--token=s3cret",
            "--keys",
            "10",
        ];
        let line = redact_token(args.iter().map(|s| s.to_string()));
        assert_eq!(
            line,
            "ringkv bench --token REDACTED --token=REDACTED --keys 10"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--keys=10"), "--keys=10");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}

#[cfg(test)]
mod cli_tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        let cli = Cli::try_parse_from(["ringkv", "bench"].iter().chain(args))?;
        match cli.command {
            Command::Bench(b) => Ok(*b),
            other => panic!("not bench: {other:?}"),
        }
    }

    #[test]
    fn run_options() {
        let b = parse(&[
            "--workload",
            "b",
            "--dist",
            "zipfian",
            "--ops",
            "10",
            "--r",
            "1",
        ])
        .unwrap();
        assert!(b.command.is_none());
        assert_eq!(b.run.workload, Workload::B);
        assert_eq!(b.run.dist, DistKind::Zipfian);
        assert_eq!((b.run.ops, b.run.duration), (Some(10), None));
        assert_eq!(b.run.r.as_deref(), Some("1"));
        assert_eq!(
            (b.run.concurrency, b.run.keys, b.run.value_bytes),
            (64, 1000, 100)
        );
        assert!(parse(&["--duration", "1s", "--ops", "5"]).is_err());
        assert!(parse(&["--workload", "z"]).is_err());
        assert!(parse(&["--w", "0"]).is_err());
        assert!(parse(&["--threads", "0"]).is_err());
        let b = parse(&[
            "--rate",
            "1000",
            "--duration",
            "500ms",
            "--target",
            "ceiling",
        ])
        .unwrap();
        assert_eq!(b.run.rate, Some(1000.0));
        assert_eq!(b.run.duration, Some(Duration::from_millis(500)));
        assert_eq!(b.run.target, Target::Ceiling);
    }

    #[test]
    fn suite_options() {
        let b = parse(&["suite", "--quick", "--label", "before"]).unwrap();
        let Some(BenchCommand::Suite(s)) = b.command else {
            panic!("not suite")
        };
        assert!(s.quick);
        assert_eq!(s.label, "before");
        assert!(parse(&["suite", "--quick", "--duration", "3s"]).is_err());
        // Run options do not mix with the suite.
        assert!(parse(&["--workload", "a", "suite"]).is_err());
    }

    #[tokio::test]
    async fn bad_run_options_are_refused_before_anything_is_sent() {
        let base = parse(&["--endpoint", "127.0.0.1:1"]).unwrap().run;
        let with = |f: &dyn Fn(&mut RunArgs)| {
            let mut a = base.clone();
            f(&mut a);
            a
        };
        for args in [
            with(&|a| a.concurrency = 0),
            with(&|a| a.ops = Some(0)),
            with(&|a| a.rate = Some(-1.0)),
            with(&|a| a.keys = 0),
            with(&|a| a.bucket = "..".into()),
            with(&|a| a.endpoint = " , ".into()),
            with(&|a| a.endpoint = "https://x:1".into()),
            with(&|a| a.endpoint = "ftp://x:1".into()),
            with(&|a| a.ca = Some("/nonexistent/ca.crt".into())),
            with(&|a| {
                a.target = Target::Ceiling;
                a.w = Some("2".into());
            }),
            with(&|a| {
                a.dist = DistKind::Hotspot;
                a.hot_ops = 2.0;
            }),
        ] {
            assert!(plan(&args).await.is_err(), "{args:?}");
        }
        let (p, _) = plan(&with(&|a| a.bucket = "a b".into())).await.unwrap();
        assert_eq!(p.prefix, "/v1/kv/a%20b/");
    }
}
