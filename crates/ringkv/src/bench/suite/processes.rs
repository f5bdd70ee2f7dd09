//! The processes the suite measures: the HTTP ceiling server and the ringkv
//! clusters, started through [`crate::process`] and all stopped, by pid, when
//! the suite ends or fails.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use ringkv_client::{Client, ClientConfig};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use super::cases::ClusterSpec;
use crate::bench::shell_quote;
use crate::process::{self, FreePorts, NodeSpec, Nodes, StartError};
use crate::signals::Signals;

/// Who speaks in the messages and node logs of the suite's clusters.
const WHO: &str = "ringkv bench suite";
/// How long the cluster gets until every node sees every other alive.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the ceiling server gets to accept connections.
const CEILING_START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the ceiling server gets to exit after SIGTERM.
const CEILING_STOP_GRACE: Duration = Duration::from_secs(5);

/// The processes the suite started; all stopped at the end, by pid.
#[derive(Default)]
pub(super) struct Processes {
    /// The ceiling server, once started.
    pub(super) ceiling: Option<Ceiling>,
    /// The clusters, in the order of [`super::cases::CLUSTERS`].
    pub(super) clusters: Vec<Nodes>,
}

impl Processes {
    /// Stops every cluster, then the ceiling server.
    pub(super) async fn stop(&mut self, signals: &mut Signals) {
        for mut c in self.clusters.drain(..) {
            c.stop(signals).await;
        }
        if let Some(mut c) = self.ceiling.take() {
            c.stop().await;
        }
    }
}

/// The HTTP ceiling server, a child process.
pub(super) struct Ceiling {
    /// The process; killed if dropped.
    child: Child,
    /// `127.0.0.1:port` it serves on.
    pub(super) addr: String,
}

impl Ceiling {
    /// Starts `bin 127.0.0.1:port`, logging to `log`, and waits until it
    /// accepts connections. Returns it and its command line.
    pub(super) async fn start(
        bin: &Path,
        port: u16,
        log: &Path,
    ) -> anyhow::Result<(Ceiling, String)> {
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
        if let Err(e) = c.wait_accepting(log).await {
            c.stop().await;
            return Err(e);
        }
        let line = format!("{} {}", shell_quote(&bin.display().to_string()), c.addr);
        Ok((c, line))
    }

    /// Waits until the server accepts a TCP connection.
    async fn wait_accepting(&mut self, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + CEILING_START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "the ceiling server exited at once ({status}); see {}",
                    log.display()
                );
            }
            if tokio::net::TcpStream::connect(&self.addr).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the ceiling server does not accept connections on {}",
                    self.addr
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then SIGKILL if it does not exit in time.
    async fn stop(&mut self) {
        process::stop_child(&mut self.child, CEILING_STOP_GRACE).await;
    }
}

/// Starts `cluster` on free ports with its data in `dir`, and waits until
/// each node sees all alive. Appends each node's command line to `commands`.
pub(super) async fn start_cluster(
    exe: &Path,
    dir: &Path,
    cluster: ClusterSpec,
    ports: &mut FreePorts,
    signals: &mut Signals,
    commands: &mut Vec<String>,
) -> anyhow::Result<Nodes> {
    let mut specs = Vec::new();
    for i in 1..=cluster.nodes {
        let http = format!("127.0.0.1:{}", ports.next()?);
        let rpc = format!("127.0.0.1:{}", ports.next()?);
        let i = u32::try_from(i).context("too many nodes")?;
        specs.push(NodeSpec::new(i, http, rpc, dir));
    }
    process::ensure_certs(&specs)?;
    let members = process::initial_cluster(&specs);
    for spec in &specs {
        let line = std::iter::once(exe.display().to_string())
            .chain(process::server_args(spec, &members, cluster.nrw))
            .map(|a| shell_quote(&a))
            .collect::<Vec<_>>()
            .join(" ");
        commands.push(line);
    }
    let mut nodes = Nodes::start(WHO, exe, &specs, cluster.nrw, signals).await?;
    let ready = match nodes.wait_healthy(signals).await {
        Ok(()) => converge(&specs).await,
        Err(StartError::Interrupted) => Err(anyhow!("interrupted")),
        Err(StartError::Failed(e)) => Err(e),
    };
    if let Err(e) = ready {
        nodes.stop(signals).await;
        return Err(e);
    }
    Ok(nodes)
}

/// Waits until every node sees every member alive.
async fn converge(specs: &[NodeSpec]) -> anyhow::Result<()> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    for spec in specs {
        let client = Client::with_config(
            vec![spec.url()],
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
