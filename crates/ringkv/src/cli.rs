//! Command-line arguments of the `ringkv` binary (clap derive).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ringkv_core::QuorumParam;
use serde::Deserialize;

/// Default HTTP endpoint of the kv and admin commands.
pub(crate) const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:8080";

const EXIT_CODES: &str = "\
Exit codes: 0 success; 1 `get` found no value; 2 bad usage or any other error; \
3 `put`/`delete` --if-match/--if-absent did not hold (nothing written; the current context \
is printed); 4 the write's outcome is unknown (it may or may not have been applied).";

/// ringkv: a Dynamo-style distributed key-value store.
#[derive(Debug, Parser)]
#[command(name = "ringkv", version, about, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run one node of a cluster.
    ///
    /// Every option may also be given in a TOML file passed with --config,
    /// under the same name with `_` or `-` (e.g. `node_id = "n1"`,
    /// `initial_cluster = "n1=127.0.0.1:7081,n2=127.0.0.1:7082"`,
    /// `sync = "always"`). Options on the command line win over the file, the
    /// file wins over the defaults. Stops cleanly on SIGINT or SIGTERM.
    Server(Box<ServerArgs>),
    /// Start a local cluster as child processes and stop it on Ctrl-C.
    Dev(DevArgs),
    /// Store a value under a key.
    Put(PutArgs),
    /// Read a key: the value to stdout, the context to stderr.
    Get(GetArgs),
    /// Delete a key.
    Delete(DeleteArgs),
    /// List a bucket's keys, one per line, paging through all of them.
    List(ListArgs),
    /// Show the cluster's members, liveness and settings.
    Status(AdminArgs),
    /// Show each partition's preference list.
    Ring(RingArgs),
    /// Run an anti-entropy repair pass on every node: replicas compare hash
    /// trees and exchange the keys that differ; waits until it is done.
    Repair(RepairArgs),
    /// Show or change a bucket's properties (n, r, w, pr, pw, conflict,
    /// siblings_warn, siblings_max).
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Change the cluster's layout: stage joins, leaves, removals and zone
    /// changes, review the plan, commit it.
    #[command(subcommand)]
    Cluster(crate::cluster::ClusterCommand),
    /// Predict how stale a bucket's reads are: the probability that a read
    /// started t ms after a write's ack returns it, for the bucket's N, R
    /// and W and for other R and W (from latencies the node measured).
    Staleness(StalenessArgs),
    /// Measure throughput and latency with YCSB-style workloads
    /// (`ringkv bench suite`: the standard set, written to docs/benchmarks.md).
    Bench(Box<crate::bench::BenchArgs>),
    /// Make the cluster's CA and secret, and node certificates, for
    /// `ringkv server --certs DIR` (mutual TLS between nodes).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Deterministic simulation: the real node code on a simulated network,
    /// clock and disk (`run`, `sweep`, `experiment`).
    #[command(subcommand)]
    Sim(ringkv_sim::cli::SimCommand),
}

/// How acknowledged writes are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SyncArg {
    /// Acknowledge after fsync (concurrent writes share one fsync).
    Always,
    /// Acknowledge once written to the OS; fsync every --sync-interval-ms.
    Periodic,
}

