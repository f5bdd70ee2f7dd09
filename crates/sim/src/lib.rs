//! Deterministic simulation of ringkv: many real [`ringkv_node::Node`]s on a
//! simulated network, clock and disk, everything decided by one seed.
//!
//! # Layout
//! - [`scenario`]: what to simulate (TOML).
//! - [`history`]: what clients saw.
#![forbid(unsafe_code)]

pub mod history;
pub mod scenario;
