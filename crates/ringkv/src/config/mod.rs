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
//! resp = "127.0.0.1:6380"               # the Redis protocol; absent: none
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
//! buckets_max = 10000
//! runtime_threads = 1                   # default: cores - 1, at least 1
//! join = "127.0.0.1:7081"                # or a list: ["10.0.0.1:7081", "10.0.0.2:7081"]
//! certs = "/etc/ringkv/certs"            # mutual TLS between peers (`ringkv cert`)
//! # or: insecure = true                  # plaintext peer port; one of the two is required
//! peer_connections_max = 256
//! context_secret_file = "/etc/ringkv/cluster.secret"
//! token_file = "/etc/ringkv/tokens.toml"
//! http_cert = "/etc/ringkv/n1.crt"       # with http_key: HTTPS on --http
//! http_key = "/etc/ringkv/n1.key"
//! ```
//!
//! Unknown keys are an error, so a typo does not silently fall back to a default.
//!
//! # Errors
//! A value that is not allowed is refused with a [`ConfigError`] that names
//! the setting, the value and what is allowed, listing every problem found;
//! nothing is clamped or ignored in silence. The checks, the errors and
//! the warnings are in [`check`]; this file merges flags, file and defaults.

mod check;
mod trust;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use ringkv_server::Config;
use ringkv_storage::SyncMode;
use serde::Deserialize;

use crate::cli::{ServerArgs, SyncArg};
use check::check_members;
pub(crate) use check::{ConfigError, Invalid, parse_initial_cluster, validate, warnings};
pub(crate) use trust::load_trust;

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
    #[serde(default)]
    resp: Option<String>,
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
    #[serde(default, alias = "buckets-max")]
    buckets_max: Option<usize>,
    #[serde(default, alias = "hinted-handoff")]
    hinted_handoff: Option<bool>,
    #[serde(default, alias = "aae-interval-ms")]
    aae_interval_ms: Option<u64>,
    #[serde(default, alias = "aae-keys-per-sec")]
    aae_keys_per_sec: Option<usize>,
    #[serde(default, alias = "tombstone-grace-s")]
    tombstone_grace_s: Option<u64>,
    #[serde(default, alias = "runtime-threads")]
    runtime_threads: Option<usize>,
    #[serde(default, alias = "fault-injection")]
    fault_injection: Option<bool>,
    #[serde(default)]
    join: Option<JoinSpec>,
    #[serde(default, alias = "gossip-fast")]
    gossip_fast: Option<bool>,
    #[serde(default)]
    certs: Option<PathBuf>,
    #[serde(default)]
    insecure: Option<bool>,
    #[serde(default, alias = "peer-connections-max")]
    peer_connections_max: Option<usize>,
    #[serde(default, alias = "peer-idle-timeout-ms")]
    peer_idle_timeout_ms: Option<u64>,
    #[serde(default, alias = "context-secret-file")]
    context_secret_file: Option<PathBuf>,
    #[serde(default, alias = "token-file")]
    token_file: Option<PathBuf>,
    #[serde(default, alias = "http-cert")]
    http_cert: Option<PathBuf>,
    #[serde(default, alias = "http-key")]
    http_key: Option<PathBuf>,
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

/// Builds the node's config: each setting from its flag if given, else from
/// the file, else the default of [`Config::new`]. Fails when a setting without
/// a default (node id, data dir, listen, http) is missing, the initial
/// cluster does not parse, or `--sync-interval-ms` is given with `--sync
/// always`. Call [`validate`] on the result.
pub(crate) fn merge(flags: &ServerArgs, file: &FileConfig) -> Result<Config, ConfigError> {
    let (node_id, data_dir, listen, http) = identity(flags, file)?;
    let mut c = Config::new(&node_id, data_dir, &listen, &http);
    c.resp = flags.resp.clone().or_else(|| file.resp.clone());
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
    set(&mut c.buckets_max, flags.buckets_max.or(file.buckets_max));
    set(
        &mut c.hinted_handoff,
        flags.hinted_handoff.or(file.hinted_handoff),
    );
    set(
        &mut c.aae_interval_ms,
        flags.aae_interval_ms.or(file.aae_interval_ms),
    );
    set(
        &mut c.aae_keys_per_sec,
        flags.aae_keys_per_sec.or(file.aae_keys_per_sec),
    );
    set(
        &mut c.tombstone_grace_s,
        flags.tombstone_grace_s.or(file.tombstone_grace_s),
    );
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
    merge_peer_port(flags, file, &mut c)?;
    Ok(c)
}

