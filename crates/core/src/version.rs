//! Causal versions: dots, version vectors, and objects that keep concurrent
//! writes as siblings.
//!
//! An [`Object`] is a compact dotted-version-vector set: a version vector `vv`
//! that summarises every write the object has seen, and the siblings, each the
//! value of one write named by its [`Dot`]. A sibling survives a merge unless
//! the other side has seen its dot (its `vv` covers it) and dropped it, which
//! means a later write superseded it. This keeps exactly the concurrent values.
//!
//! Version vectors are downward closed per actor: an actor only makes dots at
//! its own node, on top of everything it stored before, so `vv[a] = c` means
//! "every write of `a` up to `c` is here or superseded".

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::layout::NodeId;

/// Who made a write: a node and the incarnation of its data directory, so a
/// node whose data was wiped (or whose unsynced writes were lost) never reuses
/// a dot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Actor {
    /// The node that coordinated the write.
    pub node: NodeId,
    /// Random id of the node's data-directory incarnation.
    pub incarnation: u32,
}

/// Names one write: the `counter`-th write of `actor` to a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dot {
    /// Who made the write.
    pub actor: Actor,
    /// Its sequence number among that actor's writes to the key (from 1).
    pub counter: u64,
}

/// For each actor, how many of its writes are covered.
///
/// Kept as a list sorted by actor, one entry per actor. A key's vector has
/// an entry for each node that coordinated a write to it, a handful, and
/// every request copies, joins and encodes a few vectors: a short sorted list
/// does that with one allocation, where a tree allocated a node and walked
/// it. On the wire (postcard) a map; in human-readable formats such as JSON,
/// whose map keys must be strings, a list of `[actor, counter]` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VersionVector(Vec<(Actor, u64)>);

impl Serialize for VersionVector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_seq(self.0.iter())
        } else {
            s.collect_map(self.0.iter().map(|(a, c)| (a, c)))
        }
    }
}

impl<'de> Deserialize<'de> for VersionVector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> serde::de::Visitor<'de> for Pairs {
            type Value = VersionVector;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of actors to counters")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<VersionVector, M::Error> {
                // At most 16 entries preallocated: the length is the sender's word.
                let mut pairs = Vec::with_capacity(m.size_hint().unwrap_or(0).min(16));
                while let Some(pair) = m.next_entry()? {
                    pairs.push(pair);
                }
                Ok(VersionVector::from_pairs(pairs))
            }
        }
        if d.is_human_readable() {
            Ok(VersionVector::from_pairs(Vec::deserialize(d)?))
        } else {
            d.deserialize_map(Pairs)
        }
    }
}

/// Sorts the pairs by actor; of several pairs of one actor the last counts,
/// as when they are inserted into a map one after another.
impl FromIterator<(Actor, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (Actor, u64)>>(pairs: I) -> Self {
        VersionVector::from_pairs(pairs.into_iter().collect())
    }
}

impl VersionVector {
    /// [`FromIterator`] on a list already collected. What this crate encodes
    /// is strictly sorted already, so decoding only checks that.
    fn from_pairs(mut pairs: Vec<(Actor, u64)>) -> Self {
        if pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            return VersionVector(pairs);
        }
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        // `later` comes after `kept` in the (stable) sorted list.
        pairs.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        let vv = VersionVector(pairs);
        debug_assert!(vv.is_sorted(), "a decoded version vector is sorted");
        vv
    }
}

impl VersionVector {
    /// The empty vector: covers nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `actor`'s entry is, or would go.
    fn find(&self, actor: &Actor) -> Result<usize, usize> {
        self.0.binary_search_by(|(a, _)| a.cmp(actor))
    }

    /// How many writes of `actor` are covered.
    pub fn get(&self, actor: &Actor) -> u64 {
        self.find(actor).map_or(0, |i| self.0[i].1)
    }

    /// Whether the write named by `dot` is covered.
    pub fn covers(&self, dot: &Dot) -> bool {
        self.get(&dot.actor) >= dot.counter
    }

    /// Adds `dot` (and, by downward closure, every earlier dot of its actor).
    pub fn add(&mut self, dot: &Dot) {
        self.raise(&dot.actor, dot.counter);
    }

    /// Raises `actor`'s counter to at least `counter`.
    fn raise(&mut self, actor: &Actor, counter: u64) {
        match self.find(actor) {
            Ok(i) => self.0[i].1 = self.0[i].1.max(counter),
            Err(i) => self.0.insert(i, (actor.clone(), counter)),
        }
        debug_assert!(self.is_sorted(), "a raised version vector stays sorted");
    }

