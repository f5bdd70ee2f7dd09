//! A simulation scenario: topology, quorums, network, faults, workload and
//! duration, read from a TOML file. Every field has a default so a scenario
//! file only says what it changes.

use serde::{Deserialize, Serialize};

/// One simulated experiment setup.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Name, for reports.
    pub name: String,
    /// Number of nodes (`n1..`).
    pub nodes: usize,
    /// Partitions in the ring (power of two, 8..=4096).
    pub ring_size: u32,
    /// Replicas per key.
    pub n: usize,
    /// Replies a read waits for.
    pub r: usize,
    /// Acks a write waits for.
    pub w: usize,
    /// Coordinator timeout, in simulated ms.
    pub timeout_ms: u64,
    /// Durability of acknowledged writes on each simulated disk.
    pub sync: SimSync,
    /// Simulated time the workload runs, in ms (then a quiet period lets
    /// in-flight requests finish).
    pub duration_ms: u64,
    /// The simulated network.
    pub network: Network,
    /// Scheduled faults.
    pub faults: Vec<Fault>,
    /// Faults injected at random times.
    pub random_faults: RandomFaults,
    /// What clients do.
    pub workload: Workload,
    /// Whether writes go to fallbacks as hints while primaries are down
    /// (`--hinted-handoff`).
    pub hinted_handoff: bool,
    /// Anti-entropy sweep interval, in simulated ms; 0: no background
    /// anti-entropy.
    pub aae_interval_ms: u64,
    /// How long tombstones are kept before anti-entropy may purge them, in
    /// simulated ms (then only once every replica holds them); absent:
    /// kept for ever.
    pub tombstone_grace_ms: Option<u64>,
    /// The liveness phase: after the faults end and the usual settle
    /// time, the cluster runs this many more quiet ms, then every replica
    /// of every key must hold the same state (checked when > 0).
    pub converge_ms: u64,
    /// Operators' layout changes staged during the workload, at random
    /// nodes (each the join of a node `x{i}`); the cluster manager's
    /// checker runs at the end when > 0.
    pub cluster_ops: usize,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "default".into(),
            nodes: 5,
            ring_size: 64,
            n: 3,
            r: 2,
            w: 2,
            timeout_ms: 1_000,
            sync: SimSync::Always,
            duration_ms: 10_000,
            network: Network::default(),
            faults: vec![],
            random_faults: RandomFaults::default(),
            workload: Workload::default(),
            hinted_handoff: true,
            aae_interval_ms: 0,
            tombstone_grace_ms: None,
            converge_ms: 0,
            cluster_ops: 0,
        }
    }
}

/// How simulated nodes make writes durable, as `--sync` does for real ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SimSync {
    /// Every batch is synced before its outputs: a power cut loses nothing
    /// acknowledged.
    Always,
    /// Batches reach the OS; a sync runs every `interval_ms`. A power cut
    /// loses what was not synced (and the node takes a new incarnation).
    Periodic {
        /// Longest time between syncs, in ms.
        interval_ms: u64,
    },
}

/// A latency distribution, in ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always `ms`.
    Constant {
        /// Delay.
        ms: f64,
    },
    /// Uniform in `[min_ms, max_ms]`.
    Uniform {
        /// Lower bound.
        min_ms: f64,
        /// Upper bound.
        max_ms: f64,
    },
    /// Exponential with mean `mean_ms`, shifted by `min_ms`.
    Exponential {
        /// Mean of the exponential part.
        mean_ms: f64,
        /// Added constant (propagation delay).
        #[serde(default)]
        min_ms: f64,
    },
    /// Pareto with scale `scale_ms` (the minimum) and shape `shape` (> 1 for a
    /// finite mean; smaller is heavier-tailed).
    Pareto {
        /// Minimum value.
        scale_ms: f64,
        /// Tail index.
        shape: f64,
    },
    /// A weighted mixture (e.g. mostly fast, sometimes a slow path).
    Mixture {
        /// The parts; weights need not sum to 1.
        parts: Vec<MixturePart>,
    },
}

/// One part of a [`Latency::Mixture`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixturePart {
    /// Relative weight.
    pub weight: f64,
    /// The distribution.
    pub latency: Latency,
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Exponential {
            mean_ms: 1.0,
            min_ms: 0.5,
        }
    }
}

/// Latency per leg of a request (the WARS legs of Bailis et al.'s PBS):
/// unset legs use `default`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Legs {
    /// Every message without a leg of its own (forwards and their replies).
    pub default: Latency,
    /// W: coordinator -> replica write.
    pub write_request: Option<Latency>,
    /// A: replica -> coordinator write ack.
    pub write_ack: Option<Latency>,
    /// R: coordinator -> replica read request.
    pub read_request: Option<Latency>,
    /// S: replica -> coordinator read response.
    pub read_response: Option<Latency>,
}