/// `--certs` or `--insecure` (a flag wins over the file; both in the file
/// is refused), and the peer listener's limits. Neither is left for
/// [`validate`] to report.
fn merge_peer_port(flags: &ServerArgs, file: &FileConfig, c: &mut Config) -> Result<(), Invalid> {
    let file_insecure = file.insecure.unwrap_or(false);
    (c.certs, c.insecure) = match (&flags.certs, flags.insecure) {
        (Some(dir), _) => (Some(dir.clone()), false),
        (None, true) => (None, true),
        (None, false) => match (&file.certs, file_insecure) {
            (Some(dir), true) => {
                return Err(Invalid::new(
                    "--certs",
                    dir.display(),
                    "and insecure = true are both in the config file; give one",
                ));
            }
            (dir, insecure) => (dir.clone(), insecure),
        },
    };
    set(
        &mut c.peer_connections_max,
        flags.peer_connections_max.or(file.peer_connections_max),
    );
    set(
        &mut c.peer_idle_timeout_ms,
        flags.peer_idle_timeout_ms.or(file.peer_idle_timeout_ms),
    );
    Ok(())
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

#[cfg(test)]
pub(super) mod testing {
    //! What the tests of both files use: flags as typed.

    use clap::Parser as _;

    use crate::cli::{Cli, Command, ServerArgs};

    /// `ringkv server ARGS`, parsed.
    pub(crate) fn flags(args: &[&str]) -> ServerArgs {
        let cli = Cli::try_parse_from(["ringkv", "server"].iter().chain(args.iter()))
            .unwrap_or_else(|e| panic!("{e}"));
        match cli.command {
            Command::Server(a) => *a,
            _ => unreachable!(),
        }
    }

    /// The flags without a default (and `--insecure`, as a node needs
    /// `--certs` or `--insecure`).
    pub(crate) const IDENTITY: &[&str] = &[
        "--node-id",
        "n1",
        "--data-dir",
        "/flag/dir",
        "--listen",
        "127.0.0.1:7081",
        "--http",
        "127.0.0.1:8081",
        "--insecure",
    ];

    /// A 3-node initial cluster that includes n1 at its --listen.
    pub(crate) const THREE: &str = "n1=127.0.0.1:7081,n2=127.0.0.1:7082,n3=127.0.0.1:7083";

    /// [`IDENTITY`] and `extra`, parsed.
    pub(crate) fn with_identity(extra: &[&'static str]) -> ServerArgs {
        let mut v = IDENTITY.to_vec();
        v.extend_from_slice(extra);
        flags(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{THREE, flags, with_identity};
    use super::*;

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
    fn certs_or_insecure_is_required_and_a_flag_wins_over_the_file() {
        let bare = flags(&[
            "--node-id",
            "n1",
            "--data-dir",
            "d",
            "--listen",
            "127.0.0.1:7081",
            "--http",
            "127.0.0.1:8081",
        ]);
        let c = merge(&bare, &FileConfig::default()).unwrap();
        let err = validate(&c).unwrap_err().to_string();
        assert!(
            err.contains("--certs") && err.contains("--insecure") && err.contains("ringkv cert"),
            "{err}"
        );
        let file = parse_file("certs = \"/etc/c\"\npeer_connections_max = 9\nn = 1\nr = 1\nw = 1")
            .unwrap();
        let c = merge(&bare, &file).unwrap();
        assert_eq!(c.certs, Some(PathBuf::from("/etc/c")));
        assert!(!c.insecure);
        assert_eq!(c.peer_connections_max, 9);
        assert_eq!(validate(&c), Ok(()));
        let c = merge(&with_identity(&[]), &file).unwrap();
        assert!(c.insecure && c.certs.is_none(), "the flag wins");
        let c = merge(
            &flags(&["--certs", "x"]),
            &parse_file("insecure = true").unwrap(),
        );
        assert!(c.is_err(), "identity missing");
        let mut args = bare;
        args.certs = Some("f".into());
        let c = merge(&args, &parse_file("insecure = true").unwrap()).unwrap();
        assert_eq!((c.certs, c.insecure), (Some("f".into()), false));
        let both = parse_file("certs = \"c\"\ninsecure = true").unwrap();
        let err = merge(&ServerArgs::default(), &both);
        assert!(err.is_err());
        let args = ServerArgs {
            node_id: Some("n1".into()),
            data_dir: Some("d".into()),
            listen: Some("127.0.0.1:7081".into()),
            http: Some("127.0.0.1:8081".into()),
            ..ServerArgs::default()
        };
        let err = merge(&args, &both).unwrap_err().to_string();
        assert!(err.contains("both in the config file"), "{err}");
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
    fn resp_comes_from_the_flag_then_the_file_and_is_checked() {
        let none = FileConfig::default();
        assert_eq!(merge(&with_identity(&[]), &none).unwrap().resp, None);
        let file = parse_file("resp = \"127.0.0.1:6380\"\nn = 1\nr = 1\nw = 1").unwrap();
        let c = merge(&with_identity(&[]), &file).unwrap();
        assert_eq!(c.resp.as_deref(), Some("127.0.0.1:6380"));
        assert_eq!(validate(&c), Ok(()));
        let c = merge(&with_identity(&["--resp", "127.0.0.1:6381"]), &file).unwrap();
        assert_eq!(c.resp.as_deref(), Some("127.0.0.1:6381"), "the flag wins");
        for (bad, says) in [
            ("nowhere", "--resp \"nowhere\""),
            ("127.0.0.1:8081", "a port of its own"),
        ] {
            let c = merge(&with_identity(&["--resp", bad]), &none).unwrap();
            let err = validate(&c).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
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
            insecure = true
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
    fn buckets_max_comes_from_the_flag_then_the_file() {
        let none = FileConfig::default();
        assert_eq!(
            merge(&with_identity(&[]), &none).unwrap().buckets_max,
            10_000
        );
        let file = parse_file("buckets_max = 5").unwrap();
        assert_eq!(merge(&with_identity(&[]), &file).unwrap().buckets_max, 5);
        let flag = with_identity(&["--buckets-max", "7"]);
        assert_eq!(merge(&flag, &file).unwrap().buckets_max, 7);
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
}

#[cfg(test)]
mod untrusted_tests;
