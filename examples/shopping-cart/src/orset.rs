//! The observed-remove cart (OR-Set), in the value.
//!
//! Each add of an item carries a [`Tag`], (client, counter), that no other
//! add uses. A remove moves the tags of the item that the remover's state
//! shows, the ones it *observed*, to a set of removed tags. Merging two
//! states unions their adds and their removed tags; an item is in the cart
//! while at least one of its tags is not removed.
//!
//! So a removal cancels exactly the adds its writer had seen. A sibling
//! that still lists the item with those tags cannot bring it back (the
//! tags are removed in the merge), and an add the remover never saw has a
//! fresh tag and stays: add wins over a concurrent remove, which is what a
//! shopper expects of "I put it in the cart again".
//!
//! The price: removed tags are kept forever (tombstones), a few bytes per
//! removal. A cart is short-lived; a long-lived set would compact them with
//! a version vector per client (an "OR-Set without tombstones", as in Riak's
//! ORSWOT), at the cost of a more involved merge.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{CartError, CartState, Shopper};

/// Names one add: the client that made it and that client's counter.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// The adding client's id.
    pub client: String,
    /// The client's count of its adds, from 1.
    pub counter: u64,
}

impl Tag {
    /// The tag of `client`'s add number `counter`.
    pub fn new(client: impl Into<String>, counter: u64) -> Self {
        Tag {
            client: client.into(),
            counter,
        }
    }
}

/// A cart as an observed-remove set, stored as JSON:
/// `{"adds": {"pear": [{"client": "alice", "counter": 2}]}, "removed": [...]}`.
///
/// Kept normal: `adds` lists only tags that are not removed, and only items
/// with at least one, so two states with the same meaning are equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSetCart {
    /// Each item in the cart, with the tags of its adds that no remove
    /// observed.
    adds: BTreeMap<String, BTreeSet<Tag>>,
    /// The tags removes observed.
    removed: BTreeSet<Tag>,
}

impl OrSetCart {
    /// A state from its parts, made normal.
    pub fn from_parts(adds: BTreeMap<String, BTreeSet<Tag>>, removed: BTreeSet<Tag>) -> Self {
        let mut cart = OrSetCart { adds, removed };
        cart.normalize();
        cart
    }

    /// The tags removes observed (the tombstones).
    pub fn removed(&self) -> &BTreeSet<Tag> {
        &self.removed
    }

    /// Drops removed tags from `adds`, and items left without tags.
    fn normalize(&mut self) {
        let removed = &self.removed;
        for tags in self.adds.values_mut() {
            tags.retain(|t| !removed.contains(t));
        }
        self.adds.retain(|_, tags| !tags.is_empty());
    }

    /// The highest counter of `client` this state shows, removed or not.
    fn last_counter(&self, client: &str) -> u64 {
        self.adds
            .values()
            .flatten()
            .chain(&self.removed)
            .filter(|t| t.client == client)
            .map(|t| t.counter)
            .max()
            .unwrap_or(0)
    }
}

impl CartState for OrSetCart {
    fn empty() -> Self {
        OrSetCart::default()
    }

    fn items(&self) -> BTreeSet<String> {
        self.adds.keys().cloned().collect()
    }

    fn add(&mut self, item: &str, shopper: &mut Shopper) {
        let tag = shopper.next_tag(self.last_counter(shopper.id()));
        debug_assert!(!self.removed.contains(&tag), "a fresh tag is never removed");
        self.adds.entry(item.to_string()).or_default().insert(tag);
    }

    fn remove(&mut self, item: &str) {
        if let Some(observed) = self.adds.remove(item) {
            self.removed.extend(observed);
        }
    }

    fn merge(&self, other: &Self) -> Self {
        let mut adds = self.adds.clone();
        for (item, tags) in &other.adds {
            adds.entry(item.clone())
                .or_default()
                .extend(tags.iter().cloned());
        }
        let removed = self.removed.union(&other.removed).cloned().collect();
        OrSetCart::from_parts(adds, removed)
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a cart encodes")
    }

