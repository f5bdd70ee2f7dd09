//! `ringkv dev`: a local cluster of `ringkv server` child processes.
//!
//! Only the processes started here are ever signalled, by their pid, and only
//! while they have not been reaped (so the pid cannot belong to anyone else).

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, ExitStatus, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use ringkv_client::{Client, ClientConfig};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::cli::DevArgs;
use crate::kv::table;
use crate::signals::Signals;

/// How long the nodes get to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the nodes get to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a node's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;

/// One node of the dev cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// `n1`, `n2`, ...
    pub id: String,
    /// `127.0.0.1:port` of the HTTP API.
    pub http: String,
    /// `127.0.0.1:port` for node-to-node traffic.
    pub rpc: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Where its stdout and stderr go (appended).
    pub log: PathBuf,
}

/// The nodes of a dev cluster, checked for port overflow and overlap.
pub fn plan(args: &DevArgs) -> anyhow::Result<Vec<NodeSpec>> {
    let count = u32::from(args.nodes);
    if count == 0 {
        bail!("--nodes must be at least 1");
    }
    let http_last = u32::from(args.http_port) + count - 1;
    let rpc_last = u32::from(args.rpc_port) + count - 1;
    if args.http_port == 0 || http_last > u32::from(u16::MAX) {
        bail!(
            "--http-port {} with {count} nodes needs ports up to {http_last}; use a port from 1 to {}",
            args.http_port,
            u32::from(u16::MAX) + 1 - count
        );
    }
    if args.rpc_port == 0 || rpc_last > u32::from(u16::MAX) {
        bail!(
            "--rpc-port {} with {count} nodes needs ports up to {rpc_last}; use a port from 1 to {}",
            args.rpc_port,
            u32::from(u16::MAX) + 1 - count
        );
    }
    if u32::from(args.http_port) <= rpc_last && u32::from(args.rpc_port) <= http_last {
        bail!(
            "HTTP ports {}..={http_last} and RPC ports {}..={rpc_last} overlap; move --http-port or --rpc-port",
            args.http_port,
            args.rpc_port
        );
    }
    Ok((1..=count)
        .map(|i| {
            let id = format!("n{i}");
            NodeSpec {
                http: format!("127.0.0.1:{}", u32::from(args.http_port) + i - 1),
                rpc: format!("127.0.0.1:{}", u32::from(args.rpc_port) + i - 1),
                data_dir: args.dir.join(&id),
                log: args.dir.join(format!("{id}.log")),
                id,
            }
        })
        .collect())
}

/// The `--initial-cluster` value of the nodes.
pub fn initial_cluster(nodes: &[NodeSpec]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.rpc))
        .collect::<Vec<_>>()
        .join(",")
}

/// N, R, W for a cluster of `nodes`: N = min(3, nodes), R = W = a majority of N.
pub fn quorums(nodes: usize) -> (usize, usize, usize) {
    let n = nodes.clamp(1, 3);
    let q = n / 2 + 1;
    (n, q, q)
}

/// A node process started by [`spawn`].
pub(crate) struct Running {
    pub(crate) spec: NodeSpec,
    pub(crate) child: Child,
    pub(crate) pid: u32,
}

