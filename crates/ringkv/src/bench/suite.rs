//! `ringkv bench suite`: the standard set of runs, against a 3-node cluster
//! (N=3, R=2, W=2), a 1-node cluster (N=1) and the HTTP ceiling server, all
//! on loopback with the same generator, written to `docs/benchmarks.md`.
//!
//! It builds nothing: the generator and the nodes are this executable (build
//! it with `cargo build --release`), the ceiling server is `--ceiling-bin`.
//! Every process it starts is a child, stopped by its pid when the suite
//! ends or fails; data directories are temporary and removed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::Args;
use ringkv_client::{Client, ClientConfig};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use super::stats::ms;
use super::{DistKind, Report, Target, Workload, parse_duration, shell_quote};
use crate::process::{self, FreePorts, NodeSpec, Nodes, StartError};
use crate::signals::Signals;

/// Where `cargo build --release` of the ceiling server puts it, as
/// `../shared/bench/README.md` suggests building it.
const DEFAULT_CEILING_BIN: &str = "/tmp/ceiling-target/release/http-ceiling";

/// Who speaks in the messages and node logs of the suite's clusters.
const WHO: &str = "ringkv bench suite";

/// How long the cluster gets until every node sees every other alive.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// `ringkv bench suite`.
/// `ringkv bench suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Measured time of each run, e.g. 10s. [default: 10s]
    #[arg(long, value_parser = parse_duration, conflicts_with = "quick")]
    pub duration: Option<Duration>,
    /// Short runs (2 s each), to check that the suite works.
    #[arg(long)]
    pub quick: bool,
    /// Repeat the whole set this many times; each figure reported is the
    /// round with the median ratio to the ceiling, with the range of ratios.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: u32,
    /// The HTTP ceiling server's binary (build it with
    /// `CARGO_TARGET_DIR=/tmp/ceiling-target cargo build --release
    /// --manifest-path ../shared/bench/http-ceiling/Cargo.toml`).
    #[arg(long, default_value = DEFAULT_CEILING_BIN)]
    pub ceiling_bin: PathBuf,
    /// The Markdown file to write. Its section with the same --label is
    /// replaced; other sections are kept.
    #[arg(long, default_value = "docs/benchmarks.md")]
    pub out: PathBuf,
    /// Name of this run's section, e.g. "before optimisation".
    #[arg(long, default_value = "latest")]
    pub label: String,
    /// A paragraph placed under the section's heading.
    #[arg(long)]
    pub note: Option<String>,
    /// Also write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keys of every run (loaded before measuring).
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Value size of every run.
    #[arg(long, default_value_t = 100)]
    pub value_bytes: usize,
    /// Clients of every run.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Unmeasured time each run spends on its workload before measuring.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Runtime threads of the generator for the ringkv runs (see `ringkv
    /// bench --threads`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// Generator thread counts to measure the ceiling server with (comma
    /// list); the best of them is the reference. Each system gets the
    /// generator setting that serves it best, so no setting that suits
    /// ringkv more than the ceiling can flatter the ratios.
    #[arg(long, value_delimiter = ',', default_value = "2",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub ceiling_threads: Vec<u16>,
}

/// The machine the suite ran on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process may use.
    pub nproc: usize,
    /// `MemTotal` of /proc/meminfo.
    pub memory: String,
    /// `model name` of /proc/cpuinfo.
    pub cpu: String,
    /// Kernel release.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// The 1/5/15-minute load averages when the suite started and ended.
    pub load_average: (String, String),
    /// The git commit of the working directory, if any.
    pub commit: String,
    /// Whether this executable is an optimized build.
    pub release_build: bool,
}

/// One generator run of the suite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteRun {
    /// What was measured: `ceiling`, `ringkv 3 nodes` or `ringkv 1 node`.
    pub system: String,
    /// Round, from 1.
    pub round: u32,
    /// The generator's command line.
    pub command: String,
    /// ringkv runs: indices (in [`SuiteReport::runs`]) of the ceiling runs
    /// measured just before it, its reference.
    pub references: Vec<usize>,
    /// ringkv runs: the reference throughput (successful ops/s).
    pub reference: Option<f64>,
    /// ringkv runs: throughput divided by the reference.
    pub ratio: Option<f64>,
    /// The generator's report.
    pub report: Report,
}

