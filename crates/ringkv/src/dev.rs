//! `ringkv dev`: a local cluster of `ringkv server` child processes (started,
//! watched and stopped by [`crate::process`]).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::time::sleep;

use crate::cli::DevArgs;
use crate::kv::table;
use crate::process::{NodeSpec, Nodes, StartError, check_free};
use crate::signals::Signals;

/// Who speaks in the messages and node logs of a dev cluster.
const WHO: &str = "ringkv dev";

/// The nodes of a dev cluster, checked for port overflow and overlap.
pub(crate) fn plan(args: &DevArgs) -> anyhow::Result<Vec<NodeSpec>> {
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
            NodeSpec::new(
                i,
                format!("127.0.0.1:{}", u32::from(args.http_port) + i - 1),
                format!("127.0.0.1:{}", u32::from(args.rpc_port) + i - 1),
                &args.dir,
            )
        })
        .collect())
}

/// N, R, W for a cluster of `nodes`: N = min(3, nodes), R = W = a majority of N.
pub(crate) fn quorums(nodes: usize) -> (usize, usize, usize) {
    let n = nodes.clamp(1, 3);
    let q = n / 2 + 1;
    (n, q, q)
}

/// Runs the dev cluster until SIGINT/SIGTERM or until a node dies.
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let nodes = plan(&args)?;
    check_ports_free(&nodes)?;
    let exe =
        std::env::current_exe().context("cannot find the ringkv executable to start nodes")?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create --dir {}", args.dir.display()))?;
    // Mutual TLS between the nodes, as in production: a CA and node
    // certificates in DIR/certs, made on the first run and reused.
    crate::process::ensure_certs(&nodes)?;
    let mut signals = Signals::new().context("cannot install signal handlers")?;

    let nrw = quorums(nodes.len());
    let mut running = Nodes::start(WHO, &exe, &nodes, nrw, &mut signals).await?;
    eprintln!(
        "{WHO}: started {} node(s), waiting for them to serve (logs in {}/nI.log)",
        running.procs().len(),
        args.dir.display()
    );

    if let Err(e) = running.wait_healthy(&mut signals).await {
        running.stop(&mut signals).await;
        return match e {
            StartError::Interrupted => Ok(ExitCode::SUCCESS),
            StartError::Failed(e) => Err(e),
        };
    }

    print_banner(&args, &running, nrw);

    let outcome = loop {
        tokio::select! {
            sig = signals.recv() => {
                eprintln!("\n{WHO}: {sig} received, stopping the nodes");
                break Ok(ExitCode::SUCCESS);
            }
            _ = sleep(Duration::from_millis(500)) => {
                if let Some(msg) = running.find_dead() {
                    eprintln!("{msg}");
                    eprintln!("{WHO}: stopping the other nodes");
                    break Err(anyhow::anyhow!("a node of the dev cluster stopped unexpectedly"));
                }
            }
        }
    };
    running.stop(&mut signals).await;
    outcome
}

/// Fails when a port the cluster needs is taken (say, by another `ringkv
/// dev`): otherwise the health check could be answered by someone else.
fn check_ports_free(nodes: &[NodeSpec]) -> anyhow::Result<()> {
    for n in nodes {
        for (what, addr) in [("HTTP", &n.http), ("RPC", &n.rpc)] {
            if let Err(e) = check_free(addr) {
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

/// Prints the table of nodes and a few commands to try.
fn print_banner(args: &DevArgs, nodes: &Nodes, (n, r, w): (usize, usize, usize)) {
    let running = nodes.procs();
    let mut rows = vec![vec![
        "ID".to_string(),
        "HTTP URL".to_string(),
        "PID".to_string(),
        "DATA DIR".to_string(),
    ]];
    for run in running {
        rows.push(vec![
            run.spec.id.clone(),
            run.spec.url(),
            run.pid.to_string(),
            run.spec.data_dir.display().to_string(),
        ]);
    }
    let first = running[0].spec.url();
    let second = running.get(1).map_or(first.clone(), |r| r.spec.url());
    let all: Vec<String> = running.iter().map(|r| r.spec.url()).collect();
    // Show the command as it was typed when that was a path (./target/debug/ringkv).
    let me = std::env::args()
        .next()
        .filter(|a| a.contains('/'))
        .unwrap_or_else(|| "ringkv".to_string());
    let mut out = format!(
        "\nringkv dev cluster: {} node(s), n={n} r={r} w={w}, data in {}, peers on mutual TLS \
         (certificates in {})\n\n{}\nTry:\n",
        running.len(),
        args.dir.display(),
        args.dir.join("certs").display(),
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
    use std::path::PathBuf;

    use super::*;
    use crate::process::initial_cluster;

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
}
