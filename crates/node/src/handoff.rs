//! Hinted handoff: a fallback gives the writes it holds for an unreachable
//! primary back to that primary once it is reachable again.
//!
//! Owns: the handoff writes in flight, and whether its timer is armed.
//! Reads and drops hints through the [`Replica`] that keeps them.
//! Emits: [`PeerMsg::HandoffPut`] to primaries that are back, and its
//! periodic [`Timer::Handoff`].
//!
//! - Every `handoff_interval_ms` the job looks for primaries that are live
//!   and have hints, and sends each hinted key's current state as a
//!   `HandoffPut` (the primary acks it once it is on its disk), up to `handoff_window` at a time per primary; every ack
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
                msg: PeerMsg::HandoffPut {
                    req_id,
                    key: hint.key.clone(),
                    object: object.clone(),
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
            match ctx.delete_object(
                f.hint.partition,
                view.props(&f.hint.key.bucket).n,
                &f.hint.key,
                &f.sent,
            ) {
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

#[cfg(test)]
mod tests {
    use ringkv_core::hash::BucketKey;
    use ringkv_core::msg::PeerMsg;
    use ringkv_core::sloppy::Hint;
    use ringkv_core::{NodeId, Object};
    use ringkv_storage::Store;

    use super::Handoff;
    use crate::replica::Replica;
    use crate::testing::{Fixture, id, key, object};
    use crate::{Output, Timer};

    /// A fixture node with an empty handoff job and replica.
    fn setup(fx: Fixture) -> (Fixture, Handoff, Replica) {
        (fx, Handoff::default(), Replica::new())
    }

    /// Stores `o` for `k` on the fixture node as a fallback for `primary`.
    fn hinted(
        fx: &mut Fixture,
        replica: &mut Replica,
        k: &BucketKey,
        primary: &NodeId,
        o: &Object,
    ) {
        fx.store_object(k, o);
        let h = hint(fx, k, primary);
        assert!(fx.run(|ctx, _| replica.add_hint(ctx, h)));
    }

    fn hint(fx: &Fixture, k: &BucketKey, primary: &NodeId) -> Hint {
        Hint {
            primary: primary.clone(),
            partition: fx.partition(k),
            key: k.clone(),
        }
    }

    fn tick(fx: &mut Fixture, handoff: &mut Handoff, replica: &mut Replica) -> Vec<Output> {
        fx.run(|ctx, view| handoff.tick(ctx, view, replica));
        fx.take_out()
    }

    fn ack(
        fx: &mut Fixture,
        handoff: &mut Handoff,
        replica: &mut Replica,
        from: &NodeId,
        req_id: u64,
        ok: bool,
    ) -> Vec<Output> {
        assert!(handoff.owns(req_id));
        fx.run(|ctx, view| handoff.on_ack(ctx, view, replica, from.clone(), req_id, ok));
        fx.take_out()
    }

    fn timer(at_ms: u64) -> Output {
        Output::SetTimer {
            id: Timer::Handoff,
            at_ms,
        }
    }

    fn put(to: &NodeId, req_id: u64, k: &BucketKey, object: &Object) -> Output {
        Output::Send {
            to: to.clone(),
            msg: PeerMsg::HandoffPut {
                req_id,
                key: k.clone(),
                object: object.clone(),
            },
        }
    }

    /// A fixture node with n = 2, and a key it is not a primary of, with
    /// that key's primaries.
    fn non_primary_key() -> (Fixture, BucketKey, Vec<NodeId>) {
        let fx = Fixture::with("n1", |c| c.n = 2);
        let k = fx.key_where(2, |p| !p.contains(&id("n1")));
        let primaries = fx.primaries(&k, 2);
        (fx, k, primaries)
    }

    #[test]
    fn start_arms_exactly_one_handoff_timer() {
        let (mut fx, mut handoff, _) = setup(Fixture::new("n1"));
        fx.now_ms = 40;

        fx.run(|ctx, _| {
            handoff.start(ctx);
            handoff.start(ctx);
        });

        assert_eq!(fx.take_out(), vec![timer(540)]);
    }

    #[test]
    fn a_tick_rearms_and_sends_a_hinted_key_to_its_live_primary() {
        let (mut fx, mut handoff, mut replica) = setup(Fixture::new("n1"));
        let (k, o, n2) = (key("k"), object("n2", 1, "v"), id("n2"));
        hinted(&mut fx, &mut replica, &k, &n2, &o);

        let out = tick(&mut fx, &mut handoff, &mut replica);

        assert_eq!(out, vec![timer(500), put(&n2, 1, &k, &o)]);
        assert!(handoff.owns(1));
        assert!(replica.has_hint(&hint(&fx, &k, &n2)), "kept until acked");
    }

    #[test]
    fn a_tick_sends_nothing_to_a_primary_that_is_down() {
        let (mut fx, mut handoff, mut replica) = setup(Fixture::new("n1"));
        hinted(
            &mut fx,
            &mut replica,
            &key("k"),
            &id("n2"),
            &object("n2", 1, "v"),
        );
        fx.set_down("n2");

        assert_eq!(tick(&mut fx, &mut handoff, &mut replica), vec![timer(500)]);
        assert!(!handoff.owns(1));
    }

    #[test]
    fn a_tick_drops_a_hint_whose_copy_is_gone() {
        let (mut fx, mut handoff, mut replica) = setup(Fixture::new("n1"));
        let h = hint(&fx, &key("k"), &id("n2"));
        fx.store.put_hint(&h).unwrap();

        assert_eq!(tick(&mut fx, &mut handoff, &mut replica), vec![timer(500)]);
        assert_eq!(fx.store.hints().unwrap(), vec![]);
        assert_eq!(replica.hints_len(), 0);
    }

    #[test]
    fn an_ack_with_the_key_unchanged_drops_the_hint_and_the_fallback_copy() {
        let (fx, k, primaries) = non_primary_key();
        let (mut fx, mut handoff, mut replica) = setup(fx);
        let (p, o) = (&primaries[0], object("n2", 1, "v"));
        hinted(&mut fx, &mut replica, &k, p, &o);
        tick(&mut fx, &mut handoff, &mut replica);

        let out = ack(&mut fx, &mut handoff, &mut replica, p, 1, true);

        assert_eq!(out, vec![], "nothing more to hand off");
        assert!(!handoff.owns(1));
        assert_eq!(fx.store.hints().unwrap(), vec![]);
        assert_eq!(replica.hints_len(), 0);
        assert_eq!(fx.stored(&k), None, "the fallback's job is done");
        assert_eq!((fx.stats.hints_delivered, fx.stats.handoff_drops), (1, 1));
    }

    #[test]
    fn an_ack_keeps_the_copy_of_a_key_this_node_is_a_primary_of() {
        let (mut fx, mut handoff, mut replica) = setup(Fixture::new("n1"));
        let (k, o, n2) = (key("k"), object("n2", 1, "v"), id("n2"));
        hinted(&mut fx, &mut replica, &k, &n2, &o);
        tick(&mut fx, &mut handoff, &mut replica);

        ack(&mut fx, &mut handoff, &mut replica, &n2, 1, true);

        assert_eq!(replica.hints_len(), 0);
        assert_eq!(fx.stored(&k), Some(o));
        assert_eq!((fx.stats.hints_delivered, fx.stats.handoff_drops), (1, 0));
    }

    #[test]
    fn an_ack_keeps_a_copy_that_holds_this_nodes_own_dots() {
        let (fx, k, primaries) = non_primary_key();
        let (mut fx, mut handoff, mut replica) = setup(fx);
        // n1 coordinated a write of the key while its primaries were down.
        let (p, o) = (&primaries[0], object("n1", 1, "mine"));
        hinted(&mut fx, &mut replica, &k, p, &o);
        tick(&mut fx, &mut handoff, &mut replica);

        ack(&mut fx, &mut handoff, &mut replica, p, 1, true);

        assert_eq!(replica.hints_len(), 0);
        assert_eq!(fx.stored(&k), Some(o), "a later dot of n1 is made from it");
        assert_eq!((fx.stats.hints_delivered, fx.stats.handoff_drops), (1, 0));
    }

    #[test]
    fn an_ack_keeps_the_copy_while_another_primary_still_has_a_hint_for_it() {
        let (fx, k, primaries) = non_primary_key();
        let (mut fx, mut handoff, mut replica) = setup(fx);
        let o = object("n2", 1, "v");
        hinted(&mut fx, &mut replica, &k, &primaries[0], &o);
        hinted(&mut fx, &mut replica, &k, &primaries[1], &o);
        fx.set_down(primaries[1].as_str());
        let out = tick(&mut fx, &mut handoff, &mut replica);
        assert_eq!(out, vec![timer(500), put(&primaries[0], 1, &k, &o)]);

        ack(&mut fx, &mut handoff, &mut replica, &primaries[0], 1, true);

        assert_eq!(
            fx.store.hints().unwrap(),
            vec![hint(&fx, &k, &primaries[1])]
        );
        assert_eq!(fx.stored(&k), Some(o));
        assert_eq!(fx.stats.handoff_drops, 0);
    }

    #[test]
    fn an_ack_from_another_node_keeps_the_hint_and_the_send() {
        let (mut fx, mut handoff, mut replica) = setup(Fixture::new("n1"));
        let (k, o, n2) = (key("k"), object("n2", 1, "v"), id("n2"));
        hinted(&mut fx, &mut replica, &k, &n2, &o);
        tick(&mut fx, &mut handoff, &mut replica);

        let out = ack(&mut fx, &mut handoff, &mut replica, &id("n3"), 1, true);

        assert_eq!(out, vec![]);
        assert!(handoff.owns(1), "still waiting for n2");
        assert!(replica.has_hint(&hint(&fx, &k, &n2)));
        assert_eq!(fx.stats.hints_delivered, 0);
    }

    #[test]
    fn an_ack_after_the_key_changed_keeps_the_hint_and_the_next_tick_sends_the_new_state() {
        let (mut fx, mut handoff, mut replica) = setup(Fixture::new("n1"));
        let (k, o, n2) = (key("k"), object("n2", 1, "v"), id("n2"));
        hinted(&mut fx, &mut replica, &k, &n2, &o);
        tick(&mut fx, &mut handoff, &mut replica);
        let newer = o.merge(&object("n3", 1, "w"));
        fx.store_object(&k, &newer);

        let out = ack(&mut fx, &mut handoff, &mut replica, &n2, 1, true);

        assert_eq!(out, vec![]);
        assert!(!handoff.owns(1));
        assert!(replica.has_hint(&hint(&fx, &k, &n2)));
        assert_eq!(fx.stats.hints_delivered, 0);
        let out = tick(&mut fx, &mut handoff, &mut replica);
        assert_eq!(out, vec![timer(500), put(&n2, 2, &k, &newer)]);
    }

    #[test]
    fn a_refusal_keeps_the_hint_for_a_later_tick() {
        let (mut fx, mut handoff, mut replica) = setup(Fixture::new("n1"));
        let (k, o, n2) = (key("k"), object("n2", 1, "v"), id("n2"));
        hinted(&mut fx, &mut replica, &k, &n2, &o);
        tick(&mut fx, &mut handoff, &mut replica);

        let out = ack(&mut fx, &mut handoff, &mut replica, &n2, 1, false);

        assert_eq!(out, vec![]);
        assert!(!handoff.owns(1));
        assert!(replica.has_hint(&hint(&fx, &k, &n2)));
        assert_eq!(fx.stored(&k), Some(o));
    }

    #[test]
    fn the_window_bounds_sends_per_primary_and_each_ack_sends_the_next() {
        let (mut fx, mut handoff, mut replica) =
            setup(Fixture::with("n1", |c| c.handoff_window = 2));
        let (n2, n3) = (id("n2"), id("n3"));
        for k in ["a", "b", "c"] {
            hinted(&mut fx, &mut replica, &key(k), &n2, &object("n2", 1, k));
        }
        hinted(&mut fx, &mut replica, &key("d"), &n3, &object("n2", 1, "d"));
        let sends_to = |out: &[Output], to: &NodeId| {
            out.iter()
                .filter(|o| matches!(o, Output::Send { to: t, .. } if t == to))
                .count()
        };

        let out = tick(&mut fx, &mut handoff, &mut replica);
        assert_eq!((sends_to(&out, &n2), sends_to(&out, &n3)), (2, 1));
        assert_eq!(out.len(), 4, "a timer and three sends: {out:?}");

        // In flight: a tick sends nothing more.
        assert_eq!(tick(&mut fx, &mut handoff, &mut replica), vec![timer(500)]);

        let first_to_n2 = (1..=3)
            .find(|&r| {
                handoff
                    .in_flight
                    .get(&r)
                    .is_some_and(|f| f.hint.primary == n2)
            })
            .unwrap();
        let out = ack(&mut fx, &mut handoff, &mut replica, &n2, first_to_n2, true);
        assert_eq!(sends_to(&out, &n2), 1, "the third key: {out:?}");
        assert_eq!(out.len(), 1);
        assert!(handoff.owns(4));
    }

    #[test]
    fn a_send_without_ack_is_forgotten_after_the_timeout_and_resent() {
        let (mut fx, mut handoff, mut replica) = setup(Fixture::new("n1"));
        let (k, o, n2) = (key("k"), object("n2", 1, "v"), id("n2"));
        hinted(&mut fx, &mut replica, &k, &n2, &o);
        tick(&mut fx, &mut handoff, &mut replica);

        fx.now_ms = 999;
        assert_eq!(
            tick(&mut fx, &mut handoff, &mut replica),
            vec![timer(1_499)]
        );
        fx.now_ms = 1_000;
        let out = tick(&mut fx, &mut handoff, &mut replica);

        assert_eq!(out, vec![timer(1_500), put(&n2, 2, &k, &o)]);
        assert!(!handoff.owns(1) && handoff.owns(2));
    }
}