/// `ringkv server`. Every option may also come from the `--config` TOML file
/// (key = option name with `_` or `-`); options given here win over the file,
/// and the file wins over the defaults.
#[derive(Debug, Default, Args)]
pub(crate) struct ServerArgs {
    /// Stable id of this node, e.g. n1; must be listed in --initial-cluster.
    #[arg(long)]
    pub node_id: Option<String>,
    /// Data directory of this node (created if missing).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address for node-to-node traffic, host:port.
    #[arg(long)]
    pub listen: Option<String>,
    /// Address of the HTTP API, host:port.
    #[arg(long)]
    pub http: Option<String>,
    /// Members of the first layout: id=host:port,id=host:port,...
    /// [default: just this node at --listen]
    #[arg(long)]
    pub initial_cluster: Option<String>,
    /// Number of partitions, a power of two from 8 to 4096. [default: 64]
    #[arg(long)]
    pub ring_size: Option<u32>,
    /// Replicas per key. [default: 3]
    #[arg(long)]
    pub n: Option<usize>,
    /// Default replies a read waits for. [default: 2]
    #[arg(long)]
    pub r: Option<usize>,
    /// Default acks a write waits for. [default: 2]
    #[arg(long)]
    pub w: Option<usize>,
    /// When acknowledged writes are fsynced. [default: periodic]
    #[arg(long, value_enum)]
    pub sync: Option<SyncArg>,
    /// Longest time between fsyncs with --sync periodic (not allowed with
    /// --sync always), in ms. [default: 100]
    #[arg(long)]
    pub sync_interval_ms: Option<u64>,
    /// Default time a coordinator waits for replicas, in ms, from 1 to
    /// 600000. [default: 5000]
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Longest key, in bytes. [default: 1024]
    #[arg(long)]
    pub key_bytes_max: Option<usize>,
    /// Largest value, in bytes, at most 16777216 (the largest stored
    /// object). [default: 4194304]
    #[arg(long)]
    pub value_bytes_max: Option<usize>,
    /// Longest bucket name, in bytes. [default: 255]
    #[arg(long)]
    pub bucket_bytes_max: Option<usize>,
    /// Most client requests in flight, from 1 to 65536; more get 503
    /// overloaded. [default: 10000]
    #[arg(long)]
    pub pending_max: Option<usize>,
    /// Most hints this node keeps for unreachable primaries; past it the node
    /// refuses writes as a fallback (see `ringkv status`). [default: 1000000]
    #[arg(long)]
    pub hints_max: Option<usize>,
    /// Most buckets with properties of their own; past it a change that
    /// would give one more bucket properties is refused (409), from a
    /// client or a peer. [default: 10000]
    #[arg(long)]
    pub buckets_max: Option<usize>,
    /// Whether writes go to fallbacks, as hints, while primaries are
    /// unreachable (sloppy quorum and hinted handoff). With false a write
    /// counts only primaries' acks, and a replica that was down catches up
    /// through read repair and anti-entropy. [default: true]
    #[arg(long, value_name = "true|false")]
    pub hinted_handoff: Option<bool>,
    /// How often a background anti-entropy sweep over every partition
    /// starts, in ms; 0 turns it off (`ringkv repair` still runs one).
    /// [default: 600000]
    #[arg(long)]
    pub aae_interval_ms: Option<u64>,
    /// Keys anti-entropy may send per second to repair its peers, at most:
    /// repair never starves client traffic. [default: 10000]
    #[arg(long)]
    pub aae_keys_per_sec: Option<usize>,
    /// How long a tombstone is kept after its delete, in seconds, before
    /// anti-entropy purges it (and only once every replica holds it). A
    /// node down for longer than this must be wiped before it rejoins, or
    /// values deleted meanwhile could come back. [default: 86400]
    #[arg(long)]
    pub tombstone_grace_s: Option<u64>,
    /// Threads of the async runtime, which runs the HTTP server, the peer
    /// links and the node's loop. [default: cores - 1, at least 1]
    #[arg(long)]
    pub runtime_threads: Option<usize>,
    /// Test-only: accept /v1/admin/faults requests that drop or delay this
    /// node's traffic to chosen peers (a partition for real processes).
    /// Never enable in production.
    #[arg(long)]
    pub fault_injection: bool,
    /// RPC addresses of running nodes to announce this node to at start,
    /// comma-separated host:port pairs. Gossip then brings every member's id,
    /// addresses and liveness (see `GET /v1/cluster`). Membership only: which
    /// node stores which keys still comes from --initial-cluster (layout
    /// changes are not implemented yet).
    #[arg(long, value_name = "ADDR[,ADDR]")]
    pub join: Option<String>,
    /// Advanced, for tests: fast gossip failure detection (probe every
    /// 100 ms, Down 500 ms after Suspect) instead of the LAN profile (probe
    /// every second, Down 4 s after Suspect). More packets; not for
    /// production.
    #[arg(long, hide = true)]
    pub gossip_fast: bool,
    /// Directory of the cluster CA and this node's certificate: DIR/ca.crt,
    /// DIR/NODE-ID.crt, DIR/NODE-ID.key (make them with `ringkv cert init`
    /// and `ringkv cert issue`). Peers then talk mutual TLS, and a peer is
    /// believed only as the node its certificate names. Required unless
    /// --insecure.
    #[arg(long, value_name = "DIR")]
    pub certs: Option<PathBuf>,
    /// Run the peer port in plaintext: anyone who reaches it can claim to
    /// be any node and write replicas. For tests and trusted networks only;
    /// a warning is logged at start.
    #[arg(long, conflicts_with = "certs")]
    pub insecure: bool,
    /// Most inbound peer connections open at once, from 1; more are closed
    /// at once (counted in ringkv_peer_connections_refused_total).
    /// [default: 256]
    #[arg(long)]
    pub peer_connections_max: Option<usize>,
    /// Advanced, for tests: an inbound peer connection with no frame for
    /// this long is closed, in ms, at least 100. [default: 60000]
    #[arg(long, hide = true)]
    pub peer_idle_timeout_ms: Option<u64>,
    /// File with the cluster secret that signs context tokens: 64 hex
    /// digits on a line (as `ringkv cert init` writes DIR/cluster.secret).
    /// Every line is a key: the first signs, all verify; FILE.previous, if
    /// present, adds keys that verify only (rotation, see README.md). Without
    /// it contexts are signed with a well-known key and can be forged.
    #[arg(long, value_name = "FILE")]
    pub context_secret_file: Option<PathBuf>,
    /// TOML file of client bearer tokens with their permissions (see
    /// README.md, "Trust model"). With it every HTTP request but /health
    /// needs `Authorization: Bearer <token>`; without it the API is open.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve the HTTP API over TLS with this PEM certificate chain (the
    /// node's certificate first, e.g. DIR/n1.crt from `ringkv cert issue`);
    /// needs --http-key. Clients then use https:// with --ca DIR/ca.crt.
    #[arg(long, value_name = "FILE", requires = "http_key")]
    pub http_cert: Option<PathBuf>,
    /// The PEM private key of --http-cert.
    #[arg(long, value_name = "FILE", requires = "http_cert")]
    pub http_key: Option<PathBuf>,
    /// Serve the Redis protocol (RESP2, RESP3 after HELLO 3) at this
    /// host:port, e.g. 127.0.0.1:6380: GET, SET, DEL, EXISTS, MGET, MSET
    /// and friends, through the same path as the HTTP API (see README.md,
    /// "Redis protocol"). [default: none]
    #[arg(long, value_name = "ADDR")]
    pub resp: Option<String>,
    /// TOML file giving any of the options above.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// `ringkv cert ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Make a cluster CA and secret in DIR: DIR/ca.crt (PEM), DIR/ca.key
    /// (PEM, mode 0600) and DIR/cluster.secret (mode 0600).
    ///
    /// cluster.secret holds 32 random bytes written as 64 lowercase hex
    /// digits and a newline: the key of the MAC over client contexts. Give
    /// every node of a cluster the same directory contents (each node needs
    /// ca.crt, cluster.secret and its own NODE.crt and NODE.key; ca.key only
    /// where certificates are issued). Existing files are kept unless
    /// --force: a new CA invalidates every certificate of the old one.
    Init(CertInitArgs),
    /// Make DIR/NODE.crt and DIR/NODE.key (mode 0600): a certificate for
    /// node NODE signed by the CA in DIR, naming NODE (its DNS subject
    /// alternative name), valid for serving and dialing peers.
    Issue(CertIssueArgs),
}