    /// Pointwise maximum with `other`.
    pub fn join(&mut self, other: &VersionVector) {
        let mut missing = false;
        for (a, c) in &other.0 {
            match self.find(a) {
                Ok(i) => self.0[i].1 = self.0[i].1.max(*c),
                Err(_) => missing = true,
            }
        }
        if !missing {
            return;
        }
        // New actors: one merge of the two sorted lists, linear in their
        // lengths (inserting each would shift the list once per actor).
        let mut out = Vec::with_capacity(self.0.len() + other.0.len());
        let mut mine = std::mem::take(&mut self.0).into_iter().peekable();
        for (a, c) in &other.0 {
            while let Some(m) = mine.next_if(|(x, _)| x < a) {
                out.push(m);
            }
            match mine.next_if(|(x, _)| x == a) {
                Some(m) => out.push(m), // raised above
                None => out.push((a.clone(), *c)),
            }
        }
        out.extend(mine);
        self.0 = out;
        debug_assert!(self.is_sorted(), "a joined version vector stays sorted");
    }

    /// Whether the entries are strictly sorted by actor (each actor once):
    /// what lookups by binary search rely on.
    fn is_sorted(&self) -> bool {
        self.0.windows(2).all(|w| w[0].0 < w[1].0)
    }

    /// Whether `self` covers everything `other` covers.
    pub fn descends(&self, other: &VersionVector) -> bool {
        other.0.iter().all(|(a, c)| self.get(a) >= *c)
    }

    /// Whether nothing is covered.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|(_, c)| *c == 0)
    }

    /// How many actors have an entry (what the vector's size grows with).
    pub fn actors(&self) -> usize {
        self.0.len()
    }

    /// Each actor with its counter, in actor order.
    pub fn iter(&self) -> impl Iterator<Item = (&Actor, u64)> {
        self.0.iter().map(|(a, c)| (a, *c))
    }
}

/// What one write stored: bytes, or a deletion.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Value {
    /// A value.
    Data(Bytes),
    /// A deletion (tombstone).
    Tombstone,
}

impl Value {
    /// Whether this is a deletion.
    pub fn is_tombstone(&self) -> bool {
        matches!(self, Value::Tombstone)
    }
}

/// One concurrent value of a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sibling {
    /// The write that made it.
    pub dot: Dot,
    /// What it wrote.
    pub value: Value,
    /// The coordinator's clock when it was written, in ms (for last-write-wins
    /// buckets and for operators; never used for causality).
    pub timestamp_ms: u64,
}

/// Every version of a key a replica knows: the causal summary and the
/// concurrent values. Siblings are sorted by dot, so equal states compare equal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    /// Every write this object has seen (its siblings' dots included).
    pub vv: VersionVector,
    /// The values not superseded by any write seen, sorted by dot.
    pub siblings: Vec<Sibling>,
}

impl Object {
    /// The state of a key nobody wrote.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Whether no write is known at all.
    pub fn is_empty(&self) -> bool {
        self.siblings.is_empty() && self.vv.is_empty()
    }

    /// Whether the key reads as absent: no sibling holds data.
    pub fn is_deleted(&self) -> bool {
        self.siblings.iter().all(|s| s.value.is_tombstone())
    }

    /// The context a client gets when reading this object.
    pub fn context(&self) -> &VersionVector {
        &self.vv
    }

