//! How many simulated client operations the engine runs per wall-clock
//! second, on `scenarios/basic.toml` (5 nodes, N=3, no faults). A
//! measurement, not a timed test: it asserts nothing about time.
//!
//! `cargo test --release -p ringkv-sim --test speed -- --ignored --nocapture`

use std::time::Instant;

use ringkv_sim::run;
use ringkv_sim::scenario::Scenario;

#[test]
#[ignore = "a measurement: run it in release mode with --ignored --nocapture"]
fn simulated_ops_per_wall_second() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/basic.toml");
    let s = Scenario::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut rates = Vec::new();
    for seed in 1..=3 {
        let start = Instant::now();
        let r = run(&s, seed, &Default::default());
        let secs = start.elapsed().as_secs_f64();
        let ops = r.stats.ops_invoked as f64;
        println!(
            "seed {seed}: {ops} ops, {} events in {secs:.3} s: {:.0} simulated ops/s",
            r.stats.events,
            ops / secs
        );
        rates.push(ops / secs);
        drop(r);
    }
    rates.sort_by(f64::total_cmp);
    println!("median: {:.0} simulated ops/s", rates[1]);
}
