//! The cluster manager in the simulator: operators' changes under crashes,
//! power cuts, partitions and loss are never lost or invented and reach
//! every node; writing the document without compare-and-set (an injected
//! bug) loses changes, and the checker says so.

use ringkv_node::InjectedBugs;
use ringkv_sim::run;
use ringkv_sim::scenario::Scenario;

fn scenario() -> Scenario {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/manager.toml"
    ))
    .unwrap();
    Scenario::from_toml(&text).unwrap()
}

#[test]
fn changes_are_never_lost_and_reach_every_node() {
    let s = scenario();
    for seed in 0..30 {
        let r = run(&s, seed, &InjectedBugs::default());
        let m = r.manager.as_ref().expect("cluster_ops > 0");
        assert!(m.acked > 0, "seed {seed}: no change acknowledged");
        if let Some(v) = r.manager_violation() {
            panic!("seed {seed}: {v}");
        }
    }
}

#[test]
fn blind_writes_are_caught() {
    let s = scenario();
    let bugs = InjectedBugs {
        cluster_blind_writes: true,
        ..InjectedBugs::default()
    };
    let caught = (0..20)
        .filter(|&seed| run(&s, seed, &bugs).manager_violation().is_some())
        .count();
    assert!(caught >= 18, "only {caught} of 20 seeds caught the bug");
}