/// `ringkv cert init`.
#[derive(Debug, Args)]
pub(crate) struct CertInitArgs {
    /// Directory for the files (created if missing).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// `ringkv cert issue`.
#[derive(Debug, Args)]
pub(crate) struct CertIssueArgs {
    /// Directory of the CA (made by `ringkv cert init`); the files go there.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// The node id, e.g. n1 (as given to `ringkv server --node-id`).
    #[arg(value_name = "NODE")]
    pub node: String,
    /// Replace an existing certificate and key of that node.
    #[arg(long)]
    pub force: bool,
}

/// `ringkv dev`.
#[derive(Debug, Args)]
pub(crate) struct DevArgs {
    /// Number of nodes (n1, n2, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub nodes: u16,
    /// Directory for the nodes' data (DIR/nI) and logs (DIR/nI.log); kept across runs.
    #[arg(long, default_value = ".ringkv-dev")]
    pub dir: PathBuf,
    /// HTTP port of n1; node i listens on http-port + i - 1.
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// RPC port of n1; node i listens on rpc-port + i - 1.
    #[arg(long, default_value_t = 7080)]
    pub rpc_port: u16,
}

/// Where to reach the cluster.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// HTTP endpoint(s) of the cluster; a comma-separated list fails over.
    /// https:// (nodes started with --http-cert) needs --ca.
    #[arg(long, env = "RINGKV_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Bearer token sent with every request (servers started with
    /// --token-file require one).
    #[arg(long, env = "RINGKV_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The cluster's CA certificate (PEM, e.g. DIR/ca.crt from `ringkv cert
    /// init`), needed for https:// endpoints (nodes started with
    /// --http-cert): a node's certificate must chain to it. Its name is not
    /// compared with the endpoint's host (node certificates name node ids).
    #[arg(long, env = "RINGKV_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

/// Options shared by `put`, `get` and `delete`.
#[derive(Debug, Args)]
pub(crate) struct KvCommon {
    /// Bucket of the key.
    #[arg(long, default_value = "default")]
    pub bucket: String,
    /// How long the coordinating node waits for replicas, in ms.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    #[command(flatten)]
    pub connection: Connection,
}

/// `ringkv put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The key (UTF-8). Use `--` before a key that starts with `-`.
    pub key: String,
    /// The value; `-` reads it from stdin.
    #[arg(allow_hyphen_values = true)]
    pub value: OsString,
    /// Context of the read this write follows (printed by `get`).
    #[arg(long)]
    pub context: Option<String>,
    /// Compare-and-set (strong buckets): apply only if the key is still at
    /// the version of this context (printed by `get`). Exit code 3 when not.
    #[arg(long, value_name = "CONTEXT", conflicts_with_all = ["context", "if_absent"])]
    pub if_match: Option<String>,
    /// Compare-and-set (strong buckets): apply only if the key is absent
    /// (never written, or deleted). Exit code 3 when not.
    #[arg(long, conflicts_with = "context")]
    pub if_absent: bool,
    /// Acks to wait for: a number, one, quorum or all.
    #[arg(long, value_parser = parse_quorum)]
    pub w: Option<String>,
    /// How many of the acks must come from primaries.
    #[arg(long, value_parser = parse_quorum)]
    pub pw: Option<String>,
    #[command(flatten)]
    pub common: KvCommon,
}

