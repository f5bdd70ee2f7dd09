//! Forwarding: a node that is not a target of a write sends it to the first
//! target, which coordinates it, and relays the answer. A forward is taken
//! once per id, however often the network delivers it.

use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest, PeerMsg};
use ringkv_core::params::QuorumParam;
use ringkv_core::{NodeId, Value, VersionVector};
use tracing::debug;

use super::{Admitted, Coordinator, Pending};
use crate::ctx::Ctx;
use crate::{ClientId, Output, Timer};

/// Forward ids remembered per peer.
const SEEN_FORWARDS_MAX: usize = 4_096;

/// Extra time a forwarder waits beyond the coordinator's own timeout, for
/// the two hops, in ms.
const FORWARD_MARGIN_MS: u64 = 1_000;

/// A write sent to its first target, waiting for the answer.
#[derive(Debug)]
pub(super) struct Forwarded {
    /// The client.
    client_id: ClientId,
    /// The target it went to.
    to: NodeId,
    /// Acks the write wanted (reported if the target never answers).
    required: usize,
}

impl Coordinator {
    /// Sends a write from client `client_id` that this node is not a target
    /// of to the first target.
    pub(super) fn forward_put<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        client_id: ClientId,
        adm: Admitted,
        value: Value,
        context: Option<VersionVector>,
    ) {
        let Some(to) = adm.plan.targets.first().map(|t| t.node.clone()) else {
            return Self::no_target(ctx, adm);
        };
        let fwd_id = ctx.ids.next();
        ctx.stats.forwarded += 1;
        let request = ClientRequest {
            key: adm.key,
            op: ClientOp::Put {
                value,
                context,
                w: Some(QuorumParam::Count(adm.need.all as u32)),
                pw: Some(QuorumParam::Count(adm.need.primaries as u32)),
            },
            timeout_ms: Some(adm.timeout_ms),
        };
        ctx.out.push(Output::Send {
            to: to.clone(),
            msg: PeerMsg::Forward { fwd_id, request },
        });
        ctx.out.push(Output::SetTimer {
            id: Timer::Request(fwd_id),
            at_ms: ctx.now_ms + adm.timeout_ms + FORWARD_MARGIN_MS,
        });
        let required = adm.need.all;
        let f = Forwarded {
            client_id,
            to,
            required,
        };
        self.pending.insert(fwd_id, Pending::Forwarded(f));
    }

    /// The coordinator's answer to a forward: relay it to the client.
    pub(crate) fn on_forward_reply<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        fwd_id: u64,
        reply: ClientReply,
    ) {
        if let Some(Pending::Forwarded(f)) = self.pending.get(&fwd_id) {
            let client_id = f.client_id;
            self.pending.remove(&fwd_id);
            ctx.out.push(Output::Reply { client_id, reply });
        }
    }

    /// A forward's deadline passed without an answer.
    pub(super) fn forward_expired<S>(&mut self, ctx: &mut Ctx<'_, S>, fwd_id: u64) {
        let Some(Pending::Forwarded(f)) = self.pending.remove(&fwd_id) else {
            return;
        };
        debug!(to = %f.to, "forwarded request timed out");
        ctx.stats.unavailable += 1;
        let reply = ClientReply::Error(ClientError::Unavailable {
            required: f.required,
            acks: 0,
        });
        ctx.out.push(Output::Reply {
            client_id: f.client_id,
            reply,
        });
    }

    /// Whether forward `fwd_id` from `from` is new (and remembers it). Ids
    /// older than every remembered one count as seen once the memory is full.
    pub(crate) fn first_forward(&mut self, from: &NodeId, fwd_id: u64) -> bool {
        let seen = self.seen_forwards.entry(from.clone()).or_default();
        if seen.len() >= SEEN_FORWARDS_MAX && seen.first().is_some_and(|&min| fwd_id < min) {
            return false;
        }
        if !seen.insert(fwd_id) {
            return false;
        }
        if seen.len() > SEEN_FORWARDS_MAX {
            seen.pop_first();
        }
        true
    }
}
