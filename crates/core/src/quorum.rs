//! Bookkeeping for one request waiting for replies from replicas: who was
//! asked, who answered, whether the quorum is met or can no longer be met, and
//! (for reads) which replies were stale and need repair.
//!
//! Plain data: the node feeds it replies and tells it when the deadline passed.

use std::collections::BTreeMap;

use crate::layout::NodeId;
use crate::version::Object;

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumStatus {
    /// Fewer than `required` replies yet, and enough targets still outstanding.
    Pending,
    /// `required` replies arrived.
    Met,
    /// The quorum was not met: every target answered or failed, or the
    /// deadline passed. (A request that can no longer succeed still waits for
    /// its outstanding targets, so its error reports every ack it got.)
    Failed,
}

/// How many answers must come from the key's primaries (PR/PW), and who
/// they are: shared by reads and writes.
#[derive(Clone, Debug, Default)]
struct Strict {
    needed: usize,
    primaries: Vec<NodeId>,
}

impl Strict {
    /// How many of `answered` are primaries.
    fn count<'a>(&self, answered: impl Iterator<Item = &'a NodeId>) -> usize {
        answered.filter(|n| self.primaries.contains(n)).count()
    }
}

/// Whether no node appears twice in `nodes`.
fn distinct(nodes: &[NodeId]) -> bool {
    nodes
        .iter()
        .collect::<std::collections::BTreeSet<_>>()
        .len()
        == nodes.len()
}

/// A write waiting for `required` acks from its targets.
#[derive(Clone, Debug)]
pub struct WriteQuorum {
    required: usize,
    /// Acks that must come from primaries (PW).
    strict: Strict,
    targets: Vec<NodeId>,
    acked: Vec<NodeId>,
    failed: Vec<NodeId>,
    expired: bool,
}

impl WriteQuorum {
    /// A write to `targets` that needs `required` acks.
    pub fn new(targets: Vec<NodeId>, required: usize) -> Self {
        assert!(required >= 1, "a write needs at least one ack");
        debug_assert!(
            distinct(&targets),
            "a write's targets are distinct: {targets:?}"
        );
        WriteQuorum {
            required,
            strict: Strict::default(),
            targets,
            acked: vec![],
            failed: vec![],
            expired: false,
        }
    }

    /// Requires `strict` of the acks to come from `primaries` (PW): the
    /// write is met only with `required` acks of which `strict` are theirs.
    pub fn with_strict(mut self, primaries: Vec<NodeId>, strict: usize) -> Self {
        self.strict = Strict {
            needed: strict,
            primaries,
        };
        self
    }

    /// Records an ack from `node`; duplicates and strangers are ignored.
    pub fn ack(&mut self, node: &NodeId) -> QuorumStatus {
        if self.is_outstanding(node) {
            self.acked.push(node.clone());
        }
        self.status()
    }

    /// Records that `node` refused or failed.
    pub fn fail(&mut self, node: &NodeId) -> QuorumStatus {
        if self.is_outstanding(node) {
            self.failed.push(node.clone());
        }
        self.status()
    }

    /// The deadline passed: whatever is still missing will not count.
    pub fn expire(&mut self) -> QuorumStatus {
        self.expired = true;
        self.status()
    }

    fn is_outstanding(&self, node: &NodeId) -> bool {
        self.targets.contains(node) && !self.acked.contains(node) && !self.failed.contains(node)
    }

    /// The targets that neither acked nor failed yet: after [`WriteQuorum::expire`],
    /// the ones that never answered (the node suspects them).
    pub fn outstanding(&self) -> Vec<NodeId> {
        self.targets
            .iter()
            .filter(|n| self.is_outstanding(n))
            .cloned()
            .collect()
    }

    /// Where the write stands.
    pub fn status(&self) -> QuorumStatus {
        debug_assert!(
            self.acked.len() + self.failed.len() <= self.targets.len(),
            "acks and failures come from distinct targets"
        );
        let outstanding = self.targets.len() - self.acked.len() - self.failed.len();
        if self.acked.len() >= self.required && self.primary_acks() >= self.strict.needed {
            QuorumStatus::Met
        } else if self.expired || outstanding == 0 {
            QuorumStatus::Failed
        } else {
            QuorumStatus::Pending
        }
    }

