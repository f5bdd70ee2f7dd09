//! The measurements: starts the ceiling server and both clusters (all idle
//! while another is measured), then makes every round: for each case, the
//! ceiling runs it is compared with, right before it, then the ringkv run.
//! Each run is this executable's `bench` command as a child process, which
//! writes its figures as JSON.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Command;

use super::SuiteArgs;
use super::cases::{CLUSTERS, Case, reference_throughput, reference_workloads, standard_cases};
use super::processes::{Ceiling, Processes, start_cluster};
use super::report::SuiteRun;
use crate::bench::{DistKind, Report, Target, Workload, shell_quote};
use crate::process::FreePorts;
use crate::signals::Signals;

/// What the measurements produced, kept even when they fail half-way.
#[derive(Default)]
pub(super) struct Measured {
    /// The command lines of the servers started (ceiling, then nodes).
    pub(super) server_commands: Vec<String>,
    /// Every generator run, in the order made.
    pub(super) runs: Vec<SuiteRun>,
}

/// One generator run to make.
struct RunSpec {
    /// `ceiling` or the cluster's name.
    system: &'static str,
    /// Runtime threads of the generator.
    threads: u16,
    /// Which API the generator speaks.
    target: Target,
    /// The workload.
    workload: Workload,
    /// The key choice.
    dist: DistKind,
    /// The bucket (ringkv runs only).
    bucket: String,
}

/// What every run of a suite shares.
struct Runner<'a> {
    /// This executable: the generator.
    exe: &'a Path,
    /// The suite's options.
    args: &'a SuiteArgs,
    /// Measured time of each run.
    duration: Duration,
    /// Where the runs' JSON files go.
    tmp: &'a Path,
    /// Runs made so far (numbers the JSON files and the progress lines).
    counter: usize,
    /// Runs in the whole suite.
    total: usize,
}

/// Starts the processes (into `procs`, for the caller to stop) and makes
/// every round of the standard set.
pub(super) async fn measure(
    args: &SuiteArgs,
    exe: &Path,
    duration: Duration,
    tmp: &Path,
    procs: &mut Processes,
    signals: &mut Signals,
    out: &mut Measured,
) -> anyhow::Result<()> {
    let (ceiling, endpoints) = start_all(args, exe, tmp, procs, signals, out).await?;
    let cases = standard_cases();
    let per_round: usize = cases
        .iter()
        .map(|c| 1 + args.ceiling_threads.len() * reference_workloads(c.workload).len())
        .sum();
    let mut runner = Runner {
        exe,
        args,
        duration,
        tmp,
        counter: 0,
        total: per_round * args.rounds as usize,
    };
    for round in 1..=args.rounds {
        for case in &cases {
            let references = runner
                .ceiling_runs(case, round, &ceiling, signals, &mut out.runs)
                .await?;
            let run = runner
                .ringkv_run(
                    case,
                    round,
                    &endpoints[case.cluster],
                    references,
                    &out.runs,
                    signals,
                )
                .await?;
            out.runs.push(run);
        }
    }
    Ok(())
}

