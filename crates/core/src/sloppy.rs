//! Sloppy quorum: which nodes a request goes to when primaries are down, and
//! the hints fallbacks keep for the primaries they stand in for.
//!
//! A key's extended preference list is its N primaries followed by every
//! other member in ring order (the fallbacks). A request goes to each live
//! primary; for each unreachable primary it goes to the next live fallback
//! instead, which stores the write with a [`Hint`] naming that primary and
//! hands it off once the primary is back. So a write is accepted while any W
//! of the extended list can take it (Dynamo's "always writable"), and PR/PW
//! say how many of the replies must still come from primaries.

use serde::{Deserialize, Serialize};

use crate::hash::{BucketKey, PartitionId};
use crate::layout::NodeId;

/// One node a request goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The node.
    pub node: NodeId,
    /// The primary this node stands in for, when it is a fallback.
    pub stands_in_for: Option<NodeId>,
}

impl Target {
    /// Whether this target is one of the key's primaries.
    pub fn is_primary(&self) -> bool {
        self.stands_in_for.is_none()
    }
}

/// The targets of a request on a key whose extended preference list is
/// `extended` (primaries first: the first `n` entries), given who is live.
///
/// Every live primary is a target. With `sloppy`, each unreachable primary is
/// replaced by the next live fallback not already used, in list order; without
/// it (or when the fallbacks run out), the unreachable primary has no
/// stand-in and the request simply gets fewer targets. The result holds the
/// primaries first, in list order, then the fallbacks.
pub fn choose_targets(
    extended: &[NodeId],
    n: usize,
    sloppy: bool,
    is_live: impl Fn(&NodeId) -> bool,
) -> Vec<Target> {
    let n = n.min(extended.len());
    let (primaries, fallbacks) = extended.split_at(n);
    let mut out: Vec<Target> = primaries
        .iter()
        .filter(|p| is_live(p))
        .map(|p| Target {
            node: p.clone(),
            stands_in_for: None,
        })
        .collect();
    if !sloppy {
        return out;
    }
    let mut spare = fallbacks.iter().filter(|f| is_live(f));
    for down in primaries.iter().filter(|p| !is_live(p)) {
        let Some(f) = spare.next() else { break };
        out.push(Target {
            node: f.clone(),
            stands_in_for: Some(down.clone()),
        });
    }
    out
}

/// A fallback's promise to hand a key's state to its primary: the write is
/// stored on the fallback, and this record says whose it really is.
///
/// Ordered by primary first, so a fallback can walk the hints of one primary
/// at a time when that primary comes back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Hint {
    /// The primary the write belongs to.
    pub primary: NodeId,
    /// The key's partition.
    pub partition: PartitionId,
    /// The key.
    pub key: BucketKey,
}

impl Hint {
    /// Encodes for storage (postcard: compact and stable).
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("hint encoding cannot fail")
    }

    /// Decodes a stored hint; a damaged record is an error, never a panic.
    pub fn from_bytes(b: &[u8]) -> Result<Hint, postcard::Error> {
        postcard::from_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(n: usize) -> Vec<NodeId> {
        (1..=n).map(|i| NodeId::from(format!("n{i}"))).collect()
    }

    #[test]
    fn all_live_gives_the_primaries() {
        let l = ids(5);
        let t = choose_targets(&l, 3, true, |_| true);
        let nodes: Vec<_> = t.iter().map(|t| t.node.clone()).collect();
        assert_eq!(nodes, l[..3].to_vec());
        assert!(t.iter().all(Target::is_primary));
    }

    #[test]
    fn down_primaries_are_replaced_by_the_next_live_fallbacks() {
        let l = ids(5);
        // n2 and n3 are down; n4 is down too, so n5 is the only spare.
        let down = [l[1].clone(), l[2].clone(), l[3].clone()];
        let t = choose_targets(&l, 3, true, |x| !down.contains(x));
        assert_eq!(
            t,
            vec![
                Target {
                    node: l[0].clone(),
                    stands_in_for: None
                },
                Target {
                    node: l[4].clone(),
                    stands_in_for: Some(l[1].clone())
                },
            ]
        );
        // Strict: no stand-ins at all.
        let t = choose_targets(&l, 3, false, |x| !down.contains(x));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn hint_roundtrips_and_garbage_is_an_error() {
        let h = Hint {
            primary: NodeId::from("n2"),
            partition: 7,
            key: BucketKey::new(&b"b"[..], &b"k\xff"[..]),
        };
        assert_eq!(Hint::from_bytes(&h.to_bytes()).unwrap(), h);
        assert!(Hint::from_bytes(&[0xff, 0xff, 0xff]).is_err());
    }

    proptest! {
        /// Targets are distinct, never down, one per primary at most, and a
        /// fallback always stands in for a primary that is down.
        #[test]
        fn targets_are_distinct_live_and_bounded(
            s in 1usize..10, n in 1usize..6, down_mask in 0u32..1024, sloppy: bool,
        ) {
            let l = ids(s);
            let down: Vec<NodeId> = l.iter().enumerate()
                .filter(|(i, _)| down_mask & (1 << i) != 0).map(|(_, x)| x.clone()).collect();
            let live = |x: &NodeId| !down.contains(x);
            let t = choose_targets(&l, n, sloppy, live);
            let n = n.min(s);
            prop_assert!(t.len() <= n);
            let mut nodes: Vec<_> = t.iter().map(|t| t.node.clone()).collect();
            nodes.sort();
            nodes.dedup();
            prop_assert_eq!(nodes.len(), t.len());
            for x in &t {
                prop_assert!(live(&x.node));
                match &x.stands_in_for {
                    None => prop_assert!(l[..n].contains(&x.node)),
                    Some(p) => {
                        prop_assert!(l[..n].contains(p) && !live(p));
                        prop_assert!(!l[..n].contains(&x.node));
                    }
                }
            }
            let live_total = l.iter().filter(|x| live(x)).count();
            if sloppy {
                prop_assert_eq!(t.len(), n.min(live_total));
            }
        }
    }
}