    fn decode(bytes: &[u8]) -> Result<Self, CartError> {
        let cart: OrSetCart = serde_json::from_slice(bytes)
            .map_err(|e| CartError::Decode(format!("not an OR-Set cart: {e}")))?;
        Ok(OrSetCart::from_parts(cart.adds, cart.removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cart(items: &[&str], shopper: &mut Shopper) -> OrSetCart {
        let mut c = OrSetCart::empty();
        for i in items {
            c.add(i, shopper);
        }
        c
    }

    #[test]
    fn a_removal_beats_the_adds_it_saw_and_a_concurrent_add_survives() {
        let start = cart(&["apple", "pear"], &mut Shopper::new("alice"));
        let mut removed = start.clone();
        removed.remove("pear");
        let mut added = start;
        added.add("milk", &mut Shopper::new("bob"));
        let merged = removed.merge(&added);
        assert_eq!(merged.items(), ["apple", "milk"].map(String::from).into());
    }

    #[test]
    fn adding_again_after_a_concurrent_remove_wins() {
        let mut alice = Shopper::new("alice");
        let start = cart(&["pear"], &mut alice);
        let mut removed = start.clone();
        removed.remove("pear");
        let mut again = start;
        again.add("pear", &mut Shopper::new("bob"));
        assert!(removed.merge(&again).items().contains("pear"));
    }

    #[test]
    fn a_client_with_a_new_counter_never_reuses_a_removed_tag() {
        let mut alice = Shopper::new("alice");
        let mut c = cart(&["pear"], &mut alice);
        c.remove("pear");
        // The same client id, restarted: its counter starts over at 0.
        c.add("pear", &mut Shopper::new("alice"));
        assert!(c.items().contains("pear"), "{c:?}");
    }

    #[test]
    fn decodes_what_it_encodes_and_refuses_other_values() {
        let mut c = cart(&["apple", "pear"], &mut Shopper::new("alice"));
        c.remove("apple");
        assert_eq!(OrSetCart::decode(&c.encode()).unwrap(), c);
        assert!(OrSetCart::decode(br#"["apple"]"#).is_err());
        // A state from elsewhere is made normal.
        let odd = br#"{"adds": {"x": [{"client": "a", "counter": 1}]},
                       "removed": [{"client": "a", "counter": 1}]}"#;
        assert!(OrSetCart::decode(odd).unwrap().items().is_empty());
    }

    fn tags() -> impl Strategy<Value = Tag> {
        ("c[0-2]", 1..4u64).prop_map(|(c, n)| Tag::new(c, n))
    }

    /// States a cart can reach: each tag names one add, of one item (the
    /// map from tag to item), some of them removed.
    fn carts() -> impl Strategy<Value = OrSetCart> {
        let added = proptest::collection::btree_map(tags(), "[a-d]", 0..6);
        let removed = proptest::collection::btree_set(tags(), 0..4);
        (added, removed).prop_map(|(added, removed)| {
            let mut adds: BTreeMap<String, BTreeSet<Tag>> = BTreeMap::new();
            for (tag, item) in added {
                adds.entry(item).or_default().insert(tag);
            }
            OrSetCart::from_parts(adds, removed)
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(a in carts(), b in carts(), c in carts()) {
            prop_assert_eq!(a.merge(&b), b.merge(&a));
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
            prop_assert_eq!(a.merge(&a), a.clone());
            prop_assert_eq!(OrSetCart::decode(&a.encode()).unwrap(), a);
        }

        /// A removal made after seeing `a` and `b` is never undone by
        /// merging either of them again (the naive union fails this).
        #[test]
        fn a_removed_item_does_not_come_back_from_what_the_remover_saw(
            a in carts(), b in carts(), item in "[a-d]"
        ) {
            let mut removal = a.merge(&b);
            removal.remove(&item);
            prop_assert!(!removal.merge(&a).items().contains(&item));
            prop_assert!(!a.merge(&removal).merge(&b).items().contains(&item));
        }

        /// An add the remover did not see survives the removal, and so does
        /// every other item of either side that was not removed.
        #[test]
        fn a_concurrent_add_survives(a in carts(), x in "[a-d]", y in "[a-e]") {
            let mut removal = a.clone();
            removal.remove(&x);
            let mut adder = a.clone();
            adder.add(&y, &mut Shopper::new("c1"));
            let merged = removal.merge(&adder);
            prop_assert!(merged.items().contains(&y));
            let mut kept = a.items();
            kept.remove(&x);
            kept.insert(y.clone());
            prop_assert_eq!(merged.items(), kept);
        }
    }
}
