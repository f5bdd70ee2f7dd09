//! The ringkv runtime: drives the sans-IO node with tokio, TCP between nodes,
//! the HTTP API, timers and group commit.
#![forbid(unsafe_code)]

pub mod config;

pub use config::Config;

/// Runs a node until `shutdown` completes, then stops cleanly (flushes and
/// syncs the store, marks the data directory as cleanly shut down).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let _ = (config, shutdown);
    anyhow::bail!("not yet implemented")
}
