//! Building a node's [`Config`] for `ringkv server`: flags, then the TOML file,
//! then the defaults of [`Config::new`]; and checking the result.
//!
//! # The config file
//! TOML, every key optional, named like the flags with `_` or `-`:
//!
//! ```toml
//! node_id = "n1"
//! data_dir = "/var/lib/ringkv/n1"        # relative paths are relative to the working directory
//! listen = "127.0.0.1:7081"
//! http = "127.0.0.1:8081"
//! initial_cluster = "n1=127.0.0.1:7081,n2=127.0.0.1:7082,n3=127.0.0.1:7083"
//! # or: initial_cluster = ["n1=127.0.0.1:7081", "n2=127.0.0.1:7082"]
//! # or: [initial_cluster]  n1 = "127.0.0.1:7081"  (one line per member)
//! ring_size = 64
//! n = 3
//! r = 2
//! w = 2
//! sync = "periodic"                      # or "always"
//! sync_interval_ms = 100
//! timeout_ms = 5000
//! key_bytes_max = 1024
//! value_bytes_max = 4194304
//! bucket_bytes_max = 255
//! pending_max = 10000
//! hints_max = 1000000
//! runtime_threads = 1                   # default: cores - 1, at least 1
//! join = "127.0.0.1:7081"                # or a list: ["10.0.0.1:7081", "10.0.0.2:7081"]
//! ```
//!
//! Unknown keys are an error, so a typo does not silently fall back to a default.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ringkv_core::NodeId;
use ringkv_core::hash::{RING_SIZE_MAX, RING_SIZE_MIN};
use ringkv_server::Config;
use ringkv_storage::SyncMode;
use serde::Deserialize;

use crate::cli::{ServerArgs, SyncArg};

/// Default fsync interval with `--sync periodic`, in ms.
const SYNC_INTERVAL_MS_DEFAULT: u64 = 100;

/// The contents of a `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, alias = "node-id")]
    node_id: Option<String>,
    #[serde(default, alias = "data-dir")]
    data_dir: Option<PathBuf>,
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    http: Option<String>,
    #[serde(default, alias = "initial-cluster")]
    initial_cluster: Option<ClusterSpec>,
    #[serde(default, alias = "ring-size")]
    ring_size: Option<u32>,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    r: Option<usize>,
    #[serde(default)]
    w: Option<usize>,
    #[serde(default)]
    sync: Option<SyncArg>,
    #[serde(default, alias = "sync-interval-ms")]
    sync_interval_ms: Option<u64>,
    #[serde(default, alias = "timeout-ms")]
    timeout_ms: Option<u64>,
    #[serde(default, alias = "key-bytes-max")]
    key_bytes_max: Option<usize>,
    #[serde(default, alias = "value-bytes-max")]
    value_bytes_max: Option<usize>,
    #[serde(default, alias = "bucket-bytes-max")]
    bucket_bytes_max: Option<usize>,
    #[serde(default, alias = "pending-max")]
    pending_max: Option<usize>,
    #[serde(default, alias = "hints-max")]
    hints_max: Option<usize>,
    #[serde(default, alias = "runtime-threads")]
    runtime_threads: Option<usize>,
    #[serde(default, alias = "fault-injection")]
    fault_injection: Option<bool>,
    #[serde(default)]
    join: Option<JoinSpec>,
    #[serde(default, alias = "gossip-fast")]
    gossip_fast: Option<bool>,
}

/// The forms `join` may take in the file.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a string \"host:port,...\" or a list of \"host:port\" strings"
)]
enum JoinSpec {
    /// `"a:1,b:2"`.
    Joined(String),
    /// `["a:1", "b:2"]`.
    Entries(Vec<String>),
}

/// Splits `--join`: addresses separated by commas, blanks ignored.
fn parse_join(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
        .collect()
}

/// The forms `initial_cluster` may take in the file.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a string \"id=host:port,...\", a list of \"id=host:port\" strings, or a table of id = \"host:port\""
)]
enum ClusterSpec {
    /// `"n1=a:1,n2=b:2"`.
    Joined(String),
    /// `["n1=a:1", "n2=b:2"]`.
    Entries(Vec<String>),
    /// `{ n1 = "a:1", n2 = "b:2" }`.
    Table(BTreeMap<String, String>),
}

