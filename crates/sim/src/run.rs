//! Running one scenario with one seed: the public entry point of the engine.
//!
//! ```no_run
//! use ringkv_sim::{run, scenario::Scenario};
//! let s = Scenario::from_toml("duration_ms = 2000").unwrap();
//! let r = run(&s, 42, &Default::default());
//! println!("{} ops, {:?}", r.history.ops.len(), r.stats);
//! ```
//!
//! A run is a pure function of (scenario, seed, bugs): the same arguments
//! give the same history byte for byte, on every machine and build, which is
//! what makes a failing seed replayable. The phases: the workload (with its
//! faults) for `duration_ms`; then no new operations, every fault ends
//! (crashed nodes restart, partitions heal); in-flight operations finish or
//! their clients give up; then a quiet period of `timeout_ms + 4000` ms lets
//! coordinators, read repair, gossip and hinted handoff finish before the run
//! stops. A scenario with `converge_ms` adds a liveness phase: that much
//! more quiet time (anti-entropy runs), then the replicas of every key must
//! hold the same state ([`RunResult::convergence`]).

use ringkv_node::InjectedBugs;
use serde::Serialize;

use crate::check::convergence::{self, Convergence};
use crate::history::History;
use crate::scenario::{Scenario, ScenarioError};
use crate::world::World;

/// What one run produced.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// Every client operation: the input of checkers and observations.
    pub history: History,
    /// Counters about the run and the log of its faults.
    pub stats: SimStats,
    /// The convergence check of the liveness phase (`converge_ms` > 0):
    /// whether every replica of every key holds the same state at the end.
    pub convergence: Option<Convergence>,
    /// The cluster manager's check (`cluster_ops` > 0).
    pub manager: Option<crate::check::manager::ManagerCheck>,
    /// The latency legs the nodes measured as coordinators, pooled (the
    /// input of the PBS model, [`ringkv_core::pbs`]).
    #[serde(skip)]
    pub legs: ringkv_core::legs::LegHistograms,
}

impl RunResult {
    /// The cluster manager checker's verdict: `None` when it was not run
    /// or found nothing wrong.
    pub fn manager_violation(&self) -> Option<String> {
        let m = self.manager.as_ref()?;
        (!m.violations.is_empty()).then(|| {
            format!(
                "cluster manager: {} of {} ops acknowledged, newest version {}: {}",
                m.acked,
                m.ops,
                m.final_version,
                m.violations[..m.violations.len().min(3)].join(" | ")
            )
        })
    }

    /// The liveness phase's verdict: `None` when it was not run or every
    /// replica of every key converged; else what diverged.
    pub fn convergence_violation(&self) -> Option<String> {
        let c = self.convergence.as_ref()?;
        if c.resurrected > 0 {
            return Some(format!(
                "resurrection: {} of {} deleted keys hold a value again; first: {}",
                c.resurrected,
                c.deleted_keys,
                c.resurrected_examples[..c.resurrected_examples.len().min(3)].join(" | ")
            ));
        }
        (c.divergent > 0).then(|| {
            format!(
                "convergence: {} of {} keys differ between their running replicas after the \
                 quiet phase (down at the end: {:?}); first: {}",
                c.divergent,
                c.keys,
                c.down,
                c.examples[..c.examples.len().min(3)].join(" | ")
            )
        })
    }
}

/// Counters about one run, for summaries and for spotting a scenario that
/// did not do what was meant (no messages dropped under loss, no crashes).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SimStats {
    /// The seed of the run (to replay it).
    pub seed: u64,
    /// Simulated time at the end, ms.
    pub sim_ms: u64,
    /// Events processed.
    pub events: u64,
    /// Messages nodes sent to each other.
    pub messages_sent: u64,
    /// Messages never delivered: lost, blocked by a partition, or sent to a
    /// node that was down (or crashed before they arrived).
    pub messages_dropped: u64,
    /// Messages delivered twice.
    pub messages_duplicated: u64,
    /// Operations clients started (both halves of rmw and delete count).
    pub ops_invoked: u64,
    /// Operations that got an answer (including "node down").
    pub ops_completed: u64,
    /// Operations the client gave up on after its timeout (left pending).
    pub ops_timed_out: u64,
    /// Operations lost with a node that crashed while coordinating them
    /// (left pending).
    pub ops_abandoned: u64,
    /// Node crashes (process or power).
    pub crashes: u64,
    /// Node restarts.
    pub restarts: u64,
    /// Partitions started.
    pub partitions: u64,
    /// Every fault with its simulated time, in order; the first line names
    /// the seed and the setup.
    pub fault_log: Vec<String>,
    /// Writes stored by fallbacks with a hint (sloppy quorum), summed over
    /// the nodes running at the end (a node's counters restart with it).
    pub hinted_writes: u64,
    /// Hints handed off and confirmed, summed likewise.
    pub hints_delivered: u64,
    /// Hints still held when the run stopped, over the running nodes.
    pub hints_left: u64,
    /// Read-repair writes sent, summed likewise.
    pub read_repairs: u64,
    /// Keys anti-entropy repaired, summed likewise.
    pub aae_keys_repaired: u64,
    /// Anti-entropy exchanges that found equal trees, summed likewise.
    pub aae_exchanges_in_sync: u64,
    /// Tombstones purged, summed likewise.
    pub tombstones_purged: u64,
}

/// Runs `scenario` with `seed`, with `bugs` switched on in every node.
///
/// # Panics
/// If the scenario is invalid: [`Scenario::from_toml`] validates, and
/// [`try_run`] returns the error instead for scenarios built in code.
pub fn run(scenario: &Scenario, seed: u64, bugs: &InjectedBugs) -> RunResult {
    match try_run(scenario, seed, bugs) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

/// Validates `scenario`, then runs it as [`run`] does.
pub fn try_run(
    scenario: &Scenario,
    seed: u64,
    bugs: &InjectedBugs,
) -> Result<RunResult, ScenarioError> {
    scenario.validate()?;
    let mut world = World::new(scenario, seed, bugs);
    world.start();
    world.run_until(u64::MAX);
    let mut stats = world.stats;
    stats.sim_ms = world.now_us / 1_000;
    let mut legs = ringkv_core::legs::LegHistograms::default();
    for i in 0..world.cluster.len() {
        if let Some(node) = world.cluster.node(i) {
            legs.merge(node.legs());
            let ns = node.stats();
            stats.hinted_writes += ns.hinted_writes;
            stats.hints_delivered += ns.hints_delivered;
            stats.read_repairs += ns.read_repairs;
            stats.aae_keys_repaired += ns.aae_keys_repaired;
            stats.aae_exchanges_in_sync += ns.aae_exchanges_in_sync;
            stats.tombstones_purged += ns.tombstones_purged;
            stats.hints_left += node.hints_len() as u64;
        }
    }
    let convergence = (scenario.converge_ms > 0).then(|| {
        let mut c = convergence::check(
            &world.cluster,
            scenario.n,
            crate::workload::strong::STRONG_BUCKET,
        );
        let strict = scenario.r + scenario.w > scenario.n && !scenario.hinted_handoff;
        convergence::check_deleted(&world.cluster, scenario.n, &world.history, strict, &mut c);
        c
    });
    let manager = (scenario.cluster_ops > 0)
        .then(|| crate::check::manager::check(&world.cluster_records, &world.cluster));
    Ok(RunResult {
        history: world.history,
        stats,
        convergence,
        manager,
        legs,
    })
}
