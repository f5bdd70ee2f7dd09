//! `ringkv`: the one binary of ringkv.
//!
//! - `ringkv server ...` runs a node (flags, or a TOML `--config` file; see [`config`]).
//! - `ringkv dev` runs a local cluster of `server` child processes.
//! - `ringkv put|get|delete` talk to a cluster over HTTP.
//! - `ringkv status|ring` show the cluster and its partitions.
//! - `ringkv bucket get|set|list` show and change bucket properties.
//! - `ringkv bench` measures a cluster (`bench suite`: the standard set).
//! - `ringkv cert init|issue` makes the cluster CA and node certificates.
//!
//! Exit codes: 0 success; 1 `get` found no value; 2 usage or any other error.
#![forbid(unsafe_code)]

mod bench;
mod cert;
mod cli;
mod cluster;
mod config;
mod dev;
mod kv;
mod list;
mod process;
mod signals;
mod staleness;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, ServerArgs};

/// Exit code of every failure other than "not found".
const EXIT_ERROR: u8 = 2;

/// mimalloc instead of glibc malloc: per-message allocations (requests,
/// objects, frames) were the largest user-space cost under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator runs many nodes at many times real speed: their
    // liveness and handoff events would drown its report.
    init_logging(if matches!(cli.command, Command::Sim(_)) {
        LOG_DEFAULT_SIM
    } else {
        LOG_DEFAULT
    });
    // The load generator picks its own runtime (`--threads`).
    let cli = match cli.command {
        Command::Bench(args) => return bench::main(*args),
        // The simulator needs no runtime: it is single-threaded and deterministic.
        Command::Sim(cmd) => {
            return match ringkv_sim::cli::main(cmd) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_ERROR)
                }
            };
        }
        // Files only: no runtime.
        Command::Cert(cmd) => {
            return match cert::run(cmd) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(EXIT_ERROR)
                }
            };
        }
        // A server's runtime size is part of its config (flag or file).
        Command::Server(args) => {
            let config = match server_config(&args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(EXIT_ERROR);
                }
            };
            let threads = config.runtime_threads;
            return block_on(Some(threads), server(config));
        }
        command => Cli { command },
    };
    block_on(None, run(cli))
}

/// Runs `f` on a multi-thread runtime of `threads` workers (tokio's default,
/// one per core, when `None`).
fn block_on(
    threads: Option<usize>,
    f: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(f) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Default log filter: our own events at info; the storage engine's
/// per-tree recovery chatter only when it matters.
const LOG_DEFAULT: &str = "info,lsm_tree=warn,fjall=warn";

/// Default log filter of `ringkv sim`: the simulated nodes' warnings only.
const LOG_DEFAULT_SIM: &str = "warn";

/// Logs to stderr, filtered by `RUST_LOG` (else by `default`).
fn init_logging(default: &str) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG={spec:?} is not a valid filter ({e}); using {default}");
            EnvFilter::new(default)
        }),
        Err(_) => EnvFilter::new(default),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        // `main` runs it on a runtime sized by its config; never reached.
        Command::Server(_) => Err(anyhow!("ringkv server must run on a runtime of its own")),
        Command::Dev(args) => dev::run(args).await,
        Command::Put(args) => kv::put(args).await,
        Command::Get(args) => kv::get(args).await,
        Command::Delete(args) => kv::delete(args).await,
        Command::List(args) => list::list(args).await,
        Command::Status(args) => kv::status(args).await,
        Command::Ring(args) => kv::ring(args).await,
        Command::Repair(args) => kv::repair(args).await,
        Command::Bucket(cmd) => kv::bucket(cmd).await,
        Command::Cluster(cmd) => cluster::cluster(cmd).await,
        Command::Staleness(args) => staleness::staleness(args).await,
        // `main` runs it on a runtime of its own; never reached.
        Command::Bench(_) => Err(anyhow!("ringkv bench must run outside the shared runtime")),
        Command::Sim(_) => Err(anyhow!("ringkv sim must run outside the shared runtime")),
        Command::Cert(_) => Err(anyhow!("ringkv cert must run outside the shared runtime")),
    }
}

/// `ringkv server`'s config from its flags and file, checked.
fn server_config(args: &ServerArgs) -> anyhow::Result<ringkv_server::Config> {
    let file = match &args.config {
        Some(path) => config::load_file(path)?,
        None => config::FileConfig::default(),
    };
    let mut config = config::merge(args, &file)?;
    config::validate(&config)?;
    config::load_trust(args, &file, &mut config)?;
    for warning in config::warnings(&config) {
        tracing::warn!("{warning}");
    }
    Ok(config)
}

/// `ringkv server`: run until SIGINT or SIGTERM.
async fn server(config: ringkv_server::Config) -> anyhow::Result<ExitCode> {
    let mut signals = signals::Signals::new().context("cannot install signal handlers")?;
    let shutdown = async move {
        let sig = signals.recv().await;
        tracing::info!("{sig} received, shutting down");
    };
    tracing::info!(
        node = %config.node_id,
        listen = %config.listen,
        http = %config.http,
        data_dir = %config.data_dir.display(),
        members = config.initial_cluster.len(),
        runtime_threads = config.runtime_threads,
        "starting ringkv server"
    );
    let node = config.node_id.clone();
    ringkv_server::run(config, shutdown)
        .await
        .with_context(|| format!("node {node} failed"))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