/// `ringkv get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The key (UTF-8). Use `--` before a key that starts with `-`.
    pub key: String,
    /// Replies to wait for: a number, one, quorum or all.
    #[arg(long, value_parser = parse_quorum)]
    pub r: Option<String>,
    /// How many of the replies must come from primaries.
    #[arg(long, value_parser = parse_quorum)]
    pub pr: Option<String>,
    #[command(flatten)]
    pub common: KvCommon,
}

/// `ringkv list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only keys starting with this (UTF-8).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Start after this key (the `next` a page or `--json` printed).
    #[arg(long)]
    pub after: Option<String>,
    /// Stop after this many keys (prints where to go on: `next:` on stderr,
    /// or `next` in the JSON). [default: every key]
    #[arg(long)]
    pub limit: Option<u64>,
    /// Keys asked per request, 1 to 10000.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,
    /// Replies to wait for from each partition: a number, one, quorum or all.
    #[arg(long, value_parser = parse_quorum)]
    pub r: Option<String>,
    /// Print one JSON object `{"keys": [...], "next": ...}` (non-UTF-8 keys
    /// in `keys_b64`, base64) instead of one key per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub common: KvCommon,
}

/// `ringkv delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    /// The key (UTF-8). Use `--` before a key that starts with `-`.
    pub key: String,
    /// Context of the read this deletion follows (printed by `get`).
    #[arg(long)]
    pub context: Option<String>,
    /// Compare-and-set (strong buckets): apply only if the key is still at
    /// the version of this context (printed by `get`). Exit code 3 when not.
    #[arg(long, value_name = "CONTEXT", conflicts_with_all = ["context", "if_absent"])]
    pub if_match: Option<String>,
    /// Compare-and-set (strong buckets): apply only if the key is absent
    /// (never written, or deleted). Exit code 3 when not.
    #[arg(long, conflicts_with = "context")]
    pub if_absent: bool,
    /// Acks to wait for: a number, one, quorum or all.
    #[arg(long, value_parser = parse_quorum)]
    pub w: Option<String>,
    /// How many of the acks must come from primaries.
    #[arg(long, value_parser = parse_quorum)]
    pub pw: Option<String>,
    #[command(flatten)]
    pub common: KvCommon,
}

