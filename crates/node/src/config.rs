//! The node's configuration: one documented struct, checked where it is
//! built ([`NodeConfig::validate`], run by [`crate::Node::new`]).

use ringkv_core::{Layout, Limits, NodeId};

use crate::membership::{GossipConfig, GossipConfigError};

/// What a node needs to know about itself and its defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This node. Must be a member of the layout the node starts with.
    pub id: NodeId,
    /// Incarnation of this node's data directory (see [`ringkv_core::Actor`]).
    pub incarnation: u32,
    /// Replicas per key; at least 1.
    pub n: usize,
    /// Default replies a read waits for; 1 to `n`.
    pub r: usize,
    /// Default acks a write waits for; 1 to `n`.
    pub w: usize,
    /// Default coordinator timeout, in ms; 1 to [`crate::TIMEOUT_MS_MAX`].
    pub timeout_ms: u64,
    /// Size limits.
    pub limits: Limits,
    /// Most requests this node coordinates or forwards at once; at least 1.
    pub pending_max: usize,
    /// Deliberate bugs, for proving that the simulator's checkers catch
    /// them. Always off outside those tests.
    pub bugs: InjectedBugs,
    /// First request id of this process start. Pick it fresh for every start
    /// (random, or a start counter shifted high) so that a peer's late reply
    /// to a request of a previous start can never match a new request. At
    /// most [`REQUEST_ID_BASE_MAX`], so that ids never wrap.
    pub request_id_base: u64,
    /// Most hints this node keeps as a fallback. Past it the node refuses
    /// writes as a fallback (its disk is not a dumping ground for a long
    /// outage) and says so in its status.
    pub hints_max: usize,
    /// Most buckets with properties of their own this node keeps. Past it a
    /// change that would give one more bucket properties is refused, from
    /// a client or a peer (their entries travel in every gossip exchange
    /// and live in memory); changes of buckets that have some still apply.
    /// At least 1.
    pub buckets_max: usize,
    /// How often the handoff job looks for primaries that are back, in ms;
    /// at least 1.
    pub handoff_interval_ms: u64,
    /// Handoff writes in flight per primary at once; at least 1.
    pub handoff_window: usize,
    /// Timing of the gossip membership protocol ([`GossipConfig::lan`] for
    /// real clusters, [`GossipConfig::fast`] for tests and simulation).
    pub gossip: GossipConfig,
    /// This node's RPC address as peers reach it (spread by gossip).
    pub rpc_addr: String,
    /// This node's HTTP address (spread by gossip, for status pages).
    pub http_addr: String,
    /// Must grow with every process start of this node id (wall-clock ms at
    /// start in the server, simulated time in the simulator): a restarted
    /// node's gossip identity then supersedes its old one at once.
    pub generation: u64,
    /// Seed of the gossip protocol's random choices (whom to probe).
    pub gossip_seed: u64,
    /// RPC addresses to announce this node to at start (`--join`), besides
    /// the layout's members.
    pub join: Vec<String>,
    /// Timing and log bounds of strong buckets' consensus groups.
    pub consensus: ConsensusConfig,
    /// Schedule and rate of anti-entropy exchanges.
    pub aae: AaeConfig,
    /// Whether writes may go to fallbacks, as hints, when primaries are
    /// unreachable (sloppy quorum with hinted handoff). Off, a write counts
    /// only primaries' acks and a replica that was down catches up by read
    /// repair and anti-entropy alone.
    pub hinted_handoff: bool,
}

/// Schedule and rate of anti-entropy (the replicas of each partition
/// comparing hash trees and exchanging the keys that differ).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AaeConfig {
    /// How often a background sweep over every partition this node is a
    /// primary of starts, in ms; 0 turns the background sweeps off (an
    /// operator's `ringkv repair` still runs).
    pub interval_ms: u64,
    /// The anti-entropy job's tick, in ms: exchanges start, time out and
    /// get their budget per tick. At least 1.
    pub tick_ms: u64,
    /// Keys this node sends to repair peers per tick, at most: what keeps
    /// repair from starving client traffic. At least 1.
    pub keys_per_tick: usize,
    /// Most `(key, digest)` pairs one round of an exchange compares (and so
    /// about the most keys it sends each way); more differing keys take
    /// more rounds, paced by `keys_per_tick`. At least 1.
    pub round_keys_max: usize,
    /// Rounds one exchange runs at most before it gives up until the next
    /// sweep (a bound for keys that never converge). At least 1.
    pub rounds_max: u32,
    /// How long a tombstone is kept after its delete, in ms, before it may
    /// be purged (and then only once every replica holds it); `None` keeps
    /// tombstones for ever. A replica down for longer than this must be
    /// wiped before it rejoins: its old values could otherwise come back.
    pub tombstone_grace_ms: Option<u64>,
}

impl Default for AaeConfig {
    fn default() -> Self {
        AaeConfig {
            interval_ms: 600_000,
            tick_ms: 100,
            keys_per_tick: 1_000,
            round_keys_max: 500,
            rounds_max: 1_000,
            tombstone_grace_ms: None,
        }
    }
}

