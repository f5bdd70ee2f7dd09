//! The ringkv node as a sans-IO state machine.
//!
//! ```text
//!   client request ─┐                     ┌─> Send { to, msg }      (runtime: TCP)
//!   peer message  ──┼─> Node::handle ─────┼─> Reply { client, .. }  (runtime: HTTP)
//!   timer / peer up ┘     (Store)         └─> SetTimer { id, at_ms } (runtime: clock)
//! ```
//!
//! `Node::handle(now_ms, input, &mut outputs)` is the only entry point. It
//! reads and writes its [`Store`](ringkv_storage::Store) through the trait
//! and never touches a socket, a clock or a thread, so the same code runs
//! under the tokio runtime and in the deterministic simulator. The runtime
//! must make the batch's writes durable (`Store::flush`/`sync`) before it
//! performs the outputs of that batch.
//!
//! # Layout
//! - [`io`]: inputs, outputs and timers: the interface with the runtime.
//! - [`config`]: [`NodeConfig`], documented and validated.
//! - [`node`]: [`Node`], a thin router over the sub-machines below.
//! - `ctx`: what the router lends a sub-machine for one input.
//! - [`coordinator`]: admission, forwarding, and the GET, PUT and DELETE
//!   coordinators with read repair.
//! - [`list`]: key listing, as coordinator and as replica.
//! - [`replica`]: this node's copy of its keys and the hints it keeps.
//! - [`handoff`]: hinted handoff, a fallback giving writes back to their
//!   primaries.
//! - [`aae`]: anti-entropy, replicas comparing hash trees and exchanging
//!   only the keys that differ.
//! - [`buckets`]: bucket properties, spread to every node.
//! - [`peers`]: who is reachable (transport and gossip), and the glue to
//!   [`membership`], the gossip protocol itself (foca, self-contained).
//! - [`stats`]: the node's counters.
//! - `testing` (tests only): a fixture that drives one sub-machine alone.
#![forbid(unsafe_code)]

pub mod aae;
pub mod buckets;
pub mod config;
pub mod consensus;
pub mod coordinator;
mod ctx;
pub mod handoff;
pub mod io;
pub mod list;
mod manager;
pub mod membership;
pub mod node;
pub mod peers;
pub mod replica;
pub mod stats;
#[cfg(test)]
mod testing;

pub use config::{
    AaeConfig, BUCKETS_MAX_DEFAULT, ConfigError, ConsensusConfig, HANDOFF_INTERVAL_MS_DEFAULT,
    HANDOFF_WINDOW_DEFAULT, HINTS_MAX_DEFAULT, InjectedBugs, NodeConfig, REQUEST_ID_BASE_MAX,
};
pub use ctx::MAX_DRIFT_MS;
pub use io::{ClientId, Input, Output, Timer};
pub use node::Node;
pub use ringkv_core::request::TIMEOUT_MS_MAX;
pub use stats::NodeStats;
