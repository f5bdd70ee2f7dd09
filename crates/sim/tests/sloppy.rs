//! Sloppy quorum and hinted handoff under the simulator: primaries crash in
//! pairs, messages are lost, the cluster is partitioned; writes go on
//! through fallbacks, hints are handed back, and every invariant checker
//! passes on every seed.

use ringkv_node::InjectedBugs;
use ringkv_sim::check::check_all;
use ringkv_sim::run;
use ringkv_sim::scenario::Scenario;

const FILE: &str = "scenarios/sloppy.toml";
const TEXT: &str = include_str!("../../../scenarios/sloppy.toml");

#[test]
fn fallbacks_keep_writes_flowing_and_hand_every_hint_back() {
    let s = Scenario::from_toml(TEXT).unwrap();
    let seeds: u64 = std::env::var("RINGKV_SWEEP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut failures = vec![];
    let (mut hinted, mut delivered, mut sloppy_ops) = (0, 0, 0);
    for seed in 0..seeds {
        let r = run(&s, seed, &InjectedBugs::default());
        if let Some(first) = check_all(&r.history).first() {
            failures.push(format!(
                "seed {seed}: {first}\n  replay: ringkv sim run --seed {seed} --scenario {FILE}"
            ));
        }
        if r.stats.hints_left != 0 {
            failures.push(format!(
                "seed {seed}: {} hints never handed off\n  replay: ringkv sim run --seed {seed} --scenario {FILE}",
                r.stats.hints_left
            ));
        }
        hinted += r.stats.hinted_writes;
        delivered += r.stats.hints_delivered;
        sloppy_ops += r.history.ops.iter().filter(|o| o.fallbacks > 0).count();
        // The run's report is exportable as JSON (version vectors included).
        if seed == 0 {
            serde_json::to_string(&r).expect("a run serializes to JSON");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The scenario really exercised what it is about.
    assert!(
        hinted > 0 && delivered > 0,
        "hinted {hinted}, delivered {delivered}"
    );
    assert!(sloppy_ops > 0, "no operation used a fallback");
    eprintln!(
        "{seeds} seeds: {hinted} hinted writes, {delivered} hints delivered, {sloppy_ops} sloppy ops"
    );
}

/// The checkers still catch a real durability bug with sloppy quorum on.
#[test]
fn acking_before_the_quorum_is_still_caught() {
    let s = Scenario::from_toml(TEXT).unwrap();
    let bugs = InjectedBugs {
        ack_before_quorum: true,
        ..Default::default()
    };
    let caught = (0..4).any(|seed| !check_all(&run(&s, seed, &bugs).history).is_empty());
    assert!(caught, "ack-before-quorum went unnoticed in 4 seeds");
}
