//! The cluster manager under faults: operators stage changes at random
//! nodes during the run (`cluster_ops`), each the join of a node `x{i}`
//! nobody else stages. At the end:
//!
//! - no lost update: every acknowledged change is in the newest document;
//! - no phantom: every change in it was invoked and not refused for sure
//!   (a timeout or a lost answer may have applied);
//! - real-time order: an acknowledged op that started after another ended
//!   answered a newer version holding the other's change;
//! - one version, one document: two answers with the same version agree;
//! - every running node adopted the newest version (after the quiet phase).

use std::collections::BTreeMap;

use ringkv_core::cluster::ClusterState;
use ringkv_core::msg::{ClientError, ClientReply};
use serde::Serialize;

use crate::cluster::Cluster;

/// Ids of cluster ops' client requests start here, apart from the
/// workload's operation ids.
pub const CLUSTER_OP_BASE: u64 = 1 << 48;

/// The node id cluster op `i` stages.
pub fn staged_node(i: usize) -> String {
    format!("x{i}")
}

/// One operator's op and what came of it.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterRecord {
    /// When it was sent, ms.
    pub invoke_ms: u64,
    /// When it was answered, ms.
    pub complete_ms: Option<u64>,
    /// The answer: the version and staged nodes, or why it failed.
    pub outcome: ClusterOutcome,
}

/// What an op's answer said.
#[derive(Clone, Debug, Serialize)]
pub enum ClusterOutcome {
    /// No answer (yet): it may have applied.
    Pending,
    /// Applied: the document's version and staged nodes after it.
    Acked {
        /// The version.
        version: u64,
        /// The nodes staged.
        staged: Vec<String>,
    },
    /// Refused with an error that says nothing was written.
    Refused(String),
    /// An error that leaves the outcome open.
    Unknown(String),
}

impl ClusterOutcome {
    /// The outcome a reply says.
    pub fn of(reply: &ClientReply) -> Self {
        match reply {
            ClientReply::Cluster(s) => ClusterOutcome::Acked {
                version: s.version,
                staged: staged_of(s),
            },
            ClientReply::Error(
                e @ (ClientError::NoQuorum { .. }
                | ClientError::BadRequest(_)
                | ClientError::Conflict(_)
                | ClientError::Overloaded(_)),
            ) => ClusterOutcome::Refused(format!("{e:?}")),
            other => ClusterOutcome::Unknown(format!("{other:?}")),
        }
    }
}

fn staged_of(s: &ClusterState) -> Vec<String> {
    s.doc.staged.iter().map(|c| c.node().to_string()).collect()
}

/// The verdict.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ManagerCheck {
    /// Ops invoked.
    pub ops: usize,
    /// Ops acknowledged.
    pub acked: usize,
    /// Ops refused for sure.
    pub refused: usize,
    /// The newest version any running node holds.
    pub final_version: u64,
    /// What went wrong.
    pub violations: Vec<String>,
}

/// Checks `records` against what the running nodes of `cluster` hold.
pub fn check(records: &[ClusterRecord], cluster: &Cluster) -> ManagerCheck {
    let mut c = ManagerCheck {
        ops: records.len(),
        ..ManagerCheck::default()
    };
    let held: Vec<(String, Option<ClusterState>)> = (0..cluster.len())
        .filter_map(|i| {
            let node = cluster.node(i)?;
            Some((node.id().to_string(), node.cluster_state().cloned()))
        })
        .collect();
    let newest = held
        .iter()
        .filter_map(|(_, s)| s.as_ref())
        .max_by_key(|s| s.version)
        .cloned();
    c.final_version = newest.as_ref().map_or(0, |s| s.version);
    let final_staged = newest.as_ref().map(staged_of).unwrap_or_default();
    for (node, s) in &held {
        let v = s.as_ref().map_or(0, |s| s.version);
        if v != c.final_version {
            c.violations.push(format!(
                "{node} holds cluster document version {v}, the newest is {}",
                c.final_version
            ));
        }
    }
    let mut by_version: BTreeMap<u64, (usize, Vec<String>)> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        let me = staged_node(i);
        match &r.outcome {
            ClusterOutcome::Acked { version, staged } => {
                c.acked += 1;
                if !final_staged.contains(&me) {
                    c.violations.push(format!(
                        "lost update: the stage of {me} was acknowledged at version {version} \
                         but the newest document (version {}) does not hold it",
                        c.final_version
                    ));
                }
                if let Some((j, other)) = by_version.insert(*version, (i, staged.clone()))
                    && &other != staged
                {
                    c.violations.push(format!(
                        "version {version} answered two documents: op {j} saw {other:?}, op \
                         {i} saw {staged:?}"
                    ));
                }
            }
            ClusterOutcome::Refused(_) => {
                c.refused += 1;
                if final_staged.contains(&me) {
                    c.violations.push(format!(
                        "phantom: the stage of {me} was refused ({:?}) yet the newest document \
                         holds it",
                        r.outcome
                    ));
                }
            }
            ClusterOutcome::Pending | ClusterOutcome::Unknown(_) => {}
        }
    }
    for s in &final_staged {
        let invoked = (0..records.len()).any(|i| &staged_node(i) == s);
        if !invoked {
            c.violations
                .push(format!("phantom: {s} is staged but nobody staged it"));
        }
    }
    check_order(records, &mut c);
    c
}

/// An acknowledged op that started after another acknowledged op ended
/// must have answered a newer version that holds the other's change.
fn check_order(records: &[ClusterRecord], c: &mut ManagerCheck) {
    for (i, a) in records.iter().enumerate() {
        let (Some(a_end), ClusterOutcome::Acked { version: va, .. }) = (a.complete_ms, &a.outcome)
        else {
            continue;
        };
        for (j, b) in records.iter().enumerate() {
            let ClusterOutcome::Acked {
                version: vb,
                staged,
            } = &b.outcome
            else {
                continue;
            };
            if b.invoke_ms > a_end && (vb <= va || !staged.contains(&staged_node(i))) {
                c.violations.push(format!(
                    "real-time order: op {j} started after op {i} was acknowledged (version \
                     {va}) but answered version {vb} with {staged:?}"
                ));
            }
        }
    }
}
