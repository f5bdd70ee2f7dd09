//! The CI sweep: many seeds over short fault scenarios, every invariant
//! checker on every history. A failure prints the command that replays it.

use ringkv_node::InjectedBugs;
use ringkv_sim::check::check_all;
use ringkv_sim::run;
use ringkv_sim::scenario::Scenario;

/// Seeds per scenario; `RINGKV_SWEEP_SEEDS` raises it for a longer soak.
fn seeds() -> u64 {
    std::env::var("RINGKV_SWEEP_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24)
}

fn sweep(file: &str, text: &str, duration_ms: u64) {
    let mut s = Scenario::from_toml(text).unwrap();
    s.duration_ms = duration_ms;
    s.faults.retain(|f| f.at_ms < duration_ms);
    let mut failures = vec![];
    for seed in 0..seeds() {
        let r = run(&s, seed, &InjectedBugs::default());
        let v = check_all(&r.history);
        if let Some(first) = v.first() {
            failures.push(format!(
                "seed {seed}: {first} ({} violations)\n  replay: ringkv sim run --seed {seed} --scenario {file}{}",
                v.len(),
                if duration_ms < Scenario::from_toml(text).unwrap().duration_ms {
                    format!("   (this sweep shortened duration_ms to {duration_ms})")
                } else {
                    String::new()
                }
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "invariant violations:\n{}",
        failures.join("\n")
    );
}

#[test]
fn sweep_faults_scenario() {
    sweep(
        "scenarios/faults.toml",
        include_str!("../../../scenarios/faults.toml"),
        8_000,
    );
}

#[test]
fn sweep_partitions_and_loss() {
    sweep(
        "scenarios/partitions.toml",
        include_str!("../../../scenarios/partitions.toml"),
        8_000,
    );
}
