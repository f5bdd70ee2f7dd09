//! Hinted handoff: a fallback gives the writes it holds for an unreachable
//! primary back to that primary once it is reachable again.
//!
//! - A fallback stores a hinted write like any other, plus a durable
//!   [`Hint`] naming the primary (in the same batch, so both survive or
//!   neither does).
//! - Every `handoff_interval_ms` the job looks for primaries that are live
//!   and have hints, and sends each hinted key's current state as a
//!   `ReplicaPut`, up to `handoff_window` at a time per primary; every ack
//!   sends the next one, so a long list drains at network speed, not one
//!   tick at a time.
//! - A hint is deleted only after the primary acked it, and only if the key
//!   did not change since it was sent (a newer write re-sends). When no hint
//!   remains for a key and this node is not one of its primaries, the copy is
//!   dropped: the fallback's job is done. Except when the copy holds a dot
//!   of this node's own actor (it coordinated a write as a fallback): the
//!   copy is what keeps its next dot for the key from reusing a counter.
//! - Sends that get no ack within the coordinator timeout are forgotten and
//!   retried on a later tick.

use std::collections::BTreeSet;

use ringkv_core::hash::BucketKey;
use ringkv_core::msg::PeerMsg;
use ringkv_core::sloppy::Hint;
use ringkv_core::{NodeId, Object};
use ringkv_storage::Store;
use tracing::{debug, warn};

use crate::{Node, Output};

/// The handoff job's timer id (request ids count up from a random base and
/// never reach it).
pub const TIMER: u64 = u64::MAX;

/// A handoff write waiting for its primary's ack.
#[derive(Clone, Debug)]
pub struct InFlight {
    hint: Hint,
    /// The state sent: the hint is done only if the key still has it.
    sent: Object,
    sent_ms: u64,
}

impl<S: Store> Node<S> {
    /// Loads the hints from the store on first use; `false` while the store
    /// cannot list them (the node then refuses hinted writes and retries).
    pub(crate) fn hints_loaded(&mut self) -> bool {
        if self.hints.is_some() {
            return true;
        }
        match self.store.hints() {
            Ok(h) => {
                self.hints = Some(h.into_iter().collect());
                true
            }
            Err(e) => {
                self.stats.store_errors += 1;
                warn!(error = %e, "could not load hints; retrying on the next handoff tick");
                false
            }
        }
    }

    /// Records a hint for a write this node just stored as a fallback.
    /// Refuses (`false`, nothing recorded) when the hints are full, unless
    /// the same hint exists already.
    pub(crate) fn add_hint(&mut self, hint: Hint) -> bool {
        if !self.hints_loaded() {
            return false;
        }
        let known = self.hints.as_ref().is_some_and(|h| h.contains(&hint));
        if known {
            return true;
        }
        if self.hints_full() {
            self.stats.hints_refused += 1;
            return false;
        }
        if let Err(e) = self.store.put_hint(&hint) {
            self.stats.store_errors += 1;
            warn!(error = %e, "could not store a hint");
            return false;
        }
        self.stats.hinted_writes += 1;
        self.hints.get_or_insert_default().insert(hint);
        true
    }

    /// Whether this node could take one more hint for `key` and `primary`.
    pub(crate) fn can_hint(&mut self, primary: &NodeId, key: &BucketKey) -> bool {
        if !self.hints_loaded() {
            return false;
        }
        let hint = Hint {
            primary: primary.clone(),
            partition: key.partition(self.layout.ring_size),
            key: key.clone(),
        };
        self.hints.as_ref().is_some_and(|h| h.contains(&hint)) || !self.hints_full()
    }

    /// The periodic tick: forget stale sends, then hand off to every
    /// primary that is back.
    pub(crate) fn handoff_tick(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        out.push(Output::SetTimer {
            id: TIMER,
            at_ms: now_ms + self.cfg.handoff_interval_ms,
        });
        if !self.hints_loaded() {
            return;
        }
        let timeout = self.cfg.timeout_ms;
        self.handoffs
            .retain(|_, f| now_ms.saturating_sub(f.sent_ms) < timeout);
        let primaries: BTreeSet<NodeId> = self
            .hints
            .iter()
            .flatten()
            .map(|h| h.primary.clone())
            .collect();
        for p in primaries {
            if self.is_live(&p) {
                self.fill_window(now_ms, &p, out);
            }
        }
    }

