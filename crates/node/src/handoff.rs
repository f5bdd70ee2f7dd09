//! Hinted handoff: a fallback gives the writes it holds for an unreachable
//! primary back to that primary once it is reachable again.
//!
//! Owns: the handoff writes in flight, and whether its timer is armed.
//! Reads and drops hints through the [`Replica`] that keeps them.
//! Emits: [`PeerMsg::ReplicaPut`] to primaries that are back, and its
//! periodic [`Timer::Handoff`].
//!
//! - Every `handoff_interval_ms` the job looks for primaries that are live
//!   and have hints, and sends each hinted key's current state as a
//!   `ReplicaPut`, up to `handoff_window` at a time per primary; every ack
//!   sends the next one, so a long list drains at network speed, not one
//!   tick at a time.
//! - A hint is deleted only after the primary acked it, and only if the key
//!   did not change since it was sent (a newer write re-sends). When no hint
//!   remains for a key and this node is not one of its primaries, the copy is
//!   dropped: the fallback's job is done. Except when the copy holds dots of
//!   this node's own actor (it coordinated a write of the key while every
//!   primary was down): a coordinator makes its next dot from its stored
//!   state, so that copy stays, or a later write here could reuse a dot.
//! - Sends that get no ack within the coordinator timeout are forgotten and
//!   retried on a later tick.

use std::collections::{BTreeMap, BTreeSet};

use ringkv_core::msg::PeerMsg;
use ringkv_core::sloppy::Hint;
use ringkv_core::{NodeId, Object};
use ringkv_storage::Store;
use tracing::{debug, warn};

use crate::ctx::{Ctx, View};
use crate::replica::Replica;
use crate::{Output, Timer};

/// A handoff write waiting for its primary's ack.
#[derive(Clone, Debug)]
struct InFlight {
    hint: Hint,
    /// The state sent: the hint is done only if the key still has it.
    sent: Object,
    sent_ms: u64,
}

/// The hinted-handoff job.
#[derive(Default)]
pub struct Handoff {
    /// Handoff writes waiting for their primary's ack, by request id.
    in_flight: BTreeMap<u64, InFlight>,
    /// Whether the handoff timer is set.
    armed: bool,
}

impl Handoff {
    /// Arms the periodic timer (once).
    pub(crate) fn start<S>(&mut self, ctx: &mut Ctx<'_, S>) {
        if !self.armed {
            self.armed = true;
            self.arm(ctx);
        }
    }

    fn arm<S>(&mut self, ctx: &mut Ctx<'_, S>) {
        ctx.out.push(Output::SetTimer {
            id: Timer::Handoff,
            at_ms: ctx.now_ms + ctx.cfg.handoff_interval_ms,
        });
    }

    /// Whether `req_id` names one of this job's writes (its ack is ours).
    pub(crate) fn owns(&self, req_id: u64) -> bool {
        self.in_flight.contains_key(&req_id)
    }

    /// The periodic tick: forget stale sends, then hand off to every
    /// primary that is back.
    pub(crate) fn tick<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
    ) {
        self.arm(ctx);
        if !replica.hints_loaded(ctx) {
            return;
        }
        let (now_ms, timeout) = (ctx.now_ms, ctx.cfg.timeout_ms);
        self.in_flight
            .retain(|_, f| now_ms.saturating_sub(f.sent_ms) < timeout);
        for p in replica.hinted_primaries() {
            if view.is_live(&p) {
                self.fill_window(ctx, replica, &p);
            }
        }
    }

    /// Sends hinted keys to `primary` until its window is full.
    fn fill_window<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        replica: &mut Replica,
        primary: &NodeId,
    ) {
        let in_flight: BTreeSet<&Hint> = self
            .in_flight
            .values()
            .filter(|f| &f.hint.primary == primary)
            .map(|f| &f.hint)
            .collect();
        let room = ctx.cfg.handoff_window.saturating_sub(in_flight.len());
        if room == 0 {
            return;
        }
        let next: Vec<Hint> = replica
            .hints_for(primary)
            .filter(|h| !in_flight.contains(h))
            .take(room)
            .cloned()
            .collect();
        for hint in next {
            let object = match replica.read(ctx, hint.partition, &hint.key) {
                Some(Some(o)) => o,
                Some(None) => {
                    // Nothing left to give (the copy is gone): the hint is moot.
                    replica.drop_hint(ctx, &hint);
                    continue;
                }
                None => continue,
            };
            let req_id = ctx.ids.next();
            ctx.out.push(Output::Send {
                to: primary.clone(),
                msg: PeerMsg::ReplicaPut {
                    req_id,
                    key: hint.key.clone(),
                    object: object.clone(),
                    stands_in_for: None,
                },
            });
            let sent_ms = ctx.now_ms;
            self.in_flight.insert(
                req_id,
                InFlight {
                    hint,
                    sent: object,
                    sent_ms,
                },
            );
        }
    }

    /// A primary acked (or refused) a handoff write.
    pub(crate) fn on_ack<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        from: NodeId,
        req_id: u64,
        ok: bool,
    ) {
        let Some(f) = self.in_flight.remove(&req_id) else {
            return;
        };
        if from != f.hint.primary {
            // Not the node we sent it to: ignore, the send times out.
            self.in_flight.insert(req_id, f);
            return;
        }
        if !ok {
            debug!(primary = %from, "handoff refused; retrying on a later tick");
            return;
        }
        let Some(current) = replica.read(ctx, f.hint.partition, &f.hint.key) else {
            return;
        };
        if current.as_ref() != Some(&f.sent) {
            // Written again meanwhile: the next tick sends the newer state.
            return;
        }
        replica.drop_hint(ctx, &f.hint);
        ctx.stats.hints_delivered += 1;
        if !keeps_copy(ctx, view, replica, &f) {
            match ctx.store.delete(f.hint.partition, &f.hint.key) {
                Ok(()) => ctx.stats.handoff_drops += 1,
                Err(e) => {
                    ctx.stats.store_errors += 1;
                    warn!(error = %e, "could not drop a handed-off copy");
                }
            }
        }
        if view.is_live(&from) {
            self.fill_window(ctx, replica, &from);
        }
    }
}

/// Whether this node keeps its copy of a key whose hint was just delivered:
/// when another hint still names the key, when this node is one of the key's
/// primaries, or when the copy holds dots of our own actor (we coordinated a
/// write of this key as a fallback, all primaries down, and a coordinator
/// makes its next dot from its stored state: dropping the copy would let a
/// later write here reuse a dot and silently supersede a value).
fn keeps_copy<S>(ctx: &Ctx<'_, S>, view: View<'_>, replica: &Replica, f: &InFlight) -> bool {
    let still_hinted = ctx.layout.members.iter().any(|m| {
        replica.has_hint(&Hint {
            primary: m.id.clone(),
            ..f.hint.clone()
        })
    });
    let n = view.props(&f.hint.key.bucket).n;
    let primary_here = view.plan(f.hint.partition, n).primaries.contains(ctx.me());
    let own_dots = f.sent.vv.get(ctx.actor) > 0;
    still_hinted || primary_here || own_dots
}
