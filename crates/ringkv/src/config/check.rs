//! Checking a node's [`Config`] before it starts: the initial cluster's
//! members and addresses, then every setting against what it allows
//! ([`validate`]), and the settings that are allowed but surprising
//! ([`warnings`]). Every refusal is an [`Invalid`] naming the setting, its
//! value and what is allowed.

use std::collections::HashSet;

use ringkv_core::NodeId;
use ringkv_core::hash::{RING_SIZE_MAX, RING_SIZE_MIN};
use ringkv_core::layout::NODE_ID_LEN_MAX;
use ringkv_node::TIMEOUT_MS_MAX;
use ringkv_server::Config;
use ringkv_server::runtime::EVENTS_MAX;
use ringkv_storage::SyncMode;

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
    pub(super) fn new(
        setting: &'static str,
        value: impl ToString,
        allowed: impl Into<String>,
    ) -> Self {
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
pub(super) fn check_members(
    setting: &'static str,
    members: &[(String, String)],
) -> Result<(), Invalid> {
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

/// Checks a config before the node starts. On failure the error lists
/// every problem found, each with what is allowed.
pub(crate) fn validate(c: &Config) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    check_addresses(c, &mut problems);
    check_membership(c, &mut problems);
    check_replication(c, &mut problems);
    check_limits(c, &mut problems);
    check_peer_port(c, &mut problems);
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
    if let Some(resp) = &c.resp {
        if let Err(e) = check_host_port(resp) {
            problems.push(Invalid::new("--resp", format!("{resp:?}"), e));
        } else if resp == &c.listen || resp == &c.http {
            problems.push(Invalid::new(
                "--resp",
                resp,
                "is also --listen or --http; give it a port of its own",
            ));
        }
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
        ("--buckets-max", c.buckets_max),
        ("--runtime-threads", c.runtime_threads),
        ("--aae-keys-per-sec", c.aae_keys_per_sec),
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

/// Least `--peer-idle-timeout-ms`: keepalives go at a third of it.
const PEER_IDLE_TIMEOUT_MS_MIN: u64 = 100;

/// `--certs` or `--insecure`, and the peer listener's limits.
fn check_peer_port(c: &Config, problems: &mut Vec<Invalid>) {
    if c.certs.is_none() && !c.insecure {
        problems.push(Invalid::new(
            "--certs",
            "(not given)",
            "give --certs DIR for mutual TLS between nodes (make DIR with `ringkv cert init --dir \
             DIR` and `ringkv cert issue --dir DIR NODE-ID`), or --insecure for a plaintext peer \
             port where anyone who reaches it is believed",
        ));
    }
    if c.peer_connections_max == 0 {
        problems.push(Invalid::new("--peer-connections-max", 0, "use 1 or more"));
    }
    if c.peer_idle_timeout_ms < PEER_IDLE_TIMEOUT_MS_MIN {
        problems.push(Invalid::new(
            "--peer-idle-timeout-ms",
            c.peer_idle_timeout_ms,
            format!("use {PEER_IDLE_TIMEOUT_MS_MIN} or more"),
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
    use super::super::testing::{THREE, flags, with_identity};
    use super::super::{FileConfig, merge};
    use super::*;

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
        --initial-cluster THREE --buckets-max 0      | --buckets-max      | 1 or more
        --initial-cluster THREE --runtime-threads 0  | --runtime-threads  | 1 or more
        --initial-cluster THREE --key-bytes-max 0    | --key-bytes-max    | 1 or more
        --initial-cluster THREE --bucket-bytes-max 0 | --bucket-bytes-max | 1 or more
        --initial-cluster THREE --key-bytes-max 65300 | --key-bytes-max   | may not exceed 65533 bytes together
        --initial-cluster THREE --value-bytes-max 0  | --value-bytes-max  | use 1 to 16777216
        --initial-cluster THREE --value-bytes-max 16777217 | --value-bytes-max | use 1 to 16777216
        --initial-cluster THREE --sync-interval-ms 0 | --sync-interval-ms | 1 or more
        --join nowhere --n 1 --r 1 --w 1             | --join             | host:port
        --n 3 --r 2 --w 1                            | --r                | can never be met with 1 member
        --n 1 --r 1 --w 1 --peer-connections-max 0   | --peer-connections-max | 1 or more
        --n 1 --r 1 --w 1 --peer-idle-timeout-ms 99  | --peer-idle-timeout-ms | 100 or more
    ";

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
                "--insecure",
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
                "--insecure",
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