/// `ringkv status` and `ringkv ring`.
#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connection: Connection,
}

/// `ringkv staleness BUCKET`.
#[derive(Debug, Args)]
pub(crate) struct StalenessArgs {
    /// The bucket.
    #[arg(value_name = "BUCKET")]
    pub bucket: String,
    /// Who coordinates the read: any (a node at random), replica (another
    /// replica of the key) or non-replica. [default: any]
    #[arg(long, value_parser = ["any", "replica", "non-replica"])]
    pub reader: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `ringkv repair`.
#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    /// Only the keys of this bucket's trees (every bucket with the same n
    /// shares them).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Only this partition (see `ringkv ring`).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Queue the pass and return at once instead of waiting for it.
    #[arg(long)]
    pub no_wait: bool,
    /// Longest wait for the pass, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub timeout_s: u64,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `ringkv ring`: the whole ring, or where one key lives (`--key`).
#[derive(Debug, Args)]
pub(crate) struct RingArgs {
    /// Show this key's partition, primaries and fallbacks (with liveness)
    /// instead of the whole ring.
    #[arg(long)]
    pub key: Option<String>,
    /// Bucket of `--key`.
    #[arg(long, default_value = "default", requires = "key")]
    pub bucket: String,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `ringkv bucket ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum BucketCommand {
    /// Show the properties in force for a bucket (its own, or the defaults).
    Get(BucketGetArgs),
    /// Change some properties of a bucket and show the result, e.g.
    /// `ringkv bucket set carts conflict=lww n=3 r=quorum`.
    ///
    /// Properties: n, r, w, pr, pw (a number, or one, quorum, all for the
    /// quorums), conflict (siblings or lww), siblings_warn, siblings_max,
    /// consistency (eventual or strong; only when the bucket is created:
    /// `ringkv bucket set orders consistency=strong`).
    /// Properties not given keep their value. The change reaches every node.
    Set(BucketSetArgs),
    /// List the buckets that have properties of their own, and the defaults.
    List(AdminArgs),
}

/// `ringkv bucket get`.
#[derive(Debug, Args)]
pub(crate) struct BucketGetArgs {
    /// The bucket. [default: default]
    #[arg(value_name = "BUCKET")]
    pub name: Option<String>,
    /// The bucket (same as the positional BUCKET).
    #[arg(long = "bucket", value_name = "BUCKET", conflicts_with = "name")]
    pub bucket: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

impl BucketGetArgs {
    /// The bucket asked for, `default` when none.
    pub(crate) fn bucket(&self) -> &str {
        self.name
            .as_deref()
            .or(self.bucket.as_deref())
            .unwrap_or("default")
    }
}

/// `ringkv bucket set BUCKET NAME=VALUE...`.
#[derive(Debug, Args)]
pub(crate) struct BucketSetArgs {
    /// The bucket.
    #[arg(value_name = "BUCKET")]
    pub bucket: String,
    /// The properties to change, as NAME=VALUE (e.g. conflict=lww n=3 r=quorum).
    #[arg(value_name = "NAME=VALUE", required = true)]
    pub props: Vec<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// Builds the JSON body of a bucket change from `NAME=VALUE` pairs: a
/// value that is a whole number becomes a JSON number, anything else a
/// string. The server judges names and values (and says what is allowed);
/// here only the shape is checked.
pub(crate) fn bucket_patch(pairs: &[String]) -> Result<serde_json::Value, String> {
    let mut m = serde_json::Map::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!(
                "{pair:?} is not NAME=VALUE; write e.g. n=3, r=quorum or conflict=lww"
            ));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || value.is_empty() {
            return Err(format!(
                "{pair:?} has an empty name or value; write e.g. n=3, r=quorum or conflict=lww"
            ));
        }
        let v = match value.parse::<u64>() {
            Ok(n) => serde_json::Value::from(n),
            Err(_) => serde_json::Value::from(value),
        };
        if m.insert(name.to_string(), v).is_some() {
            return Err(format!("{name} is given twice; give each property once"));
        }
    }
    Ok(serde_json::Value::Object(m))
}

/// Checks a quorum parameter (`one`, `quorum`, `all` or a positive number)
/// before anything is sent; the server checks it against N.
pub(crate) fn parse_quorum(s: &str) -> Result<String, String> {
    match QuorumParam::parse("quorum", s) {
        Ok(QuorumParam::Count(0)) | Err(_) => {
            Err("use a number from 1 to N, or one, quorum, all".to_string())
        }
        Ok(_) => Ok(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("ringkv").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn compare_and_set_flags() {
        let Command::Put(p) = parse(&["put", "k", "v", "--if-match", "ctx"])
            .unwrap()
            .command
        else {
            panic!()
        };
        assert_eq!(p.if_match.as_deref(), Some("ctx"));
        assert!(!p.if_absent);
        let Command::Delete(d) = parse(&["delete", "k", "--if-absent"]).unwrap().command else {
            panic!()
        };
        assert!(d.if_absent);
        assert!(parse(&["put", "k", "v", "--if-match", "c", "--if-absent"]).is_err());
        assert!(parse(&["put", "k", "v", "--if-match", "c", "--context", "c"]).is_err());
        assert!(parse(&["delete", "k", "--if-absent", "--context", "c"]).is_err());
        assert_eq!(
            bucket_patch(&["consistency=strong".to_string()]).unwrap(),
            serde_json::json!({"consistency": "strong"})
        );
    }

    #[test]
    fn put_takes_key_value_and_options_in_any_order() {
        let cli = parse(&["put", "--w", "all", "k", "-", "--bucket", "b"]).unwrap();
        let Command::Put(p) = cli.command else {
            panic!("not put")
        };
        assert_eq!(p.key, "k");
        assert_eq!(p.value, "-");
        assert_eq!(p.w.as_deref(), Some("all"));
        assert_eq!(p.common.bucket, "b");

        let cli = parse(&["put", "k", "-5", "--context", "abc"]).unwrap();
        let Command::Put(p) = cli.command else {
            panic!("not put")
        };
        assert_eq!(p.value, "-5");
        assert_eq!(p.context.as_deref(), Some("abc"));
    }

    #[test]
    fn quorum_values_are_checked() {
        assert!(parse(&["get", "k", "--r", "quorum"]).is_ok());
        assert!(parse(&["get", "k", "--r", "2"]).is_ok());
        assert!(parse(&["get", "k", "--r", "0"]).is_err());
        assert!(parse(&["get", "k", "--r", "most"]).is_err());
        // Options that do not apply are refused, not ignored.
        assert!(parse(&["get", "k", "--w", "1"]).is_err());
        assert!(parse(&["get", "k", "--context", "c"]).is_err());
    }

    #[test]
    fn bucket_commands_parse() {
        let Command::Bucket(BucketCommand::Get(g)) =
            parse(&["bucket", "get", "carts"]).unwrap().command
        else {
            panic!("not bucket get")
        };
        assert_eq!(g.bucket(), "carts");
        let Command::Bucket(BucketCommand::Get(g)) =
            parse(&["bucket", "get", "--bucket", "b2"]).unwrap().command
        else {
            panic!("not bucket get")
        };
        assert_eq!(g.bucket(), "b2");
        let Command::Bucket(BucketCommand::Get(g)) = parse(&["bucket", "get"]).unwrap().command
        else {
            panic!("not bucket get")
        };
        assert_eq!(g.bucket(), "default");
        assert!(parse(&["bucket", "get", "a", "--bucket", "b"]).is_err());
        let Command::Bucket(BucketCommand::Set(s)) =
            parse(&["bucket", "set", "carts", "conflict=lww", "n=3"])
                .unwrap()
                .command
        else {
            panic!("not bucket set")
        };
        assert_eq!(s.bucket, "carts");
        assert_eq!(s.props, ["conflict=lww", "n=3"]);
        assert!(parse(&["bucket", "set", "carts"]).is_err());
    }

    #[test]
    fn bucket_patches_are_built_from_pairs() {
        let pairs = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            bucket_patch(&pairs(&["conflict=lww", "n=3", "r=quorum"])).unwrap(),
            serde_json::json!({"conflict": "lww", "n": 3, "r": "quorum"})
        );
        assert!(
            bucket_patch(&pairs(&["n"]))
                .unwrap_err()
                .contains("NAME=VALUE")
        );
        assert!(bucket_patch(&pairs(&["n="])).is_err());
        assert!(
            bucket_patch(&pairs(&["n=1", "n=2"]))
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn cert_commands_and_server_security_flags_parse() {
        let Command::Cert(CertCommand::Issue(i)) =
            parse(&["cert", "issue", "--dir", "c", "n2", "--force"])
                .unwrap()
                .command
        else {
            panic!("not cert issue")
        };
        assert_eq!((i.dir, i.node.as_str(), i.force), ("c".into(), "n2", true));
        assert!(parse(&["cert", "init"]).is_err(), "--dir is required");
        assert!(
            parse(&["cert", "issue", "--dir", "c"]).is_err(),
            "NODE is required"
        );
        assert!(parse(&["server", "--certs", "c", "--insecure"]).is_err());
    }

    #[test]
    fn tokens_and_tls_files_parse() {
        let Command::Get(g) = parse(&["get", "k", "--token", "t0k3n"]).unwrap().command else {
            panic!("not get")
        };
        assert_eq!(g.common.connection.token.as_deref(), Some("t0k3n"));
        let Command::Status(s) = parse(&["status", "--token", "t"]).unwrap().command else {
            panic!("not status")
        };
        assert_eq!(s.connection.token.as_deref(), Some("t"));
        let Command::Put(p) = parse(&["put", "k", "v", "--ca", "certs/ca.crt"])
            .unwrap()
            .command
        else {
            panic!("not put")
        };
        assert_eq!(p.common.connection.ca, Some(PathBuf::from("certs/ca.crt")));
        // The certificate and its key go together.
        let id = ["server", "--node-id", "n1"];
        let with = |extra: &[&'static str]| parse(&[&id[..], extra].concat());
        assert!(with(&["--http-cert", "c.pem"]).is_err());
        assert!(with(&["--http-key", "k.pem"]).is_err());
        assert!(with(&["--http-cert", "c.pem", "--http-key", "k.pem"]).is_ok());
    }

    #[test]
    fn dev_defaults() {
        let Command::Dev(d) = parse(&["dev"]).unwrap().command else {
            panic!("not dev")
        };
        assert_eq!((d.nodes, d.http_port, d.rpc_port), (3, 8080, 7080));
        assert_eq!(d.dir, PathBuf::from(".ringkv-dev"));
        assert!(parse(&["dev", "--nodes", "0"]).is_err());
    }
}
