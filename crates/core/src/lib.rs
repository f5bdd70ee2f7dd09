//! Pure logic of ringkv: no I/O, no clock, no randomness of its own.
//!
//! # Layout
//! - [`aae`]: anti-entropy hash trees and the diff of two replicas' keys.
//! - [`hash`]: the stable hash of (bucket, key) and the partition it falls in.
//! - [`cluster`]: the cluster manager's document (layout, staged changes).
//! - [`layout`]: members, partition ownership and preference lists.
//! - [`plan`]: staged layout changes, the next layout and its plan.
//! - [`version`]: dots, version vectors, objects with siblings, merge and update.
//! - [`context`]: the opaque context token handed to clients.
//! - [`quorum`]: bookkeeping for one read or one write waiting for replies.
//! - [`request`]: checks of a client request (sizes, timeouts, quorum
//!   parameters, the object a write would leave) before anything is stored.
//! - [`sloppy`]: the targets of a request when primaries are down, and hints.
//! - [`params`]: quorum parameters and request limits.
//! - [`bucket`]: bucket properties, user patches and their validation, and
//!   the versioned entry that spreads them by gossip.
//! - [`hlc`]: the hybrid logical clock behind last-write-wins timestamps and
//!   metadata versions.
//! - [`list`]: key listing: queries, replicas' pages and their merge.
//! - [`lww`]: last-write-wins resolution of an object's siblings.
//! - [`msg`]: the messages nodes exchange.
//! - [`legs`]: windowed histograms of the four latency legs of replica requests.
//! - [`pbs`]: probabilistically bounded staleness: the WARS Monte Carlo model.
//! - [`staleness`]: a bucket's staleness report from measured legs.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod aae;
pub mod api;
pub mod bucket;
pub mod cluster;
pub mod context;
pub mod hash;
pub mod hlc;
pub mod layout;
pub mod legs;
pub mod list;
pub mod lww;
pub mod msg;
pub mod params;
pub mod pbs;
pub mod plan;
pub mod quorum;
pub mod request;
pub mod sloppy;
pub mod staleness;
pub mod strong;
pub mod version;

pub use bucket::{BucketEntry, BucketError, BucketPatch, BucketProps, ConflictMode, Consistency};
pub use context::{Context, ContextError, ContextKeys};
pub use hash::{KeyHash, PartitionId, key_hash, partition_of};
pub use hlc::{Hlc, HlcClock};
pub use layout::{Layout, LayoutError, Member, NodeId};
pub use lww::resolve_lww;
pub use params::{Limits, QuorumParam};
pub use version::{Actor, Dot, Object, Sibling, Value, VersionVector};
