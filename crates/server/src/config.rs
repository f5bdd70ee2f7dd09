//! A node's configuration: one documented struct. The binary checks every value
//! before it starts a node, and the node checks its own part again
//! ([`ringkv_node::NodeConfig::validate`]).

use std::path::PathBuf;

use std::path::Path;

use anyhow::Context as _;
use ringkv_core::{ContextKeys, Limits};
use ringkv_storage::SyncMode;

/// Everything a node needs to start. Built by the binary from flags and an
/// optional TOML file (flags win).
#[derive(Clone, Debug)]
pub struct Config {
    /// Stable id of this node, e.g. `n1`; must appear in `initial_cluster`.
    pub node_id: String,
    /// Where the node keeps its data; created if missing.
    pub data_dir: PathBuf,
    /// Address for node-to-node traffic (`host:port`).
    pub listen: String,
    /// Address of the HTTP API (`host:port`).
    pub http: String,
    /// Address of the Redis protocol front end (`--resp`, `host:port`);
    /// `None`: no RESP listener.
    pub resp: Option<String>,
    /// Members of layout version 1: (node id, RPC address).
    pub initial_cluster: Vec<(String, String)>,
    /// Number of partitions: a power of two from 8 to 4096.
    pub ring_size: u32,
    /// Replicas per key.
    pub n: usize,
    /// Default replies a read waits for.
    pub r: usize,
    /// Default acks a write waits for.
    pub w: usize,
    /// Durability of acknowledged writes.
    pub sync: SyncMode,
    /// Default time a coordinator waits for replies, in ms.
    pub timeout_ms: u64,
    /// Key, bucket and value size limits.
    pub limits: Limits,
    /// Most client requests in flight on this node; more get `503 overloaded`.
    pub pending_max: usize,
    /// Most hints this node keeps as a fallback; past it, it refuses writes
    /// as a fallback and says so in its status and metrics.
    pub hints_max: usize,
    /// Most buckets with properties of their own (`--buckets-max`); past it
    /// a change giving one more bucket properties is refused.
    pub buckets_max: usize,
    /// Whether writes may go to fallbacks as hints while primaries are
    /// unreachable (`--hinted-handoff`, default true).
    pub hinted_handoff: bool,
    /// How often a background anti-entropy sweep starts, in ms; 0: never
    /// (`ringkv repair` still runs one).
    pub aae_interval_ms: u64,
    /// Keys anti-entropy may send per second to repair peers, at most.
    pub aae_keys_per_sec: usize,
    /// How long a tombstone is kept before anti-entropy may purge it (once
    /// every replica holds it), in seconds.
    pub tombstone_grace_s: u64,
    /// Worker threads of the async runtime (HTTP, peer links); the node's
    /// state machine has a thread of its own besides.
    pub runtime_threads: usize,
    /// Test-only: serve `/v1/admin/faults`, which drops or delays this node's
    /// traffic to chosen peers. Off unless asked for.
    pub fault_injection: bool,
    /// RPC addresses (`host:port`) of running nodes to announce this node to
    /// at start (`--join`): gossip then brings every member's id, addresses
    /// and liveness. The layout still comes from `initial_cluster`.
    pub join: Vec<String>,
    /// Use the fast gossip profile (probe every 100 ms, Down 500 ms after
    /// Suspect) instead of the LAN one: for tests that want quick failure
    /// detection. Costs more packets; not meant for production.
    pub gossip_fast: bool,
    /// Directory of the cluster CA and this node's certificate
    /// (`ca.crt`, `NODE.crt`, `NODE.key`; see [`crate::tls`]): peers talk
    /// mutual TLS. `None` needs [`Config::insecure`].
    pub certs: Option<PathBuf>,
    /// Plaintext between peers, and any hello believed. Only allowed
    /// without [`Config::certs`]; a node with neither refuses to start.
    pub insecure: bool,
    /// Most inbound peer connections at once; more are closed at accept.
    pub peer_connections_max: usize,
    /// An inbound peer connection with no frame for this long is closed,
    /// in ms; links send keepalives at a third of it (at most every 10 s).
    pub peer_idle_timeout_ms: u64,
    /// Keys of the MAC on context tokens: the first signs, all verify (keep
    /// the previous cluster secret here while a rotation rolls through the
    /// cluster). `None`: the fixed, well-known key, so anyone can forge a
    /// context; the node warns at start. See [`load_context_keys`].
    pub context_keys: Option<ContextKeys>,
    /// Bearer tokens clients must present (`--token-file`, see
    /// [`crate::auth`]); `None`: the HTTP API is open to anyone who reaches it.
    pub tokens: Option<std::sync::Arc<crate::auth::Tokens>>,
    /// Serve the HTTP API over TLS with this PEM certificate chain and PEM
    /// private key (`--http-cert`, `--http-key`); `None`: plain HTTP.
    pub http_tls: Option<(PathBuf, PathBuf)>,
}

