//! Carts in ringkv: a read merges the siblings, a write carries the read's
//! context.
//!
//! The context is what makes the merge stick: a write with the context of
//! a read supersedes every sibling that read returned, so the merged cart
//! replaces them. A write that raced with it (made from an older read)
//! survives as a sibling, and the next read merges it in turn.

use std::sync::Arc;

use ringkv_client::{Client, GetResult, RequestOptions, SiblingValue};

use crate::{CartError, CartState, Shopper};

/// A cart as one read found it.
#[derive(Clone, Debug)]
pub struct CartRead<S> {
    /// The merge of every sibling (an empty cart when there is none).
    pub state: S,
    /// The read's context: give it to the write that follows the read.
    pub context: Option<String>,
    /// How many siblings the read returned (1 for a single value, 0 when
    /// absent).
    pub siblings: usize,
}

/// Carts kept in one bucket of a ringkv cluster, a cart per key. Cheap to
/// clone (the client is shared).
#[derive(Clone)]
pub struct CartStore {
    client: Arc<Client>,
    bucket: String,
}

impl CartStore {
    /// Carts in `bucket`, through `client`.
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        CartStore {
            client: Arc::new(client),
            bucket: bucket.into(),
        }
    }

    /// Reads cart `cart` and merges its siblings (a deleted sibling counts
    /// as an empty cart).
    pub async fn read<S: CartState>(&self, cart: &str) -> Result<CartRead<S>, CartError> {
        let answer = self
            .client
            .get(&self.bucket, cart.as_bytes(), &RequestOptions::new())
            .await?;
        Ok(match answer {
            GetResult::Value { value, context } => CartRead {
                state: S::decode(&value)?,
                context: Some(context),
                siblings: 1,
            },
            GetResult::Siblings { context, siblings } => {
                let mut state = S::empty();
                for sibling in &siblings {
                    if let SiblingValue::Value(v) = sibling {
                        state = state.merge(&S::decode(v)?);
                    }
                }
                CartRead {
                    state,
                    context: Some(context),
                    siblings: siblings.len(),
                }
            }
            GetResult::NotFound { context } => CartRead {
                state: S::empty(),
                context,
                siblings: 0,
            },
        })
    }

    /// Writes `state` as cart `cart`, superseding what the read of
    /// `context` returned. Returns the new context.
    pub async fn write<S: CartState>(
        &self,
        cart: &str,
        state: &S,
        context: Option<&str>,
    ) -> Result<String, CartError> {
        let ctx = self
            .client
            .put(
                &self.bucket,
                cart.as_bytes(),
                state.encode(),
                context,
                &RequestOptions::new(),
            )
            .await?;
        Ok(ctx)
    }

    /// Reads the cart, merges its siblings, applies `change` and writes the
    /// result back with the read's context. Returns the state written.
    pub async fn update<S: CartState>(
        &self,
        cart: &str,
        change: impl FnOnce(&mut S),
    ) -> Result<S, CartError> {
        let mut read = self.read::<S>(cart).await?;
        change(&mut read.state);
        self.write(cart, &read.state, read.context.as_deref())
            .await?;
        Ok(read.state)
    }

    /// Adds `item` to the cart on behalf of `shopper`.
    pub async fn add<S: CartState>(
        &self,
        cart: &str,
        item: &str,
        shopper: &mut Shopper,
    ) -> Result<S, CartError> {
        self.update(cart, |s: &mut S| s.add(item, shopper)).await
    }

    /// Removes `item` from the cart as a fresh read shows it. Returns
    /// whether the read showed it (only then is there anything to remove).
    pub async fn remove<S: CartState>(&self, cart: &str, item: &str) -> Result<bool, CartError> {
        let mut present = false;
        self.update(cart, |s: &mut S| {
            present = s.items().contains(item);
            s.remove(item);
        })
        .await?;
        Ok(present)
    }
}
