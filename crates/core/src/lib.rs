//! Pure logic of ringkv: no I/O, no clock, no randomness of its own.
//!
//! # Layout
//! - [`hash`]: the stable hash of (bucket, key) and the partition it falls in.
//! - [`layout`]: members, partition ownership and preference lists.
//! - [`version`]: dots, version vectors, objects with siblings, merge and update.
//! - [`context`]: the opaque context token handed to clients.
//! - [`quorum`]: bookkeeping for one read or one write waiting for replies.
//! - [`sloppy`]: the targets of a request when primaries are down, and hints.
//! - [`params`]: quorum parameters and request limits.
//! - [`msg`]: the messages nodes exchange.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod context;
pub mod hash;
pub mod layout;
pub mod msg;
pub mod params;
pub mod quorum;
pub mod sloppy;
pub mod version;

pub use context::{Context, ContextError};
pub use hash::{KeyHash, PartitionId, key_hash, partition_of};
pub use layout::{Layout, LayoutError, Member, NodeId};
pub use params::{Limits, QuorumParam};
pub use version::{Actor, Dot, Object, Sibling, Value, VersionVector};