/// What `ringkv bench suite --json` writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SuiteReport {
    /// [`super::JSON_VERSION`].
    pub version: u32,
    /// The section label.
    pub label: String,
    /// Unix time at the start, in seconds.
    pub started_unix_s: u64,
    /// The suite's own command line.
    pub command: String,
    /// The other processes' command lines (servers, ceiling).
    pub server_commands: Vec<String>,
    /// The machine.
    pub machine: Machine,
    /// Rounds of the whole set.
    pub rounds: u32,
    /// Generator thread counts of the ceiling runs.
    pub ceiling_threads: Vec<u16>,
    /// Every run, in the order made.
    pub runs: Vec<SuiteRun>,
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn load_average() -> String {
    read_trim("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

async fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown".into());
    let kernel = match (
        read_trim("/proc/sys/kernel/ostype"),
        read_trim("/proc/sys/kernel/osrelease"),
    ) {
        (Some(t), Some(r)) => format!("{t} {r}"),
        _ => std::env::consts::OS.to_string(),
    };
    let commit = match output_of("git", &["rev-parse", "--short=12", "HEAD"]).await {
        Some(c) => {
            let dirty = output_of("git", &["status", "--porcelain", "--untracked-files=no"])
                .await
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} with uncommitted changes")
            } else {
                c
            }
        }
        None => "unknown".into(),
    };
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory,
        cpu,
        kernel,
        rustc: output_of("rustc", &["--version"])
            .await
            .unwrap_or_else(|| "unknown (rustc not on PATH)".into()),
        load_average: (load_average(), String::new()),
        commit,
        release_build: !cfg!(debug_assertions),
    }
}

/// A started process that is not a cluster node: the ceiling server.
struct Ceiling {
    child: Child,
    addr: String,
}

