//! Coordinators: a request's life from arrival to reply.
//!
//! Owns: the requests this node coordinates or forwarded, by request id, and
//! the forward ids recently taken from each peer.
//! Emits: replies to clients ([`Output::Reply`], or [`PeerMsg::ForwardReply`]
//! to the peer that forwarded), [`PeerMsg::ReplicaPut`] /
//! [`PeerMsg::ReplicaGet`] to the targets, [`PeerMsg::Forward`], request
//! deadlines ([`crate::Timer::Request`]), and, when a deadline passes, the targets
//! that never answered (for the router to hand to [`crate::peers::Peers`]).
//!
//! - `admit`: checks (sizes, timeouts, quorum parameters, load), resolves
//!   the quorum once and picks the targets; then reads, writes, forwards, or
//!   reads first for a DELETE without context.
//! - Targets: each live primary of the key, and for each unreachable primary
//!   the next live fallback of the extended preference list, which keeps a
//!   hint for it (sloppy quorum, [`ringkv_core::sloppy`]). W and R count
//!   every target; PW and PR count primaries only.
//! - `forward`: a node that is not a target of a PUT/DELETE forwards it to
//!   the first target (the first live primary, or the first fallback when
//!   every primary is down).
//! - `put`: the coordinator makes a new dot, applies the write to its own
//!   state, stores it, sends the new state to the other targets and answers
//!   after W acks (its own included), PW of them from primaries.
//! - DELETE without a context first reads the key at R, then writes a
//!   tombstone with the read's context, so it deletes every value the quorum
//!   knows instead of adding a tombstone sibling next to them.
//! - `get`: any node coordinates. It asks the targets, answers after R
//!   replies (PR of them from primaries) with their merge, keeps listening
//!   until all replied or the deadline, then writes the merge back to the
//!   primaries that were stale (read repair).

pub(crate) mod admit;
pub(crate) mod forward;
pub(crate) mod get;
pub(crate) mod put;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use ringkv_core::bucket::{BucketProps, ConflictMode};
use ringkv_core::hash::BucketKey;
use ringkv_core::lww::resolve_lww;
use ringkv_core::msg::{ClientError, ClientReply, PeerMsg};
use ringkv_core::request::Need;
use ringkv_core::sloppy::Target;
use ringkv_core::{NodeId, Object, PartitionId};
use ringkv_storage::Store;

use crate::ctx::{Ctx, View};
use crate::replica::Replica;
use crate::{ClientId, Output};

pub use get::ReadPurpose;

/// Who is waiting for a request's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of this node.
    Client(ClientId),
    /// A peer that forwarded the request.
    Forward {
        /// The peer.
        from: NodeId,
        /// Its id for the request.
        fwd_id: u64,
    },
}

/// State of one request in flight at this node.
#[derive(Debug)]
enum Pending {
    /// Sent to a primary; waiting for its forward reply.
    Forwarded(forward::Forwarded),
    /// A write waiting for acks.
    Put(put::PutState),
    /// A read waiting for replies.
    Get(Box<get::GetState>),
}

/// Where a request on one key goes.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The key's N primaries.
    pub primaries: Vec<NodeId>,
    /// The nodes to ask: live primaries, and fallbacks for the others.
    pub targets: Vec<Target>,
}

impl Plan {
    /// How many of the targets are primaries.
    pub fn live_primaries(&self) -> usize {
        self.targets.iter().filter(|t| t.is_primary()).count()
    }

    fn nodes(&self) -> Vec<NodeId> {
        let nodes: Vec<NodeId> = self.targets.iter().map(|t| t.node.clone()).collect();
        debug_assert!(
            nodes.iter().collect::<BTreeSet<_>>().len() == nodes.len(),
            "a request's targets are distinct"
        );
        nodes
    }

    fn target(&self, node: &NodeId) -> Option<&Target> {
        self.targets.iter().find(|t| &t.node == node)
    }
}