/// Runs the dev cluster until SIGINT/SIGTERM or until a node dies.
pub async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let nodes = plan(&args)?;
    check_ports_free(&nodes)?;
    let exe =
        std::env::current_exe().context("cannot find the ringkv executable to start nodes")?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create --dir {}", args.dir.display()))?;
    let mut signals = Signals::new().context("cannot install signal handlers")?;

    let cluster = initial_cluster(&nodes);
    let (n, r, w) = quorums(nodes.len());
    let mut running: Vec<Running> = Vec::new();
    for spec in &nodes {
        match spawn(&exe, spec, &cluster, (n, r, w)) {
            Ok(r) => running.push(r),
            Err(e) => {
                stop_all(&mut running, &mut signals).await;
                return Err(e);
            }
        }
    }
    eprintln!(
        "ringkv dev: started {} node(s), waiting for them to serve (logs in {}/nI.log)",
        running.len(),
        args.dir.display()
    );

    if let Err(e) = wait_healthy(&mut running, &mut signals).await {
        stop_all(&mut running, &mut signals).await;
        return match e {
            StartError::Interrupted => Ok(ExitCode::SUCCESS),
            StartError::Failed(e) => Err(e),
        };
    }

    print_banner(&args, &running, (n, r, w));

    let outcome = loop {
        tokio::select! {
            sig = signals.recv() => {
                eprintln!("\nringkv dev: {sig} received, stopping the nodes");
                break Ok(ExitCode::SUCCESS);
            }
            _ = sleep(Duration::from_millis(500)) => {
                if let Some(msg) = find_dead(&mut running) {
                    eprintln!("{msg}");
                    eprintln!("ringkv dev: stopping the other nodes");
                    break Err(anyhow::anyhow!("a node of the dev cluster stopped unexpectedly"));
                }
            }
        }
    };
    stop_all(&mut running, &mut signals).await;
    outcome
}