/// Timing and bounds of the consensus groups (one per partition) that
/// serve strong buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsensusConfig {
    /// One raft tick, in ms. Only groups with work (or recent work) tick.
    pub tick_ms: u64,
    /// Ticks without a leader's word before a follower stands for election.
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats; below `election_ticks`.
    pub heartbeat_ticks: usize,
    /// Ticks without work after which a group stops ticking (hibernates)
    /// until a request or a peer's message wakes it.
    pub idle_ticks: u32,
    /// Log entries kept behind the applied index before the log is
    /// compacted (a lagging voter then catches up from a snapshot).
    pub log_keep: u64,
    /// `Some(seed)`: election timeouts drawn from the seed, not from the
    /// thread's random generator (raft-rs draws one per reset), so a
    /// simulation replays. `None` on real nodes.
    pub election_seed: Option<u64>,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 2,
            idle_ticks: 30,
            log_keep: 10_000,
            election_seed: None,
        }
    }
}

/// Default for [`NodeConfig::hints_max`].
pub const HINTS_MAX_DEFAULT: usize = 1_000_000;
/// Default for [`NodeConfig::buckets_max`].
pub const BUCKETS_MAX_DEFAULT: usize = 10_000;
/// Default for [`NodeConfig::handoff_interval_ms`].
pub const HANDOFF_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default for [`NodeConfig::handoff_window`].
pub const HANDOFF_WINDOW_DEFAULT: usize = 64;
/// Largest [`NodeConfig::request_id_base`]: leaves 2^62 ids to count up.
pub const REQUEST_ID_BASE_MAX: u64 = 1 << 62;

/// Deliberate protocol bugs a test can switch on to see a checker fail.
/// A checker that cannot fail is worthless; these prove ours can.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectedBugs {
    /// Acknowledge a write as soon as the coordinator stored it, before W acks.
    pub ack_before_quorum: bool,
    /// Ignore the client's context on writes (lose its causal information).
    pub ignore_context: bool,
    /// Strong buckets: serve a read from whichever voter gets it, from its
    /// own store, without ReadIndex (stale reads).
    pub strong_stale_reads: bool,
    /// Strong buckets: acknowledge a write when it is proposed, before it
    /// is committed.
    pub strong_ack_before_commit: bool,
    /// Anti-entropy: writes do not update the hash trees once built (a
    /// forgotten hook), so trees go stale and differences go unseen.
    pub aae_stale_trees: bool,
    /// Tombstone purge: remove old tombstones on every reachable replica
    /// without first checking that every replica holds them.
    pub purge_unconfirmed: bool,
    /// Cluster manager: write the cluster document unconditionally instead
    /// of with a compare-and-set on the version read (lost updates).
    pub cluster_blind_writes: bool,
}

/// A [`NodeConfig`] that cannot run. Nothing was started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A quorum setting is out of its range.
    #[error("{name}={value} is out of range: use 1 to {max}")]
    OutOfRange {
        /// The setting's name.
        name: &'static str,
        /// The value given.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// The first request id leaves too little room to count up.
    #[error("request_id_base={0} is too large: use at most 2^62")]
    RequestIdBase(u64),
    /// The node is not a member of the layout it starts with.
    #[error("node {0} is not in the layout: start it with an --initial-cluster that names it")]
    NotInLayout(NodeId),
    /// The gossip timings do not fit together.
    #[error("gossip: {0}")]
    Gossip(#[from] GossipConfigError),
}

impl NodeConfig {
    /// Checks every setting against its documented range, and that the node
    /// is in `layout`. Nothing is clamped: a bad value is an error that names
    /// it and what is allowed.
    pub fn validate(&self, layout: &Layout) -> Result<(), ConfigError> {
        let n = self.n as u64;
        let ranges: [(&'static str, u64, u64); 12] = [
            ("n", n, u64::from(u32::MAX)),
            ("r", self.r as u64, n),
            ("w", self.w as u64, n),
            ("timeout_ms", self.timeout_ms, crate::TIMEOUT_MS_MAX),
            ("pending_max", self.pending_max as u64, u64::MAX),
            ("handoff_interval_ms", self.handoff_interval_ms, u64::MAX),
            ("handoff_window", self.handoff_window as u64, u64::MAX),
            ("buckets_max", self.buckets_max as u64, u64::MAX),
            ("aae.tick_ms", self.aae.tick_ms, u64::MAX),
            ("aae.keys_per_tick", self.aae.keys_per_tick as u64, u64::MAX),
            (
                "aae.round_keys_max",
                self.aae.round_keys_max as u64,
                crate::aae::ROUND_KEYS_LIMIT as u64,
            ),
            ("aae.rounds_max", u64::from(self.aae.rounds_max), u64::MAX),
        ];
        for (name, value, max) in ranges {
            if value == 0 || value > max {
                return Err(ConfigError::OutOfRange { name, value, max });
            }
        }
        if self.request_id_base > REQUEST_ID_BASE_MAX {
            return Err(ConfigError::RequestIdBase(self.request_id_base));
        }
        if layout.member(&self.id).is_none() {
            return Err(ConfigError::NotInLayout(self.id.clone()));
        }
        self.gossip.validate()?;
        Ok(())
    }
}
