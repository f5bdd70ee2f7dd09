//! A run is a pure function of its seed: the same seed replays byte for
//! byte, another seed gives another history.

use ringkv_sim::scenario::Scenario;
use ringkv_sim::{RunResult, run};

/// Everything random at once: loss, duplication, reordering, per-leg
/// latencies, scheduled and random crashes and partitions, zipfian keys.
const BUSY: &str = r#"
name = "replay"
nodes = 5
timeout_ms = 300
duration_ms = 3000
sync = { kind = "periodic", interval_ms = 50 }

[network]
loss = 0.02
duplicate = 0.02
reorder = 0.1
reorder_ms = 5.0

[network.latency.write_request]
kind = "pareto"
scale_ms = 0.5
shape = 2.0

[network.latency.read_response]
kind = "uniform"
min_ms = 0.2
max_ms = 3.0

[[faults]]
at_ms = 500
kind = "crash_power"
node = "n2"

[[faults]]
at_ms = 900
kind = "restart"
node = "n2"

[[faults]]
at_ms = 1200
kind = "partition"
a = ["n1"]
b = ["n3", "n4"]
one_way = true

[[faults]]
at_ms = 1600
kind = "heal"

[random_faults]
crashes_per_s = 2.0
power_share = 0.5
down_ms = 300
max_down = 1
partitions_per_s = 1.0
partition_ms = 200

[workload]
clients = 8
keys = 30
arrival = { kind = "closed", think_ms = 2 }
key_dist = { kind = "zipfian", theta = 0.9 }
"#;

fn busy(seed: u64) -> RunResult {
    run(
        &Scenario::from_toml(BUSY).unwrap(),
        seed,
        &Default::default(),
    )
}

#[test]
fn same_seed_same_history_bytes() {
    let a = busy(7);
    let b = busy(7);
    assert!(a.history.ops.len() > 500, "{} ops", a.history.ops.len());
    assert!(
        a.stats.crashes >= 2 && a.stats.partitions >= 2,
        "{:?}",
        a.stats
    );
    assert!(a.stats.messages_dropped > 0 && a.stats.messages_duplicated > 0);
    assert_eq!(a.history.to_bytes(), b.history.to_bytes());
    assert_eq!(a.stats, b.stats);
}

#[test]
fn different_seeds_different_histories() {
    let a = busy(7);
    let b = busy(8);
    assert_ne!(a.history.to_bytes(), b.history.to_bytes());
    assert_ne!(a.stats.fault_log, b.stats.fault_log);
}

#[test]
fn open_loop_replays_too() {
    let text = r#"
        duration_ms = 2000
        [workload]
        arrival = { kind = "open", rate_per_s = 1500.0 }
        key_dist = { kind = "hotspot", hot_keys = 0.1, hot_ops = 0.9 }
    "#;
    let s = Scenario::from_toml(text).unwrap();
    let a = run(&s, 3, &Default::default());
    let b = run(&s, 3, &Default::default());
    let c = run(&s, 4, &Default::default());
    // About 1500/s for 2 s, plus the write halves of rmw and delete.
    let n = a.history.ops.len();
    assert!((2_500..5_000).contains(&n), "{n} ops");
    assert_eq!(a.history.to_bytes(), b.history.to_bytes());
    assert_ne!(a.history.to_bytes(), c.history.to_bytes());
}