/// Default of [`Config::tombstone_grace_s`]: one day.
pub const TOMBSTONE_GRACE_S_DEFAULT: u64 = 86_400;

/// Default of [`Config::aae_keys_per_sec`].
pub const AAE_KEYS_PER_SEC_DEFAULT: usize = 10_000;

impl Config {
    /// A config with the documented defaults for the given identity.
    pub fn new(node_id: &str, data_dir: PathBuf, listen: &str, http: &str) -> Self {
        Config {
            node_id: node_id.to_string(),
            data_dir,
            listen: listen.to_string(),
            http: http.to_string(),
            resp: None,
            initial_cluster: vec![(node_id.to_string(), listen.to_string())],
            ring_size: 64,
            n: 3,
            r: 2,
            w: 2,
            sync: SyncMode::Periodic { interval_ms: 100 },
            timeout_ms: 5_000,
            limits: Limits::default(),
            pending_max: 10_000,
            hints_max: ringkv_node::HINTS_MAX_DEFAULT,
            buckets_max: ringkv_node::BUCKETS_MAX_DEFAULT,
            hinted_handoff: true,
            aae_interval_ms: ringkv_node::AaeConfig::default().interval_ms,
            aae_keys_per_sec: AAE_KEYS_PER_SEC_DEFAULT,
            tombstone_grace_s: TOMBSTONE_GRACE_S_DEFAULT,
            runtime_threads: default_runtime_threads(),
            fault_injection: false,
            join: Vec::new(),
            gossip_fast: false,
            certs: None,
            insecure: false,
            peer_connections_max: crate::transport::PEER_CONNECTIONS_MAX_DEFAULT,
            peer_idle_timeout_ms: crate::transport::PEER_IDLE_TIMEOUT_MS_DEFAULT,
            context_keys: None,
            tokens: None,
            http_tls: None,
        }
    }
}

/// Runtime threads by default: every core but one (at least one), which is
/// left to the storage engine's background thread and the OS. Chosen by
/// measurement on 2 cores, where one runtime thread per node beat two by
/// 10-30 % for 3 nodes and for 1 (docs/benchmarks.md, "What the profile
/// showed"); set `--runtime-threads` for other hardware.
pub fn default_runtime_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// Reads the cluster secret from `path` (as `ringkv cert init` writes
/// `DIR/cluster.secret`: 64 hex digits on a line) and, when it exists,
/// `path` + `.previous`. Every line of either file is a key; the first
/// line of `path` signs context tokens and all the keys verify them, so a
/// secret can be rotated without refusing tokens handed out before (README.md,
/// "Trust model").
pub fn load_context_keys(path: &Path) -> anyhow::Result<ContextKeys> {
    let current = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the cluster secret {}", path.display()))?;
    let mut previous_path = path.as_os_str().to_owned();
    previous_path.push(".previous");
    let previous_path = std::path::PathBuf::from(previous_path);
    let previous = match std::fs::read_to_string(&previous_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot read the previous cluster secret {}",
                    previous_path.display()
                )
            });
        }
    };
    let mut keys = ContextKeys::from_hex(&[&current])
        .with_context(|| format!("the cluster secret {} is not valid", path.display()))?;
    if !previous.trim().is_empty() {
        let both = ContextKeys::from_hex(&[&current, &previous]).with_context(|| {
            format!(
                "the previous cluster secret {} is not valid",
                previous_path.display()
            )
        })?;
        keys = both;
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkv_core::context;

    #[test]
    fn the_secret_and_the_previous_one_are_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        assert!(
            load_context_keys(&path).is_err(),
            "a missing secret is an error"
        );
        std::fs::write(&path, "nothex\n").unwrap();
        let err = format!("{:#}", load_context_keys(&path).unwrap_err());
        assert!(
            err.contains("line 1") && err.contains("cluster.secret"),
            "{err}"
        );
        std::fs::write(&path, format!("{}\n", "11".repeat(32))).unwrap();
        let old = load_context_keys(&path).unwrap();
        assert_eq!(old.len(), 1);
        let token = context::encode(&Default::default(), 1, &old);
        // Rotation: the old secret moves to .previous, a new one is written.
        std::fs::write(dir.path().join("cluster.secret.previous"), "11".repeat(32)).unwrap();
        std::fs::write(&path, "22".repeat(32)).unwrap();
        let rotated = load_context_keys(&path).unwrap();
        assert_eq!(rotated.len(), 2);
        assert!(context::decode(&token, 1, &rotated).is_ok());
        assert_ne!(context::encode(&Default::default(), 1, &rotated), token);
    }
}
