//! Child processes of this executable: `ringkv server` nodes (for `ringkv
//! dev` and `ringkv bench suite`) and the helper processes of the suite (the
//! HTTP ceiling server, the load generator).
//!
//! Only processes started here are ever signalled, by their pid, and only
//! while they have not been reaped (so the pid cannot belong to anyone
//! else). Every child is also killed if its handle is dropped, so an error
//! path leaves no process behind.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use ringkv_client::{Client, ClientConfig};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::signals::Signals;

/// How long the nodes get to answer `/health`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the nodes get to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a node's log shown when it fails.
const LOG_TAIL_LINES: usize = 20;
/// How often a starting or stopping node is looked at.
const HEALTH_POLL: Duration = Duration::from_millis(200);

/// One node to start: its id, addresses, data directory and log file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeSpec {
    /// `n1`, `n2`, ...
    pub(crate) id: String,
    /// `127.0.0.1:port` of the HTTP API.
    pub(crate) http: String,
    /// `127.0.0.1:port` for node-to-node traffic.
    pub(crate) rpc: String,
    /// Its data directory.
    pub(crate) data_dir: PathBuf,
    /// Where its stdout and stderr go (appended).
    pub(crate) log: PathBuf,
    /// Its `--certs` directory (`dir/certs`, made by
    /// [`crate::cert::ensure`]); `None` runs it `--insecure`.
    pub(crate) certs: Option<PathBuf>,
}

impl NodeSpec {
    /// The node `n{i}` with its data directory `dir/n{i}`, log
    /// `dir/n{i}.log` and certificates in `dir/certs`.
    pub(crate) fn new(i: u32, http: String, rpc: String, dir: &Path) -> Self {
        let id = format!("n{i}");
        NodeSpec {
            http,
            rpc,
            data_dir: dir.join(&id),
            log: dir.join(format!("{id}.log")),
            certs: Some(dir.join("certs")),
            id,
        }
    }

    /// `http://host:port` of its HTTP API.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.http)
    }
}

/// The `--initial-cluster` value of the nodes.
pub(crate) fn initial_cluster(nodes: &[NodeSpec]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.rpc))
        .collect::<Vec<_>>()
        .join(",")
}

/// The arguments of `ringkv server` for node `spec` of `cluster` with N, R, W.
pub(crate) fn server_args(
    spec: &NodeSpec,
    cluster: &str,
    (n, r, w): (usize, usize, usize),
) -> Vec<String> {
    let security = match &spec.certs {
        Some(dir) => vec!["--certs".to_string(), dir.display().to_string()],
        None => vec!["--insecure".to_string()],
    };
    let mut args: Vec<String> = vec![
        "server".into(),
        "--node-id".into(),
        spec.id.clone(),
        "--data-dir".into(),
        spec.data_dir.display().to_string(),
        "--listen".into(),
        spec.rpc.clone(),
        "--http".into(),
        spec.http.clone(),
        "--initial-cluster".into(),
        cluster.into(),
        "--n".into(),
        n.to_string(),
        "--r".into(),
        r.to_string(),
        "--w".into(),
        w.to_string(),
    ];
    args.extend(security);
    args
}

/// Makes the certificates of `specs` that run with `--certs` (once; reused
/// across runs).
pub(crate) fn ensure_certs(specs: &[NodeSpec]) -> anyhow::Result<()> {
    for spec in specs {
        if let Some(dir) = &spec.certs {
            crate::cert::ensure(dir, &[&spec.id])
                .with_context(|| format!("cannot make certificates in {}", dir.display()))?;
        }
    }
    Ok(())
}

/// A node process started by [`Nodes::start`].
pub(crate) struct NodeProcess {
    /// What it was started as.
    pub(crate) spec: NodeSpec,
    /// The child; killed if dropped.
    child: Child,
    /// Its pid, for messages (0 if the OS did not say).
    pub(crate) pid: u32,
}