impl ClusterSpec {
    fn resolve(&self) -> Result<Vec<(String, String)>, String> {
        match self {
            ClusterSpec::Joined(s) => parse_initial_cluster(s),
            ClusterSpec::Entries(v) => parse_initial_cluster(&v.join(",")),
            ClusterSpec::Table(t) => {
                let members: Vec<(String, String)> =
                    t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                check_members(&members)?;
                Ok(members)
            }
        }
    }
}

/// Reads and parses a config file.
pub fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_file(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

/// Parses the text of a config file.
pub fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
    Ok(toml::from_str(text)?)
}

/// Parses `--initial-cluster`: `id=host:port` entries separated by commas,
/// as in etcd. Ids must be valid node ids, ids and addresses unique.
pub fn parse_initial_cluster(s: &str) -> Result<Vec<(String, String)>, String> {
    if s.trim().is_empty() {
        return Err(
            "initial cluster is empty: give id=host:port entries separated by commas".to_string(),
        );
    }
    let mut members = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        let entry = entry.trim();
        let Some((id, addr)) = entry.split_once('=') else {
            return Err(format!(
                "initial cluster entry {} {entry:?} is not id=host:port (e.g. n1=127.0.0.1:7081)",
                i + 1
            ));
        };
        members.push((id.trim().to_string(), addr.trim().to_string()));
    }
    check_members(&members)?;
    Ok(members)
}

/// Checks ids and addresses of the initial members.
fn check_members(members: &[(String, String)]) -> Result<(), String> {
    if members.is_empty() {
        return Err("initial cluster has no members".to_string());
    }
    let mut ids = HashSet::new();
    let mut addrs = HashSet::new();
    for (id, addr) in members {
        NodeId::parse(id).map_err(|e| format!("initial cluster: {e}"))?;
        check_host_port(addr)
            .map_err(|e| format!("initial cluster: address {addr:?} of {id}: {e}"))?;
        if addr.ends_with(":0") {
            return Err(format!(
                "initial cluster: address {addr:?} of {id} has port 0; peers need a fixed port"
            ));
        }
        if !ids.insert(id.as_str()) {
            return Err(format!("initial cluster: node id {id} appears twice"));
        }
        if !addrs.insert(addr.as_str()) {
            return Err(format!(
                "initial cluster: address {addr} is given to more than one node"
            ));
        }
    }
    Ok(())
}

/// Checks that `s` looks like `host:port` (`[v6addr]:port` for IPv6). No DNS.
fn check_host_port(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("expected host:port".to_string());
    };
    if host.is_empty() {
        return Err("the host is empty".to_string());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("write an IPv6 address in brackets, e.g. [::1]:7081".to_string());
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err("the host contains a space or '/'".to_string());
    }
    port.parse::<u16>()
        .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))?;
    Ok(())
}

