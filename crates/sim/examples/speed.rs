//! Measures the engine's speed: simulated client operations per wall-clock
//! second on one core, for a scenario file (default `scenarios/basic.toml`).
//!
//! `cargo run --release -p ringkv-sim --example speed [-- FILE [SEED]]`

use std::time::Instant;

use ringkv_sim::scenario::Scenario;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/basic.toml").to_string()
    });
    let seed: u64 = args
        .next()
        .map_or(1, |s| s.parse().expect("a seed is a number"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let scenario = Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = Instant::now();
    let r = ringkv_sim::run(&scenario, seed, &Default::default());
    // The run's cost, not that of freeing its history afterwards.
    let secs = start.elapsed().as_secs_f64();
    let s = &r.stats;
    println!(
        "{path} seed {seed}: {} ops in {:.3} s wall = {:.0} simulated ops/s; {} events ({:.0}/s), {} messages, {} simulated ms",
        s.ops_invoked,
        secs,
        s.ops_invoked as f64 / secs,
        s.events,
        s.events as f64 / secs,
        s.messages_sent,
        s.sim_ms
    );
    for line in &s.fault_log {
        println!("  {line}");
    }
}