/// Why [`Nodes::wait_healthy`] gave up.
pub(crate) enum StartError {
    /// SIGINT or SIGTERM came while waiting.
    Interrupted,
    /// A node exited, or did not answer in time; the error says which.
    Failed(anyhow::Error),
}

/// The node processes of one local cluster; dropped, they are killed.
pub(crate) struct Nodes {
    /// Who speaks in messages and in the logs' start lines (`ringkv dev`).
    who: &'static str,
    /// The nodes, in the order started.
    procs: Vec<NodeProcess>,
}

impl Nodes {
    /// Starts every node of `specs` as a child process running `exe server`
    /// with N, R, W, each logging to its log file. When one cannot be
    /// started, the ones already started are stopped and the error returned.
    pub(crate) async fn start(
        who: &'static str,
        exe: &Path,
        specs: &[NodeSpec],
        nrw: (usize, usize, usize),
        signals: &mut Signals,
    ) -> anyhow::Result<Nodes> {
        let cluster = initial_cluster(specs);
        let mut nodes = Nodes {
            who,
            procs: Vec::new(),
        };
        for spec in specs {
            match spawn_node(who, exe, spec, &server_args(spec, &cluster, nrw)) {
                Ok(p) => nodes.procs.push(p),
                Err(e) => {
                    nodes.stop(signals).await;
                    return Err(e);
                }
            }
        }
        Ok(nodes)
    }

    /// The nodes, in the order started.
    pub(crate) fn procs(&self) -> &[NodeProcess] {
        &self.procs
    }

