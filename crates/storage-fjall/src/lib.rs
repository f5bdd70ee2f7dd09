//! The on-disk engine of the [`ringkv_storage::Store`] trait, and the data
//! directory it lives in. Kept apart from `ringkv-storage` so that the node
//! and the simulator, which only need the trait and the in-memory engine,
//! never compile fjall.
//!
//! - [`fjall_store::FjallStore`]: on disk, one fjall keyspace per partition so
//!   a whole partition can be dropped or streamed cheaply; its
//!   [`fjall_store::JournalSyncer`] fsyncs flushed writes from another thread.
//! - [`datadir`]: the data directory's identity (its incarnation) and the
//!   clean-shutdown marker.
#![forbid(unsafe_code)]

pub mod datadir;
pub mod fjall_store;