/// A request that passed admission: checked, its quorum resolved once and
/// its targets chosen. Carried by reads and writes alike.
#[derive(Clone, Debug)]
pub(crate) struct Admitted {
    /// Who waits for the outcome.
    pub(crate) origin: Origin,
    /// The key.
    pub(crate) key: BucketKey,
    /// The key's partition.
    pub(crate) partition: PartitionId,
    /// The bucket's properties (n capped by the cluster size), read once.
    pub(crate) props: BucketProps,
    /// Where the request goes.
    pub(crate) plan: Plan,
    /// Replies or acks it waits for.
    pub(crate) need: Need,
    /// How long it may wait, in ms.
    pub(crate) timeout_ms: u64,
}

/// Requests in flight at this node.
#[derive(Default)]
pub struct Coordinator {
    pending: BTreeMap<u64, Pending>,
    /// Forward ids recently taken from each peer, so that a duplicated
    /// forward is coordinated once (a second coordination would make a second
    /// write the client never hears of).
    seen_forwards: BTreeMap<NodeId, BTreeSet<u64>>,
}

impl Coordinator {
    /// Requests being coordinated or forwarded right now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A request's deadline passed. Returns the targets that never answered
    /// (the router suspects them).
    pub(crate) fn on_timer<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        id: u64,
    ) -> Vec<NodeId> {
        match self.pending.get_mut(&id) {
            None => Vec::new(),
            Some(Pending::Forwarded(_)) => {
                self.forward_expired(ctx, id);
                Vec::new()
            }
            Some(Pending::Put(p)) => {
                let status = p.quorum.expire();
                let silent = p.quorum.outstanding();
                self.finish_put(ctx, id, status);
                silent
            }
            Some(Pending::Get(g)) => {
                g.quorum.expire();
                let silent = g.quorum.outstanding();
                self.progress_get(ctx, view, replica, id);
                self.end_get(ctx, replica, id);
                silent
            }
        }
    }
}

/// Sends `reply` to whoever waits for it.
fn answer<S>(ctx: &mut Ctx<'_, S>, origin: Origin, reply: ClientReply) {
    if let ClientReply::Error(ClientError::Unavailable { .. }) = &reply {
        ctx.stats.unavailable += 1;
    }
    match origin {
        Origin::Client(client_id) => ctx.out.push(Output::Reply { client_id, reply }),
        Origin::Forward { from, fwd_id } => ctx.out.push(Output::Send {
            to: from,
            msg: PeerMsg::ForwardReply { fwd_id, reply },
        }),
    }
}

/// Refuses a request before anything was done (counted as rejected, or as
/// overloaded).
fn reject<S>(ctx: &mut Ctx<'_, S>, origin: Origin, err: ClientError) {
    match &err {
        ClientError::Overloaded(_) => ctx.stats.overloaded += 1,
        _ => ctx.stats.rejected += 1,
    }
    answer(ctx, origin, ClientReply::Error(err));
}

/// Refuses a request that needs more primaries than are reachable, before
/// anything is written; returns whether it did.
fn too_few_primaries<S>(ctx: &mut Ctx<'_, S>, origin: &Origin, strict: usize, plan: &Plan) -> bool {
    if plan.live_primaries() >= strict {
        return false;
    }
    let err = ClientError::PrimariesUnavailable {
        required: strict,
        acks: 0,
    };
    answer(ctx, origin.clone(), ClientReply::Error(err));
    true
}

/// The error for a quorum that was not met: short of primaries (PR/PW) or
/// short of replies in all.
fn shortfall(strict_short: bool, strict: (usize, usize), all: (usize, usize)) -> ClientError {
    if strict_short {
        ClientError::PrimariesUnavailable {
            required: strict.0,
            acks: strict.1,
        }
    } else {
        ClientError::Unavailable {
            required: all.0,
            acks: all.1,
        }
    }
}

/// A merged object as the bucket's conflict mode keeps it.
pub(crate) fn resolve_for(conflict: ConflictMode, merged: Object) -> Object {
    match conflict {
        ConflictMode::Siblings => merged,
        ConflictMode::Lww => resolve_lww(&merged),
    }
}
