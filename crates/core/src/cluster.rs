//! The cluster manager's document: the layout in force, the changes an
//! operator staged, and a committed next layout that data is moving to.
//!
//! The document is one value in a strong (linearizable) key,
//! [`CLUSTER_BUCKET`]/[`CLUSTER_KEY`], so every change to it goes through
//! a consensus group and a compare-and-set: two operators staging at once
//! both land, two commits of the same plan commit once. What changes it is
//! pure and lives here; the node reads it, applies one change, and writes
//! it back only if nobody wrote in between.

use serde::{Deserialize, Serialize};

use crate::layout::{Layout, NodeId};
use crate::plan::{CHANGES_MAX, Change, PartitionSize, Plan, PlanError, check_change};

/// The reserved bucket holding the cluster document. Client requests on
/// buckets starting with `~` are refused.
pub const CLUSTER_BUCKET: &[u8] = b"~cluster";

/// The key of the cluster document in [`CLUSTER_BUCKET`].
pub const CLUSTER_KEY: &[u8] = b"layout";

/// Largest encoded document a node accepts.
pub const DOC_BYTES_MAX: usize = 1 << 20;

/// Format of the encoded document (first byte).
const FORMAT: u8 = 1;

/// The cluster manager's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDoc {
    /// The layout in force.
    pub layout: Layout,
    /// Changes staged for the next commit, in the order staged.
    pub staged: Vec<Change>,
    /// A committed layout that partitions are moving to; it comes into
    /// force once every new replica caught up.
    pub target: Option<Layout>,
}

/// What an operator asks of the cluster manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterOp {
    /// Read the document.
    Get,
    /// Stage a change.
    Stage(Change),
    /// Drop the change staged for a node.
    Unstage(NodeId),
    /// Drop every staged change.
    Clear,
    /// Commit the staged changes, planned against layout version
    /// `expected`.
    Commit {
        /// The layout version the operator's plan was made from.
        expected: u64,
    },
}

impl ClusterOp {
    /// Applies the op to `doc` (`n`: replicas per partition, for the plan
    /// a commit checks). `Get` changes nothing.
    pub fn apply(&self, doc: &mut ClusterDoc, n: usize) -> Result<(), ClusterError> {
        match self {
            ClusterOp::Get => Ok(()),
            ClusterOp::Stage(c) => doc.stage(c.clone()),
            ClusterOp::Unstage(node) => doc.unstage(node),
            ClusterOp::Clear => {
                doc.staged.clear();
                Ok(())
            }
            ClusterOp::Commit { expected } => doc.commit(*expected, n),
        }
    }
}

/// The cluster document as committed, with its version: the index of the
/// consensus entry that wrote it (0: never written, the initial layout).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The version: higher is newer.
    pub version: u64,
    /// The document.
    pub doc: ClusterDoc,
}

/// Why a change to the document was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The staged changes do not make a layout.
    #[error("{0}")]
    Plan(#[from] PlanError),
    /// A commit named a layout version that is no longer in force.
    #[error(
        "the plan was made for layout version {expected}, but version {current} is in force: \
         run `cluster plan` again and commit what it shows"
    )]
    Stale {
        /// The version the operator saw.
        expected: u64,
        /// The version in force.
        current: u64,
    },
    /// A layout change is still moving data.
    #[error(
        "layout version {0} is still moving data to its new owners; wait for `cluster status` \
         to show it done, then commit"
    )]
    InProgress(u64),
    /// Nothing staged for that node.
    #[error("no change is staged for node {0}")]
    NotStaged(NodeId),
}

impl ClusterDoc {
    /// The document before any change: layout version 1 from the initial
    /// members.
    pub fn initial(layout: Layout) -> Self {
        ClusterDoc {
            layout,
            staged: Vec::new(),
            target: None,
        }
    }

    /// Stages `change`, if it and the changes already staged still make a
    /// valid next layout.
    pub fn stage(&mut self, change: Change) -> Result<(), ClusterError> {
        check_change(&change)?;
        if self.staged.iter().any(|c| c.node() == change.node()) {
            return Err(PlanError::Twice(change.node().clone()).into());
        }
        if self.staged.len() >= CHANGES_MAX {
            return Err(PlanError::TooMany.into());
        }
        let mut staged = self.staged.clone();
        staged.push(change);
        self.layout.next(&staged)?;
        self.staged = staged;
        Ok(())
    }

    /// Drops the change staged for `node`.
    pub fn unstage(&mut self, node: &NodeId) -> Result<(), ClusterError> {
        let before = self.staged.len();
        self.staged.retain(|c| c.node() != node);
        if self.staged.len() == before {
            return Err(ClusterError::NotStaged(node.clone()));
        }
        Ok(())
    }

    /// The plan the staged changes make, for `n` replicas.
    pub fn plan(&self, n: usize, sizes: &[PartitionSize]) -> Result<Plan, ClusterError> {
        let next = self.layout.next(&self.staged)?;
        Ok(Plan::new(&self.layout, &next, n, sizes))
    }

