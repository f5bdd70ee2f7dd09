//! The write coordinator: makes a new dot from its own stored state, stores
//! the new object, sends it to the other targets and answers after W acks
//! (its own included), PW of them from primaries.

use ringkv_core::bucket::ConflictMode;
use ringkv_core::legs::Leg;
use ringkv_core::lww::resolve_lww;
use ringkv_core::msg::{ClientError, ClientReply, PeerMsg, Stamps};
use ringkv_core::quorum::{QuorumStatus, WriteQuorum};
use ringkv_core::request;
use ringkv_core::sloppy::Hint;
use ringkv_core::{Dot, NodeId, Object, Value, VersionVector};
use ringkv_storage::Store;
use tracing::{debug, warn};

use super::{Admitted, Coordinator, Origin, Pending, answer, reject, shortfall};
use crate::ctx::{Ctx, View};
use crate::replica::Replica;
use crate::{Output, Timer};

/// A write waiting for acks.
#[derive(Debug)]
pub(super) struct PutState {
    /// Who waits.
    origin: Origin,
    /// Acks so far.
    pub(super) quorum: WriteQuorum,
    /// The context to answer with: covers the new value.
    context: VersionVector,
    /// The new write's dot.
    dot: Dot,
}

impl Coordinator {
    /// Coordinates a write of `value` over what `context` covers. This node
    /// must be one of `adm`'s targets: it makes the dot from its own state,
    /// and a dot is never reused only if every dot of its actor is stored
    /// here.
    pub(super) fn start_put<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        _view: View<'_>,
        replica: &mut Replica,
        adm: Admitted,
        value: Value,
        context: VersionVector,
    ) {
        let Some(stands_in_for) = adm.plan.target(ctx.me()).map(|t| t.stands_in_for.clone()) else {
            return Self::no_target(ctx, adm);
        };
        if let Some(p) = &stands_in_for
            && !replica.can_hint(ctx, p, &adm.key)
        {
            ctx.stats.hints_refused += 1;
            let msg = format!(
                "this node would coordinate the write as a fallback for {p}, but it holds \
                 --hints-max={} hints already; retry when handoff has made room",
                ctx.cfg.hints_max
            );
            return answer(
                ctx,
                adm.origin,
                ClientReply::Error(ClientError::Overloaded(msg)),
            );
        }
        ctx.stats.puts_coordinated += 1;
        let new = match build_write(ctx, &adm, value, context) {
            Ok(new) => new,
            Err((err, rejected)) if rejected => return reject(ctx, adm.origin, err),
            Err((err, _)) => return answer(ctx, adm.origin, ClientReply::Error(err)),
        };
        let (local, object, dot) = new;
        warn_siblings(ctx, &adm, &object);
        if let Err(e) = ctx.put_object(adm.partition, adm.props.n, &adm.key, &local, &object) {
            let err = store_failed(ctx, e);
            return answer(ctx, adm.origin, ClientReply::Error(err));
        }
        let quorum = own_ack(ctx, replica, &adm, stands_in_for);
        let me = ctx.me().clone();
        let req_id = ctx.ids.next();
        let sent_us = ctx.clock.stamp_us(ctx.now_ms);
        for t in adm.plan.targets.iter().filter(|t| t.node != me) {
            ctx.out.push(Output::Send {
                to: t.node.clone(),
                msg: PeerMsg::ReplicaPut {
                    req_id,
                    key: adm.key.clone(),
                    object: object.clone(),
                    stands_in_for: t.stands_in_for.clone(),
                    sent_us,
                },
            });
        }
        let state = PutState {
            origin: adm.origin,
            quorum,
            context: object.vv,
            dot,
        };
        let status = if ctx.cfg.bugs.ack_before_quorum {
            QuorumStatus::Met
        } else {
            state.quorum.status()
        };
        if status == QuorumStatus::Pending {
            ctx.out.push(Output::SetTimer {
                id: Timer::Request(req_id),
                at_ms: ctx.now_ms + adm.timeout_ms,
            });
            self.pending.insert(req_id, Pending::Put(state));
        } else {
            answer(ctx, state.origin.clone(), put_reply(&state, status));
        }
    }

    /// A target acked (or refused) write `req_id`.
    pub(crate) fn on_put_ack<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        req_id: u64,
        ok: bool,
        stamps: Stamps,
    ) {
        // Measured before the write is looked up: the acks after the W-th
        // (the write answered already) are samples like the others.
        let now_us = ctx.clock.stamp_us(ctx.now_ms);
        let theirs = (stamps.recv_us, stamps.sent_us);
        ctx.legs
            .record_reply((Leg::Write, Leg::Ack), stamps.req_sent_us, theirs, now_us);
        let Some(Pending::Put(p)) = self.pending.get_mut(&req_id) else {
            return; // late ack for a finished write
        };
        let status = if ok {
            p.quorum.ack(&from)
        } else {
            p.quorum.fail(&from)
        };
        self.finish_put(ctx, req_id, status);
    }

    /// Answers write `req_id` once its quorum is met or failed.
    pub(super) fn finish_put<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        req_id: u64,
        status: QuorumStatus,
    ) {
        if status == QuorumStatus::Pending {
            return;
        }
        let Some(Pending::Put(state)) = self.pending.remove(&req_id) else {
            unreachable!("finish_put on a put")
        };
        if status == QuorumStatus::Met {
            debug!(acks = state.quorum.acks(), "write quorum met");
        }
        let reply = put_reply(&state, status);
        answer(ctx, state.origin, reply);
    }
}

