//! Strong buckets in the simulator: the real raft groups under the
//! scenario's faults, every history linearizable; the strong bucket's
//! properties outlive crashes; and the `linearizable` checker catches the
//! two injected consensus bugs that the same seeds pass without.

use ringkv_core::Consistency;
use ringkv_node::InjectedBugs;
use ringkv_sim::check::{check_all, report_all};
use ringkv_sim::history::{OpKind, Outcome};
use ringkv_sim::scenario::Scenario;
use ringkv_sim::world::World;
use ringkv_sim::{run, workload::strong::STRONG_BUCKET};

const STRONG: &str = include_str!("../../../scenarios/strong.toml");
const MIXED: &str = include_str!("../../../scenarios/strong-mixed.toml");

/// A shipped scenario, shortened to `duration_ms`.
fn shortened(text: &str, duration_ms: u64) -> Scenario {
    let mut s = Scenario::from_toml(text).unwrap();
    s.duration_ms = duration_ms;
    s.faults.retain(|f| f.at_ms < duration_ms);
    s
}

/// The shipped strong scenario, shortened to `duration_ms`.
fn strong(duration_ms: u64) -> Scenario {
    shortened(STRONG, duration_ms)
}

/// Seeds for the CI sweep; `RINGKV_SWEEP_SEEDS` raises it for a longer soak.
fn seeds() -> u64 {
    std::env::var("RINGKV_SWEEP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16)
}

#[test]
fn sweep_strong_scenario_every_history_is_linearizable() {
    sweep("scenarios/strong.toml", &strong(8_000), seeds());
}

#[test]
fn sweep_strong_mixed_scenario_passes_every_checker() {
    sweep(
        "scenarios/strong-mixed.toml",
        &shortened(MIXED, 8_000),
        seeds() / 2,
    );
}

/// Runs `seeds` seeds of `s` (from `file`): no violation, nothing
/// inconclusive, and contended compare-and-sets that both apply and fail.
fn sweep(file: &str, s: &Scenario, seeds: u64) {
    let mut failures = vec![];
    let (mut applied, mut refused, mut unknown) = (0, 0, 0);
    for seed in 0..seeds {
        let r = run(s, seed, &InjectedBugs::default());
        let report = report_all(&r.history);
        for op in r.history.ops.iter().filter(|op| op.strong) {
            match (&op.kind, &op.outcome) {
                (OpKind::Cas { .. }, Outcome::Written { .. }) => applied += 1,
                (OpKind::Cas { .. }, Outcome::PreconditionFailed { .. }) => refused += 1,
                (_, Outcome::Unknown(_) | Outcome::Pending) => unknown += 1,
                _ => {}
            }
        }
        if let Some(first) = report.violations.first() {
            failures.push(format!(
                "seed {seed}: {first} ({} violations)\n  replay: ringkv sim run --seed {seed} \
                 --scenario {file}   (this sweep shortened duration_ms to 8000)",
                report.violations.len()
            ));
        }
        for i in &report.inconclusive {
            failures.push(format!("seed {seed}: inconclusive: {i}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The workload did what it is for: contended CAS both ways, and faults
    // that leave outcomes unknown.
    assert!(
        applied > 20 && refused > 20 && unknown > 0,
        "cas applied {applied}, refused {refused}, unknown {unknown}"
    );
}

#[test]
fn the_strong_bucket_is_set_before_the_first_op_and_survives_crashes() {
    let s = strong(6_000);
    let mut w = World::new(&s, 3, &InjectedBugs::default());
    w.start();
    for i in 0..w.cluster.len() {
        let node = w.cluster.node(i).unwrap();
        assert_eq!(
            node.bucket_props(STRONG_BUCKET).consistency,
            Consistency::Strong
        );
    }
    // Past the process crash of n3 and its restart, and n4's power cut.
    w.run_until(10_500_000);
    assert!(w.stats.restarts >= 2, "{:?}", w.stats.fault_log);
    for i in 0..w.cluster.len() {
        if let Some(node) = w.cluster.node(i) {
            assert_eq!(
                node.bucket_props(STRONG_BUCKET).consistency,
                Consistency::Strong,
                "n{} forgot the strong bucket",
                i + 1
            );
        }
    }
}

/// Seeds (of `0..seeds`) whose history the checkers fail, with `bugs`.
fn failing(s: &Scenario, seeds: u64, bugs: &InjectedBugs) -> Vec<u64> {
    (0..seeds)
        .filter(|&seed| {
            let v = check_all(&run(s, seed, bugs).history);
            assert!(
                v.iter().all(|v| v.checker == "linearizable"),
                "seed {seed}: {v:?}"
            );
            !v.is_empty()
        })
        .collect()
}

#[test]
fn serving_strong_reads_without_read_index_is_caught() {
    let s = strong(6_000);
    let bugs = InjectedBugs {
        strong_stale_reads: true,
        ..Default::default()
    };
    let caught = failing(&s, 4, &bugs);
    assert!(caught.len() >= 3, "stale reads caught on seeds {caught:?}");
    assert!(failing(&s, 4, &InjectedBugs::default()).is_empty());
}

#[test]
fn acknowledging_strong_writes_before_commit_is_caught() {
    let s = strong(6_000);
    let bugs = InjectedBugs {
        strong_ack_before_commit: true,
        ..Default::default()
    };
    let caught = failing(&s, 4, &bugs);
    assert!(caught.len() >= 3, "early acks caught on seeds {caught:?}");
    assert!(failing(&s, 4, &InjectedBugs::default()).is_empty());
}