    /// Commits the staged changes as the next layout, if the operator's
    /// plan was made for the version in force (`expected`) and no other
    /// change is moving data. A next layout that moves no replica comes
    /// into force at once; otherwise it becomes the target.
    pub fn commit(&mut self, expected: u64, n: usize) -> Result<(), ClusterError> {
        if let Some(t) = &self.target {
            return Err(ClusterError::InProgress(t.version));
        }
        if expected != self.layout.version {
            return Err(ClusterError::Stale {
                expected,
                current: self.layout.version,
            });
        }
        let next = self.layout.next(&self.staged)?;
        let plan = Plan::new(&self.layout, &next, n, &[]);
        self.staged.clear();
        if plan.moves.is_empty() {
            self.layout = next;
        } else {
            self.target = Some(next);
        }
        Ok(())
    }

    /// The document's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![FORMAT];
        b.extend(postcard::to_allocvec(self).expect("documents encode"));
        b
    }

    /// Decodes and checks a document from a peer or the store.
    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        if b.len() > DOC_BYTES_MAX {
            return Err(format!(
                "a cluster document of {} bytes is over the {DOC_BYTES_MAX}-byte limit",
                b.len()
            ));
        }
        match b.split_first() {
            Some((&FORMAT, rest)) => {
                let doc: ClusterDoc = postcard::from_bytes(rest)
                    .map_err(|e| format!("the cluster document does not decode: {e}"))?;
                doc.check()?;
                Ok(doc)
            }
            Some((f, _)) => Err(format!("unknown cluster document format {f}")),
            None => Err("an empty cluster document".into()),
        }
    }

    /// Checks what decoding cannot: layouts whose owners index their
    /// members, staged changes within bounds.
    fn check(&self) -> Result<(), String> {
        for l in std::iter::once(&self.layout).chain(&self.target) {
            l.check()
                .map_err(|e| format!("a layout in the cluster document: {e}"))?;
        }
        if self.staged.len() > CHANGES_MAX {
            return Err("too many staged changes in the cluster document".into());
        }
        for c in &self.staged {
            check_change(c).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// One change as operators write and read it in JSON: `{"op": "join",
/// "node": "n4", "zone": "a", "capacity": 2}`. A join's `addr` may be left
/// out when the node already announced itself by gossip (`--join`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeSpec {
    /// `join`, `leave`, `remove` or `zone`.
    pub op: String,
    /// The node.
    pub node: String,
    /// Where peers reach a joining node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// The zone (join, zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// The capacity (join, zone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
}

impl ChangeSpec {
    /// The change, checked; a join without `addr` takes `known_addr(node)`.
    pub fn to_change(
        &self,
        known_addr: impl Fn(&NodeId) -> Option<String>,
    ) -> Result<Change, String> {
        let id = NodeId::parse(&self.node).map_err(|e| e.to_string())?;
        let zone = self.zone.clone().unwrap_or_default();
        let change = match self.op.as_str() {
            "join" => {
                let rpc_addr = match self.addr.clone().or_else(|| known_addr(&id)) {
                    Some(a) if !a.is_empty() && a.len() <= 256 => a,
                    _ => {
                        return Err(format!(
                            "node {id} has not announced itself: start it with `ringkv server \
                             --node-id {id} ... --join ADDR` first, or give its address (addr)"
                        ));
                    }
                };
                Change::Join {
                    id,
                    rpc_addr,
                    zone,
                    capacity: self.capacity.unwrap_or(1),
                }
            }
            "leave" | "remove" if self.zone.is_some() || self.capacity.is_some() => {
                return Err(format!("{} takes no zone or capacity", self.op));
            }
            "leave" => Change::Leave { id },
            "remove" => Change::Remove { id },
            "zone" => Change::Zone {
                id,
                zone,
                capacity: self.capacity,
            },
            other => {
                return Err(format!(
                    "unknown op {other:?}: use join, leave, remove or zone"
                ));
            }
        };
        check_change(&change).map_err(|e| e.to_string())?;
        Ok(change)
    }

    /// How a staged change reads.
    pub fn of(change: &Change) -> Self {
        let (op, addr, zone, capacity) = match change {
            Change::Join {
                rpc_addr,
                zone,
                capacity,
                ..
            } => (
                "join",
                Some(rpc_addr.clone()),
                Some(zone.clone()),
                Some(*capacity),
            ),
            Change::Leave { .. } => ("leave", None, None, None),
            Change::Remove { .. } => ("remove", None, None, None),
            Change::Zone { zone, capacity, .. } => ("zone", None, Some(zone.clone()), *capacity),
        };
        ChangeSpec {
            op: op.into(),
            node: change.node().to_string(),
            addr,
            zone,
            capacity,
        }
    }
}

/// One member of a layout, as `GET /v1/cluster/layout` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutMember {
    /// Its id.
    pub id: String,
    /// Where peers reach it.
    pub addr: String,
    /// Its zone (empty: none).
    pub zone: String,
    /// Its capacity.
    pub capacity: u32,
    /// Partitions it owns.
    pub partitions: u32,
}