    /// Acks needed.
    pub fn required(&self) -> usize {
        self.required
    }

    /// Acks received so far.
    pub fn acks(&self) -> usize {
        self.acked.len()
    }

    /// Acks from primaries the write needs (PW).
    pub fn strict(&self) -> usize {
        self.strict.needed
    }

    /// Acks received so far from primaries.
    pub fn primary_acks(&self) -> usize {
        self.strict.count(self.acked.iter())
    }

    /// Whether the write failed for lack of primaries (PW) although it had
    /// enough acks in all.
    pub fn strict_shortfall(&self) -> bool {
        self.acked.len() >= self.required && self.primary_acks() < self.strict.needed
    }
}

/// A read waiting for `required` replies; keeps every reply so that the
/// merged answer and the stale replicas can be computed.
#[derive(Clone, Debug)]
pub struct ReadQuorum {
    required: usize,
    /// Targets whose answer the read waits for besides the count.
    /// Targets that are fallbacks: their empty replies are weak.
    fallbacks: Vec<NodeId>,
    /// Replies that must come from primaries (PR).
    strict: Strict,
    targets: Vec<NodeId>,
    replies: BTreeMap<NodeId, Object>,
    failed: Vec<NodeId>,
    expired: bool,
}

impl ReadQuorum {
    /// A read of `targets` that needs `required` replies.
    pub fn new(targets: Vec<NodeId>, required: usize) -> Self {
        assert!(required >= 1, "a read needs at least one reply");
        debug_assert!(
            distinct(&targets),
            "a read's targets are distinct: {targets:?}"
        );
        ReadQuorum {
            required,
            fallbacks: vec![],
            strict: Strict::default(),
            targets,
            replies: BTreeMap::new(),
            failed: vec![],
            expired: false,
        }
    }

    /// Requires `strict` of the replies to come from `primaries` (PR).
    pub fn with_strict(mut self, primaries: Vec<NodeId>, strict: usize) -> Self {
        self.strict = Strict {
            needed: strict,
            primaries,
        };
        self
    }

    /// Names the targets that are fallbacks. A fallback only holds hinted
    /// writes, so its "not found" must not outvote a primary that holds the
    /// key: an empty reply from a fallback counts toward `required` only
    /// once every other target has answered or failed. Its non-empty
    /// replies count at once.
    pub fn with_fallbacks(mut self, nodes: Vec<NodeId>) -> Self {
        self.fallbacks = nodes;
        self
    }

    /// Replies that must come from primaries (PR).
    pub fn strict(&self) -> usize {
        self.strict.needed
    }

    /// Replies received so far from primaries.
    pub fn primary_replies(&self) -> usize {
        self.strict.count(self.replies.keys())
    }

    /// Whether the read failed for lack of primaries (PR) although it had
    /// enough replies in all.
    pub fn strict_shortfall(&self) -> bool {
        self.replies.len() >= self.required && self.primary_replies() < self.strict.needed
    }

    /// Records `node`'s state of the key (empty when it has none).
    pub fn reply(&mut self, node: &NodeId, object: Object) -> QuorumStatus {
        if self.is_outstanding(node) {
            self.replies.insert(node.clone(), object);
        }
        self.status()
    }

    /// Records that `node` could not answer.
    pub fn fail(&mut self, node: &NodeId) -> QuorumStatus {
        if self.is_outstanding(node) {
            self.failed.push(node.clone());
        }
        self.status()
    }

    /// The deadline passed.
    pub fn expire(&mut self) -> QuorumStatus {
        self.expired = true;
        self.status()
    }

    fn is_outstanding(&self, node: &NodeId) -> bool {
        self.targets.contains(node)
            && !self.replies.contains_key(node)
            && !self.failed.contains(node)
    }