/// Starts the ceiling server and the clusters; returns the ceiling's
/// endpoint and each cluster's endpoints.
async fn start_all(
    args: &SuiteArgs,
    exe: &Path,
    tmp: &Path,
    procs: &mut Processes,
    signals: &mut Signals,
    out: &mut Measured,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut ports = FreePorts::new();
    let port = ports.next()?;
    let (ceiling, line) = Ceiling::start(&args.ceiling_bin, port, &tmp.join("ceiling.log")).await?;
    let ceiling_endpoint = format!("http://{}", ceiling.addr);
    procs.ceiling = Some(ceiling);
    out.server_commands.push(line);
    let mut endpoints = Vec::new();
    for cluster in CLUSTERS {
        let dir = tmp.join(cluster.system.replace(' ', "-"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let (n, r, w) = cluster.nrw;
        eprintln!("== starting {} (N={n} R={r} W={w})", cluster.system);
        let nodes = start_cluster(
            exe,
            &dir,
            cluster,
            &mut ports,
            signals,
            &mut out.server_commands,
        )
        .await?;
        endpoints.push(nodes.endpoints());
        procs.clusters.push(nodes);
    }
    Ok((ceiling_endpoint, endpoints))
}

impl Runner<'_> {
    /// The ceiling runs `case` is compared with; returns their indices in
    /// `runs`.
    async fn ceiling_runs(
        &mut self,
        case: &Case,
        round: u32,
        endpoint: &str,
        signals: &mut Signals,
        runs: &mut Vec<SuiteRun>,
    ) -> anyhow::Result<Vec<usize>> {
        let mut references = Vec::new();
        for workload in reference_workloads(case.workload) {
            for &threads in &self.args.ceiling_threads {
                let spec = RunSpec {
                    system: "ceiling",
                    threads,
                    target: Target::Ceiling,
                    workload,
                    dist: DistKind::Uniform,
                    bucket: String::new(),
                };
                let run = self.one_run(endpoint, &spec, round, signals).await?;
                references.push(runs.len());
                runs.push(run);
            }
        }
        Ok(references)
    }

    /// The ringkv run of `case`, with its ratio to the best of the ceiling
    /// runs at `references` (indices in `runs`).
    async fn ringkv_run(
        &mut self,
        case: &Case,
        round: u32,
        endpoints: &str,
        references: Vec<usize>,
        runs: &[SuiteRun],
        signals: &mut Signals,
    ) -> anyhow::Result<SuiteRun> {
        let spec = RunSpec {
            system: case.system,
            threads: self.args.threads,
            target: Target::Ringkv,
            workload: case.workload,
            dist: case.dist,
            bucket: case.bucket(round),
        };
        let mut run = self.one_run(endpoints, &spec, round, signals).await?;
        let best = |w: Workload| {
            references
                .iter()
                .map(|&i| &runs[i].report)
                .filter(|r| r.settings.workload == w)
                .map(|r| r.run.total.throughput)
                .fold(0.0, f64::max)
        };
        let reference = reference_throughput(case.workload, best);
        run.reference = Some(reference);
        run.ratio = (reference > 0.0).then(|| run.report.run.total.throughput / reference);
        run.references = references;
        eprintln!(
            "   {:.0} ops/s = {:.1} % of the ceiling's {:.0}",
            run.report.run.total.throughput,
            run.ratio.unwrap_or(0.0) * 100.0,
            reference
        );
        Ok(run)
    }

    /// Makes one generator run and returns it (no reference yet).
    async fn one_run(
        &mut self,
        endpoint: &str,
        spec: &RunSpec,
        round: u32,
        signals: &mut Signals,
    ) -> anyhow::Result<SuiteRun> {
        self.counter += 1;
        eprintln!(
            "== [{}/{}] round {round}: {} workload {}, {}, {} generator thread(s)",
            self.counter,
            self.total,
            spec.system,
            spec.workload.name().to_uppercase(),
            spec.dist.name(),
            spec.threads
        );
        let json = self.tmp.join(format!("run-{}.json", self.counter));
        let argv = generator_args(self.args, self.duration, endpoint, spec, &json);
        let (command, report) = run_generator(self.exe, &argv, &json, signals).await?;
        Ok(SuiteRun {
            system: spec.system.to_string(),
            round,
            command,
            references: Vec::new(),
            reference: None,
            ratio: None,
            report,
        })
    }
}

/// The arguments of the generator (`ringkv bench ...`) for one run.
fn generator_args(
    args: &SuiteArgs,
    duration: Duration,
    endpoints: &str,
    spec: &RunSpec,
    json: &Path,
) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "bench".into(),
        "--endpoint".into(),
        endpoints.into(),
        "--target".into(),
        format!("{:?}", spec.target).to_lowercase(),
        "--workload".into(),
        spec.workload.name().into(),
        "--dist".into(),
        spec.dist.name().into(),
        "--keys".into(),
        args.keys.to_string(),
        "--value-bytes".into(),
        args.value_bytes.to_string(),
        "--concurrency".into(),
        args.concurrency.to_string(),
        "--duration".into(),
        duration_arg(duration),
        "--warmup".into(),
        duration_arg(args.warmup),
        "--threads".into(),
        spec.threads.to_string(),
        "--load".into(),
    ];
    if spec.target == Target::Ringkv {
        argv.push("--bucket".into());
        argv.push(spec.bucket.clone());
    }
    argv.push("--json".into());
    argv.push(json.display().to_string());
    argv
}

/// Runs the generator as a child process and reads its JSON; returns its
/// command line and its report. A signal stops it and the suite.
async fn run_generator(
    exe: &Path,
    argv: &[String],
    json: &Path,
    signals: &mut Signals,
) -> anyhow::Result<(String, Report)> {
    let line = std::iter::once(shell_quote(&exe.display().to_string()))
        .chain(argv.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(exe)
        .args(argv)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start the generator (ringkv bench)")?;
    let status = tokio::select! {
        s = child.wait() => s.context("cannot wait for the generator")?,
        sig = signals.recv() => {
            let _ = child.kill().await;
            bail!("{sig} received, stopping");
        }
    };
    if !status.success() {
        bail!("the generator failed ({status}): {line}");
    }
    let text = std::fs::read_to_string(json)
        .with_context(|| format!("cannot read the generator's JSON {}", json.display()))?;
    let report: Report = serde_json::from_str(&text)
        .with_context(|| format!("cannot parse the generator's JSON {}", json.display()))?;
    Ok((line, report))
}

/// `10s` for whole seconds, `1500ms` otherwise.
fn duration_arg(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::bench::BenchCommand;
    use crate::cli::{Cli, Command};

    fn suite_args(extra: &[&str]) -> SuiteArgs {
        let cli = Cli::try_parse_from(["ringkv", "bench", "suite"].iter().chain(extra)).unwrap();
        match cli.command {
            Command::Bench(b) => match b.command {
                Some(BenchCommand::Suite(s)) => s,
                None => panic!("not suite"),
            },
            other => panic!("not bench: {other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration_arg(Duration::from_secs(10)), "10s");
        assert_eq!(duration_arg(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn generator_arguments_of_each_target() {
        let args = suite_args(&["--keys", "10", "--warmup", "500ms"]);
        let mut spec = RunSpec {
            system: "ceiling",
            threads: 2,
            target: Target::Ceiling,
            workload: Workload::W,
            dist: DistKind::Uniform,
            bucket: String::new(),
        };
        let json = Path::new("out.json");
        assert_eq!(
            generator_args(&args, Duration::from_secs(3), "http://h:1", &spec, json).join(" "),
            "bench --endpoint http://h:1 --target ceiling --workload w --dist uniform --keys 10 \
             --value-bytes 100 --concurrency 64 --duration 3s --warmup 500ms --threads 2 --load \
             --json out.json"
        );
        spec.target = Target::Ringkv;
        spec.bucket = "suite-3-w-uniform-1".into();
        let argv = generator_args(&args, Duration::from_secs(3), "http://h:1", &spec, json);
        assert!(
            argv.join(" ")
                .ends_with("--load --bucket suite-3-w-uniform-1 --json out.json"),
            "{argv:?}"
        );
    }
}