/// A layout, as `GET /v1/cluster/layout` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutInfo {
    /// Its version.
    pub version: u64,
    /// Partitions.
    pub ring_size: u32,
    /// Members, by id.
    pub members: Vec<LayoutMember>,
}

impl LayoutInfo {
    /// How `layout` reads.
    pub fn of(layout: &Layout) -> Self {
        LayoutInfo {
            version: layout.version,
            ring_size: layout.ring_size,
            members: layout
                .members
                .iter()
                .map(|m| LayoutMember {
                    id: m.id.to_string(),
                    addr: m.rpc_addr.clone(),
                    zone: m.zone.clone(),
                    capacity: m.capacity,
                    partitions: layout.partitions_owned(&m.id) as u32,
                })
                .collect(),
        }
    }
}

/// The body of `GET /v1/cluster/layout` and of every change's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The document's version (0: never changed).
    pub doc_version: u64,
    /// The layout in force.
    pub layout: LayoutInfo,
    /// Staged changes, in order.
    pub staged: Vec<ChangeSpec>,
    /// A committed layout data is moving to.
    pub target: Option<LayoutInfo>,
}

impl ClusterInfo {
    /// How `state` reads.
    pub fn of(state: &ClusterState) -> Self {
        ClusterInfo {
            doc_version: state.version,
            layout: LayoutInfo::of(&state.doc.layout),
            staged: state.doc.staged.iter().map(ChangeSpec::of).collect(),
            target: state.doc.target.as_ref().map(LayoutInfo::of),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Member;

    fn doc(s: usize) -> ClusterDoc {
        let members = (1..=s)
            .map(|i| Member::new(NodeId::from(format!("n{i}")), format!("h{i}:7000")))
            .collect();
        ClusterDoc::initial(Layout::initial(members, 16).unwrap())
    }

    fn join(i: usize) -> Change {
        Change::Join {
            id: NodeId::from(format!("n{i}")),
            rpc_addr: format!("h{i}:7000"),
            zone: String::new(),
            capacity: 1,
        }
    }

    #[test]
    fn stage_plan_commit() {
        let mut d = doc(3);
        d.stage(join(4)).unwrap();
        d.stage(join(5)).unwrap();
        assert_eq!(
            d.stage(join(4)),
            Err(PlanError::Twice(NodeId::from("n4")).into())
        );
        let plan = d.plan(3, &[]).unwrap();
        assert_eq!((plan.from_version, plan.to_version), (1, 2));
        assert_eq!(
            d.commit(0, 3),
            Err(ClusterError::Stale {
                expected: 0,
                current: 1
            })
        );
        d.commit(1, 3).unwrap();
        assert!(d.staged.is_empty());
        assert_eq!(d.layout.version, 1, "moving data keeps version 1 in force");
        assert_eq!(d.target.as_ref().map(|t| t.version), Some(2));
        d.stage(Change::Leave {
            id: NodeId::from("n1"),
        })
        .unwrap();
        assert_eq!(d.commit(1, 3), Err(ClusterError::InProgress(2)));
    }

    #[test]
    fn a_refused_change_changes_nothing() {
        let mut d = doc(2);
        d.stage(Change::Leave {
            id: NodeId::from("n1"),
        })
        .unwrap();
        let before = d.clone();
        for bad in [
            Change::Leave {
                id: NodeId::from("n2"),
            },
            Change::Remove {
                id: NodeId::from("n9"),
            },
            join(1),
        ] {
            assert!(d.stage(bad).is_err());
            assert_eq!(d, before);
        }
        assert_eq!(
            d.unstage(&NodeId::from("n2")),
            Err(ClusterError::NotStaged(NodeId::from("n2")))
        );
        d.unstage(&NodeId::from("n1")).unwrap();
        assert!(d.staged.is_empty());
    }

    #[test]
    fn a_change_that_moves_nothing_takes_effect_at_once() {
        // One node: a zone change moves no replica.
        let mut d = doc(1);
        d.stage(Change::Zone {
            id: NodeId::from("n1"),
            zone: "a".into(),
            capacity: None,
        })
        .unwrap();
        d.commit(1, 3).unwrap();
        assert_eq!(d.layout.version, 2);
        assert_eq!(d.layout.members[0].zone, "a");
        assert!(d.target.is_none());
    }

    #[test]
    fn documents_round_trip_and_bad_bytes_are_refused() {
        let mut d = doc(3);
        d.stage(join(4)).unwrap();
        let b = d.to_bytes();
        assert_eq!(ClusterDoc::from_bytes(&b).unwrap(), d);
        assert!(ClusterDoc::from_bytes(&[]).is_err());
        assert!(ClusterDoc::from_bytes(&[9, 1, 2]).is_err());
        for cut in [1, b.len() / 2, b.len() - 1] {
            assert!(ClusterDoc::from_bytes(&b[..cut]).is_err());
        }
        // An owner index past the members is caught.
        let mut broken = d.clone();
        broken.layout.owners[3] = 40;
        assert!(ClusterDoc::from_bytes(&broken.to_bytes()).is_err());
    }
}