    /// The targets that neither replied nor failed yet: after
    /// [`ReadQuorum::expire`], the ones that never answered.
    pub fn outstanding(&self) -> Vec<NodeId> {
        self.targets
            .iter()
            .filter(|n| self.is_outstanding(n))
            .cloned()
            .collect()
    }

    /// Where the read stands.
    pub fn status(&self) -> QuorumStatus {
        debug_assert!(
            self.replies.len() + self.failed.len() <= self.targets.len(),
            "replies and failures come from distinct targets"
        );
        let outstanding = self.targets.len() - self.replies.len() - self.failed.len();
        let strong = self
            .replies
            .iter()
            .filter(|(n, o)| !o.is_empty() || !self.fallbacks.contains(n))
            .count();
        let others_heard = self
            .targets
            .iter()
            .filter(|n| !self.fallbacks.contains(n))
            .all(|n| self.replies.contains_key(n) || self.failed.contains(n));
        let enough =
            strong >= self.required || (self.replies.len() >= self.required && others_heard);
        if enough && self.primary_replies() >= self.strict.needed {
            QuorumStatus::Met
        } else if self.expired || outstanding == 0 {
            QuorumStatus::Failed
        } else {
            QuorumStatus::Pending
        }
    }

    /// Whether every target has answered or failed.
    pub fn all_in(&self) -> bool {
        self.replies.len() + self.failed.len() == self.targets.len()
    }

    /// Replies needed.
    pub fn required(&self) -> usize {
        self.required
    }

    /// Replies received so far.
    pub fn replies(&self) -> usize {
        self.replies.len()
    }

    /// The merge of every reply received.
    pub fn merged(&self) -> Object {
        self.replies
            .values()
            .fold(Object::empty(), |acc, o| acc.merge(o))
    }

    /// The replicas whose reply lacks something `merged` has: they need
    /// `merged` written back (read repair). Only primaries are listed when
    /// [`ReadQuorum::with_strict`] named them: a fallback's copy is handed
    /// off to its primary, not repaired in place.
    pub fn stale(&self, merged: &Object) -> Vec<NodeId> {
        self.replies
            .iter()
            .filter(|(n, _)| self.strict.primaries.is_empty() || self.strict.primaries.contains(n))
            .filter(|(_, o)| *o != merged)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Actor, Value, VersionVector};

    fn ids(n: usize) -> Vec<NodeId> {
        (1..=n).map(|i| NodeId::from(format!("n{i}"))).collect()
    }

