//! The interleaving behind "deleted items can resurface" (Dynamo, section
//! 4.4), made deterministic.
//!
//! ```text
//! alice:  write {apple, pear}
//! alice:  read  -> {apple, pear}, context C
//! bob:    read  -> {apple, pear}, context C        (the same version)
//! alice:  remove pear, write with C  -> {apple}
//! bob:    add milk,    write with C  -> {apple, pear, milk}
//! anyone: read -> two siblings (both writes follow C, neither saw the other)
//!         merge -> naive union: {apple, milk, pear}   (the pear came back)
//!                  OR-Set:      {apple, milk}
//! ```
//!
//! Neither write is lost (both are siblings), so the outcome depends only on
//! the application's merge: it is the same on every run.

use std::collections::BTreeSet;

use crate::{CartError, CartState, CartStore, Shopper};

/// What the interleaving left in the cart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Siblings the last read returned (2: the two writes were concurrent).
    pub siblings: usize,
    /// The items of the merged cart.
    pub items: BTreeSet<String>,
}

/// Runs the interleaving on cart `cart` (which must not exist yet), with
/// Alice's requests through `alice` and Bob's through `bob` (e.g. clients
/// of two different nodes). The merged cart is written back, so the cart
/// ends as one value.
pub async fn remove_races_an_add<S: CartState>(
    alice: &CartStore,
    bob: &CartStore,
    cart: &str,
) -> Result<Outcome, CartError> {
    let (mut alice_id, mut bob_id) = (Shopper::new("alice"), Shopper::new("bob"));
    alice
        .update(cart, |s: &mut S| {
            s.add("apple", &mut alice_id);
            s.add("pear", &mut alice_id);
        })
        .await?;
    let mut seen_by_alice = alice.read::<S>(cart).await?;
    let mut seen_by_bob = bob.read::<S>(cart).await?;

    seen_by_alice.state.remove("pear");
    alice
        .write(cart, &seen_by_alice.state, seen_by_alice.context.as_deref())
        .await?;
    seen_by_bob.state.add("milk", &mut bob_id);
    bob.write(cart, &seen_by_bob.state, seen_by_bob.context.as_deref())
        .await?;

    let merged = alice.read::<S>(cart).await?;
    alice
        .write(cart, &merged.state, merged.context.as_deref())
        .await?;
    Ok(Outcome {
        siblings: merged.siblings,
        items: merged.state.items(),
    })
}

/// What [`shoppers_at_once`] did and found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shopping {
    /// Every item added and not removed by a remove that saw it: what the
    /// cart must hold in the end.
    pub expected: BTreeSet<String>,
    /// Items a remove took out (after seeing them in the cart).
    pub removed: BTreeSet<String>,
    /// The items of the merged cart after every shopper finished.
    pub items: BTreeSet<String>,
    /// Reads that found siblings: writes that raced.
    pub reads_with_siblings: usize,
}

/// Shoppers at once on one cart, shopper `k` through `stores[k]`: each adds
/// `adds` items of its own, one read-merge-write at a time, and after every
/// second add removes its previous item. Their writes race (they read and
/// write the same key at once), so reads find siblings and merge them.
pub async fn shoppers_at_once<S: CartState>(
    stores: Vec<CartStore>,
    cart: &str,
    adds: usize,
) -> Result<Shopping, CartError> {
    let first = stores.first().cloned().expect("at least one shopper");
    let mut tasks = tokio::task::JoinSet::new();
    for (k, store) in stores.into_iter().enumerate() {
        let cart = cart.to_string();
        tasks.spawn(async move { shop::<S>(&store, &cart, k, adds).await });
    }
    let mut result = Shopping {
        expected: BTreeSet::new(),
        removed: BTreeSet::new(),
        items: BTreeSet::new(),
        reads_with_siblings: 0,
    };
    while let Some(done) = tasks.join_next().await {
        let (added, removed, conflicts) = done.expect("a shopper panicked")?;
        result.expected.extend(added.difference(&removed).cloned());
        result.removed.extend(removed);
        result.reads_with_siblings += conflicts;
    }
    result.items = first.read::<S>(cart).await?.state.items();
    Ok(result)
}

/// One shopper of [`shoppers_at_once`]: the items it added, those it
/// removed, and how many of its reads found siblings.
async fn shop<S: CartState>(
    store: &CartStore,
    cart: &str,
    k: usize,
    adds: usize,
) -> Result<(BTreeSet<String>, BTreeSet<String>, usize), CartError> {
    let mut me = Shopper::new(format!("shopper-{k}"));
    let (mut added, mut removed, mut conflicts) = (BTreeSet::new(), BTreeSet::new(), 0);
    for j in 0..adds {
        let item = format!("s{k}-item{j}");
        let mut read = store.read::<S>(cart).await?;
        conflicts += usize::from(read.siblings > 1);
        read.state.add(&item, &mut me);
        store
            .write(cart, &read.state, read.context.as_deref())
            .await?;
        added.insert(item);
        if j % 2 == 1 {
            let victim = format!("s{k}-item{}", j - 1);
            let mut read = store.read::<S>(cart).await?;
            conflicts += usize::from(read.siblings > 1);
            // A remove takes out what it sees; an item it does not see (yet)
            // stays, and stays expected.
            if read.state.items().contains(&victim) {
                read.state.remove(&victim);
                removed.insert(victim);
            }
            store
                .write(cart, &read.state, read.context.as_deref())
                .await?;
        }
    }
    Ok((added, removed, conflicts))
}