/// Starts node `spec` as a child process (killed if dropped), logging to its log file.
pub(crate) fn spawn(
    exe: &Path,
    spec: &NodeSpec,
    cluster: &str,
    (n, r, w): (usize, usize, usize),
) -> anyhow::Result<Running> {
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .with_context(|| format!("cannot open log file {}", spec.log.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    writeln!(
        log,
        "\n=== ringkv dev: starting {} at unix time {now} ===",
        spec.id
    )
    .with_context(|| format!("cannot write log file {}", spec.log.display()))?;
    let stderr = log
        .try_clone()
        .with_context(|| format!("cannot reuse log file {}", spec.log.display()))?;

    let mut cmd = Command::new(exe);
    cmd.arg("server")
        .arg("--node-id")
        .arg(&spec.id)
        .arg("--data-dir")
        .arg(&spec.data_dir)
        .arg("--listen")
        .arg(&spec.rpc)
        .arg("--http")
        .arg(&spec.http)
        .arg("--initial-cluster")
        .arg(cluster)
        .args([
            "--n",
            &n.to_string(),
            "--r",
            &r.to_string(),
            "--w",
            &w.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        // If this process exits early by an error path, do not leave nodes behind.
        .kill_on_drop(true);
    // Own process group: a Ctrl-C in the terminal reaches only this process,
    // which then stops the nodes in order.
    #[cfg(unix)]
    cmd.process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {} ({})", spec.id, exe.display()))?;
    let pid = child.id().unwrap_or(0);
    Ok(Running {
        spec: spec.clone(),
        child,
        pid,
    })
}

/// Fails when a port the cluster needs is taken (say, by another `ringkv
/// dev`): otherwise the health check could be answered by someone else.
fn check_ports_free(nodes: &[NodeSpec]) -> anyhow::Result<()> {
    for n in nodes {
        for (what, addr) in [("HTTP", &n.http), ("RPC", &n.rpc)] {
            if let Err(e) = std::net::TcpListener::bind(addr.as_str()) {
                bail!(
                    "{what} address {addr} of {} is not available ({e}); is another ringkv dev running? \
                     Pick other ports with --http-port / --rpc-port",
                    n.id
                );
            }
        }
    }
    Ok(())
}

/// Why [`wait_healthy`] gave up.
pub(crate) enum StartError {
    Interrupted,
    Failed(anyhow::Error),
}

/// Waits until every node answers `/health`, or one dies, or a signal comes.
pub(crate) async fn wait_healthy(
    running: &mut [Running],
    signals: &mut Signals,
) -> Result<(), StartError> {
    let probe = ClientConfig {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(1),
    };
    let clients: Vec<Client> = running
        .iter()
        .map(|r| Client::with_config(vec![format!("http://{}", r.spec.http)], probe.clone()))
        .collect::<Result<_, _>>()
        .map_err(|e| StartError::Failed(e.into()))?;
    let mut healthy = vec![false; running.len()];
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(msg) = find_dead(running) {
            eprintln!("{msg}");
            return Err(StartError::Failed(anyhow::anyhow!(
                "the dev cluster did not start"
            )));
        }
        for (i, client) in clients.iter().enumerate() {
            if !healthy[i] {
                healthy[i] = client.health().await.is_ok();
            }
        }
        if healthy.iter().all(|h| *h) {
            // A node that answered and then exited did not really start.
            if let Some(msg) = find_dead(running) {
                eprintln!("{msg}");
                return Err(StartError::Failed(anyhow::anyhow!(
                    "the dev cluster did not start"
                )));
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            for (r, ok) in running.iter().zip(&healthy) {
                if !ok {
                    eprintln!(
                        "ringkv dev: {} (pid {}) does not answer http://{}/health after {} s; last lines of {}:\n{}",
                        r.spec.id,
                        r.pid,
                        r.spec.http,
                        START_TIMEOUT.as_secs(),
                        r.spec.log.display(),
                        log_tail(&r.spec.log)
                    );
                }
            }
            return Err(StartError::Failed(anyhow::anyhow!(
                "the dev cluster did not become healthy within {} s",
                START_TIMEOUT.as_secs()
            )));
        }
        tokio::select! {
            sig = signals.recv() => {
                eprintln!("ringkv dev: {sig} received while starting, stopping the nodes");
                return Err(StartError::Interrupted);
            }
            _ = sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Reaps nodes that exited; describes the first one found, with its log tail.
fn find_dead(running: &mut [Running]) -> Option<String> {
    for r in running.iter_mut() {
        match r.child.try_wait() {
            Ok(Some(status)) => {
                return Some(format!(
                    "ringkv dev: {} (pid {}) exited early ({}); last lines of {}:\n{}",
                    r.spec.id,
                    r.pid,
                    describe(status),
                    r.spec.log.display(),
                    log_tail(&r.spec.log)
                ));
            }
            Ok(None) => {}
            Err(e) => {
                return Some(format!(
                    "ringkv dev: cannot check on {} (pid {}): {e}",
                    r.spec.id, r.pid
                ));
            }
        }
    }
    None
}

/// SIGTERM to every node still running, up to [`STOP_TIMEOUT`] for them to
/// exit (a second signal cuts it short), then SIGKILL for the rest.
pub(crate) async fn stop_all(running: &mut [Running], signals: &mut Signals) {
    for r in running.iter_mut() {
        // `id()` is `None` once the child was reaped: never signal a stale pid.
        if let (Ok(None), Some(pid)) = (r.child.try_wait(), r.child.id()) {
            terminate(pid);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut hurry = false;
    loop {
        let mut left = 0;
        for r in running.iter_mut() {
            if matches!(r.child.try_wait(), Ok(None)) {
                left += 1;
            }
        }
        if left == 0 || hurry || Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            sig = signals.recv() => {
                eprintln!("ringkv dev: {sig} again, killing the nodes now");
                hurry = true;
            }
            _ = sleep(Duration::from_millis(100)) => {}
        }
    }
    for r in running.iter_mut() {
        match r.child.try_wait() {
            Ok(Some(status)) => {
                eprintln!(
                    "ringkv dev: {} (pid {}) stopped ({})",
                    r.spec.id,
                    r.pid,
                    describe(status)
                );
            }
            _ => {
                eprintln!(
                    "ringkv dev: {} (pid {}) still running, sending SIGKILL",
                    r.spec.id, r.pid
                );
                if let Err(e) = r.child.kill().await {
                    eprintln!(
                        "ringkv dev: could not kill {} (pid {}): {e}",
                        r.spec.id, r.pid
                    );
                }
            }
        }
    }
}

/// Sends SIGTERM to a child we started and have not reaped.
fn terminate(pid: u32) {
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal, kill_process};
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            // ESRCH (already exited) is fine: the wait below notices.
            let _ = kill_process(pid, Signal::TERM);
        }
    }
    #[cfg(not(unix))]
    {
        // No SIGTERM here: stop_all falls back to killing after the timeout.
        let _ = pid;
    }
}

fn describe(status: ExitStatus) -> String {
    status.to_string()
}

/// The last [`LOG_TAIL_LINES`] lines of a log file, indented.
fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    };
    match read() {
        Ok(text) => tail_lines(&text, LOG_TAIL_LINES),
        Err(e) => format!("    (cannot read it: {e})"),
    }
}

fn tail_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(count);
    lines[start..]
        .iter()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                format!("    {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_banner(args: &DevArgs, running: &[Running], (n, r, w): (usize, usize, usize)) {
    let mut rows = vec![vec![
        "ID".to_string(),
        "HTTP URL".to_string(),
        "PID".to_string(),
        "DATA DIR".to_string(),
    ]];
    for run in running {
        rows.push(vec![
            run.spec.id.clone(),
            format!("http://{}", run.spec.http),
            run.pid.to_string(),
            run.spec.data_dir.display().to_string(),
        ]);
    }
    let first = format!("http://{}", running[0].spec.http);
    let second = running
        .get(1)
        .map_or(first.clone(), |r| format!("http://{}", r.spec.http));
    let all: Vec<String> = running
        .iter()
        .map(|r| format!("http://{}", r.spec.http))
        .collect();
    // Show the command as it was typed when that was a path (./target/debug/ringkv).
    let me = std::env::args()
        .next()
        .filter(|a| a.contains('/'))
        .unwrap_or_else(|| "ringkv".to_string());
    let mut out = format!(
        "\nringkv dev cluster: {} node(s), n={n} r={r} w={w}, data in {}\n\n{}\nTry:\n",
        running.len(),
        args.dir.display(),
        table(&rows)
    );
    if first != crate::cli::DEFAULT_ENDPOINT {
        out.push_str(&format!("  export RINGKV_ENDPOINT={}\n", all.join(",")));
    }
    out.push_str(&format!(
        "  curl -i -X PUT --data-binary 'hello' {first}/v1/kv/default/greeting\n\
         \x20 curl -i {second}/v1/kv/default/greeting\n\
         \x20 {me} put greeting 'hello again'\n\
         \x20 {me} get greeting\n\
         \x20 {me} get greeting --endpoint {}\n\
         \x20 {me} status\n\
         \x20 {me} ring\n\
         \nPress Ctrl-C to stop the cluster.\n",
        all.join(",")
    ));
    print!("{out}");
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u16, http_port: u16, rpc_port: u16) -> DevArgs {
        DevArgs {
            nodes,
            dir: PathBuf::from("d"),
            http_port,
            rpc_port,
        }
    }

    #[test]
    fn plans_ports_dirs_and_cluster() {
        let nodes = plan(&args(3, 8080, 7080)).unwrap();
        assert_eq!(nodes[2].id, "n3");
        assert_eq!(nodes[2].http, "127.0.0.1:8082");
        assert_eq!(nodes[2].rpc, "127.0.0.1:7082");
        assert_eq!(nodes[2].data_dir, PathBuf::from("d/n3"));
        assert_eq!(nodes[2].log, PathBuf::from("d/n3.log"));
        assert_eq!(
            initial_cluster(&nodes),
            "n1=127.0.0.1:7080,n2=127.0.0.1:7081,n3=127.0.0.1:7082"
        );
    }

    #[test]
    fn refuses_bad_ports() {
        assert!(plan(&args(3, 65534, 7080)).is_err());
        assert!(plan(&args(3, 8080, 8082)).is_err());
        assert!(plan(&args(3, 8080, 8078)).is_err());
        assert!(plan(&args(3, 0, 7080)).is_err());
        assert!(plan(&args(3, 8080, 8077)).is_ok());
        assert!(plan(&args(1, 65535, 7080)).is_ok());
    }

    #[test]
    fn quorums_fit_small_clusters() {
        assert_eq!(quorums(1), (1, 1, 1));
        assert_eq!(quorums(2), (2, 2, 2));
        assert_eq!(quorums(3), (3, 2, 2));
        assert_eq!(quorums(5), (3, 2, 2));
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "    b\n    c");
        assert_eq!(tail_lines("", 2), "");
        assert_eq!(tail_lines("a\n \nb", 5), "    a\n\n    b");
    }
}