    #[test]
    fn write_met_after_w_acks_in_any_order() {
        let t = ids(3);
        for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut q = WriteQuorum::new(t.clone(), 2);
            assert_eq!(q.ack(&t[order[0]]), QuorumStatus::Pending);
            assert_eq!(
                q.ack(&t[order[0]]),
                QuorumStatus::Pending,
                "duplicate ack counted"
            );
            assert_eq!(q.ack(&t[order[1]]), QuorumStatus::Met);
            assert_eq!(q.ack(&t[order[2]]), QuorumStatus::Met);
        }
    }

    #[test]
    fn write_fails_when_quorum_impossible_or_expired() {
        let t = ids(3);
        let mut q = WriteQuorum::new(t.clone(), 3);
        q.ack(&t[0]);
        assert_eq!(
            q.fail(&t[1]),
            QuorumStatus::Pending,
            "waits for n3 to count its ack"
        );
        assert_eq!(q.ack(&t[2]), QuorumStatus::Failed);
        assert_eq!(q.acks(), 2);
        let mut q = WriteQuorum::new(t.clone(), 2);
        q.ack(&t[0]);
        assert_eq!(q.expire(), QuorumStatus::Failed);
        assert_eq!((q.required(), q.acks()), (2, 1));
        let mut q = WriteQuorum::new(t.clone(), 1);
        assert_eq!(q.ack(&NodeId::from("stranger")), QuorumStatus::Pending);
    }

    #[test]
    fn strict_quorums_need_their_primaries() {
        let t = ids(4);
        let primaries = t[..3].to_vec();
        // n1 is a primary, n4 a fallback standing in for one.
        let targets = vec![t[0].clone(), t[3].clone()];
        let mut q = WriteQuorum::new(targets.clone(), 2).with_strict(primaries.clone(), 2);
        q.ack(&t[0]);
        assert_eq!(q.ack(&t[3]), QuorumStatus::Failed, "only one primary acked");
        assert!(q.strict_shortfall());
        assert_eq!((q.acks(), q.primary_acks()), (2, 1));
        let mut q = WriteQuorum::new(targets.clone(), 2).with_strict(primaries.clone(), 1);
        q.ack(&t[3]);
        assert_eq!(q.ack(&t[0]), QuorumStatus::Met);
        let mut r = ReadQuorum::new(targets, 2).with_strict(primaries, 2);
        r.reply(&t[3], Object::empty());
        assert_eq!(r.reply(&t[0], Object::empty()), QuorumStatus::Failed);
        assert!(r.strict_shortfall());
    }

    #[test]
    fn an_empty_fallback_reply_waits_for_the_primaries() {
        let t = ids(3);
        let a = Actor {
            node: t[0].clone(),
            incarnation: 1,
        };
        let d = Object::empty().next_dot(&a, &VersionVector::new());
        let value = Object::empty().update(&VersionVector::new(), d, Value::Data("x".into()), 0);
        // t[0] is a primary; t[1] and t[2] are fallbacks.
        let fallbacks = vec![t[1].clone(), t[2].clone()];
        let mut q = ReadQuorum::new(t.clone(), 2).with_fallbacks(fallbacks.clone());
        q.reply(&t[1], Object::empty());
        assert_eq!(q.reply(&t[2], Object::empty()), QuorumStatus::Pending);
        assert_eq!(q.reply(&t[0], value.clone()), QuorumStatus::Met);
        assert_eq!(q.merged(), value, "the primary's value is not outvoted");
        // A failed primary is heard too.
        let mut q = ReadQuorum::new(t.clone(), 2).with_fallbacks(fallbacks.clone());
        q.reply(&t[1], Object::empty());
        q.reply(&t[2], Object::empty());
        assert_eq!(q.fail(&t[0]), QuorumStatus::Met);
        // A fallback's hinted data counts at once, as does a primary's reply.
        let mut q = ReadQuorum::new(t.clone(), 1).with_fallbacks(fallbacks.clone());
        assert_eq!(q.reply(&t[1], value.clone()), QuorumStatus::Met);
        let mut q = ReadQuorum::new(t.clone(), 1).with_fallbacks(fallbacks);
        assert_eq!(q.reply(&t[0], Object::empty()), QuorumStatus::Met);
    }

    #[test]
    fn read_merges_and_finds_stale() {
        let t = ids(3);
        let a = Actor {
            node: t[0].clone(),
            incarnation: 1,
        };
        let o = Object::empty();
        let d = o.next_dot(&a, &VersionVector::new());
        let newer = o.update(&VersionVector::new(), d, Value::Data("x".into()), 0);
        let mut q = ReadQuorum::new(t.clone(), 2);
        assert_eq!(q.reply(&t[1], Object::empty()), QuorumStatus::Pending);
        assert_eq!(q.reply(&t[0], newer.clone()), QuorumStatus::Met);
        let m = q.merged();
        assert_eq!(m, newer);
        assert_eq!(q.stale(&m), vec![t[1].clone()]);
        assert!(!q.all_in());
        assert_eq!(q.outstanding(), vec![t[2].clone()]);
        q.fail(&t[2]);
        assert!(q.all_in());
        assert!(q.outstanding().is_empty());
    }

    #[test]
    fn outstanding_lists_who_never_answered() {
        let t = ids(3);
        let mut q = WriteQuorum::new(t.clone(), 3);
        q.ack(&t[0]);
        q.fail(&t[1]);
        q.expire();
        assert_eq!(q.outstanding(), vec![t[2].clone()]);
    }
}