    /// Sends hinted keys to `primary` until its window is full.
    fn fill_window(&mut self, now_ms: u64, primary: &NodeId, out: &mut Vec<Output>) {
        let in_flight: BTreeSet<Hint> = self
            .handoffs
            .values()
            .filter(|f| &f.hint.primary == primary)
            .map(|f| f.hint.clone())
            .collect();
        let room = self.cfg.handoff_window.saturating_sub(in_flight.len());
        if room == 0 {
            return;
        }
        let start = Hint {
            primary: primary.clone(),
            partition: 0,
            key: BucketKey::new(Vec::new(), Vec::new()),
        };
        let next: Vec<Hint> = self
            .hints
            .iter()
            .flat_map(|h| h.range(start.clone()..))
            .take_while(|h| &h.primary == primary)
            .filter(|h| !in_flight.contains(h))
            .take(room)
            .cloned()
            .collect();
        for hint in next {
            let object = match self.store.get(hint.partition, &hint.key) {
                Ok(Some(o)) => o,
                Ok(None) => {
                    // Nothing left to give (the copy is gone): the hint is moot.
                    self.drop_hint(&hint);
                    continue;
                }
                Err(e) => {
                    self.stats.store_errors += 1;
                    warn!(error = %e, "could not read a hinted key");
                    continue;
                }
            };
            let req_id = self.next_id();
            out.push(Output::Send {
                to: primary.clone(),
                msg: PeerMsg::ReplicaPut {
                    req_id,
                    key: hint.key.clone(),
                    object: object.clone(),
                    stands_in_for: None,
                },
            });
            self.handoffs.insert(
                req_id,
                InFlight {
                    hint,
                    sent: object,
                    sent_ms: now_ms,
                },
            );
        }
    }

    /// A primary acked (or refused) a handoff write.
    pub(crate) fn on_handoff_ack(
        &mut self,
        now_ms: u64,
        from: NodeId,
        req_id: u64,
        ok: bool,
        out: &mut Vec<Output>,
    ) {
        let Some(f) = self.handoffs.remove(&req_id) else {
            return;
        };
        if from != f.hint.primary {
            // Not the node we sent it to: ignore, the send times out.
            self.handoffs.insert(req_id, f);
            return;
        }
        if !ok {
            debug!(primary = %from, "handoff refused; retrying on a later tick");
            return;
        }
        let current = match self.store.get(f.hint.partition, &f.hint.key) {
            Ok(o) => o,
            Err(e) => {
                self.stats.store_errors += 1;
                warn!(error = %e, "could not read a handed-off key");
                return;
            }
        };
        if current.as_ref() != Some(&f.sent) {
            // Written again meanwhile: the next tick sends the newer state.
            return;
        }
        self.drop_hint(&f.hint);
        self.stats.hints_delivered += 1;
        let still_hinted = self.layout.members.iter().any(|m| {
            let other = Hint {
                primary: m.id.clone(),
                ..f.hint.clone()
            };
            self.hints.as_ref().is_some_and(|h| h.contains(&other))
        });
        let primary_here = self.primaries(f.hint.partition).contains(&self.cfg.id);
        // A copy holding dots of this node's own actor is its only memory of
        // the counters it used for the key (it coordinated a write as a
        // fallback): dropped, its next write of the key would reuse a dot.
        let own_dots = current.as_ref().is_some_and(|o| o.vv.get(&self.actor) > 0);
        if !still_hinted && !primary_here && !own_dots {
            match self.store.delete(f.hint.partition, &f.hint.key) {
                Ok(()) => self.stats.handoff_drops += 1,
                Err(e) => {
                    self.stats.store_errors += 1;
                    warn!(error = %e, "could not drop a handed-off copy");
                }
            }
        }
        if self.is_live(&from) {
            self.fill_window(now_ms, &from, out);
        }
    }

    fn drop_hint(&mut self, hint: &Hint) {
        match self.store.delete_hint(hint) {
            Ok(()) => {
                if let Some(h) = self.hints.as_mut() {
                    h.remove(hint);
                }
            }
            Err(e) => {
                self.stats.store_errors += 1;
                warn!(error = %e, "could not delete a hint");
            }
        }
    }
}
