//! The shopping cart of the Dynamo paper, on ringkv.
//!
//! A cart is one key; its value is the cart's state, encoded by the
//! application. Writers that did not see each other's writes leave
//! *siblings*; the next reader merges them with the application's merge
//! and writes the result back with the read's context, which supersedes
//! every sibling it merged.
//!
//! Two encodings of a cart, with the same [`CartState`] interface:
//!
//! - [`NaiveCart`]: the set of items; siblings merge by set union. A removal
//!   that raced with any other write is undone: the other sibling still has
//!   the item, and the union brings it back (the anomaly the Dynamo paper
//!   reports: "deleted items can resurface").
//! - [`OrSetCart`]: an observed-remove set. Each add is tagged with a
//!   (client, counter) pair nobody else uses; a remove records the tags of
//!   the item it *observed*. Merging unions the adds and the removes; an item
//!   is in the cart while one of its tags is not removed. A removal beats
//!   the adds it saw, and only those: an add made concurrently has a tag the
//!   remover never saw, so it survives (add wins).
//!
//! # Layout
//! - [`naive`], [`orset`]: the two cart states and their merges (pure).
//! - [`store`]: reading a cart (merging its siblings) and writing it back
//!   with the [`ringkv_client`] client.
//! - [`scenario`]: the interleaving that shows the anomaly.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod naive;
pub mod orset;
pub mod scenario;
pub mod store;

use std::collections::BTreeSet;

pub use naive::NaiveCart;
pub use orset::{OrSetCart, Tag};
pub use store::{CartRead, CartStore};

/// Why a cart could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    /// The store's answer: unreachable, quorum not met, and so on (nothing
    /// is known to be written unless the error says so).
    #[error("ringkv: {0}")]
    Store(#[from] ringkv_client::ClientError),
    /// A stored value is not a cart of this encoding (written by another
    /// program, or by the other encoding); nothing was written.
    #[error("the stored cart cannot be decoded: {0}")]
    Decode(String),
}

/// One client of a cart: its id, which must be unique among the cart's
/// writers (e.g. a user's device id, or a random 64-bit number per
/// process), and a counter for the tags of its adds.
#[derive(Clone, Debug)]
pub struct Shopper {
    id: String,
    counter: u64,
}

impl Shopper {
    /// A client named `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Shopper {
            id: id.into(),
            counter: 0,
        }
    }

    /// The client's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A tag no add of this client used before, in `seen` nor locally: a
    /// client that restarted with the same id goes on after the highest
    /// counter of its own that the cart shows.
    pub fn next_tag(&mut self, seen: u64) -> Tag {
        self.counter = self.counter.max(seen) + 1;
        Tag::new(self.id.clone(), self.counter)
    }
}

/// A cart's state as kept in one value, merged by the application.
///
/// Implementations are state-based CRDTs: [`CartState::merge`] is
/// commutative, associative and idempotent (tested with proptest), so
/// merging siblings in any order, any number of times, gives one result.
pub trait CartState: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static {
    /// An empty cart.
    fn empty() -> Self;
    /// The items in the cart.
    fn items(&self) -> BTreeSet<String>;
    /// Adds `item` on behalf of `shopper`.
    fn add(&mut self, item: &str, shopper: &mut Shopper);
    /// Removes `item` as this state shows it.
    fn remove(&mut self, item: &str);
    /// The merge of two states (of two siblings).
    fn merge(&self, other: &Self) -> Self;
    /// The value stored in ringkv.
    fn encode(&self) -> Vec<u8>;
    /// Reads a stored value back.
    fn decode(bytes: &[u8]) -> Result<Self, CartError>;
}
