//! The ringkv runtime: drives the sans-IO node with tokio, TCP between nodes,
//! the HTTP API, timers and group commit.
//!
//! # Layout
//! - [`config`]: the node's configuration.
//! - [`auth`]: bearer tokens and their permissions.
//! - [`runtime`]: the node loop, batching and group commit.
//! - [`transport`]: node-to-node TCP.
//! - [`tls`]: certificates and mutual TLS between peers.
//! - [`faults`]: test-only fault injection on the transport.
//! - [`http`]: the HTTP API v1.
//! - [`resp`]: the Redis protocol front end (`--resp`).
//! - [`metrics`]: Prometheus metrics.
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod faults;
pub mod fsync;
pub mod http;
pub mod metrics;
pub mod resp;
pub mod runtime;
pub mod tls;
pub mod transport;

use std::sync::Arc;

use anyhow::Context as _;
use ringkv_core::{Layout, Member, NodeId};
use ringkv_node::membership::GossipConfig;
use ringkv_node::{Node, NodeConfig};
use ringkv_storage_fjall::datadir::DataDir;
use ringkv_storage_fjall::fjall_store::FjallStore;
use tokio::net::TcpListener;
use tracing::{Instrument, info};

pub use config::Config;

/// Runs a node until `shutdown` completes, then stops cleanly (flushes and
/// syncs the store, marks the data directory as cleanly shut down).
/// Every log line of the node, from any of its tasks and threads, carries
/// the node id (span `node`, field `id`).
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let me = NodeId::parse(&config.node_id).map_err(|e| anyhow::anyhow!("--node-id: {e}"))?;
    let span = tracing::info_span!("node", id = %me);
    run_node(config, shutdown, me).instrument(span).await
}

async fn run_node(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    me: NodeId,
) -> anyhow::Result<()> {
    let layout = initial_layout(&config, &me)?;
    let security = peer_security(&config, &me)?;
    let (dir, node) = open_node(&config, &me, &layout)?;

    // Bind both listeners before anything else so a port clash fails fast.
    let (rpc_listener, http_listener, resp_listener) = bind(&config).await?;
    let opts = serve_options(&config)?;
    let metrics = Arc::new(metrics::Metrics::new());
    let net = start_node(
        &config,
        &me,
        &layout,
        node,
        rpc_listener,
        security,
        &metrics,
    );
    let resp_metrics = metrics.resp();
    let state = app_state(&config, &me, &net, metrics)?;
    let context_keys = state.context_keys.clone();
    let resp_server =
        resp_listener.map(|l| start_resp(l, &config, &me, &net, resp_metrics, context_keys));
    info!(node = %me, http = %config.http, rpc = %config.listen, incarnation = dir.incarnation, "serving");
    http::serve(http_listener, http::Api::new(state), &opts, shutdown).await;

    info!("shutting down: syncing the store");
    resp_server.as_ref().map(tokio::task::JoinHandle::abort);
    net.peer_server.abort();
    stop_node(net.handle, net.thread).await?;
    dir.mark_clean_shutdown()
        .context("marking a clean shutdown")?;
    info!("stopped cleanly");
    Ok(())
}

/// The HTTP server's options: the defaults, with TLS when `config` names
/// a certificate and key (read now, so a bad one stops the start).
fn serve_options(config: &Config) -> anyhow::Result<http::ServeOptions> {
    let tls = match &config.http_tls {
        Some((cert, key)) => Some(http::tls::server_config(cert, key)?),
        None => None,
    };
    Ok(http::ServeOptions {
        tls,
        ..http::ServeOptions::default()
    })
}

/// What the HTTP handlers share. Says so in the log when the API is open
/// to anyone (no token file).
fn app_state(
    config: &Config,
    me: &NodeId,
    net: &Running,
    metrics: Arc<metrics::Metrics>,
) -> anyhow::Result<http::AppState> {
    if config.tokens.is_none() {
        info!("no token file: the HTTP API is open to anyone who can reach it");
    }
    Ok(http::AppState {
        node: net.handle.clone(),
        me: me.clone(),
        http_addr: config.http.clone(),
        value_bytes_max: config.limits.value_bytes_max,
        timeout_ms: config.timeout_ms,
        peers: net.info.clone(),
        metrics,
        faults: config.fault_injection.then(|| net.faults.clone()),
        context_keys: context_keys(config)?,
        tokens: config.tokens.clone(),
    })
}

/// The context keys of `config`, sized for its limits: its own, else the
/// cluster secret in its certificates directory, else the well-known key
/// (with a warning).
fn context_keys(config: &Config) -> anyhow::Result<ringkv_core::ContextKeys> {
    let keys = match (&config.context_keys, &config.certs) {
        (Some(keys), _) => keys.clone(),
        // `ringkv cert init` writes the cluster secret beside the CA.
        (None, Some(dir)) => config::load_context_keys(&dir.join("cluster.secret"))?,
        (None, None) => {
            tracing::warn!(
                "no cluster secret: context tokens are signed with a fixed, well-known key, so \
                 clients can forge them; give the node --certs DIR (its cluster.secret) or \
                 --context-secret-file"
            );
            ringkv_core::ContextKeys::insecure()
        }
    };
    Ok(keys.with_actors_max(config.limits.actors_max))
}