/// The simulated network.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Latency per leg.
    pub latency: Legs,
    /// Probability that a message is lost, 0..=1.
    pub loss: f64,
    /// Probability that a message is delivered twice, 0..=1.
    pub duplicate: f64,
    /// Probability that a message gets an extra delay of up to
    /// `reorder_ms`, so it overtakes or is overtaken, 0..=1.
    pub reorder: f64,
    /// Largest extra delay of a reordered message, in ms.
    pub reorder_ms: f64,
}

/// A fault at a fixed simulated time.
///
/// Unknown fields are refused by [`FaultKind`]: serde cannot combine
/// `deny_unknown_fields` with the `flatten` here (it refused every field of
/// the kind).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// When, in simulated ms from the start.
    pub at_ms: u64,
    /// What.
    #[serde(flatten)]
    pub kind: FaultKind,
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultKind {
    /// The node's process dies: it keeps what reached the OS (flushed).
    Crash {
        /// The node.
        node: String,
    },
    /// The node loses power: it keeps only what was synced.
    CrashPower {
        /// The node.
        node: String,
    },
    /// A crashed node starts again with what its disk kept.
    Restart {
        /// The node.
        node: String,
    },
    /// Messages between the two sides are dropped (both ways, unless
    /// `one_way`, then only from `a` to `b`).
    Partition {
        /// One side.
        a: Vec<String>,
        /// The other side.
        b: Vec<String>,
        /// Only block `a -> b`.
        #[serde(default)]
        one_way: bool,
    },
    /// One node cut off from all others.
    Isolate {
        /// The node.
        node: String,
    },
    /// All partitions end.
    Heal,
    /// Every message to or from the node takes `factor` times longer.
    Slow {
        /// The node.
        node: String,
        /// Latency multiplier (1.0 = normal).
        factor: f64,
    },
}

/// Faults at random times, drawn from the seed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RandomFaults {
    /// Mean crashes per simulated second across the cluster (0 = none).
    pub crashes_per_s: f64,
    /// Share of crashes that are power cuts (lose unsynced writes), 0..=1.
    pub power_share: f64,
    /// How long a crashed node stays down, in ms.
    pub down_ms: u64,
    /// Mean partitions per simulated second (0 = none).
    pub partitions_per_s: f64,
    /// How long a partition lasts, in ms.
    pub partition_ms: u64,
    /// Most nodes down at once (keep below what the quorums can lose, or
    /// expect unavailability).
    pub max_down: usize,
}

/// How clients pick keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Zipfian with exponent `theta` (0.99 in YCSB).
    Zipfian {
        /// Skew.
        theta: f64,
    },
    /// `hot_ops` of the operations go to the first `hot_keys` share of keys.
    Hotspot {
        /// Share of keys that are hot, 0..=1.
        hot_keys: f64,
        /// Share of operations on hot keys, 0..=1.
        hot_ops: f64,
    },
}

/// Operation mix, as relative weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mix {
    /// Plain reads.
    pub get: f64,
    /// Blind writes (no context: concurrent with everything).
    pub put: f64,
    /// Read-modify-write: read, then write with the read's context.
    pub rmw: f64,
    /// Deletes with the context of a read.
    pub delete: f64,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            get: 0.5,
            put: 0.1,
            rmw: 0.35,
            delete: 0.05,
        }
    }
}

/// Whether clients wait for replies (closed loop) or arrive at a fixed
/// rate whatever the system does (open loop).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Arrival {
    /// `clients` clients, each issuing its next operation `think_ms` after
    /// the previous one completed.
    Closed {
        /// Pause between operations, in ms.
        #[serde(default)]
        think_ms: u64,
    },
    /// Operations arrive as a Poisson process at `rate_per_s` (spread over
    /// the clients), whether or not earlier ones completed.
    Open {
        /// Mean arrivals per simulated second.
        rate_per_s: f64,
    },
}

/// What clients do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Number of clients; each sends its requests to a node picked at random
    /// per operation.
    pub clients: usize,
    /// Closed or open loop.
    pub arrival: Arrival,
    /// Number of distinct keys.
    pub keys: usize,
    /// How keys are picked.
    pub key_dist: KeyDist,
    /// Operation mix.
    pub mix: Mix,
    /// Value size, in bytes.
    pub value_bytes: usize,
    /// Operations on a strong bucket (`[workload.strong]`; none if absent).
    pub strong: Option<StrongWorkload>,
}

/// Operations on the strong bucket `strong` (one consensus group per
/// partition; checked for linearizability). Set on every node before the
/// first operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrongWorkload {
    /// Share of operations that go to the strong bucket, 0..=1 (the rest
    /// follow `workload.mix` on the eventual bucket).
    pub share: f64,
    /// Number of distinct strong keys (`s0..`), picked uniformly: few, so
    /// that clients contend.
    pub keys: usize,
    /// Operation mix on strong keys.
    pub mix: StrongMix,
}

impl Default for StrongWorkload {
    fn default() -> Self {
        StrongWorkload {
            share: 1.0,
            keys: 5,
            mix: StrongMix::default(),
        }
    }
}