impl Ceiling {
    async fn start(bin: &Path, port: u16, log: &Path) -> anyhow::Result<(Ceiling, String)> {
        let addr = format!("127.0.0.1:{port}");
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg(&addr)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file.try_clone()?))
            .stderr(Stdio::from(log_file))
            .kill_on_drop(true);
        process::own_process_group(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start the ceiling server {}", bin.display()))?;
        let mut c = Ceiling { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = c.child.try_wait() {
                bail!(
                    "the ceiling server exited at once ({status}); see {}",
                    log.display()
                );
            }
            if tokio::net::TcpStream::connect(&c.addr).await.is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                c.stop().await;
                bail!(
                    "the ceiling server does not accept connections on {}",
                    c.addr
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
        let line = format!("{} {}", shell_quote(&bin.display().to_string()), c.addr);
        Ok((c, line))
    }

    async fn stop(&mut self) {
        process::stop_child(&mut self.child, Duration::from_secs(5)).await;
    }
}

/// Starts `nodes` nodes with N, R, W and waits until each sees all alive.
async fn start_cluster(
    exe: &Path,
    dir: &Path,
    nodes: usize,
    nrw: (usize, usize, usize),
    ports: &mut FreePorts,
    signals: &mut Signals,
    commands: &mut Vec<String>,
) -> anyhow::Result<Nodes> {
    let mut specs = Vec::new();
    for i in 1..=nodes {
        let http = format!("127.0.0.1:{}", ports.next()?);
        let rpc = format!("127.0.0.1:{}", ports.next()?);
        specs.push(NodeSpec::new(i as u32, http, rpc, dir));
    }
    let cluster = process::initial_cluster(&specs);
    for spec in &specs {
        let line = std::iter::once(exe.display().to_string())
            .chain(process::server_args(spec, &cluster, nrw))
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ");
        commands.push(line);
    }
    let mut running = Nodes::start(WHO, exe, &specs, nrw, signals).await?;
    let healthy = match running.wait_healthy(signals).await {
        Ok(()) => converge(&specs).await,
        Err(StartError::Interrupted) => Err(anyhow::anyhow!("interrupted")),
        Err(StartError::Failed(e)) => Err(e),
    };
    if let Err(e) = healthy {
        running.stop(signals).await;
        return Err(e);
    }
    Ok(running)
}

/// Waits until every node sees every member alive.
async fn converge(specs: &[NodeSpec]) -> anyhow::Result<()> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    for spec in specs {
        let client = Client::with_config(
            vec![format!("http://{}", spec.http)],
            ClientConfig {
                connect_timeout: Duration::from_secs(1),
                request_timeout: Duration::from_secs(2),
            },
        )?;
        loop {
            if let Ok(status) = client.cluster().await
                && status.members.len() == specs.len()
                && status.members.iter().all(|m| m.alive)
            {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} does not see every member alive after {} s; see {}",
                    spec.id,
                    CONVERGE_TIMEOUT.as_secs(),
                    spec.log.display()
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// One generator run to make.
struct RunSpec {
    system: &'static str,
    threads: u16,
    target: Target,
    workload: Workload,
    dist: DistKind,
    bucket: String,
}

/// Runs the generator as a child process and reads its JSON.
async fn run_bench(
    exe: &Path,
    args: &SuiteArgs,
    duration: Duration,
    endpoints: &str,
    spec: &RunSpec,
    json: &Path,
    signals: &mut Signals,
) -> anyhow::Result<(String, Report)> {
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
    let line = std::iter::once(shell_quote(&exe.display().to_string()))
        .chain(argv.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(exe)
        .args(&argv)
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

/// The processes the suite started; all stopped at the end, by pid.
#[derive(Default)]
struct Processes {
    ceiling: Option<Ceiling>,
    clusters: Vec<Nodes>,
}

impl Processes {
    async fn stop(&mut self, signals: &mut Signals) {
        for mut c in self.clusters.drain(..) {
            c.stop(signals).await;
        }
        if let Some(mut c) = self.ceiling.take() {
            c.stop().await;
        }
    }
}

/// One ringkv measurement of the standard set.
#[derive(Clone, Copy)]
struct Case {
    system: &'static str,
    /// Index of the cluster in [`Processes::clusters`].
    cluster: usize,
    workload: Workload,
    dist: DistKind,
}

/// The standard set: A, B, C, W, uniform and zipfian, on 3 nodes; A uniform on 1 node.
fn standard_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for workload in [Workload::A, Workload::B, Workload::C, Workload::W] {
        for dist in [DistKind::Uniform, DistKind::Zipfian] {
            cases.push(Case {
                system: "ringkv 3 nodes",
                cluster: 0,
                workload,
                dist,
            });
        }
    }
    cases.push(Case {
        system: "ringkv 1 node",
        cluster: 1,
        workload: Workload::A,
        dist: DistKind::Uniform,
    });
    cases
}

/// Clusters of the suite: name, nodes, (N, R, W).
const CLUSTERS: [(&str, usize, (usize, usize, usize)); 2] = [
    ("ringkv 3 nodes", 3, (3, 2, 2)),
    ("ringkv 1 node", 1, (1, 1, 1)),
];

/// Runs the suite and writes the Markdown (and JSON).
pub async fn run(args: SuiteArgs) -> anyhow::Result<()> {
    let duration = match (args.duration, args.quick) {
        (Some(d), _) => d,
        (None, true) => Duration::from_secs(2),
        (None, false) => Duration::from_secs(10),
    };
    if !args.ceiling_bin.is_file() {
        bail!(
            "the ceiling server is not at {}: build it with \
             `CARGO_TARGET_DIR=/tmp/ceiling-target cargo build --release --manifest-path \
             ../shared/bench/http-ceiling/Cargo.toml` or pass --ceiling-bin",
            args.ceiling_bin.display()
        );
    }
    if args.label.trim().is_empty() || args.label.contains("-->") || args.label.contains('\n') {
        bail!("--label must be a non-empty single line without \"-->\"");
    }
    if args.ceiling_threads.is_empty() {
        bail!("--ceiling-threads needs at least one thread count");
    }
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
    let mut machine = machine().await;
    let mut server_commands = Vec::new();
    let mut runs: Vec<SuiteRun> = Vec::new();
    let mut procs = Processes::default();
    let result = measure(
        &args,
        &exe,
        duration,
        tmp.path(),
        &mut procs,
        &mut signals,
        &mut server_commands,
        &mut runs,
    )
    .await;
    procs.stop(&mut signals).await;
    result?;
    machine.load_average.1 = load_average();

    let report = SuiteReport {
        version: super::JSON_VERSION,
        label: args.label.clone(),
        started_unix_s: started,
        command: super::command_line(),
        server_commands,
        machine,
        rounds: args.rounds,
        ceiling_threads: args.ceiling_threads.clone(),
        runs,
    };
    let section = markdown_section(&report, args.note.as_deref(), duration);
    write_markdown(&args.out, &args.label, &section)?;
    eprintln!("wrote {}", args.out.display());
    if let Some(path) = &args.json {
        super::write_json(path, &report)?;
        eprintln!("wrote {}", path.display());
    }
    print!("{}", summary(&report));
    Ok(())
}

/// Starts the ceiling server and both clusters (all idle while another is
/// measured), then makes every round: for each case, the ceiling runs it is
/// compared with, right before it.
#[allow(clippy::too_many_arguments)]
async fn measure(
    args: &SuiteArgs,
    exe: &Path,
    duration: Duration,
    tmp: &Path,
    procs: &mut Processes,
    signals: &mut Signals,
    server_commands: &mut Vec<String>,
    runs: &mut Vec<SuiteRun>,
) -> anyhow::Result<()> {
    let mut ports = FreePorts::new();
    let port = ports.next()?;
    let (ceiling, line) = Ceiling::start(&args.ceiling_bin, port, &tmp.join("ceiling.log")).await?;
    let ceiling_endpoint = format!("http://{}", ceiling.addr);
    procs.ceiling = Some(ceiling);
    server_commands.push(line);
    let mut endpoints = Vec::new();
    for (system, nodes, nrw) in CLUSTERS {
        let dir = tmp.join(system.replace(' ', "-"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        eprintln!("== starting {system} (N={} R={} W={})", nrw.0, nrw.1, nrw.2);
        let running =
            start_cluster(exe, &dir, nodes, nrw, &mut ports, signals, server_commands).await?;
        endpoints.push(running.endpoints());
        procs.clusters.push(running);
    }

    let cases = standard_cases();
    let per_round: usize = cases
        .iter()
        .map(|c| 1 + args.ceiling_threads.len() * reference_workloads(c.workload).len())
        .sum();
    let total = per_round * args.rounds as usize;
    let mut counter = 0usize;
    for round in 1..=args.rounds {
        for case in &cases {
            let mut references = Vec::new();
            for workload in reference_workloads(case.workload) {
                for &threads in &args.ceiling_threads {
                    let spec = RunSpec {
                        system: "ceiling",
                        threads,
                        target: Target::Ceiling,
                        workload,
                        dist: DistKind::Uniform,
                        bucket: String::new(),
                    };
                    counter += 1;
                    let run = one_run(
                        exe,
                        args,
                        duration,
                        &ceiling_endpoint,
                        &spec,
                        round,
                        tmp,
                        counter,
                        total,
                        signals,
                    )
                    .await?;
                    references.push(runs.len());
                    runs.push(run);
                }
            }
            let spec = RunSpec {
                system: case.system,
                threads: args.threads,
                target: Target::Ringkv,
                workload: case.workload,
                dist: case.dist,
                bucket: format!(
                    "suite-{}-{}-{}-{round}",
                    CLUSTERS[case.cluster].1,
                    case.workload.name(),
                    case.dist.name()
                ),
            };
            counter += 1;
            let mut run = one_run(
                exe,
                args,
                duration,
                &endpoints[case.cluster],
                &spec,
                round,
                tmp,
                counter,
                total,
                signals,
            )
            .await?;
            let best = |w: Workload| {
                references
                    .iter()
                    .map(|&i| &runs[i].report)
                    .filter(|r| r.settings.workload == w)
                    .map(|r| r.run.total.throughput)
                    .fold(0.0, f64::max)
            };
            let f = case.workload.read_fraction();
            let reference = f * best(Workload::C) + (1.0 - f) * best(Workload::W);
            run.reference = Some(reference);
            run.ratio = (reference > 0.0).then(|| run.report.run.total.throughput / reference);
            run.references = references;
            eprintln!(
                "   {:.0} ops/s = {:.1} % of the ceiling's {:.0}",
                run.report.run.total.throughput,
                run.ratio.unwrap_or(0.0) * 100.0,
                reference
            );
            runs.push(run);
        }
    }
    Ok(())
}

/// The ceiling runs a workload is compared with: PUT-only (W) if it writes,
/// GET-only (C) if it reads.
fn reference_workloads(w: Workload) -> Vec<Workload> {
    let f = w.read_fraction();
    let mut v = Vec::new();
    if f < 1.0 {
        v.push(Workload::W);
    }
    if f > 0.0 {
        v.push(Workload::C);
    }
    v
}

#[allow(clippy::too_many_arguments)]
async fn one_run(
    exe: &Path,
    args: &SuiteArgs,
    duration: Duration,
    endpoint: &str,
    spec: &RunSpec,
    round: u32,
    tmp: &Path,
    counter: usize,
    total: usize,
    signals: &mut Signals,
) -> anyhow::Result<SuiteRun> {
    eprintln!(
        "== [{counter}/{total}] round {round}: {} workload {}, {}, {} generator thread(s)",
        spec.system,
        spec.workload.name().to_uppercase(),
        spec.dist.name(),
        spec.threads
    );
    let json = tmp.join(format!("run-{counter}.json"));
    let (command, report) = run_bench(exe, args, duration, endpoint, spec, &json, signals).await?;
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

/// `10s` for whole seconds, `1500ms` otherwise.
fn duration_arg(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `YYYY-MM-DD HH:MM UTC` of a unix time (proleptic Gregorian calendar).
fn utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// `PUT only`, `GET only` for the ceiling; the workload letter otherwise.
fn workload_label(r: &SuiteRun) -> String {
    let s = &r.report.settings;
    match (s.target, s.workload) {
        (Target::Ceiling, Workload::W) => "PUT only".into(),
        (Target::Ceiling, Workload::C) => "GET only".into(),
        (_, w) => w.name().to_uppercase(),
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The ringkv measurements of one case over all rounds.
struct CaseResult<'a> {
    /// The round with the median ratio (the lower one for an even count).
    median: &'a SuiteRun,
    /// Lowest and highest ratio over the rounds.
    range: (f64, f64),
    rounds: usize,
}

/// One [`CaseResult`] per case, in the order of the standard set.
fn case_results(rep: &SuiteReport) -> Vec<CaseResult<'_>> {
    let mut out = Vec::new();
    for case in standard_cases() {
        let mut of_case: Vec<&SuiteRun> = rep
            .runs
            .iter()
            .filter(|r| {
                r.system == case.system
                    && r.report.settings.workload == case.workload
                    && r.report.settings.dist == case.dist
            })
            .collect();
        if of_case.is_empty() {
            continue;
        }
        of_case.sort_by(|a, b| a.ratio.unwrap_or(0.0).total_cmp(&b.ratio.unwrap_or(0.0)));
        let ratio = |r: &SuiteRun| r.ratio.unwrap_or(0.0);
        out.push(CaseResult {
            median: of_case[(of_case.len() - 1) / 2],
            range: (ratio(of_case[0]), ratio(of_case[of_case.len() - 1])),
            rounds: of_case.len(),
        });
    }
    out
}

fn latency_cells(
    l: Option<&super::stats::Latency>,
    which: &[fn(&super::stats::Latency) -> f64],
) -> Vec<String> {
    which
        .iter()
        .map(|f| l.map_or_else(|| "-".to_string(), |l| ms(f(l))))
        .collect()
}

fn generator_cpu(r: &SuiteRun) -> String {
    let run = &r.report.run;
    run.generator_cpu_s
        .filter(|_| run.elapsed_s > 0.0)
        .map_or("-".into(), |c| {
            format!("{:.0} %", c / run.elapsed_s * 100.0)
        })
}

/// The Markdown section of one suite run.
fn markdown_section(rep: &SuiteReport, note: Option<&str>, duration: Duration) -> String {
    let m = &rep.machine;
    let mut s = String::new();
    let _ = writeln!(s, "## {}\n", rep.label);
    if let Some(note) = note {
        let _ = writeln!(s, "{note}\n");
    }
    let ringkv = rep
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

    let results = case_results(rep);
    let _ = writeln!(s, "### Throughput and latency\n");
    let _ = writeln!(
        s,
        "| system | workload | key choice | ops/s | ceiling ops/s | vs ceiling | p50 ms | p99 ms \
         | p99.9 ms | max ms | errors | generator CPU |\n\
         | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for c in &results {
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
    let _ = writeln!(
        s,
        "\nThe ceiling is the HTTP ceiling server (`../shared/bench/http-ceiling`: axum, one \
         `Mutex<HashMap>`, no replication, no disk), measured with the same generator right \
         before each ringkv run: PUT only (workload W) when the workload writes, GET only \
         (workload C) when it reads, uniform keys. Reference of each ratio: W vs ceiling PUT, \
         C vs ceiling GET, A and B vs the mean of the two weighted by the mix (A: plain mean; \
         B: 95 % GET, 5 % PUT). ops/s counts successful operations; latency is that of the \
         successful operations; errors are any answer other than 2xx, 300 or 404, or a \
         transport failure. Generator CPU: the load generator's own CPU time during the \
         measurement, as a share of one core.\n"
    );

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

    let _ = writeln!(s, "\n### Per operation\n");
    let _ = writeln!(
        s,
        "| system | workload | key choice | op | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms \
         | errors | siblings read |\n\
         | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for c in &results {
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

    let _ = writeln!(s, "\n### Goals of issue 5\n");
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

    let _ = writeln!(s, "\n### Command lines\n\n```sh");
    let _ = writeln!(s, "{}", rep.command);
    let _ = writeln!(
        s,
        "# processes it started (ports and temporary directories differ per run):"
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
    s
}

const HEADER: &str = "# ringkv benchmarks

Written by `ringkv bench suite` (see `ringkv bench suite --help`). Each section below is one
run of the suite, named by its `--label`; running the suite again with the same label
replaces that section and keeps the others, so results before and after a change sit side
by side. The suite starts a 3-node cluster (N=3, R=2, W=2), a 1-node cluster (N=1) and the
HTTP ceiling server on loopback, and measures all of them with the same load generator
(`ringkv bench`) in one session. Reproduce with:

```sh
cargo build --release
CARGO_TARGET_DIR=/tmp/ceiling-target cargo build --release \\
    --manifest-path ../shared/bench/http-ceiling/Cargo.toml
./target/release/ringkv bench suite --label \"my change\"
```
";

fn markers(label: &str) -> (String, String) {
    (
        format!("<!-- ringkv-bench-suite:begin {label} -->"),
        format!("<!-- ringkv-bench-suite:end {label} -->"),
    )
}

/// Replaces (or appends) the section of `label` in `path`, keeping the rest.
fn write_markdown(path: &Path, label: &str, section: &str) -> anyhow::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let text = splice(old.as_deref(), label, section);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

fn splice(old: Option<&str>, label: &str, section: &str) -> String {
    let (begin, end) = markers(label);
    let block = format!("{begin}\n{section}{end}\n");
    let Some(old) = old else {
        return format!("{HEADER}\n{block}");
    };
    if let Some(b) = old.find(&begin)
        && let Some(e) = old[b..].find(&end)
    {
        let after = b + e + end.len();
        let rest = old[after..].strip_prefix('\n').unwrap_or(&old[after..]);
        return format!("{}{block}{rest}", &old[..b]);
    }
    let sep = if old.ends_with("\n\n") || old.is_empty() {
        ""
    } else if old.ends_with('\n') {
        "\n"
    } else {
        "\n\n"
    };
    format!("{old}{sep}{block}")
}

/// A few lines for the terminal at the end.
/// A few lines for the terminal at the end.
fn summary(rep: &SuiteReport) -> String {
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
    use super::*;

    #[test]
    fn sections_are_replaced_by_label_and_others_kept() {
        let first = splice(None, "before", "A\n");
        assert!(first.starts_with("# ringkv benchmarks"));
        assert!(first.contains(
            "<!-- ringkv-bench-suite:begin before -->\nA\n<!-- ringkv-bench-suite:end before -->\n"
        ));
        let second = splice(Some(&first), "after", "B\n");
        assert!(second.contains("A\n") && second.contains("B\n"));
        let third = splice(Some(&second), "before", "C\n");
        assert!(!third.contains("\nA\n") && third.contains("C\n") && third.contains("B\n"));
        assert!(
            third.find("C\n").unwrap() < third.find("B\n").unwrap(),
            "order kept"
        );
        assert_eq!(splice(Some(&third), "before", "C\n"), third, "idempotent");
    }

    #[test]
    fn dates_and_durations() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
        assert_eq!(duration_arg(Duration::from_secs(10)), "10s");
        assert_eq!(duration_arg(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }
}