/// Builds the node's config: each setting from its flag if given, else from
/// the file, else the default of [`Config::new`]. Fails when a setting without
/// a default (node id, data dir, listen, http) is missing, or the initial
/// cluster does not parse. Call [`validate`] on the result.
pub fn merge(flags: &ServerArgs, file: &FileConfig) -> Result<Config, String> {
    let mut missing = Vec::new();
    let node_id = flags.node_id.clone().or_else(|| file.node_id.clone());
    let data_dir = flags.data_dir.clone().or_else(|| file.data_dir.clone());
    let listen = flags.listen.clone().or_else(|| file.listen.clone());
    let http = flags.http.clone().or_else(|| file.http.clone());
    if node_id.is_none() {
        missing.push("--node-id");
    }
    if data_dir.is_none() {
        missing.push("--data-dir");
    }
    if listen.is_none() {
        missing.push("--listen");
    }
    if http.is_none() {
        missing.push("--http");
    }
    let (Some(node_id), Some(data_dir), Some(listen), Some(http)) =
        (node_id, data_dir, listen, http)
    else {
        return Err(format!(
            "missing {} (give the flag, or the same key with '_' in the --config file)",
            missing.join(", ")
        ));
    };

    let mut c = Config::new(&node_id, data_dir, &listen, &http);
    if let Some(s) = &flags.initial_cluster {
        c.initial_cluster =
            parse_initial_cluster(s).map_err(|e| format!("--initial-cluster: {e}"))?;
    } else if let Some(spec) = &file.initial_cluster {
        c.initial_cluster = spec
            .resolve()
            .map_err(|e| format!("initial_cluster in the config file: {e}"))?;
    }
    if let Some(v) = flags.ring_size.or(file.ring_size) {
        c.ring_size = v;
    }
    if let Some(v) = flags.n.or(file.n) {
        c.n = v;
    }
    if let Some(v) = flags.r.or(file.r) {
        c.r = v;
    }
    if let Some(v) = flags.w.or(file.w) {
        c.w = v;
    }
    let interval = flags.sync_interval_ms.or(file.sync_interval_ms);
    c.sync = match (flags.sync.or(file.sync), interval, c.sync) {
        (Some(SyncArg::Always), _, _) => SyncMode::Always,
        (Some(SyncArg::Periodic) | None, Some(interval_ms), _) => {
            SyncMode::Periodic { interval_ms }
        }
        (Some(SyncArg::Periodic), None, SyncMode::Periodic { interval_ms }) => {
            SyncMode::Periodic { interval_ms }
        }
        (Some(SyncArg::Periodic), None, SyncMode::Always) => SyncMode::Periodic {
            interval_ms: SYNC_INTERVAL_MS_DEFAULT,
        },
        (None, None, default) => default,
    };
    if let Some(v) = flags.timeout_ms.or(file.timeout_ms) {
        c.timeout_ms = v;
    }
    if let Some(v) = flags.key_bytes_max.or(file.key_bytes_max) {
        c.limits.key_bytes_max = v;
    }
    if let Some(v) = flags.value_bytes_max.or(file.value_bytes_max) {
        c.limits.value_bytes_max = v;
    }
    if let Some(v) = flags.bucket_bytes_max.or(file.bucket_bytes_max) {
        c.limits.bucket_bytes_max = v;
    }
    if let Some(v) = flags.pending_max.or(file.pending_max) {
        c.pending_max = v;
    }
    if let Some(v) = flags.hints_max.or(file.hints_max) {
        c.hints_max = v;
    }
    if let Some(v) = flags.runtime_threads.or(file.runtime_threads) {
        c.runtime_threads = v;
    }
    c.fault_injection = flags.fault_injection || file.fault_injection.unwrap_or(false);
    if let Some(s) = &flags.join {
        c.join = parse_join(s);
    } else if let Some(spec) = &file.join {
        c.join = match spec {
            JoinSpec::Joined(s) => parse_join(s),
            JoinSpec::Entries(v) => parse_join(&v.join(",")),
        };
    }
    c.gossip_fast = flags.gossip_fast || file.gossip_fast.unwrap_or(false);
    Ok(c)
}