    /// The nodes' HTTP URLs, comma-separated (an `--endpoint` value).
    pub(crate) fn endpoints(&self) -> String {
        self.procs
            .iter()
            .map(|p| p.spec.url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every node answers `/health`, or one dies, or a signal
    /// comes.
    pub(crate) async fn wait_healthy(&mut self, signals: &mut Signals) -> Result<(), StartError> {
        let probe = ClientConfig {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(1),
        };
        let clients: Vec<Client> = self
            .procs
            .iter()
            .map(|p| Client::with_config(vec![p.spec.url()], probe.clone()))
            .collect::<Result<_, _>>()
            .map_err(|e| StartError::Failed(e.into()))?;
        let mut healthy = vec![false; self.procs.len()];
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.fail_if_dead()?;
            for (i, client) in clients.iter().enumerate() {
                if !healthy[i] {
                    healthy[i] = client.health().await.is_ok();
                }
            }
            if healthy.iter().all(|h| *h) {
                // A node that answered and then exited did not really start.
                return self.fail_if_dead();
            }
            if Instant::now() >= deadline {
                self.report_unhealthy(&healthy);
                return Err(StartError::Failed(anyhow!(
                    "the {} cluster did not become healthy within {} s",
                    self.cluster_name(),
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::select! {
                sig = signals.recv() => {
                    eprintln!("{}: {sig} received while starting, stopping the nodes", self.who);
                    return Err(StartError::Interrupted);
                }
                _ = sleep(HEALTH_POLL) => {}
            }
        }
    }

    /// `dev` for `ringkv dev`: the cluster's name in messages.
    fn cluster_name(&self) -> &'static str {
        self.who.strip_prefix("ringkv ").unwrap_or(self.who)
    }

    /// A [`StartError`] when a node exited (its log tail printed).
    fn fail_if_dead(&mut self) -> Result<(), StartError> {
        match self.find_dead() {
            Some(msg) => {
                eprintln!("{msg}");
                Err(StartError::Failed(anyhow!(
                    "the {} cluster did not start",
                    self.cluster_name()
                )))
            }
            None => Ok(()),
        }
    }

    /// Prints, for every node not yet healthy, its log tail.
    fn report_unhealthy(&self, healthy: &[bool]) {
        for (p, ok) in self.procs.iter().zip(healthy) {
            if !ok {
                eprintln!(
                    "{}: {} (pid {}) does not answer {}/health after {} s; last lines of {}:\n{}",
                    self.who,
                    p.spec.id,
                    p.pid,
                    p.spec.url(),
                    START_TIMEOUT.as_secs(),
                    p.spec.log.display(),
                    log_tail(&p.spec.log)
                );
            }
        }
    }

    /// Reaps nodes that exited; describes the first one found, with its log
    /// tail.
    pub(crate) fn find_dead(&mut self) -> Option<String> {
        for p in &mut self.procs {
            match p.child.try_wait() {
                Ok(Some(status)) => {
                    return Some(format!(
                        "{}: {} (pid {}) exited early ({status}); last lines of {}:\n{}",
                        self.who,
                        p.spec.id,
                        p.pid,
                        p.spec.log.display(),
                        log_tail(&p.spec.log)
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    return Some(format!(
                        "{}: cannot check on {} (pid {}): {e}",
                        self.who, p.spec.id, p.pid
                    ));
                }
            }
        }
        None
    }

    /// SIGTERM to every node still running, up to [`STOP_TIMEOUT`] for them
    /// to exit (a second signal cuts it short), then SIGKILL for the rest.
    pub(crate) async fn stop(&mut self, signals: &mut Signals) {
        for p in &mut self.procs {
            // `id()` is `None` once the child was reaped: never signal a stale pid.
            if let (Ok(None), Some(pid)) = (p.child.try_wait(), p.child.id()) {
                terminate(pid);
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            let mut left = 0;
            for p in &mut self.procs {
                if matches!(p.child.try_wait(), Ok(None)) {
                    left += 1;
                }
            }
            if left == 0 || Instant::now() >= deadline {
                break;
            }
            tokio::select! {
                sig = signals.recv() => {
                    eprintln!("{}: {sig} again, killing the nodes now", self.who);
                    break;
                }
                _ = sleep(Duration::from_millis(100)) => {}
            }
        }
        for p in &mut self.procs {
            finish_stop(self.who, p).await;
        }
    }
}

/// Says how node `p` stopped, or SIGKILLs it if it still runs.
async fn finish_stop(who: &str, p: &mut NodeProcess) {
    match p.child.try_wait() {
        Ok(Some(status)) => {
            eprintln!("{who}: {} (pid {}) stopped ({status})", p.spec.id, p.pid);
        }
        _ => {
            eprintln!(
                "{who}: {} (pid {}) still running, sending SIGKILL",
                p.spec.id, p.pid
            );
            if let Err(e) = p.child.kill().await {
                eprintln!("{who}: could not kill {} (pid {}): {e}", p.spec.id, p.pid);
            }
        }
    }
}

/// Starts one node as a child process (killed if dropped), logging to its
/// log file, in a process group of its own.
fn spawn_node(
    who: &str,
    exe: &Path,
    spec: &NodeSpec,
    args: &[String],
) -> anyhow::Result<NodeProcess> {
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
        "\n=== {who}: starting {} at unix time {now} ===",
        spec.id
    )
    .with_context(|| format!("cannot write log file {}", spec.log.display()))?;
    let stderr = log
        .try_clone()
        .with_context(|| format!("cannot reuse log file {}", spec.log.display()))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    own_process_group(&mut cmd);
    let child = cmd
        .spawn()
        .with_context(|| format!("cannot start {} ({})", spec.id, exe.display()))?;
    let pid = child.id().unwrap_or(0);
    Ok(NodeProcess {
        spec: spec.clone(),
        child,
        pid,
    })
}

/// Puts the child in a process group of its own: a Ctrl-C in the terminal
/// then reaches only this process, which stops its children in order.
pub(crate) fn own_process_group(cmd: &mut Command) {
    #[cfg(unix)]
    cmd.process_group(0);
    #[cfg(not(unix))]
    let _ = cmd;
}

/// Sends SIGTERM to a child we started and have not reaped.
fn terminate(pid: u32) {
    #[cfg(unix)]
    {
        use rustix::process::{Pid, Signal, kill_process};
        if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            // ESRCH (already exited) is fine: the caller's wait notices.
            let _ = kill_process(pid, Signal::TERM);
        }
    }
    #[cfg(not(unix))]
    {
        // No SIGTERM here: the callers fall back to killing after a timeout.
        let _ = pid;
    }
}

/// Stops one child we started: SIGTERM, up to `grace` for it to exit, then
/// SIGKILL. Does nothing if it already exited.
pub(crate) async fn stop_child(child: &mut Child, grace: Duration) {
    if let (Ok(None), Some(pid)) = (child.try_wait(), child.id()) {
        terminate(pid);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
    }
}

/// Hands out free loopback ports below the usual ephemeral range (32768+),
/// so that outgoing connections cannot take one between the check and the
/// bind. Each port is handed out once; the start depends on the process id
/// so that parallel runs rarely probe the same ports.
pub(crate) struct FreePorts {
    /// Counter of the next port to try.
    next: u32,
}

impl FreePorts {
    /// Lowest port handed out.
    const FIRST: u32 = 20_000;
    /// How many ports from [`Self::FIRST`] are used.
    const SPAN: u32 = 12_000;

    /// Starts at a port derived from this process's id.
    pub(crate) fn new() -> Self {
        FreePorts {
            next: (std::process::id().wrapping_mul(613)) % 10_000,
        }
    }

    /// The next port that is free now.
    pub(crate) fn next(&mut self) -> anyhow::Result<u16> {
        for _ in 0..5_000 {
            let port = Self::FIRST + self.next % Self::SPAN;
            self.next = self.next.wrapping_add(1);
            let port = u16::try_from(port).expect("below 32000");
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
        bail!(
            "no free loopback port found between {} and {}",
            Self::FIRST,
            Self::FIRST + Self::SPAN
        )
    }
}

/// Fails when `addr` cannot be bound now (another process has it).
pub(crate) fn check_free(addr: &str) -> std::io::Result<()> {
    TcpListener::bind(addr).map(drop)
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

/// The last `count` lines of `text`, indented; blank lines stay blank.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "    b\n    c");
        assert_eq!(tail_lines("", 2), "");
        assert_eq!(tail_lines("a\n \nb", 5), "    a\n\n    b");
    }

    #[test]
    fn specs_and_server_arguments() {
        let a = NodeSpec::new(
            1,
            "127.0.0.1:8081".into(),
            "127.0.0.1:7081".into(),
            "d".as_ref(),
        );
        let b = NodeSpec::new(
            2,
            "127.0.0.1:8082".into(),
            "127.0.0.1:7082".into(),
            "d".as_ref(),
        );
        assert_eq!(a.data_dir, PathBuf::from("d/n1"));
        assert_eq!(b.log, PathBuf::from("d/n2.log"));
        assert_eq!(b.url(), "http://127.0.0.1:8082");
        let cluster = initial_cluster(&[a.clone(), b]);
        assert_eq!(cluster, "n1=127.0.0.1:7081,n2=127.0.0.1:7082");
        assert_eq!(
            server_args(&a, &cluster, (2, 1, 2)).join(" "),
            "server --node-id n1 --data-dir d/n1 --listen 127.0.0.1:7081 --http 127.0.0.1:8081 \
             --initial-cluster n1=127.0.0.1:7081,n2=127.0.0.1:7082 --n 2 --r 1 --w 2 \
             --certs d/certs"
        );
        let plain = NodeSpec { certs: None, ..a };
        assert!(server_args(&plain, &cluster, (2, 1, 2)).ends_with(&["--insecure".into()]));
    }

    #[test]
    fn free_ports_are_distinct_and_below_the_ephemeral_range() {
        let mut ports = FreePorts::new();
        let a = ports.next().unwrap();
        let b = ports.next().unwrap();
        assert_ne!(a, b);
        assert!((20_000..32_000).contains(&a) && (20_000..32_000).contains(&b));
    }
}
