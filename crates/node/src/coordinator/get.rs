//! The read coordinator: asks the targets, answers after R replies (PR of
//! them from primaries) with their merge, keeps listening until every
//! target replied or the deadline passed, then writes the merge back to the
//! replicas whose replies lacked part of it (read repair).

use ringkv_core::NodeId;
use ringkv_core::Object;
use ringkv_core::bucket::BucketProps;
use ringkv_core::hash::BucketKey;
use ringkv_core::legs::Leg;
use ringkv_core::msg::{ClientReply, PeerMsg, Stamps};
use ringkv_core::quorum::{QuorumStatus, ReadQuorum};
use ringkv_core::request::Need;
use ringkv_storage::Store;
use tracing::{debug, warn};

use super::{Admitted, Coordinator, Pending, answer, resolve_for, shortfall};
use crate::ctx::{Ctx, View};
use crate::replica::{Replica, check_peer_object};
use crate::{Output, Timer};

/// What a GET coordinator does with its result.
#[derive(Clone, Debug)]
pub enum ReadPurpose {
    /// Answer the client with the merged object.
    Client,
    /// First phase of a DELETE without context: then write a tombstone
    /// covering what was read.
    Delete {
        /// Acks the delete waits for.
        need: Need,
        /// When the whole delete (read and write) must be answered, in ms.
        deadline_ms: u64,
    },
}

/// A read waiting for replies.
#[derive(Debug)]
pub(super) struct GetState {
    /// The admitted request (`None` once answered).
    request: Option<Admitted>,
    /// The key, for read repair after the answer.
    key: BucketKey,
    /// Replies so far.
    pub(super) quorum: ReadQuorum,
    /// What to do with the result.
    purpose: ReadPurpose,
    /// The bucket's properties, read once at the start.
    props: BucketProps,
}