/// Serves the Redis protocol on `listener` (`--resp`) until aborted.
fn start_resp(
    listener: TcpListener,
    config: &Config,
    me: &NodeId,
    net: &Running,
    metrics: metrics::RespMetrics,
    context_keys: ringkv_core::ContextKeys,
) -> tokio::task::JoinHandle<()> {
    info!(resp = ?config.resp, "serving the Redis protocol");
    let state = resp::RespState {
        node: net.handle.clone(),
        me: me.clone(),
        timeout_ms: config.timeout_ms,
        value_bytes_max: config.limits.value_bytes_max,
        bucket_bytes_max: config.limits.bucket_bytes_max,
        tokens: config.tokens.clone(),
        metrics,
        context_keys,
    };
    tokio::spawn(resp::serve(listener, state).in_current_span())
}

/// The peer listener (`--listen`), the HTTP listener (`--http`) and the
/// Redis protocol's (`--resp`, when given).
async fn bind(config: &Config) -> anyhow::Result<(TcpListener, TcpListener, Option<TcpListener>)> {
    let rpc_listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding --listen {}", config.listen))?;
    let http_listener = TcpListener::bind(&config.http)
        .await
        .with_context(|| format!("binding --http {}", config.http))?;
    let resp_listener = match &config.resp {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding --resp {addr}"))?,
        ),
        None => None,
    };
    Ok((rpc_listener, http_listener, resp_listener))
}

/// Opens the data directory and the store, and makes the node.
fn open_node(
    config: &Config,
    me: &NodeId,
    layout: &Layout,
) -> anyhow::Result<(DataDir, Node<runtime::Tracked>)> {
    let dir = DataDir::open(&config.data_dir)
        .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
    if !dir.was_clean {
        info!(
            incarnation = dir.incarnation,
            "previous run did not shut down cleanly"
        );
    }
    let store =
        FjallStore::open(&dir.store_path(), config.ring_size).context("opening the store")?;
    let node_cfg = node_config(config, me, layout, dir.incarnation);
    let node = Node::new(node_cfg, layout.clone(), runtime::Tracked::new(store))
        .context("checking the node's configuration")?;

    Ok((dir, node))
}

/// How peers talk: mutual TLS from `--certs` (loaded and checked now, so a
/// missing or wrong file stops the start), or plaintext with `--insecure`
/// and a loud warning. Neither is an error that says to pass one.
fn peer_security(config: &Config, me: &NodeId) -> anyhow::Result<transport::PeerSecurity> {
    match (&config.certs, config.insecure) {
        (Some(_), true) => {
            anyhow::bail!("--certs and --insecure were both given; give one")
        }
        (Some(dir), false) => {
            let tls = tls::PeerTls::load(dir, me.as_str())
                .with_context(|| format!("--certs {}", dir.display()))?;
            info!(certs = %dir.display(), "peer links use mutual TLS");
            Ok(transport::PeerSecurity::Tls(tls))
        }
        (None, true) => {
            tracing::warn!(
                listen = %config.listen,
                "--insecure: the peer port is PLAINTEXT and UNAUTHENTICATED. Anyone who can \
                 reach it can claim to be any node, write any replica and join the cluster. \
                 Use it only on a trusted network or for tests; for anything else make \
                 certificates with `ringkv cert init` / `ringkv cert issue` and pass --certs"
            );
            Ok(transport::PeerSecurity::Insecure)
        }
        (None, false) => anyhow::bail!(
            "peer security not chosen: pass --certs DIR (mutual TLS between nodes; make DIR \
             with `ringkv cert init --dir DIR` and `ringkv cert issue --dir DIR {me}`), or \
             --insecure (plaintext, anyone who reaches the peer port is believed)"
        ),
    }
}

/// A running node's loop and peer transport.
struct Running {
    /// Requests into the node loop.
    handle: runtime::NodeHandle,
    /// The node loop's task.
    thread: tokio::task::JoinHandle<()>,
    /// Accepts peers' connections.
    peer_server: tokio::task::JoinHandle<()>,
    /// What connected peers said about themselves.
    info: transport::PeerInfo,
    /// Injected link faults (used only with --fault-injection).
    faults: faults::Faults,
}