/// Operation mix on strong keys, as relative weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StrongMix {
    /// Reads.
    pub get: f64,
    /// Unconditional writes.
    pub put: f64,
    /// Compare-and-set: `If-Match` the version this client last saw of the
    /// key, or `If-None-Match: *` if it saw none (or saw it deleted).
    pub cas: f64,
    /// Unconditional deletes.
    pub delete: f64,
}

impl Default for StrongMix {
    fn default() -> Self {
        StrongMix {
            get: 0.4,
            put: 0.2,
            cas: 0.3,
            delete: 0.1,
        }
    }
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 10,
            arrival: Arrival::Closed { think_ms: 0 },
            keys: 100,
            key_dist: KeyDist::Uniform,
            mix: Mix::default(),
            value_bytes: 16,
            strong: None,
        }
    }
}

/// Why a scenario was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Not valid TOML or unknown fields.
    #[error("scenario file does not parse: {0}")]
    Parse(String),
    /// A value is out of range.
    #[error("scenario is invalid: {0}")]
    Invalid(String),
}

impl Scenario {
    /// Parses and validates a TOML scenario.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| ScenarioError::Parse(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Whether `name` is one of n1..n{nodes}. Checked without listing the
    /// names: `nodes` is not range-checked yet when fault names are, and a
    /// list of `usize::MAX` names overflowed.
    fn is_node(&self, name: &str) -> bool {
        name.strip_prefix('n')
            .and_then(|i| i.parse::<usize>().ok())
            .is_some_and(|i| (1..=self.nodes).contains(&i) && name == format!("n{i}"))
    }

    /// Checks ranges and names; says what is allowed.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        if self.nodes == 0 {
            return bad("nodes must be at least 1".into());
        }
        if self.n == 0 || self.n > self.nodes {
            return bad(format!(
                "n={} must be from 1 to nodes={}",
                self.n, self.nodes
            ));
        }
        if self.r == 0 || self.r > self.n || self.w == 0 || self.w > self.n {
            return bad(format!(
                "r={} and w={} must be from 1 to n={}",
                self.r, self.w, self.n
            ));
        }
        if !self.ring_size.is_power_of_two() || !(8..=4096).contains(&self.ring_size) {
            return bad(format!(
                "ring_size={} must be a power of two from 8 to 4096",
                self.ring_size
            ));
        }
        for (name, p) in [
            ("network.loss", self.network.loss),
            ("network.duplicate", self.network.duplicate),
            ("network.reorder", self.network.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name}={p} must be a probability from 0 to 1"));
            }
        }
        if self.workload.clients == 0 || self.workload.keys == 0 {
            return bad("workload.clients and workload.keys must be at least 1".into());
        }
        let check = |n: &String| {
            if self.is_node(n) {
                Ok(())
            } else {
                Err(ScenarioError::Invalid(format!(
                    "fault names node {n:?}; nodes are n1..n{}",
                    self.nodes
                )))
            }
        };
        for f in &self.faults {
            match &f.kind {
                FaultKind::Crash { node }
                | FaultKind::CrashPower { node }
                | FaultKind::Restart { node }
                | FaultKind::Isolate { node } => check(node)?,
                FaultKind::Slow { node, factor } => {
                    check(node)?;
                    if !(factor.is_finite() && *factor > 0.0 && *factor <= SLOW_FACTOR_MAX) {
                        return bad(format!(
                            "slow factor {factor} for {node} must be above 0 and at most {SLOW_FACTOR_MAX}"
                        ));
                    }
                }
                FaultKind::Partition { a, b, .. } => {
                    if a.is_empty() || b.is_empty() {
                        return bad(
                            "a partition needs at least one node on each side (a and b)".into()
                        );
                    }
                    a.iter().chain(b.iter()).try_for_each(check)?
                }
                FaultKind::Heal => {}
            }
            if f.at_ms >= self.duration_ms {
                return bad(format!(
                    "a fault at_ms={} is not before duration_ms={}: faults apply only while the workload runs",
                    f.at_ms, self.duration_ms
                ));
            }
        }
        self.validate_ranges()
    }
}

/// Most nodes a scenario may have.
pub const NODES_MAX: usize = 1_024;
/// Longest simulated workload, in ms (about 11.6 days).
pub const DURATION_MS_MAX: u64 = 1_000_000_000;
/// Largest latency parameter, in ms; sampled latencies are clamped to it.
pub const LATENCY_MS_MAX: f64 = 600_000.0;
/// Largest slow-node factor.
pub const SLOW_FACTOR_MAX: f64 = 1_000.0;
/// Most keys a workload may use.
pub const KEYS_MAX: usize = 10_000_000;
/// Most clients a workload may have.
pub const CLIENTS_MAX: usize = 1_000_000;
/// Highest rate of an open-loop workload or of random faults, per second.
pub const RATE_PER_S_MAX: f64 = 10_000_000.0;
/// Largest weight in a mix or mixture (weights are relative).
pub const WEIGHT_MAX: f64 = 1e12;
/// Deepest nesting of [`Latency::Mixture`]s.
pub const MIXTURE_DEPTH_MAX: usize = 8;
