//! The naive cart: a set of items, siblings merged by union.
//!
//! Union is a fine merge for adds, and wrong for removes: a removal is
//! represented by the item's absence, which a union cannot tell from "never
//! seen". So a removal that raced with any other write of the cart is
//! undone by the next merge.

use std::collections::BTreeSet;

use crate::{CartError, CartState, Shopper};

/// A cart as the set of its items (stored as a JSON array of strings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NaiveCart {
    items: BTreeSet<String>,
}

impl CartState for NaiveCart {
    fn empty() -> Self {
        NaiveCart::default()
    }

    fn items(&self) -> BTreeSet<String> {
        self.items.clone()
    }

    fn add(&mut self, item: &str, _shopper: &mut Shopper) {
        self.items.insert(item.to_string());
    }

    fn remove(&mut self, item: &str) {
        self.items.remove(item);
    }

    fn merge(&self, other: &Self) -> Self {
        NaiveCart {
            items: self.items.union(&other.items).cloned().collect(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(&self.items).expect("a set of strings encodes")
    }

    fn decode(bytes: &[u8]) -> Result<Self, CartError> {
        let items = serde_json::from_slice(bytes)
            .map_err(|e| CartError::Decode(format!("not a JSON array of items: {e}")))?;
        Ok(NaiveCart { items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cart(items: &[&str]) -> NaiveCart {
        let mut c = NaiveCart::empty();
        let mut s = Shopper::new("t");
        for i in items {
            c.add(i, &mut s);
        }
        c
    }

    #[test]
    fn a_removal_concurrent_with_an_add_is_undone_by_the_union() {
        let start = cart(&["apple", "pear"]);
        let mut removed = start.clone();
        removed.remove("pear");
        let mut added = start;
        added.add("milk", &mut Shopper::new("bob"));
        let merged = removed.merge(&added);
        assert!(merged.items().contains("pear"), "the anomaly: {merged:?}");
    }

    #[test]
    fn encodes_as_a_json_array() {
        let c = cart(&["pear", "apple"]);
        assert_eq!(c.encode(), br#"["apple","pear"]"#);
        assert_eq!(NaiveCart::decode(&c.encode()).unwrap(), c);
        assert!(NaiveCart::decode(b"{").is_err());
    }

    fn carts() -> impl Strategy<Value = NaiveCart> {
        proptest::collection::btree_set("[a-e]", 0..5).prop_map(|items| NaiveCart { items })
    }

    proptest! {
        #[test]
        fn union_is_commutative_associative_idempotent(a in carts(), b in carts(), c in carts()) {
            prop_assert_eq!(a.merge(&b), b.merge(&a));
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
            prop_assert_eq!(a.merge(&a), a);
        }
    }
}
