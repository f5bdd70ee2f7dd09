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
//!
//! # Errors
//! A value that is not allowed is refused with a [`ConfigError`] that names
//! the setting, the value and what is allowed, listing every problem found;
//! nothing is clamped or ignored in silence.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ringkv_core::NodeId;
use ringkv_core::hash::{RING_SIZE_MAX, RING_SIZE_MIN};
use ringkv_core::layout::NODE_ID_LEN_MAX;
use ringkv_node::TIMEOUT_MS_MAX;
use ringkv_server::Config;
use ringkv_server::runtime::EVENTS_MAX;
use ringkv_storage::SyncMode;
use serde::Deserialize;

use crate::cli::{ServerArgs, SyncArg};

/// Default fsync interval with `--sync periodic`, in ms.
const SYNC_INTERVAL_MS_DEFAULT: u64 = 100;

/// The contents of a `--config` file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
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
    /// The members, checked.
    fn resolve(&self) -> Result<Vec<(String, String)>, Invalid> {
        const SETTING: &str = "initial_cluster in the config file";
        match self {
            ClusterSpec::Joined(s) => parse_initial_cluster(SETTING, s),
            ClusterSpec::Entries(v) => parse_initial_cluster(SETTING, &v.join(",")),
            ClusterSpec::Table(t) => {
                let members: Vec<(String, String)> =
                    t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                check_members(SETTING, &members)?;
                Ok(members)
            }
        }
    }
}

/// Reads and parses a config file.
pub(crate) fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_file(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

/// Parses the text of a config file.
pub(crate) fn parse_file(text: &str) -> anyhow::Result<FileConfig> {
    Ok(toml::from_str(text)?)
}

/// Why `ringkv server` cannot start with the configuration it was given.
/// Returned before anything starts: no file, directory or socket was made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ConfigError {
    /// Settings without a default were given neither as a flag nor in the
    /// config file (their flags, in order).
    #[error(
        "missing {} (give the flag, or the same key with '_' in the --config file)",
        .0.join(", ")
    )]
    Missing(Vec<&'static str>),
    /// Settings whose values are not allowed, each with what is; every
    /// problem found, not only the first.
    #[error("invalid configuration:\n{}", bullets(.0))]
    Invalid(Vec<Invalid>),
}

/// One setting whose value is not allowed, and what is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{setting} {value}: {allowed}")]
pub(crate) struct Invalid {
    /// The setting, by its flag (`--ring-size`; the config file's key is the
    /// same with `_`), or `initial_cluster in the config file`.
    pub(crate) setting: &'static str,
    /// The value given, as written (strings quoted).
    pub(crate) value: String,
    /// What is allowed instead, and how to fix it.
    pub(crate) allowed: String,
}