/// The write's quorum with this node's own ack counted: an ack once the
/// write is stored here, and, for a fallback, once its hint is stored too.
fn own_ack<S: Store>(
    ctx: &mut Ctx<'_, S>,
    replica: &mut Replica,
    adm: &Admitted,
    stands_in_for: Option<NodeId>,
) -> WriteQuorum {
    let mut quorum = WriteQuorum::new(adm.plan.nodes(), adm.need.all)
        .with_strict(adm.plan.primaries.clone(), adm.need.primaries);
    let stored = match stands_in_for {
        Some(primary) => {
            let hint = Hint {
                primary,
                partition: adm.partition,
                key: adm.key.clone(),
            };
            replica.add_hint(ctx, hint)
        }
        None => true,
    };
    let me = ctx.me().clone();
    if stored {
        quorum.ack(&me);
    } else {
        quorum.fail(&me);
    }
    quorum
}

/// The stored state, the object this write leaves and its new dot, built on the stored state
/// and checked against the limits. An error says whether it is a refusal of
/// the request (`true`) or a failure of this node.
fn build_write<S: Store>(
    ctx: &mut Ctx<'_, S>,
    adm: &Admitted,
    value: Value,
    context: VersionVector,
) -> Result<(Object, Object, Dot), (ClientError, bool)> {
    let local = match ctx.store.get(adm.partition, &adm.key) {
        Ok(o) => o.unwrap_or_default(),
        Err(e) => return Err((store_failed(ctx, e), false)),
    };
    let context = if ctx.cfg.bugs.ignore_context {
        VersionVector::new()
    } else {
        context
    };
    request::check_context(&context, &local, ctx.actor).map_err(|e| (e, true))?;
    let mut dot = request::next_dot(&local, ctx.actor, &context).map_err(|e| (e, true))?;
    let stamp = ctx.clock.now(ctx.now_ms).to_u64();
    if local.vv.get(ctx.actor) == 0 && ctx.cfg.aae.tombstone_grace_ms.is_some() {
        // This node's first write to the key as stored here. The key may
        // have been purged: a replica that missed the purge can still hold
        // its tombstone, whose version vector covers the counters this
        // actor used on the key before (a client's old context may name
        // some). So the counter starts at the clock's stamp, above every
        // counter of the key's previous life (those count up by one per
        // write from an older stamp, at least a grace period ago), and a
        // new write is never taken for one that tombstone superseded.
        dot.counter = dot.counter.max(stamp);
    }
    debug_assert!(
        dot.counter > local.vv.get(ctx.actor),
        "a dot is never reused: {dot:?} over {:?}",
        local.vv
    );
    let new = match adm.props.conflict {
        ConflictMode::Siblings => local.update(&context, dot.clone(), value, stamp),
        // Last write wins: every write competes by stamp with everything
        // stored; a context must not drop a sibling with a larger stamp
        // (see `ringkv_core::lww`). The context still chose the dot.
        ConflictMode::Lww => {
            resolve_lww(&local.update(&VersionVector::new(), dot.clone(), value, stamp))
        }
    };
    request::check_new_object(&local, &new, &adm.props, &ctx.cfg.limits).map_err(|e| (e, true))?;
    Ok((local, new, dot))
}

/// Logs and counts a write that leaves more siblings than the bucket's
/// `siblings_warn`.
fn warn_siblings<S>(ctx: &mut Ctx<'_, S>, adm: &Admitted, new: &Object) {
    if new.siblings.len() > adm.props.siblings_warn {
        ctx.stats.siblings_warned += 1;
        warn!(
            siblings = new.siblings.len(),
            warn_at = adm.props.siblings_warn,
            max = adm.props.siblings_max.min(ctx.cfg.limits.siblings_max),
            "a key has many siblings: clients should write back resolved values with their read's context"
        );
    }
}

/// The answer to a write whose quorum is met or failed.
fn put_reply(state: &PutState, status: QuorumStatus) -> ClientReply {
    let q = &state.quorum;
    if status == QuorumStatus::Met {
        ClientReply::Written {
            context: state.context.clone(),
            dot: Some(state.dot.clone()),
            fallback_acks: q.acks() - q.primary_acks(),
        }
    } else {
        ClientReply::Error(shortfall(
            q.strict_shortfall(),
            (q.strict(), q.primary_acks()),
            (q.required(), q.acks()),
        ))
    }
}

/// Counts and logs a store failure; the error to answer with.
fn store_failed<S>(ctx: &mut Ctx<'_, S>, e: ringkv_storage::StoreError) -> ClientError {
    ctx.stats.store_errors += 1;
    warn!(error = %e, "store failed");
    ClientError::Internal(format!(
        "this node could not access its store: {e}; the write was not applied here"
    ))
}