    /// Merges two replicas' states of the same key.
    ///
    /// Commutative, associative and idempotent for states that come from one
    /// history (dots are unique, so equal dots carry equal values).
    ///
    /// Linear in the siblings of both sides: the siblings are kept sorted by
    /// dot, so one two-pointer pass over both lists decides every sibling
    /// (a sibling on both sides is kept once, ours; one on one side only is
    /// kept unless the other side has seen its dot and dropped it). A side
    /// whose siblings are out of order (not something this crate makes) is
    /// sorted first, which costs `n log n`, never `n²`.
    pub fn merge(&self, other: &Object) -> Object {
        use std::cmp::Ordering;
        let (a, b) = (self.sorted_siblings(), other.sorted_siblings());
        let mut siblings: Vec<Sibling> = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].dot.cmp(&b[j].dot) {
                Ordering::Less => {
                    if !other.vv.covers(&a[i].dot) {
                        siblings.push(a[i].clone());
                    }
                    i += 1;
                }
                Ordering::Greater => {
                    if !self.vv.covers(&b[j].dot) {
                        siblings.push(b[j].clone());
                    }
                    j += 1;
                }
                Ordering::Equal => {
                    siblings.push(a[i].clone());
                    i += 1;
                    j += 1;
                }
            }
        }
        siblings.extend(a[i..].iter().filter(|s| !other.vv.covers(&s.dot)).cloned());
        siblings.extend(b[j..].iter().filter(|s| !self.vv.covers(&s.dot)).cloned());
        let mut vv = self.vv.clone();
        vv.join(&other.vv);
        Object { vv, siblings }
    }

    /// Whether the siblings are strictly sorted by dot (so each dot is
    /// there once): what this crate makes, and what [`Object::merge`] and
    /// [`Object::update`] run in linear time on.
    pub fn siblings_sorted(&self) -> bool {
        self.siblings.windows(2).all(|w| w[0].dot < w[1].dot)
    }

    /// The siblings strictly sorted by dot: borrowed when they are already
    /// (always, for objects this crate made); else sorted, and of several
    /// siblings with one dot the first kept.
    fn sorted_siblings(&self) -> std::borrow::Cow<'_, [Sibling]> {
        if self.siblings_sorted() {
            return std::borrow::Cow::Borrowed(&self.siblings);
        }
        let mut s = self.siblings.clone();
        s.sort_by(|a, b| a.dot.cmp(&b.dot));
        s.dedup_by(|later, kept| later.dot == kept.dot);
        std::borrow::Cow::Owned(s)
    }

    /// The next dot `actor` makes on this key, given the client's context;
    /// `None` when `actor`'s counter is at `u64::MAX` (a dot must never wrap
    /// to one the key already covers: its write would vanish).
    pub fn checked_next_dot(&self, actor: &Actor, context: &VersionVector) -> Option<Dot> {
        let counter = self.vv.get(actor).max(context.get(actor)).checked_add(1)?;
        Some(Dot {
            actor: actor.clone(),
            counter,
        })
    }

    /// [`Object::checked_next_dot`] for tests and the simulator, whose
    /// counters stay small.
    ///
    /// # Panics
    /// When the counter would overflow; the node uses the checked form.
    pub fn next_dot(&self, actor: &Actor, context: &VersionVector) -> Dot {
        self.checked_next_dot(actor, context)
            .expect("a dot counter overflowed")
    }

    /// Applies a write made with `context` (what the client had read): drops
    /// every sibling the context covers, keeps the rest as concurrent, and adds
    /// the new value under `dot`.
    pub fn update(
        &self,
        context: &VersionVector,
        dot: Dot,
        value: Value,
        timestamp_ms: u64,
    ) -> Object {
        debug_assert!(!self.vv.covers(&dot), "dot {dot:?} reused");
        let mut siblings: Vec<Sibling> = self
            .siblings
            .iter()
            .filter(|s| !context.covers(&s.dot))
            .cloned()
            .collect();
        let mut vv = self.vv.clone();
        vv.join(context);
        vv.add(&dot);
        let new = Sibling {
            dot,
            value,
            timestamp_ms,
        };
        if self.siblings_sorted() {
            // Where a stable sort of the pushed sibling would put it, found
            // by binary search: no sort of the whole list.
            let at = siblings.partition_point(|s| s.dot <= new.dot);
            siblings.insert(at, new);
        } else {
            siblings.push(new);
            siblings.sort_by(|a, b| a.dot.cmp(&b.dot));
        }
        Object { vv, siblings }
    }

    /// The bytes of all the siblings' values together (what the object's
    /// size limit counts).
    pub fn value_bytes(&self) -> usize {
        self.siblings
            .iter()
            .map(|s| match &s.value {
                Value::Data(b) => b.len(),
                Value::Tombstone => 0,
            })
            .sum()
    }

    /// Encodes for storage or the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Allocated once with room for the whole encoding (values plus a
        // generous allowance per dot and vector entry) rather than grown
        // and copied from empty.
        let guess = self.value_bytes() + 96 * self.siblings.len() + 80 * self.vv.0.len() + 16;
        postcard::to_extend(self, Vec::with_capacity(guess)).expect("object encoding cannot fail")
    }

    /// Decodes what [`Object::to_bytes`] made.
    pub fn from_bytes(b: &[u8]) -> Result<Object, postcard::Error> {
        postcard::from_bytes(b)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_vectors_serialize_in_json_and_postcard() {
        let a = Actor {
            node: NodeId::from("n1"),
            incarnation: 7,
        };
        let mut vv = VersionVector::new();
        vv.add(&Dot {
            actor: a,
            counter: 3,
        });
        let json = serde_json::to_string(&vv).unwrap();
        assert_eq!(serde_json::from_str::<VersionVector>(&json).unwrap(), vv);
        let bin = postcard::to_stdvec(&vv).unwrap();
        assert_eq!(postcard::from_bytes::<VersionVector>(&bin).unwrap(), vv);
    }

    use super::*;
    use proptest::prelude::*;

    fn actor(i: usize) -> Actor {
        Actor {
            node: NodeId::from(format!("n{i}")),
            incarnation: 7,
        }
    }

    /// A version vector as it was kept before it became a sorted list: the
    /// model its operations and its encoding must match.
    type Model = std::collections::BTreeMap<Actor, u64>;

    fn vv_ops() -> impl Strategy<Value = Vec<(bool, usize, u64)>> {
        // (join a one-entry vector instead of adding a dot, actor, counter)
        prop::collection::vec((any::<bool>(), 0usize..6, 0u64..5), 0..12)
    }

    proptest! {
        #[test]
        fn version_vectors_match_a_map(ops in vv_ops(), other in vv_ops()) {
            let build = |ops: &[(bool, usize, u64)]| {
                let (mut vv, mut model) = (VersionVector::new(), Model::new());
                for &(join, a, c) in ops {
                    let dot = Dot { actor: actor(a), counter: c };
                    if join {
                        vv.join(&[(actor(a), c)].into_iter().collect());
                    } else {
                        vv.add(&dot);
                    }
                    let e = model.entry(actor(a)).or_insert(0);
                    *e = (*e).max(c);
                }
                (vv, model)
            };
            let (mut vv, mut model) = build(&ops);
            let (other, other_model) = build(&other);
            for a in 0..6 {
                prop_assert_eq!(vv.get(&actor(a)), model.get(&actor(a)).copied().unwrap_or(0));
            }
            prop_assert_eq!(
                vv.descends(&other),
                other_model.iter().all(|(a, c)| model.get(a).copied().unwrap_or(0) >= *c)
            );
            prop_assert_eq!(vv.is_empty(), model.values().all(|c| *c == 0));
            vv.join(&other);
            for (a, c) in other_model {
                let e = model.entry(a).or_insert(0);
                *e = (*e).max(c);
            }
            prop_assert!(vv.iter().map(|(a, c)| (a.clone(), c)).eq(model.clone()));
            // Encoded exactly as the map was, so stored objects and contexts
            // from before read the same; and decoded back.
            let bin = postcard::to_stdvec(&vv).unwrap();
            prop_assert_eq!(&bin, &postcard::to_stdvec(&model).unwrap());
            prop_assert_eq!(postcard::from_bytes::<VersionVector>(&bin).unwrap(), vv.clone());
            let json = serde_json::to_string(&vv).unwrap();
            let pairs: Vec<(&Actor, &u64)> = model.iter().collect();
            prop_assert_eq!(&json, &serde_json::to_string(&pairs).unwrap());
            prop_assert_eq!(serde_json::from_str::<VersionVector>(&json).unwrap(), vv);
        }

        /// Pairs in any order, with repeats, read as a map would read them:
        /// sorted, the last of an actor's pairs counting.
        #[test]
        fn unsorted_pairs_decode_as_a_map(pairs in prop::collection::vec((0usize..4, 0u64..9), 0..10)) {
            let pairs: Vec<(Actor, u64)> = pairs.into_iter().map(|(a, c)| (actor(a), c)).collect();
            let model: Model = pairs.iter().cloned().collect();
            let vv: VersionVector = pairs.iter().cloned().collect();
            prop_assert!(vv.iter().map(|(a, c)| (a.clone(), c)).eq(model.clone()));
            // A map on the wire with its entries out of order and repeated.
            let mut bin = postcard::to_stdvec(&(pairs.len() as u32)).unwrap();
            for p in &pairs {
                bin.extend(postcard::to_stdvec(p).unwrap());
            }
            prop_assert_eq!(postcard::from_bytes::<VersionVector>(&bin).unwrap(), vv);
        }
    }

    /// One step of a random history over 3 replicas of one key.
    #[derive(Clone, Debug)]
    enum Step {
        /// Replica `r` coordinates a write; the context is what replica
        /// `ctx_from` held (a client read there), or none.
        Write {
            r: usize,
            ctx_from: Option<usize>,
            delete: bool,
        },
        /// Replica `to` merges in the state of replica `from`.
        Sync { from: usize, to: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0..3usize, proptest::option::of(0..3usize), any::<bool>()).prop_map(
                |(r, ctx_from, delete)| Step::Write {
                    r,
                    ctx_from,
                    delete
                }
            ),
            (0..3usize, 0..3usize).prop_map(|(from, to)| Step::Sync { from, to }),
        ]
    }

    /// Runs a history; returns the replicas' states and every state seen.
    fn run(steps: &[Step]) -> (Vec<Object>, Vec<Object>) {
        let mut reps = vec![Object::empty(); 3];
        let mut seen = vec![];
        for (i, st) in steps.iter().enumerate() {
            match st {
                Step::Write {
                    r,
                    ctx_from,
                    delete,
                } => {
                    let ctx = ctx_from.map(|c| reps[c].vv.clone()).unwrap_or_default();
                    let dot = reps[*r].next_dot(&actor(*r), &ctx);
                    let v = if *delete {
                        Value::Tombstone
                    } else {
                        Value::Data(Bytes::from(format!("v{i}")))
                    };
                    reps[*r] = reps[*r].update(&ctx, dot, v, i as u64);
                }
                Step::Sync { from, to } => {
                    reps[*to] = reps[*to].merge(&reps[*from]);
                }
            }
            seen.extend(reps.iter().cloned());
        }
        (reps, seen)
    }

    proptest! {
        #[test]
        fn merge_is_commutative_associative_idempotent(steps in proptest::collection::vec(step(), 0..40), i in 0usize..1000, j in 0usize..1000, k in 0usize..1000) {
            let (_, seen) = run(&steps);
            prop_assume!(!seen.is_empty());
            let a = &seen[i % seen.len()];
            let b = &seen[j % seen.len()];
            let c = &seen[k % seen.len()];
            prop_assert_eq!(a.merge(b), b.merge(a));
            prop_assert_eq!(a.merge(&b.merge(c)), a.merge(b).merge(c));
            prop_assert_eq!(a.merge(a), a.clone());
        }

        #[test]
        fn update_with_read_context_supersedes_exactly_what_was_read(steps in proptest::collection::vec(step(), 0..40), reader in 0usize..3, writer in 0usize..3, other in 0usize..3) {
            let (mut reps, _) = run(&steps);
            // A client reads at `reader`; meanwhile `other` makes a concurrent write.
            let read = reps[reader].clone();
            let cdot = reps[other].next_dot(&actor(other), &VersionVector::new());
            let concurrent = Value::Data(Bytes::from_static(b"concurrent"));
            reps[other] = reps[other].update(&VersionVector::new(), cdot.clone(), concurrent, 1);
            // The client writes with the context of its read, coordinated at `writer`.
            let ctx = read.vv.clone();
            let dot = reps[writer].next_dot(&actor(writer), &ctx);
            reps[writer] = reps[writer].update(&ctx, dot.clone(), Value::Data(Bytes::from_static(b"new")), 2);
            // Everything converges.
            let all = reps[0].merge(&reps[1]).merge(&reps[2]);
            // The new write survives; nothing the read returned does.
            prop_assert!(all.siblings.iter().any(|s| s.dot == dot));
            for s in &read.siblings {
                prop_assert!(!all.siblings.iter().any(|x| x.dot == s.dot), "read sibling {:?} survived", s.dot);
            }
            // The concurrent write survives as a sibling (unless it is the same
            // write: the reader already saw it, impossible here as it came after).
            prop_assert!(all.siblings.iter().any(|s| s.dot == cdot));
            // Every surviving sibling is one the read did not cover.
            for s in &all.siblings {
                prop_assert!(s.dot == dot || !ctx.covers(&s.dot));
            }
        }

        #[test]
        fn object_roundtrips(steps in proptest::collection::vec(step(), 0..20)) {
            let (reps, _) = run(&steps);
            for o in reps {
                prop_assert_eq!(Object::from_bytes(&o.to_bytes()).unwrap(), o);
            }
        }
    }

    /// The merge as it was before it became a linear pass (quadratic in
    /// the siblings): the oracle the new one must agree with.
    fn merge_quadratic(a: &Object, b: &Object) -> Object {
        let mut siblings: Vec<Sibling> = Vec::new();
        let keep = |s: &Sibling, other: &Object| {
            !other.vv.covers(&s.dot) || other.siblings.iter().any(|o| o.dot == s.dot)
        };
        for s in &a.siblings {
            if keep(s, b) {
                siblings.push(s.clone());
            }
        }
        for s in &b.siblings {
            if keep(s, a) && !siblings.iter().any(|x| x.dot == s.dot) {
                siblings.push(s.clone());
            }
        }
        siblings.sort_by(|x, y| x.dot.cmp(&y.dot));
        let mut vv = a.vv.clone();
        vv.join(&b.vv);
        Object { vv, siblings }
    }

    /// Any object over a small space of dots, siblings sorted and unique by
    /// dot as this crate keeps them; the vector need not cover them, and
    /// values need not be the same for a dot on both sides.
    fn any_object() -> impl Strategy<Value = Object> {
        let dot = (0usize..4, 1u64..6);
        let sib = (dot, any::<bool>(), 0u8..3, 0u64..4);
        (
            prop::collection::vec((0usize..4, 0u64..6), 0..5),
            prop::collection::vec(sib, 0..8),
        )
            .prop_map(|(vv, sibs)| {
                let vv: VersionVector = vv.into_iter().map(|(a, c)| (actor(a), c)).collect();
                let mut siblings: Vec<Sibling> = sibs
                    .into_iter()
                    .map(|((a, c), del, v, ts)| Sibling {
                        dot: Dot {
                            actor: actor(a),
                            counter: c,
                        },
                        value: if del {
                            Value::Tombstone
                        } else {
                            Value::Data(Bytes::from(vec![v]))
                        },
                        timestamp_ms: ts,
                    })
                    .collect();
                siblings.sort_by(|x, y| x.dot.cmp(&y.dot));
                siblings.dedup_by(|later, kept| later.dot == kept.dot);
                Object { vv, siblings }
            })
    }

    proptest! {
        #[test]
        fn linear_merge_equals_the_quadratic_one_on_any_objects(a in any_object(), b in any_object()) {
            prop_assert_eq!(a.merge(&b), merge_quadratic(&a, &b));
            prop_assert_eq!(b.merge(&a), merge_quadratic(&b, &a));
            prop_assert!(a.merge(&b).siblings_sorted());
        }

        #[test]
        fn linear_merge_equals_the_quadratic_one_on_histories(steps in proptest::collection::vec(step(), 0..40), i in 0usize..1000, j in 0usize..1000) {
            let (_, seen) = run(&steps);
            prop_assume!(!seen.is_empty());
            let (a, b) = (&seen[i % seen.len()], &seen[j % seen.len()]);
            prop_assert_eq!(a.merge(b), merge_quadratic(a, b));
        }

        /// Siblings out of order (a peer's object this crate did not make)
        /// merge as their sorted form does.
        #[test]
        fn unsorted_siblings_merge_as_sorted_ones(a in any_object(), b in any_object(), seed in any::<u64>()) {
            let mut shuffled = a.clone();
            let n = shuffled.siblings.len();
            if n > 1 {
                shuffled.siblings.rotate_left((seed as usize) % n);
            }
            prop_assert_eq!(shuffled.merge(&b), a.merge(&b));
            prop_assert_eq!(b.merge(&shuffled), b.merge(&a));
        }
    }

    #[test]
    fn the_next_dot_never_wraps() {
        let mut vv = VersionVector::new();
        vv.add(&Dot {
            actor: actor(1),
            counter: u64::MAX,
        });
        let o = Object {
            vv: vv.clone(),
            siblings: Vec::new(),
        };
        assert_eq!(o.checked_next_dot(&actor(1), &VersionVector::new()), None);
        assert_eq!(Object::empty().checked_next_dot(&actor(1), &vv), None);
        let below = Object::empty().checked_next_dot(&actor(2), &vv).unwrap();
        assert_eq!(below.counter, 1);
    }

    #[test]
    fn writes_without_context_become_siblings() {
        let o = Object::empty();
        let d1 = o.next_dot(&actor(0), &VersionVector::new());
        let o = o.update(
            &VersionVector::new(),
            d1,
            Value::Data(Bytes::from_static(b"a")),
            0,
        );
        let d2 = o.next_dot(&actor(0), &VersionVector::new());
        let o = o.update(
            &VersionVector::new(),
            d2,
            Value::Data(Bytes::from_static(b"b")),
            0,
        );
        assert_eq!(o.siblings.len(), 2);
        let ctx = o.vv.clone();
        let d3 = o.next_dot(&actor(1), &ctx);
        let o = o.update(&ctx, d3, Value::Tombstone, 0);
        assert_eq!(o.siblings.len(), 1);
        assert!(o.is_deleted());
    }
}