impl Invalid {
    /// `setting` = `value` is not allowed; `allowed` says what is.
    fn new(setting: &'static str, value: impl ToString, allowed: impl Into<String>) -> Self {
        Invalid {
            setting,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

impl From<Invalid> for ConfigError {
    fn from(e: Invalid) -> Self {
        ConfigError::Invalid(vec![e])
    }
}

/// The problems as an indented list, one per line.
fn bullets(problems: &[Invalid]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a node id may be.
fn node_id_allowed() -> String {
    format!("use 1 to {NODE_ID_LEN_MAX} ASCII letters, digits, '-', '_' or '.', e.g. n1")
}

/// Parses `--initial-cluster` (or the file's `initial_cluster`, named by
/// `setting`): `id=host:port` entries separated by commas, as in etcd. Ids
/// must be valid node ids, ids and addresses unique.
pub(crate) fn parse_initial_cluster(
    setting: &'static str,
    s: &str,
) -> Result<Vec<(String, String)>, Invalid> {
    if s.trim().is_empty() {
        return Err(Invalid::new(
            setting,
            format!("{s:?}"),
            "give id=host:port entries separated by commas, e.g. n1=127.0.0.1:7081,n2=127.0.0.1:7082",
        ));
    }
    let mut members = Vec::new();
    for (i, entry) in s.split(',').enumerate() {
        let entry = entry.trim();
        let Some((id, addr)) = entry.split_once('=') else {
            return Err(Invalid::new(
                setting,
                format!("{entry:?}"),
                format!(
                    "entry {} is not id=host:port; write e.g. n1=127.0.0.1:7081",
                    i + 1
                ),
            ));
        };
        members.push((id.trim().to_string(), addr.trim().to_string()));
    }
    check_members(setting, &members)?;
    Ok(members)
}

/// Checks ids and addresses of the initial members.
fn check_members(setting: &'static str, members: &[(String, String)]) -> Result<(), Invalid> {
    if members.is_empty() {
        return Err(Invalid::new(
            setting,
            "(no members)",
            "give at least this node, as id=host:port",
        ));
    }
    let mut ids = HashSet::new();
    let mut addrs = HashSet::new();
    for (id, addr) in members {
        if NodeId::parse(id).is_err() {
            return Err(Invalid::new(
                setting,
                format!("{id}={addr}"),
                format!("node id {id:?} is not valid: {}", node_id_allowed()),
            ));
        }
        check_host_port(addr).map_err(|e| {
            Invalid::new(
                setting,
                format!("{id}={addr}"),
                format!("address of {id}: {e}"),
            )
        })?;
        if addr.ends_with(":0") {
            return Err(Invalid::new(
                setting,
                format!("{id}={addr}"),
                "port 0 is not allowed here: peers need a fixed port",
            ));
        }
        if !ids.insert(id.as_str()) {
            return Err(Invalid::new(
                setting,
                format!("{id}={addr}"),
                format!("node id {id} appears twice; give each node once"),
            ));
        }
        if !addrs.insert(addr.as_str()) {
            return Err(Invalid::new(
                setting,
                format!("{id}={addr}"),
                format!("address {addr} is given to more than one node; give each its own"),
            ));
        }
    }
    Ok(())
}

/// Checks that `s` looks like `host:port` (`[v6addr]:port` for IPv6). No DNS.
/// The error says what is expected.
fn check_host_port(s: &str) -> Result<(), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("expected host:port, e.g. 127.0.0.1:7081".to_string());
    };
    if host.is_empty() {
        return Err("the host is empty; expected host:port, e.g. 127.0.0.1:7081".to_string());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("write an IPv6 address in brackets, e.g. [::1]:7081".to_string());
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err("the host contains a space or '/'; expected host:port".to_string());
    }
    port.parse::<u16>()
        .map_err(|_| format!("port {port:?} is not a number from 0 to 65535"))?;
    Ok(())
}

/// Builds the node's config: each setting from its flag if given, else from
/// the file, else the default of [`Config::new`]. Fails when a setting without
/// a default (node id, data dir, listen, http) is missing, the initial
/// cluster does not parse, or `--sync-interval-ms` is given with `--sync
/// always`. Call [`validate`] on the result.
pub(crate) fn merge(flags: &ServerArgs, file: &FileConfig) -> Result<Config, ConfigError> {
    let (node_id, data_dir, listen, http) = identity(flags, file)?;
    let mut c = Config::new(&node_id, data_dir, &listen, &http);
    if let Some(s) = &flags.initial_cluster {
        c.initial_cluster = parse_initial_cluster("--initial-cluster", s)?;
    } else if let Some(spec) = &file.initial_cluster {
        c.initial_cluster = spec.resolve()?;
    }
    set(&mut c.ring_size, flags.ring_size.or(file.ring_size));
    set(&mut c.n, flags.n.or(file.n));
    set(&mut c.r, flags.r.or(file.r));
    set(&mut c.w, flags.w.or(file.w));
    c.sync = merge_sync(flags, file, c.sync)?;
    set(&mut c.timeout_ms, flags.timeout_ms.or(file.timeout_ms));
    let limits = &mut c.limits;
    set(
        &mut limits.key_bytes_max,
        flags.key_bytes_max.or(file.key_bytes_max),
    );
    set(
        &mut limits.value_bytes_max,
        flags.value_bytes_max.or(file.value_bytes_max),
    );
    set(
        &mut limits.bucket_bytes_max,
        flags.bucket_bytes_max.or(file.bucket_bytes_max),
    );
    set(&mut c.pending_max, flags.pending_max.or(file.pending_max));
    set(&mut c.hints_max, flags.hints_max.or(file.hints_max));
    set(
        &mut c.runtime_threads,
        flags.runtime_threads.or(file.runtime_threads),
    );
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

/// Replaces `slot` with `value` when one was given.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Node id, data dir, listen and http addresses: the settings without a
/// default. All missing ones are named at once.
fn identity(
    flags: &ServerArgs,
    file: &FileConfig,
) -> Result<(String, PathBuf, String, String), ConfigError> {
    let node_id = flags.node_id.clone().or_else(|| file.node_id.clone());
    let data_dir = flags.data_dir.clone().or_else(|| file.data_dir.clone());
    let listen = flags.listen.clone().or_else(|| file.listen.clone());
    let http = flags.http.clone().or_else(|| file.http.clone());
    match (node_id, data_dir, listen, http) {
        (Some(id), Some(dir), Some(listen), Some(http)) => Ok((id, dir, listen, http)),
        (id, dir, listen, http) => {
            let missing = [
                ("--node-id", id.is_none()),
                ("--data-dir", dir.is_none()),
                ("--listen", listen.is_none()),
                ("--http", http.is_none()),
            ];
            Err(ConfigError::Missing(
                missing.iter().filter(|m| m.1).map(|m| m.0).collect(),
            ))
        }
    }
}

/// The sync mode from `--sync` and `--sync-interval-ms` (each flag over the
/// file), else `default`. An interval is for `periodic` only: given with
/// `always` (at the same level, or the interval on the command line and
/// `always` in the file) it is refused rather than ignored.
fn merge_sync(
    flags: &ServerArgs,
    file: &FileConfig,
    default: SyncMode,
) -> Result<SyncMode, Invalid> {
    // 2: the flag, 1: the file, 0: neither.
    let level = |flag: bool, in_file: bool| u8::from(in_file).max(2 * u8::from(flag));
    let mode_level = level(flags.sync.is_some(), file.sync.is_some());
    let interval_level = level(
        flags.sync_interval_ms.is_some(),
        file.sync_interval_ms.is_some(),
    );
    let interval = flags.sync_interval_ms.or(file.sync_interval_ms);
    Ok(match (flags.sync.or(file.sync), interval) {
        (Some(SyncArg::Always), Some(ms)) if interval_level >= mode_level => {
            return Err(Invalid::new(
                "--sync-interval-ms",
                ms,
                "applies to --sync periodic only, and --sync always was given; drop one of them",
            ));
        }
        (Some(SyncArg::Always), _) => SyncMode::Always,
        (Some(SyncArg::Periodic) | None, Some(interval_ms)) => SyncMode::Periodic { interval_ms },
        (Some(SyncArg::Periodic), None) => match default {
            SyncMode::Periodic { .. } => default,
            SyncMode::Always => SyncMode::Periodic {
                interval_ms: SYNC_INTERVAL_MS_DEFAULT,
            },
        },
        (None, None) => default,
    })
}

/// Checks a config before the node starts. On failure the error lists
/// every problem found, each with what is allowed.
pub(crate) fn validate(c: &Config) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    check_addresses(c, &mut problems);
    check_membership(c, &mut problems);
    check_replication(c, &mut problems);
    check_limits(c, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Node id, data directory, the addresses to listen on and to join.
fn check_addresses(c: &Config, problems: &mut Vec<Invalid>) {
    if NodeId::parse(&c.node_id).is_err() {
        problems.push(Invalid::new(
            "--node-id",
            format!("{:?}", c.node_id),
            node_id_allowed(),
        ));
    }
    if c.data_dir.as_os_str().is_empty() {
        problems.push(Invalid::new(
            "--data-dir",
            "\"\"",
            "give a directory (created if missing)",
        ));
    }
    for (setting, addr) in [("--listen", &c.listen), ("--http", &c.http)] {
        if let Err(e) = check_host_port(addr) {
            problems.push(Invalid::new(setting, format!("{addr:?}"), e));
        }
    }
    for a in &c.join {
        if let Err(e) = check_host_port(a) {
            problems.push(Invalid::new("--join", format!("{a:?}"), e));
        }
    }
    if c.listen == c.http {
        problems.push(Invalid::new(
            "--http",
            &c.http,
            "is also --listen; give them different ports",
        ));
    }
}

/// The initial cluster, which must name this node.
fn check_membership(c: &Config, problems: &mut Vec<Invalid>) {
    if let Err(e) = check_members("--initial-cluster", &c.initial_cluster) {
        problems.push(e);
        return;
    }
    if !c.initial_cluster.iter().any(|(id, _)| id == &c.node_id) {
        let ids: Vec<&str> = c
            .initial_cluster
            .iter()
            .map(|(id, _)| id.as_str())
            .collect();
        problems.push(Invalid::new(
            "--initial-cluster",
            ids.join(","),
            format!(
                "node id {} is not in the initial cluster; add {}={} to --initial-cluster",
                c.node_id, c.node_id, c.listen
            ),
        ));
    }
}

/// Ring size and the default N, R, W.
fn check_replication(c: &Config, problems: &mut Vec<Invalid>) {
    if !c.ring_size.is_power_of_two() || !(RING_SIZE_MIN..=RING_SIZE_MAX).contains(&c.ring_size) {
        problems.push(Invalid::new(
            "--ring-size",
            c.ring_size,
            format!("use a power of two from {RING_SIZE_MIN} to {RING_SIZE_MAX}"),
        ));
    }
    let members = c.initial_cluster.len();
    if c.n == 0 {
        problems.push(Invalid::new(
            "--n",
            0,
            "a key needs at least one replica; use 1 or more",
        ));
        return;
    }
    for (setting, v) in [("--r", c.r), ("--w", c.w)] {
        if v == 0 || v > c.n {
            problems.push(Invalid::new(setting, v, format!("use 1 to n={}", c.n)));
        } else if v > members {
            problems.push(Invalid::new(
                setting,
                v,
                format!(
                    "can never be met with {members} member(s) in the initial cluster; \
                     use 1 to {members}, or add members"
                ),
            ));
        }
    }
}

/// Longest storage record key (a `u16` length, then bucket and key): the
/// most `--key-bytes-max` and `--bucket-bytes-max` may add up to.
const RECORD_KEY_BYTES_MAX: usize = u16::MAX as usize - 2;

/// Timeouts, sync interval, sizes and counts.
fn check_limits(c: &Config, problems: &mut Vec<Invalid>) {
    if !(1..=TIMEOUT_MS_MAX).contains(&c.timeout_ms) {
        problems.push(Invalid::new(
            "--timeout-ms",
            c.timeout_ms,
            format!("use 1 to {TIMEOUT_MS_MAX} (the longest a request may wait)"),
        ));
    }
    if let SyncMode::Periodic { interval_ms: 0 } = c.sync {
        problems.push(Invalid::new("--sync-interval-ms", 0, "use 1 or more"));
    }
    let l = &c.limits;
    let at_least_one = [
        ("--key-bytes-max", l.key_bytes_max),
        ("--bucket-bytes-max", l.bucket_bytes_max),
        ("--hints-max", c.hints_max),
        ("--runtime-threads", c.runtime_threads),
    ];
    for (setting, v) in at_least_one {
        if v == 0 {
            problems.push(Invalid::new(setting, 0, "use 1 or more"));
        }
    }
    if l.key_bytes_max.saturating_add(l.bucket_bytes_max) > RECORD_KEY_BYTES_MAX {
        problems.push(Invalid::new(
            "--key-bytes-max",
            l.key_bytes_max,
            format!(
                "with --bucket-bytes-max {} it may not exceed {RECORD_KEY_BYTES_MAX} bytes \
                 together (the storage engine's longest record key)",
                l.bucket_bytes_max
            ),
        ));
    }
    if !(1..=l.object_bytes_max).contains(&l.value_bytes_max) {
        problems.push(Invalid::new(
            "--value-bytes-max",
            l.value_bytes_max,
            format!(
                "use 1 to {} (the largest stored object)",
                l.object_bytes_max
            ),
        ));
    }
    if !(1..=EVENTS_MAX).contains(&c.pending_max) {
        problems.push(Invalid::new(
            "--pending-max",
            c.pending_max,
            format!("use 1 to {EVENTS_MAX} (the node's event queue holds no more)"),
        ));
    }
}

/// Settings that are allowed but probably not what was meant.
pub(crate) fn warnings(c: &Config) -> Vec<String> {
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
            parse_initial_cluster(
                "--initial-cluster",
                " n1=127.0.0.1:7081 , n2=host.example:7082,n3=[::1]:7083"
            )
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
            ("", "give id=host:port entries"),
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
            let err = parse_initial_cluster("--initial-cluster", input).unwrap_err();
            assert_eq!(err.setting, "--initial-cluster");
            assert!(err.to_string().contains(want), "{input:?}: {err}");
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
        let err = validate(&c).unwrap_err().to_string();
        assert!(
            err.contains("--join \"nowhere\": expected host:port"),
            "{err}"
        );
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
        assert_eq!(
            err,
            ConfigError::Missing(vec!["--data-dir", "--listen", "--http"])
        );
        assert!(
            err.to_string()
                .contains("missing --data-dir, --listen, --http")
        );
    }

    #[test]
    fn bad_file_is_rejected() {
        assert!(parse_file("node_idd = \"n1\"").is_err());
        assert!(parse_file("ring_size = \"big\"").is_err());
        assert!(parse_file("sync = \"sometimes\"").is_err());
        assert!(parse_file("initial_cluster = 3").is_err());
        assert!(parse_file("n = -1").is_err());
    }

    /// The one problem `validate` finds with the identity flags and
    /// `extra` (space-separated; `THREE` stands for a 3-node cluster).
    fn problem(extra: &str) -> Invalid {
        let extra: Vec<&'static str> = extra
            .split_whitespace()
            .map(|a| {
                if a == "THREE" {
                    THREE
                } else {
                    a.to_string().leak()
                }
            })
            .collect();
        let c = merge(&with_identity(&extra), &FileConfig::default()).unwrap();
        match validate(&c) {
            Err(ConfigError::Invalid(mut v)) if v.len() == 1 => v.remove(0),
            other => panic!("{extra:?}: expected one problem, got {other:?}"),
        }
    }

    /// One invalid setting a line: the extra flags, the setting named, and
    /// part of what it says is allowed, separated by `|`.
    const INVALID: &str = "
        --initial-cluster n2=127.0.0.1:7082,n3=127.0.0.1:7083 | --initial-cluster | add n1=127.0.0.1:7081
        --initial-cluster THREE --ring-size 48       | --ring-size        | power of two from 8 to 4096
        --initial-cluster THREE --ring-size 4        | --ring-size        | power of two
        --initial-cluster THREE --ring-size 8192     | --ring-size        | power of two
        --initial-cluster THREE --r 4                | --r                | use 1 to n=3
        --initial-cluster THREE --w 0                | --w                | use 1 to n=3
        --initial-cluster THREE --n 0                | --n                | at least one replica
        --initial-cluster THREE --timeout-ms 0       | --timeout-ms       | use 1 to 600000
        --initial-cluster THREE --timeout-ms 600001  | --timeout-ms       | use 1 to 600000
        --initial-cluster THREE --pending-max 0      | --pending-max      | use 1 to 65536
        --initial-cluster THREE --pending-max 65537  | --pending-max      | use 1 to 65536
        --initial-cluster THREE --hints-max 0        | --hints-max        | 1 or more
        --initial-cluster THREE --runtime-threads 0  | --runtime-threads  | 1 or more
        --initial-cluster THREE --key-bytes-max 0    | --key-bytes-max    | 1 or more
        --initial-cluster THREE --bucket-bytes-max 0 | --bucket-bytes-max | 1 or more
        --initial-cluster THREE --key-bytes-max 65300 | --key-bytes-max   | may not exceed 65533 bytes together
        --initial-cluster THREE --value-bytes-max 0  | --value-bytes-max  | use 1 to 16777216
        --initial-cluster THREE --value-bytes-max 16777217 | --value-bytes-max | use 1 to 16777216
        --initial-cluster THREE --sync-interval-ms 0 | --sync-interval-ms | 1 or more
        --join nowhere --n 1 --r 1 --w 1             | --join             | host:port
        --n 3 --r 2 --w 1                            | --r                | can never be met with 1 member
    ";

    #[test]
    fn validation_names_each_problem_and_what_is_allowed() {
        for line in INVALID.lines().filter(|l| !l.trim().is_empty()) {
            let [extra, setting, allowed] = line.split('|').map(str::trim).collect::<Vec<_>>()[..]
            else {
                panic!("not extra | setting | allowed: {line}")
            };
            let p = problem(extra);
            assert_eq!(p.setting, setting, "{extra}: {p}");
            assert!(p.allowed.contains(allowed), "{extra}: {p}");
        }
    }

    #[test]
    fn identity_problems_say_what_is_allowed() {
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
        let err = validate(&c).unwrap_err().to_string();
        assert!(
            err.contains("--http 127.0.0.1:7081: is also --listen; give them different ports"),
            "{err}"
        );
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
        let err = validate(&c).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid configuration:\n  - --node-id \"n 1\": use 1 to 64"),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_listed_not_only_the_first() {
        let c = merge(
            &with_identity(&[
                "--initial-cluster",
                THREE,
                "--ring-size",
                "3",
                "--timeout-ms",
                "0",
            ]),
            &FileConfig::default(),
        )
        .unwrap();
        let Err(ConfigError::Invalid(problems)) = validate(&c) else {
            panic!("accepted")
        };
        let settings: Vec<&str> = problems.iter().map(|p| p.setting).collect();
        assert_eq!(settings, ["--ring-size", "--timeout-ms"]);
    }

    #[test]
    fn a_sync_interval_with_sync_always_is_refused_not_ignored() {
        let err = merge(
            &with_identity(&["--sync", "always", "--sync-interval-ms", "50"]),
            &FileConfig::default(),
        )
        .unwrap_err();
        let ConfigError::Invalid(problems) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(problems[0].setting, "--sync-interval-ms");
        assert!(
            problems[0].allowed.contains("--sync periodic only"),
            "{err}"
        );
        // The same within the file, and a flag interval over a file's always.
        let file = parse_file("sync = \"always\"\nsync_interval_ms = 50").unwrap();
        assert!(merge(&with_identity(&[]), &file).is_err());
        let file = parse_file("sync = \"always\"").unwrap();
        assert!(merge(&with_identity(&["--sync-interval-ms", "50"]), &file).is_err());
        // A flag mode over a file's interval: the flag wins, nothing is
        // contradictory.
        let file = parse_file("sync_interval_ms = 50").unwrap();
        let c = merge(&with_identity(&["--sync", "always"]), &file).unwrap();
        assert_eq!(c.sync, SyncMode::Always);
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