/// Checks a config before the node starts. On failure the message lists
/// every problem found, one per line.
pub fn validate(c: &Config) -> Result<(), String> {
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = NodeId::parse(&c.node_id) {
        problems.push(format!("--node-id: {e}"));
    }
    if c.data_dir.as_os_str().is_empty() {
        problems.push("--data-dir is empty".to_string());
    }
    if let Err(e) = check_host_port(&c.listen) {
        problems.push(format!("--listen {:?}: {e}", c.listen));
    }
    if let Err(e) = check_host_port(&c.http) {
        problems.push(format!("--http {:?}: {e}", c.http));
    }
    for a in &c.join {
        if let Err(e) = check_host_port(a) {
            problems.push(format!("--join {a:?}: {e}"));
        }
    }
    if c.listen == c.http {
        problems.push(format!(
            "--listen and --http are both {}; give them different ports",
            c.listen
        ));
    }
    match check_members(&c.initial_cluster) {
        Err(e) => problems.push(e),
        Ok(()) => {
            if !c.initial_cluster.iter().any(|(id, _)| id == &c.node_id) {
                let ids: Vec<&str> = c
                    .initial_cluster
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect();
                problems.push(format!(
                    "node id {} is not in the initial cluster ({}); add {}={} to --initial-cluster",
                    c.node_id,
                    ids.join(", "),
                    c.node_id,
                    c.listen
                ));
            }
        }
    }
    if !c.ring_size.is_power_of_two() || !(RING_SIZE_MIN..=RING_SIZE_MAX).contains(&c.ring_size) {
        problems.push(format!(
            "--ring-size {} is not a power of two from {RING_SIZE_MIN} to {RING_SIZE_MAX}",
            c.ring_size
        ));
    }
    let members = c.initial_cluster.len();
    if c.n == 0 {
        problems.push("--n 0: a key needs at least one replica".to_string());
    } else {
        for (name, v) in [("r", c.r), ("w", c.w)] {
            if v == 0 || v > c.n {
                problems.push(format!("--{name} {v} must be from 1 to n={}", c.n));
            } else if v > members {
                problems.push(format!(
                    "--{name} {v} can never be met with {members} member(s) in the initial cluster; \
                     lower --{name} or add members"
                ));
            }
        }
    }
    if c.timeout_ms == 0 {
        problems.push("--timeout-ms must be at least 1".to_string());
    }
    if let SyncMode::Periodic { interval_ms: 0 } = c.sync {
        problems.push("--sync-interval-ms must be at least 1".to_string());
    }
    for (name, v) in [
        ("--key-bytes-max", c.limits.key_bytes_max),
        ("--value-bytes-max", c.limits.value_bytes_max),
        ("--bucket-bytes-max", c.limits.bucket_bytes_max),
        ("--pending-max", c.pending_max),
        ("--hints-max", c.hints_max),
        ("--runtime-threads", c.runtime_threads),
    ] {
        if v == 0 {
            problems.push(format!("{name} must be at least 1"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Settings that are allowed but probably not what was meant.
pub fn warnings(c: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let members = c.initial_cluster.len();
    if c.n > members {
        out.push(format!(
            "n={} but the initial cluster has {members} member(s): keys get only {members} replica(s) until more nodes join",
            c.n
        ));
    }
    if let Some((_, addr)) = c.initial_cluster.iter().find(|(id, _)| id == &c.node_id) {
        let listen_host = c.listen.rsplit_once(':').map_or("", |(h, _)| h);
        let wildcard = matches!(listen_host, "0.0.0.0" | "[::]");
        if addr != &c.listen && !wildcard {
            out.push(format!(
                "this node listens on {} but the initial cluster gives {}={addr}; peers will use {addr}",
                c.listen, c.node_id
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn flags(args: &[&str]) -> ServerArgs {
        let cli = Cli::try_parse_from(["ringkv", "server"].iter().chain(args.iter()))
            .unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            Command::Server(a) => *a,
            _ => unreachable!(),
        }
    }

    const IDENTITY: &[&str] = &[
        "--node-id",
        "n1",
        "--data-dir",
        "/flag/dir",
        "--listen",
        "127.0.0.1:7081",
        "--http",
        "127.0.0.1:8081",
    ];

    const THREE: &str = "n1=127.0.0.1:7081,n2=127.0.0.1:7082,n3=127.0.0.1:7083";

    fn with_identity(extra: &[&'static str]) -> ServerArgs {
        let mut v = IDENTITY.to_vec();
        v.extend_from_slice(extra);
        flags(&v)
    }

    #[test]
    fn initial_cluster_parses() {
        assert_eq!(
            parse_initial_cluster(" n1=127.0.0.1:7081 , n2=host.example:7082,n3=[::1]:7083")
                .unwrap(),
            vec![
                ("n1".to_string(), "127.0.0.1:7081".to_string()),
                ("n2".to_string(), "host.example:7082".to_string()),
                ("n3".to_string(), "[::1]:7083".to_string()),
            ]
        );
    }

    #[test]
    fn malformed_initial_cluster_is_rejected_with_reason() {
        let cases = [
            ("", "empty"),
            ("n1", "not id=host:port"),
            ("n1=127.0.0.1:7081,,n2=127.0.0.1:7082", "entry 2"),
            ("n1=127.0.0.1", "host:port"),
            ("n1=127.0.0.1:http", "not a number"),
            ("n1=127.0.0.1:70000", "not a number"),
            ("n1=:7081", "host is empty"),
            ("n1=::1:7081", "brackets"),
            ("n1=127.0.0.1:0", "port 0"),
            ("n 1=127.0.0.1:7081", "not valid"),
            ("=127.0.0.1:7081", "not valid"),
            ("n1=a:1,n1=b:2", "appears twice"),
            ("n1=a:1,n2=a:1", "more than one node"),
        ];
        for (input, want) in cases {
            let err = parse_initial_cluster(input).unwrap_err();
            assert!(err.contains(want), "{input:?}: {err}");
        }
    }

    #[test]
    fn join_comes_from_the_flag_or_the_file_and_is_checked() {
        let c = merge(&with_identity(&[]), &FileConfig::default()).unwrap();
        assert!(c.join.is_empty() && !c.gossip_fast);
        let file = parse_file("join = [\"10.0.0.1:7081\", \"10.0.0.2:7081\"]\ngossip_fast = true")
            .unwrap();
        let c = merge(&with_identity(&[]), &file).unwrap();
        assert_eq!(c.join, vec!["10.0.0.1:7081", "10.0.0.2:7081"]);
        assert!(c.gossip_fast);
        let c = merge(
            &with_identity(&["--join", "127.0.0.1:7082, 127.0.0.1:7083", "--gossip-fast"]),
            &file,
        )
        .unwrap();
        assert_eq!(
            c.join,
            vec!["127.0.0.1:7082", "127.0.0.1:7083"],
            "the flag wins"
        );
        assert!(c.gossip_fast);
        let c = merge(
            &with_identity(&["--join", "nowhere"]),
            &FileConfig::default(),
        )
        .unwrap();
        let err = validate(&c).unwrap_err();
        assert!(err.contains("--join \"nowhere\""), "{err}");
    }

    #[test]
    fn defaults_apply_when_neither_flag_nor_file() {
        let c = merge(&with_identity(&[]), &FileConfig::default()).unwrap();
        let d = Config::new("n1", "/flag/dir".into(), "127.0.0.1:7081", "127.0.0.1:8081");
        assert_eq!(c.initial_cluster, d.initial_cluster);
        assert_eq!((c.ring_size, c.n, c.r, c.w), (d.ring_size, d.n, d.r, d.w));
        assert_eq!(c.sync, d.sync);
        assert_eq!(c.timeout_ms, d.timeout_ms);
        assert_eq!(c.limits, d.limits);
        assert_eq!(c.pending_max, d.pending_max);
    }

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let file = parse_file(
            r#"
            node_id = "nX"
            data-dir = "/file/dir"
            listen = "127.0.0.1:9999"
            http = "127.0.0.1:9998"
            initial_cluster = ["n1=127.0.0.1:7081", "n2=127.0.0.1:7082"]
            ring_size = 128
            n = 2
            r = 1
            w = 1
            sync = "always"
            timeout_ms = 777
            key_bytes_max = 10
            pending_max = 5
            "#,
        )
        .unwrap();
        let c = merge(
            &with_identity(&["--ring-size", "256", "--w", "2", "--pending-max", "6"]),
            &file,
        )
        .unwrap();
        // Flags.
        assert_eq!(c.node_id, "n1");
        assert_eq!(c.data_dir, PathBuf::from("/flag/dir"));
        assert_eq!(c.listen, "127.0.0.1:7081");
        assert_eq!(c.ring_size, 256);
        assert_eq!(c.w, 2);
        assert_eq!(c.pending_max, 6);
        // File.
        assert_eq!(c.initial_cluster.len(), 2);
        assert_eq!((c.n, c.r), (2, 1));
        assert_eq!(c.sync, SyncMode::Always);
        assert_eq!(c.timeout_ms, 777);
        assert_eq!(c.limits.key_bytes_max, 10);
        // Defaults.
        assert_eq!(c.limits.value_bytes_max, 4 * 1024 * 1024);
        assert!(validate(&c).is_ok(), "{:?}", validate(&c));
    }

    #[test]
    fn file_alone_can_give_everything() {
        let file = parse_file(
            r#"
            node-id = "n2"
            data_dir = "d"
            listen = "127.0.0.1:7082"
            http = "127.0.0.1:8082"
            [initial_cluster]
            n1 = "127.0.0.1:7081"
            n2 = "127.0.0.1:7082"
            n3 = "127.0.0.1:7083"
            "#,
        )
        .unwrap();
        let c = merge(&ServerArgs::default(), &file).unwrap();
        assert_eq!(c.node_id, "n2");
        assert_eq!(c.initial_cluster[2], ("n3".into(), "127.0.0.1:7083".into()));
        assert!(validate(&c).is_ok());
    }

    #[test]
    fn flag_initial_cluster_wins_over_file() {
        let file = parse_file(r#"initial_cluster = "n1=127.0.0.1:7081""#).unwrap();
        let c = merge(&with_identity(&["--initial-cluster", THREE]), &file).unwrap();
        assert_eq!(c.initial_cluster.len(), 3);
    }

    #[test]
    fn sync_merges_mode_and_interval() {
        let f = FileConfig::default();
        let c = merge(&with_identity(&["--sync", "always"]), &f).unwrap();
        assert_eq!(c.sync, SyncMode::Always);
        let c = merge(&with_identity(&["--sync-interval-ms", "7"]), &f).unwrap();
        assert_eq!(c.sync, SyncMode::Periodic { interval_ms: 7 });
        let file = parse_file("sync = \"always\"").unwrap();
        let c = merge(&with_identity(&["--sync", "periodic"]), &file).unwrap();
        assert_eq!(c.sync, SyncMode::Periodic { interval_ms: 100 });
        let file = parse_file("sync_interval_ms = 9").unwrap();
        let c = merge(&with_identity(&["--sync", "periodic"]), &file).unwrap();
        assert_eq!(c.sync, SyncMode::Periodic { interval_ms: 9 });
    }

    #[test]
    fn missing_identity_is_listed() {
        let err = merge(&flags(&["--node-id", "n1"]), &FileConfig::default()).unwrap_err();
        assert!(err.contains("--data-dir, --listen, --http"), "{err}");
    }

    #[test]
    fn bad_file_is_rejected() {
        assert!(parse_file("node_idd = \"n1\"").is_err());
        assert!(parse_file("ring_size = \"big\"").is_err());
        assert!(parse_file("sync = \"sometimes\"").is_err());
        assert!(parse_file("initial_cluster = 3").is_err());
        assert!(parse_file("n = -1").is_err());
    }

    #[test]
    fn validation_names_each_problem() {
        let check = |extra: &[&'static str], want: &str| {
            let c = merge(&with_identity(extra), &FileConfig::default()).unwrap();
            let err = validate(&c).unwrap_err();
            assert!(err.contains(want), "{extra:?}: {err}");
        };
        check(
            &["--initial-cluster", "n2=127.0.0.1:7082,n3=127.0.0.1:7083"],
            "not in the initial cluster",
        );
        check(
            &["--initial-cluster", THREE, "--ring-size", "48"],
            "power of two",
        );
        check(
            &["--initial-cluster", THREE, "--ring-size", "4"],
            "power of two",
        );
        check(
            &["--initial-cluster", THREE, "--ring-size", "8192"],
            "power of two",
        );
        check(
            &["--initial-cluster", THREE, "--r", "4"],
            "--r 4 must be from 1 to n=3",
        );
        check(&["--initial-cluster", THREE, "--w", "0"], "--w 0");
        check(&["--initial-cluster", THREE, "--n", "0"], "--n 0");
        check(
            &["--initial-cluster", THREE, "--timeout-ms", "0"],
            "--timeout-ms",
        );
        check(
            &["--initial-cluster", THREE, "--pending-max", "0"],
            "--pending-max",
        );
        check(
            &["--initial-cluster", THREE, "--sync-interval-ms", "0"],
            "--sync-interval-ms",
        );
        // The default single-member cluster cannot meet r=2.
        check(&[], "can never be met with 1 member");
        let c = merge(
            &flags(&[
                "--node-id",
                "n1",
                "--data-dir",
                "d",
                "--listen",
                "127.0.0.1:7081",
                "--http",
                "127.0.0.1:7081",
                "--initial-cluster",
                THREE,
            ]),
            &FileConfig::default(),
        )
        .unwrap();
        assert!(validate(&c).unwrap_err().contains("different ports"));
        let c = merge(
            &flags(&[
                "--node-id",
                "n 1",
                "--data-dir",
                "d",
                "--listen",
                "127.0.0.1:7081",
                "--http",
                "127.0.0.1:8081",
                "--n",
                "1",
                "--r",
                "1",
                "--w",
                "1",
            ]),
            &FileConfig::default(),
        )
        .unwrap();
        assert!(
            validate(&c)
                .unwrap_err()
                .contains("node id \"n 1\" is not valid")
        );
    }

    #[test]
    fn valid_configs_pass() {
        let c = merge(
            &with_identity(&["--initial-cluster", THREE]),
            &FileConfig::default(),
        )
        .unwrap();
        assert_eq!(validate(&c), Ok(()));
        assert!(warnings(&c).is_empty());
        let c = merge(
            &with_identity(&["--n", "1", "--r", "1", "--w", "1"]),
            &FileConfig::default(),
        )
        .unwrap();
        assert_eq!(validate(&c), Ok(()));
    }

    #[test]
    fn warnings_for_surprising_settings() {
        let c = merge(
            &with_identity(&["--initial-cluster", "n1=127.0.0.1:7081,n2=127.0.0.1:7082"]),
            &FileConfig::default(),
        )
        .unwrap();
        assert!(validate(&c).is_ok());
        assert!(warnings(&c)[0].contains("only 2 replica"));
        let c = merge(
            &with_identity(&[
                "--initial-cluster",
                "n1=10.0.0.1:7081,n2=127.0.0.1:7082,n3=127.0.0.1:7083",
            ]),
            &FileConfig::default(),
        )
        .unwrap();
        assert!(warnings(&c)[0].contains("peers will use 10.0.0.1:7081"));
    }
}