/// Starts the node loop, the links to the layout's other members and the
/// peer listener.
fn start_node(
    config: &Config,
    me: &NodeId,
    layout: &Layout,
    node: Node<runtime::Tracked>,
    rpc_listener: TcpListener,
    security: transport::PeerSecurity,
    metrics: &metrics::Metrics,
) -> Running {
    // A frame holds at most a whole object (bounded by object_bytes_max at
    // the coordinator), plus room for the envelope and the dots.
    let frame_bytes_max = config.limits.object_bytes_max.saturating_add(1 << 20);
    let peer_list: Vec<(NodeId, String)> = layout
        .members
        .iter()
        .filter(|m| m.id != *me)
        .map(|m| (m.id.clone(), m.rpc_addr.clone()))
        .collect();
    let liveness = transport::Liveness::default();
    let faults = faults::Faults::default();
    let options = transport::PeerOptions {
        security,
        frame_bytes_max,
        connections_max: config.peer_connections_max,
        idle_timeout: std::time::Duration::from_millis(config.peer_idle_timeout_ms),
    };
    let peers = transport::start_peers(
        me.clone(),
        config.http.clone(),
        peer_list,
        options.clone(),
        liveness.clone(),
        faults.clone(),
    );
    let (handle, thread) = runtime::spawn(node, config.sync, peers.clone(), liveness);
    let info = transport::PeerInfo::default();
    let peer_server = tokio::spawn(
        transport::serve_peers(
            rpc_listener,
            options,
            metrics.peer_refusals(),
            info.clone(),
            peers,
            handle.clone(),
        )
        .in_current_span(),
    );
    Running {
        handle,
        thread,
        peer_server,
        info,
        faults,
    }
}

/// Layout version 1, from `--initial-cluster`; it must name this node.
fn initial_layout(config: &Config, me: &NodeId) -> anyhow::Result<Layout> {
    let members: Vec<Member> = config
        .initial_cluster
        .iter()
        .map(|(id, addr)| {
            Ok(Member::new(
                NodeId::parse(id).map_err(|e| anyhow::anyhow!("--initial-cluster: {e}"))?,
                addr.clone(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let layout = Layout::initial(members, config.ring_size)
        .map_err(|e| anyhow::anyhow!("--initial-cluster: {e}"))?;
    anyhow::ensure!(
        layout.member(me).is_some(),
        "node id {me} is not in --initial-cluster; add {me}=ADDR to it"
    );
    Ok(layout)
}

/// The node's configuration for this process start.
fn node_config(config: &Config, me: &NodeId, layout: &Layout, incarnation: u32) -> NodeConfig {
    NodeConfig {
        id: me.clone(),
        incarnation,
        n: config.n,
        r: config.r,
        w: config.w,
        timeout_ms: config.timeout_ms,
        limits: config.limits.clone(),
        pending_max: config.pending_max,
        bugs: Default::default(),
        // Fresh per process start: late replies to a previous start's
        // requests can then never match this start's.
        request_id_base: rand::random::<u64>() % ringkv_node::REQUEST_ID_BASE_MAX,
        hints_max: config.hints_max,
        buckets_max: config.buckets_max,
        handoff_interval_ms: ringkv_node::HANDOFF_INTERVAL_MS_DEFAULT,
        handoff_window: ringkv_node::HANDOFF_WINDOW_DEFAULT,
        gossip: if config.gossip_fast {
            GossipConfig::fast()
        } else {
            GossipConfig::lan(layout.members.len() as u32)
        },
        // Peers reach us at our layout address (which may differ from
        // --listen, e.g. when listening on 0.0.0.0).
        rpc_addr: layout
            .member(me)
            .map_or_else(|| config.listen.clone(), |m| m.rpc_addr.clone()),
        http_addr: config.http.clone(),
        // Grows with every start: this start's gossip identity supersedes
        // the previous one's at once.
        generation: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        gossip_seed: rand::random(),
        join: config.join.clone(),
        consensus: Default::default(),
        aae: {
            let d = ringkv_node::AaeConfig::default();
            ringkv_node::AaeConfig {
                interval_ms: config.aae_interval_ms,
                keys_per_tick: (config.aae_keys_per_sec as u64 * d.tick_ms / 1000).max(1) as usize,
                tombstone_grace_ms: Some(config.tombstone_grace_s.saturating_mul(1000)),
                ..d
            }
        },
        hinted_handoff: config.hinted_handoff,
    }
}

/// Asks the node loop to sync the store and stop, and waits for it.
async fn stop_node(
    handle: runtime::NodeHandle,
    thread: tokio::task::JoinHandle<()>,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // Wait for room in the queue rather than give up on a clean stop.
    let h = handle.clone();
    let queued = tokio::task::spawn_blocking(move || h.send_blocking(runtime::Event::Shutdown(tx)))
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    let synced = if queued {
        rx.await.unwrap_or_else(|_| Err("node loop stopped".into()))
    } else {
        Err("node loop stopped".into())
    };
    drop(handle);
    let _ = thread.await;
    synced.map_err(|e| anyhow::anyhow!("the store could not be synced at shutdown: {e}"))
}
