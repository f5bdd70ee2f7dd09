//! The checkers catch real bugs: the real node code with a deliberate bug
//! switched on fails them; without it, the same runs pass.

use ringkv_node::InjectedBugs;
use ringkv_sim::check::check_all;
use ringkv_sim::run;
use ringkv_sim::scenario::Scenario;

/// The shipped fault scenario, shortened.
fn faults(duration_ms: u64) -> Scenario {
    let mut s = Scenario::from_toml(include_str!("../../../scenarios/faults.toml")).unwrap();
    s.duration_ms = duration_ms;
    s.faults.retain(|f| f.at_ms < duration_ms);
    s
}

fn violations(
    s: &Scenario,
    seeds: std::ops::Range<u64>,
    bugs: &InjectedBugs,
) -> Vec<(u64, String)> {
    seeds
        .flat_map(|seed| {
            check_all(&run(s, seed, bugs).history)
                .into_iter()
                .map(move |v| (seed, v.to_string()))
        })
        .collect()
}

#[test]
fn acking_before_the_write_quorum_loses_writes_the_durability_checker_sees() {
    let s = faults(6_000);
    let bugs = InjectedBugs {
        ack_before_quorum: true,
        ..Default::default()
    };
    let found = violations(&s, 0..5, &bugs);
    assert!(
        found.iter().any(|(_, v)| v.starts_with("[durability]")),
        "acking before W acks went unnoticed over 5 seeds"
    );
    assert!(violations(&s, 0..5, &InjectedBugs::default()).is_empty());
}

#[test]
fn dropping_the_context_makes_false_siblings_the_siblings_checker_sees() {
    let s = faults(6_000);
    let bugs = InjectedBugs {
        ignore_context: true,
        ..Default::default()
    };
    let found = violations(&s, 0..3, &bugs);
    assert!(
        found.iter().any(|(_, v)| v.starts_with("[siblings]")),
        "ignoring contexts went unnoticed over 3 seeds"
    );
}
