//! Deterministic simulation of ringkv: many real [`ringkv_node::Node`]s on a
//! simulated network, clock and disk, everything decided by one seed.
//!
//! # Layout
//! - [`scenario`]: what to simulate (TOML); `validate.rs` checks its ranges.
//! - [`history`]: what clients saw.
//! - [`check`]: checkers of the store's invariants over a history.
//! - [`observe`]: latency, throughput and staleness of a history.
//! - [`experiment`]: sweeps for the report under `docs/experiments/`; [`plot`]
//!   draws its charts.
//! - [`cli`]: `ringkv sim run | sweep | experiment`.
//!
//! The engine (one concept a file):
//! - [`mod@run`]: [`run()`](fn@run), the entry point; [`RunResult`], [`SimStats`].
//! - [`world`]: the event loop's state; what each event does to nodes and network.
//! - [`queue`]: events ordered by (time, sequence number).
//! - [`cluster`]: the real nodes on in-memory disks; crash, restart, flush and sync.
//! - [`net`]: latency per leg, loss, duplication, reordering, partitions, slow nodes.
//! - [`dist`]: latency distributions sampled by inverse CDF.
//! - [`faults`]: scheduled and random faults.
//! - [`workload`]: clients, their operations and the history they record.
//! - [`keys`]: uniform, zipfian and hotspot key choice.
//! - [`rng`]: one seed split into independent random streams.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod cluster;
pub mod dist;
pub mod experiment;
pub mod faults;
pub mod history;
pub mod keys;
pub mod net;
pub mod observe;
pub mod plot;
pub mod queue;
pub mod rng;
pub mod run;
pub mod scenario;
mod validate;
pub mod workload;
pub mod world;

pub use run::{RunResult, SimStats, run, try_run};