impl Coordinator {
    /// Starts a read of `adm`'s key: asks every target (this node's own copy
    /// is read at once).
    pub(super) fn start_get<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        adm: Admitted,
        purpose: ReadPurpose,
    ) {
        ctx.stats.gets_coordinated += 1;
        let plan = &adm.plan;
        let mut quorum = ReadQuorum::new(plan.nodes(), adm.need.all)
            .with_strict(plan.primaries.clone(), adm.need.primaries);
        if plan.live_primaries() < plan.targets.len() {
            // Fallbacks stand in: their "not found" must not outvote a
            // live primary that holds the key.
            let fallbacks: Vec<NodeId> = plan
                .targets
                .iter()
                .filter(|t| !t.is_primary())
                .map(|t| t.node.clone())
                .collect();
            quorum = quorum.with_fallbacks(fallbacks);
        }
        let req_id = ctx.ids.next();
        let sent_us = ctx.clock.stamp_us(ctx.now_ms);
        for p in &plan.nodes() {
            if p == ctx.me() {
                read_own(ctx, &adm, &mut quorum);
            } else {
                ctx.out.push(Output::Send {
                    to: p.clone(),
                    msg: PeerMsg::ReplicaGet {
                        req_id,
                        key: adm.key.clone(),
                        sent_us,
                    },
                });
            }
        }
        let at_ms = ctx.now_ms + adm.timeout_ms;
        let state = GetState {
            key: adm.key.clone(),
            props: adm.props.clone(),
            request: Some(adm),
            quorum,
            purpose,
        };
        self.pending.insert(req_id, Pending::Get(Box::new(state)));
        ctx.out.push(Output::SetTimer {
            id: Timer::Request(req_id),
            at_ms,
        });
        self.progress_get(ctx, view, replica, req_id);
    }

    /// A target's reply to read `req_id` (`None`: its store failed).
    pub(crate) fn on_get_reply<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        from: NodeId,
        (req_id, stamps): (u64, Stamps),
        object: Option<Object>,
    ) {
        let now_us = ctx.clock.stamp_us(ctx.now_ms);
        let theirs = (stamps.recv_us, stamps.sent_us);
        ctx.legs.record_reply(
            (Leg::Read, Leg::Response),
            stamps.req_sent_us,
            theirs,
            now_us,
        );
        let Some(Pending::Get(g)) = self.pending.get_mut(&req_id) else {
            return; // late reply for a finished read
        };
        // A reply is checked like a replica write: one that fails counts
        // as a failed reply, and nothing of it is merged or repaired.
        let object = object.filter(|o| match check_peer_object(ctx, &g.key, o) {
            Ok(()) => true,
            Err(why) => {
                ctx.stats.peer_refused += 1;
                debug!(peer = %from, ?why, "read reply refused");
                false
            }
        });
        match object {
            Some(o) => g.quorum.reply(&from, o),
            None => g.quorum.fail(&from),
        };
        self.progress_get(ctx, view, replica, req_id);
    }

    /// Answers a read once its quorum is met or failed; ends it (with read
    /// repair) once every target answered.
    pub(super) fn progress_get<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        req_id: u64,
    ) {
        let Some(Pending::Get(g)) = self.pending.get_mut(&req_id) else {
            return;
        };
        let status = g.quorum.status();
        if status != QuorumStatus::Pending
            && let Some(adm) = g.request.take()
        {
            let q = &g.quorum;
            let merged = resolve_for(g.props.conflict, q.merged());
            let purpose = g.purpose.clone();
            if status == QuorumStatus::Failed {
                let err = shortfall(
                    q.strict_shortfall(),
                    (q.strict(), q.primary_replies()),
                    (q.required(), q.replies()),
                );
                answer(ctx, adm.origin, ClientReply::Error(err));
            } else {
                let fallback_replies = q.replies() - q.primary_replies();
                self.read_done(ctx, view, replica, adm, merged, fallback_replies, purpose);
            }
        }
        let all_in =
            matches!(self.pending.get(&req_id), Some(Pending::Get(g)) if g.quorum.all_in());
        if all_in {
            self.end_get(ctx, replica, req_id);
        }
    }

    /// A read met its quorum: answer, or go on to the delete's write.
    #[allow(clippy::too_many_arguments)]
    fn read_done<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        adm: Admitted,
        merged: Object,
        fallback_replies: usize,
        purpose: ReadPurpose,
    ) {
        match purpose {
            ReadPurpose::Client => {
                let reply = ClientReply::Read {
                    object: merged,
                    fallback_replies,
                };
                answer(ctx, adm.origin, reply)
            }
            ReadPurpose::Delete { .. } if merged.is_deleted() => {
                // Nothing to delete: every value the quorum knows is gone already.
                let reply = ClientReply::Written {
                    context: merged.vv,
                    dot: None,
                    fallback_acks: 0,
                };
                answer(ctx, adm.origin, reply)
            }
            ReadPurpose::Delete { need, deadline_ms } => {
                self.delete_after_read(ctx, view, replica, adm, merged.vv, (need, deadline_ms))
            }
        }
    }

    /// Ends a read: writes the merged object back to every replica whose
    /// reply lacked part of it.
    pub(super) fn end_get<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        replica: &mut Replica,
        req_id: u64,
    ) {
        let Some(Pending::Get(g)) = self.pending.remove(&req_id) else {
            return;
        };
        let merged = resolve_for(g.props.conflict, g.quorum.merged());
        if merged.is_empty() {
            return;
        }
        for node in g.quorum.stale(&merged) {
            ctx.stats.read_repairs += 1;
            if &node == ctx.me() {
                replica.merge(ctx, &g.props, &g.key, &merged);
            } else {
                ctx.out.push(Output::Send {
                    to: node,
                    msg: PeerMsg::ReplicaPut {
                        req_id: 0,
                        key: g.key.clone(),
                        object: merged.clone(),
                        stands_in_for: None,
                        sent_us: 0,
                    },
                });
            }
        }
    }
}

/// This node's own reply to a read it coordinates.
fn read_own<S: Store>(ctx: &mut Ctx<'_, S>, adm: &Admitted, quorum: &mut ReadQuorum) {
    let me = ctx.me().clone();
    match ctx.store.get(adm.partition, &adm.key) {
        Ok(o) => {
            quorum.reply(&me, o.unwrap_or_default());
        }
        Err(e) => {
            ctx.stats.store_errors += 1;
            warn!(error = %e, "local read failed");
            quorum.fail(&me);
        }
    }
}
