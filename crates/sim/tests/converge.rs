//! Anti-entropy's liveness phase: with hinted handoff off, replicas that
//! were down or cut off miss acknowledged writes; after the faults end and
//! the cluster runs quietly, every replica of every key must hold the same
//! state, and no deleted value may come back while tombstones are purged.
//! The checkers are shown to fail without anti-entropy, with a broken one,
//! and with a purge that does not wait for every replica.

use ringkv_node::InjectedBugs;
use ringkv_sim::check::check_all;
use ringkv_sim::run;
use ringkv_sim::scenario::Scenario;

const FILE: &str = "scenarios/converge.toml";
const TEXT: &str = include_str!("../../../scenarios/converge.toml");

fn seeds() -> u64 {
    std::env::var("RINGKV_SWEEP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

#[test]
fn every_replica_converges_after_the_faults_end() {
    let s = Scenario::from_toml(TEXT).unwrap();
    let mut failures = vec![];
    let (mut repaired, mut purged) = (0, 0);
    for seed in 0..seeds() {
        let r = run(&s, seed, &InjectedBugs::default());
        let replay = format!("replay: ringkv sim run --seed {seed} --scenario {FILE}");
        if let Some(v) = r.convergence_violation() {
            failures.push(format!("seed {seed}: {v}\n  {replay}"));
        }
        if let Some(first) = check_all(&r.history).first() {
            failures.push(format!("seed {seed}: {first}\n  {replay}"));
        }
        let c = r
            .convergence
            .as_ref()
            .expect("the scenario has a liveness phase");
        assert!(c.keys > 100, "seed {seed}: only {} keys checked", c.keys);
        assert!(
            c.deleted_keys > 10,
            "seed {seed}: only {} deleted keys",
            c.deleted_keys
        );
        repaired += r.stats.aae_keys_repaired;
        purged += r.stats.tombstones_purged;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Anti-entropy did the repairing (hinted handoff is off), and
    // tombstones were purged.
    assert!(repaired > 0, "no key was repaired by anti-entropy");
    assert!(purged > 0, "no tombstone was purged");
}

/// Runs the scenario, changed by `tweak`, with `bugs`; returns how many
/// seeds failed the convergence check.
fn diverging_seeds(tweak: impl Fn(&mut Scenario), bugs: &InjectedBugs) -> u64 {
    let mut s = Scenario::from_toml(TEXT).unwrap();
    tweak(&mut s);
    (0..seeds())
        .filter(|&seed| run(&s, seed, bugs).convergence_violation().is_some())
        .count() as u64
}

#[test]
fn purging_tombstones_some_replica_lacks_brings_deleted_values_back() {
    let s = Scenario::from_toml(TEXT).unwrap();
    let bugs = InjectedBugs {
        purge_unconfirmed: true,
        ..Default::default()
    };
    let caught = (0..seeds())
        .filter(|&seed| {
            let r = run(&s, seed, &bugs);
            check_all(&r.history)
                .iter()
                .any(|v| v.message.contains("deleted value came back"))
                || r.convergence.as_ref().is_some_and(|c| c.resurrected > 0)
        })
        .count() as u64;
    assert!(
        caught * 2 > seeds(),
        "only {caught} of {} seeds caught it",
        seeds()
    );
}

#[test]
fn without_anti_entropy_the_checker_sees_replicas_diverge() {
    let failed = diverging_seeds(|s| s.aae_interval_ms = 0, &InjectedBugs::default());
    assert!(
        failed * 2 > seeds(),
        "only {failed} of {} seeds diverged",
        seeds()
    );
}

#[test]
fn trees_that_writes_do_not_update_are_caught() {
    let bugs = InjectedBugs {
        aae_stale_trees: true,
        ..Default::default()
    };
    let failed = diverging_seeds(|_| {}, &bugs);
    assert!(
        failed * 2 > seeds(),
        "only {failed} of {} seeds diverged",
        seeds()
    );
}
