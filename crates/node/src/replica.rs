//! The replica: this node's copy of the keys it stores, and the hints it
//! keeps as a fallback.
//!
//! Owns: the hints (mirrored from the store, loaded on first use) and their
//! bound. Reads and writes objects through the store in `Ctx`.
//! Emits: [`PeerMsg::ReplicaPutAck`] and [`PeerMsg::ReplicaGetReply`] to
//! the coordinators that asked.
//!
//! A replica merges whatever state it is sent into its own (merge is
//! commutative, associative and idempotent, so duplicates and reordering do
//! no harm). A fallback stores a hinted write like any other plus a durable
//! [`Hint`] naming the primary (in the same batch, so both survive or
//! neither does), and refuses before storing anything when the hints are
//! full.

use std::collections::{BTreeMap, BTreeSet};

use ringkv_core::bucket::BucketProps;
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::{ClientError, PeerMsg, Stamps};
use ringkv_core::request::{check_key, check_object};
use ringkv_core::sloppy::Hint;
use ringkv_core::{NodeId, Object, PartitionId};
use ringkv_storage::Store;
use tracing::{debug, warn};

use crate::Output;
use crate::coordinator::resolve_for;
use crate::ctx::{Ctx, View};

/// A coordinator's [`PeerMsg::ReplicaPut`], taken apart.
pub(crate) struct ReplicaWrite {
    /// The coordinator's id for it (0: no ack wanted).
    pub(crate) req_id: u64,
    /// The key.
    pub(crate) key: BucketKey,
    /// The state to merge.
    pub(crate) object: Object,
    /// The primary this node stands in for, as a fallback.
    pub(crate) stands_in_for: Option<NodeId>,
    /// A fallback handing the key back ([`PeerMsg::HandoffPut`]): acked
    /// only after the batch is synced to disk.
    pub(crate) handoff: bool,
    /// The coordinator's send stamp, echoed in the ack (0: none).
    pub(crate) sent_us: u64,
}

/// What a merge did to the stored state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Merged {
    /// The store failed: nothing changed.
    Failed,
    /// The incoming state added nothing.
    Unchanged,
    /// The stored state changed.
    Changed,
}

/// This node's stored keys and hints.
pub struct Replica {
    /// Hints this node keeps, mirrored from the store (`None` until loaded).
    hints: Option<BTreeSet<Hint>>,
}

impl Replica {
    /// A replica whose hints load from the store on first use.
    pub(crate) fn new() -> Self {
        Replica { hints: None }
    }

    /// A peer's write (a coordinator's, a fallback's handoff, a read
    /// repair): checked like a client's write, then merged and acked (when
    /// `req_id` is not 0). A write that fails the checks is refused: acked
    /// `ok: false`, counted, logged at debug, and nothing changes.
    pub(crate) fn on_put<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        from: NodeId,
        write: ReplicaWrite,
    ) {
        let ReplicaWrite {
            req_id,
            key,
            object,
            stands_in_for,
            handoff,
            sent_us,
        } = write;
        ctx.stats.replica_puts += 1;
        let checked = check_peer_object(ctx, &key, &object)
            .and_then(|()| eventual_only(view, &key))
            .and_then(|()| match &stands_in_for {
                Some(p) if ctx.layout.member(p).is_none() => Err(ClientError::BadRequest(format!(
                    "the write names {p} as the primary this node stands in for, which is not a \
                 member of the layout"
                ))),
                _ => Ok(()),
            });
        let ok = match checked {
            Err(why) => {
                ctx.stats.peer_refused += 1;
                debug!(peer = %from, ?why, "peer write refused");
                false
            }
            Ok(()) => self.apply(ctx, view, &key, &object, stands_in_for),
        };
        if req_id != 0 {
            if handoff && ok {
                // The fallback drops its copy on this ack: it must be on disk.
                ctx.out.push(Output::Sync);
            }
            ctx.out.push(Output::Send {
                to: from,
                msg: PeerMsg::ReplicaPutAck {
                    req_id,
                    ok,
                    stamps: stamps(ctx, sent_us),
                },
            });
        }
    }

    /// Stores a checked peer write: merged, and with a hint when this node
    /// stands in for `stands_in_for`. Returns whether it was stored.
    fn apply<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        key: &BucketKey,
        object: &Object,
        stands_in_for: Option<NodeId>,
    ) -> bool {
        let props = view.props(&key.bucket);
        match stands_in_for {
            None => self.merge(ctx, &props, key, object),
            // A fallback: refuse before storing anything when the hints are
            // full, so the coordinator counts no ack from us.
            Some(primary) if self.can_hint(ctx, &primary, key) => {
                let partition = key.partition(ctx.layout.ring_size);
                self.merge(ctx, &props, key, object)
                    && self.add_hint(
                        ctx,
                        Hint {
                            primary,
                            partition,
                            key: key.clone(),
                        },
                    )
            }
            Some(_) => {
                ctx.stats.hints_refused += 1;
                false
            }
        }
    }

    /// A coordinator's read: answer with what is stored (an empty object for
    /// a key never seen; `None` when the store failed).
    pub(crate) fn on_get<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        (req_id, sent_us): (u64, u64),
        key: BucketKey,
    ) {
        let partition = key.partition(ctx.layout.ring_size);
        let object = self
            .read(ctx, partition, &key)
            .map(Option::unwrap_or_default);
        ctx.out.push(Output::Send {
            to: from,
            msg: PeerMsg::ReplicaGetReply {
                req_id,
                object,
                stamps: stamps(ctx, sent_us),
            },
        });
    }

    /// The stored state of `key`; `None` (counted and logged) when the
    /// store failed.
    pub(crate) fn read<S: Store>(
        &self,
        ctx: &mut Ctx<'_, S>,
        partition: PartitionId,
        key: &BucketKey,
    ) -> Option<Option<Object>> {
        match ctx.store.get(partition, key) {
            Ok(o) => Some(o),
            Err(e) => {
                ctx.stats.store_errors += 1;
                warn!(error = %e, "replica read failed");
                None
            }
        }
    }

    /// Merges `incoming` into the stored state of `key` as the bucket's
    /// conflict mode keeps it; returns whether the result is stored.
    pub(crate) fn merge<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        props: &BucketProps,
        key: &BucketKey,
        incoming: &Object,
    ) -> bool {
        self.merge_report(ctx, props, key, incoming) != Merged::Failed
    }

    /// [`Replica::merge`], saying whether the stored state changed.
    pub(crate) fn merge_report<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        props: &BucketProps,
        key: &BucketKey,
        incoming: &Object,
    ) -> Merged {
        let partition = key.partition(ctx.layout.ring_size);
        let Some(local) = self.read(ctx, partition, key) else {
            return Merged::Failed;
        };
        let local = local.unwrap_or_default();
        if let Some(ts) = incoming.siblings.iter().map(|s| s.timestamp_ms).max() {
            ctx.clock.observe_write(ts);
        }
        let merged = resolve_for(props.conflict, local.merge(incoming));
        if merged == local {
            return Merged::Unchanged;
        }
        match ctx.put_object(partition, props.n, key, &local, &merged) {
            Ok(()) => Merged::Changed,
            Err(e) => {
                ctx.stats.store_errors += 1;
                warn!(error = %e, "replica write failed");
                Merged::Failed
            }
        }
    }

    /// Loads the hints from the store on first use; `false` while the store
    /// cannot list them (the node then refuses hinted writes and retries).
    pub(crate) fn hints_loaded<S: Store>(&mut self, ctx: &mut Ctx<'_, S>) -> bool {
        if self.hints.is_some() {
            return true;
        }
        match ctx.store.hints() {
            Ok(h) => {
                self.hints = Some(h.into_iter().collect());
                true
            }
            Err(e) => {
                ctx.stats.store_errors += 1;
                warn!(error = %e, "could not load hints; retrying on the next handoff tick");
                false
            }
        }
    }

    /// Records a hint for a write this node just stored as a fallback.
    /// Refuses (`false`, nothing recorded) when the hints are full, unless
    /// the same hint exists already.
    pub(crate) fn add_hint<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, hint: Hint) -> bool {
        if !self.hints_loaded(ctx) {
            return false;
        }
        if self.has_hint(&hint) {
            return true;
        }
        if self.hints_full(ctx.cfg.hints_max) {
            ctx.stats.hints_refused += 1;
            return false;
        }
        if let Err(e) = ctx.store.put_hint(&hint) {
            ctx.stats.store_errors += 1;
            warn!(error = %e, "could not store a hint");
            return false;
        }
        ctx.stats.hinted_writes += 1;
        self.hints.get_or_insert_default().insert(hint);
        true
    }

    /// Whether this node could take one more hint for `key` and `primary`.
    pub(crate) fn can_hint<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        primary: &NodeId,
        key: &BucketKey,
    ) -> bool {
        if !self.hints_loaded(ctx) {
            return false;
        }
        let hint = Hint {
            primary: primary.clone(),
            partition: key.partition(ctx.layout.ring_size),
            key: key.clone(),
        };
        self.has_hint(&hint) || !self.hints_full(ctx.cfg.hints_max)
    }

    /// Deletes a delivered (or moot) hint.
    pub(crate) fn drop_hint<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, hint: &Hint) {
        match ctx.store.delete_hint(hint) {
            Ok(()) => {
                if let Some(h) = self.hints.as_mut() {
                    h.remove(hint);
                }
            }
            Err(e) => {
                ctx.stats.store_errors += 1;
                warn!(error = %e, "could not delete a hint");
            }
        }
    }

    /// Whether this node keeps `hint`.
    pub(crate) fn has_hint(&self, hint: &Hint) -> bool {
        self.hints.as_ref().is_some_and(|h| h.contains(hint))
    }

    /// The primaries this node keeps hints for.
    pub(crate) fn hinted_primaries(&self) -> BTreeSet<NodeId> {
        self.hints
            .iter()
            .flatten()
            .map(|h| h.primary.clone())
            .collect()
    }

    /// This node's hints for `primary`, in order.
    pub(crate) fn hints_for<'a>(&'a self, primary: &'a NodeId) -> impl Iterator<Item = &'a Hint> {
        let start = Hint {
            primary: primary.clone(),
            partition: 0,
            key: BucketKey::new(Vec::new(), Vec::new()),
        };
        self.hints
            .iter()
            .flat_map(move |h| h.range(start.clone()..))
            .take_while(move |h| &h.primary == primary)
    }

    /// Hints this node keeps, by the primary they are for (empty until first
    /// loaded from the store).
    pub fn hints_by_primary(&self) -> BTreeMap<NodeId, usize> {
        let mut out = BTreeMap::new();
        for h in self.hints.iter().flatten() {
            *out.entry(h.primary.clone()).or_insert(0) += 1;
        }
        out
    }

    /// Hints this node keeps.
    pub fn hints_len(&self) -> usize {
        self.hints.as_ref().map_or(0, BTreeSet::len)
    }

    /// Whether the hints reached `hints_max`.
    pub(crate) fn hints_full(&self, hints_max: usize) -> bool {
        self.hints_len() >= hints_max
    }
}

/// Refuses a peer's replica write of a strong bucket's key: those are
/// written only through the key's consensus group, never by replica
/// writes, hints, read repair or anti-entropy.
pub(crate) fn eventual_only(view: View<'_>, key: &BucketKey) -> Result<(), ClientError> {
    if view.is_strong(&key.bucket) {
        return Err(ClientError::BadRequest(
            "a replica write for a key of a strong bucket: its keys change only through \
             the key's consensus group"
                .into(),
        ));
    }
    Ok(())
}

/// Checks a key and an object a peer sent, before anything is merged, with
/// the limits a client gets (sizes) and the room honest merges need
/// (siblings and actors, see [`Limits::for_peers`]).
///
/// [`Limits::for_peers`]: ringkv_core::Limits::for_peers
pub(crate) fn check_peer_object<S>(
    ctx: &Ctx<'_, S>,
    key: &BucketKey,
    object: &Object,
) -> Result<(), ClientError> {
    let limits = &ctx.cfg.limits;
    check_key(key, limits)?;
    check_object(object, &limits.for_peers(ctx.layout.members.len()))
}

/// The stamps of an answer to a coordinator whose request was sent at
/// `req_sent_us`: received and sent within the same input, so both are its
/// time.
fn stamps<S>(ctx: &Ctx<'_, S>, req_sent_us: u64) -> Stamps {
    let now_us = ctx.clock.stamp_us(ctx.now_ms);
    Stamps {
        req_sent_us,
        recv_us: now_us,
        sent_us: now_us,
    }
}

#[cfg(test)]
mod tests {
    use ringkv_core::msg::{PeerMsg, Stamps};
    use ringkv_core::sloppy::Hint;
    use ringkv_core::{NodeId, Object};
    use ringkv_storage::Store;

    use super::{Replica, ReplicaWrite};
    use crate::Output;
    use crate::testing::{Fixture, id, key, object};

    fn write(req_id: u64, k: &str, object: Object, stands_in_for: Option<NodeId>) -> ReplicaWrite {
        ReplicaWrite {
            req_id,
            key: key(k),
            object,
            stands_in_for,
            handoff: false,
            sent_us: 0,
        }
    }

    fn ack(to: &str, req_id: u64, ok: bool) -> Output {
        Output::Send {
            to: id(to),
            msg: PeerMsg::ReplicaPutAck {
                req_id,
                ok,
                stamps: Stamps::default(),
            },
        }
    }

    fn hint(fx: &Fixture, primary: &str, k: &str) -> Hint {
        Hint {
            primary: id(primary),
            partition: fx.partition(&key(k)),
            key: key(k),
        }
    }

    #[test]
    fn a_write_merges_into_the_stored_state_and_acks_ok_to_the_sender() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();
        let (mine, theirs) = (object("n1", 1, "a"), object("n2", 1, "b"));
        fx.store_object(&key("k"), &mine);

        fx.run(|ctx, view| {
            replica.on_put(ctx, view, id("n2"), write(7, "k", theirs.clone(), None))
        });

        assert_eq!(fx.take_out(), vec![ack("n2", 7, true)]);
        assert_eq!(fx.stored(&key("k")), Some(mine.merge(&theirs)));
        assert_eq!(fx.stats.replica_puts, 1);
        assert_eq!(fx.stats.hinted_writes, 0);
        assert_eq!(replica.hints_len(), 0);
    }

    #[test]
    fn a_write_of_state_already_held_acks_ok_and_changes_nothing() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();
        let o = object("n2", 1, "b");
        fx.store_object(&key("k"), &o);
        let unflushed = fx.store.unflushed_len();

        fx.run(|ctx, view| replica.on_put(ctx, view, id("n2"), write(3, "k", o.clone(), None)));

        assert_eq!(fx.take_out(), vec![ack("n2", 3, true)]);
        assert_eq!(fx.stored(&key("k")), Some(o));
        assert_eq!(
            fx.store.unflushed_len(),
            unflushed,
            "no write for a no-op merge"
        );
    }

    #[test]
    fn a_write_with_req_id_zero_is_stored_without_an_ack() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();
        let o = object("n2", 1, "b");

        fx.run(|ctx, view| replica.on_put(ctx, view, id("n2"), write(0, "k", o.clone(), None)));

        assert_eq!(fx.take_out(), vec![]);
        assert_eq!(fx.stored(&key("k")), Some(o));
    }

    #[test]
    fn a_fallback_write_is_stored_with_a_durable_hint() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();
        let o = object("n2", 1, "b");

        fx.run(|ctx, view| {
            replica.on_put(
                ctx,
                view,
                id("n2"),
                write(4, "k", o.clone(), Some(id("n3"))),
            )
        });

        assert_eq!(fx.take_out(), vec![ack("n2", 4, true)]);
        assert_eq!(fx.stored(&key("k")), Some(o));
        let h = hint(&fx, "n3", "k");
        assert_eq!(fx.store.hints().unwrap(), vec![h.clone()]);
        assert!(replica.has_hint(&h));
        assert_eq!(replica.hints_by_primary(), [(id("n3"), 1)].into());
        assert_eq!(fx.stats.hinted_writes, 1);
    }

    #[test]
    fn a_fallback_write_at_hints_max_is_refused_and_nothing_is_stored() {
        let mut fx = Fixture::with("n1", |c| c.hints_max = 1);
        let mut replica = Replica::new();
        fx.run(|ctx, view| {
            let w = write(1, "a", object("n2", 1, "a"), Some(id("n3")));
            replica.on_put(ctx, view, id("n2"), w)
        });
        assert_eq!(fx.take_out(), vec![ack("n2", 1, true)]);

        fx.run(|ctx, view| {
            let w = write(2, "b", object("n2", 1, "b"), Some(id("n3")));
            replica.on_put(ctx, view, id("n2"), w)
        });

        assert_eq!(fx.take_out(), vec![ack("n2", 2, false)]);
        assert_eq!(fx.stored(&key("b")), None);
        assert_eq!(fx.store.hints().unwrap(), vec![hint(&fx, "n3", "a")]);
        assert_eq!(replica.hints_len(), 1);
        assert!(replica.hints_full(fx.cfg.hints_max));
        assert_eq!(fx.stats.hints_refused, 1);
        assert_eq!(fx.stats.hinted_writes, 1);
    }

    #[test]
    fn a_fallback_write_under_an_existing_hint_is_taken_at_hints_max() {
        let mut fx = Fixture::with("n1", |c| c.hints_max = 1);
        let mut replica = Replica::new();
        let (first, second) = (object("n2", 1, "a"), object("n2", 2, "b"));
        fx.run(|ctx, view| {
            replica.on_put(
                ctx,
                view,
                id("n2"),
                write(1, "a", first.clone(), Some(id("n3"))),
            )
        });

        fx.run(|ctx, view| {
            replica.on_put(
                ctx,
                view,
                id("n2"),
                write(2, "a", second.clone(), Some(id("n3"))),
            )
        });

        assert_eq!(fx.take_out(), vec![ack("n2", 1, true), ack("n2", 2, true)]);
        assert_eq!(fx.stored(&key("a")), Some(first.merge(&second)));
        assert_eq!(replica.hints_len(), 1);
        assert_eq!(fx.stats.hints_refused, 0);
    }

    #[test]
    fn add_hint_refuses_a_new_hint_at_hints_max_and_records_nothing() {
        let mut fx = Fixture::with("n1", |c| c.hints_max = 1);
        let mut replica = Replica::new();
        let (a, b) = (hint(&fx, "n3", "a"), hint(&fx, "n3", "b"));

        let added = fx.run(|ctx, _| {
            (
                replica.add_hint(ctx, a.clone()),
                replica.add_hint(ctx, b.clone()),
            )
        });

        assert_eq!(added, (true, false));
        assert_eq!(fx.store.hints().unwrap(), vec![a.clone()]);
        assert!(replica.has_hint(&a) && !replica.has_hint(&b));
        assert_eq!(fx.stats.hints_refused, 1);
        // The same hint again is not a new one.
        assert!(fx.run(|ctx, _| replica.add_hint(ctx, a.clone())));
        assert_eq!(fx.stats.hints_refused, 1);
    }

    #[test]
    fn hints_load_from_the_store_on_first_use() {
        let mut fx = Fixture::new("n1");
        let h = hint(&fx, "n2", "k");
        fx.store.put_hint(&h).unwrap();
        let mut replica = Replica::new();
        assert_eq!(replica.hints_len(), 0, "not loaded yet");

        assert!(fx.run(|ctx, _| replica.hints_loaded(ctx)));

        assert!(replica.has_hint(&h));
        assert_eq!(replica.hinted_primaries(), [id("n2")].into());
        assert_eq!(replica.hints_for(&id("n2")).collect::<Vec<_>>(), vec![&h]);
        assert_eq!(replica.hints_for(&id("n3")).count(), 0);
    }

    #[test]
    fn a_read_of_an_unknown_key_answers_an_empty_object() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();

        fx.run(|ctx, _| replica.on_get(ctx, id("n2"), (9, 0), key("nope")));

        let reply = PeerMsg::ReplicaGetReply {
            req_id: 9,
            object: Some(Object::empty()),
            stamps: Stamps::default(),
        };
        assert_eq!(
            fx.take_out(),
            vec![Output::Send {
                to: id("n2"),
                msg: reply
            }]
        );
        assert_eq!(fx.stored(&key("nope")), None, "a read writes nothing");
    }

    #[test]
    fn a_read_answers_the_stored_state() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();
        let o = object("n3", 2, "v");
        fx.store_object(&key("k"), &o);

        fx.run(|ctx, _| replica.on_get(ctx, id("n3"), (5, 0), key("k")));

        let reply = PeerMsg::ReplicaGetReply {
            req_id: 5,
            object: Some(o),
            stamps: Stamps::default(),
        };
        assert_eq!(
            fx.take_out(),
            vec![Output::Send {
                to: id("n3"),
                msg: reply
            }]
        );
    }

    /// `n` siblings by distinct writers, each holding `value`.
    fn wide(n: usize, value: &str) -> Object {
        (0..n).fold(Object::empty(), |o, i| {
            o.merge(&object(&format!("w{i}"), 1, value))
        })
    }

    #[test]
    fn a_peer_write_over_the_limits_or_malformed_is_refused_and_changes_nothing() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();
        let mut unsorted = wide(3, "v");
        unsorted.siblings.reverse();
        let too_long = format!("{:017}", 1);
        // (key, object, primary stood in for): value_bytes_max is 64,
        // key_bytes_max 16, siblings_max 3 (for peers: 3 per member, 9).
        let refused = [
            ("k", object("n2", 1, &"x".repeat(65)), None),
            ("k", wide(10, "v"), None),
            (too_long.as_str(), object("n2", 1, "v"), None),
            ("k", unsorted, None),
            ("k", object("n2", 1, "v"), Some(id("n9"))),
        ];
        for (i, (k, o, primary)) in refused.into_iter().enumerate() {
            let req_id = i as u64 + 1;
            fx.run(|ctx, view| replica.on_put(ctx, view, id("n2"), write(req_id, k, o, primary)));
            assert_eq!(fx.take_out(), vec![ack("n2", req_id, false)], "case {i}");
            assert_eq!(fx.stored(&key(k)), None, "case {i}");
        }
        assert_eq!(fx.stats.peer_refused, 5);
        assert_eq!(replica.hints_len(), 0);
        assert_eq!(fx.store.hints().unwrap(), vec![]);
        assert_eq!(fx.store.unflushed_len(), 0, "nothing written");

        // Within the peer bounds: more siblings than one client write may
        // leave (3), as honest merges make, is taken.
        let merged = wide(9, "v");
        fx.run(|ctx, view| {
            replica.on_put(ctx, view, id("n2"), write(9, "k", merged.clone(), None))
        });
        assert_eq!(fx.take_out(), vec![ack("n2", 9, true)]);
        assert_eq!(fx.stored(&key("k")), Some(merged));
    }

    #[test]
    fn a_refused_read_repair_sends_nothing() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();

        fx.run(|ctx, view| replica.on_put(ctx, view, id("n2"), write(0, "k", wide(10, "v"), None)));

        assert_eq!(fx.take_out(), vec![]);
        assert_eq!(fx.stored(&key("k")), None);
        assert_eq!(fx.stats.peer_refused, 1);
    }

    #[test]
    fn a_handoff_write_is_acked_only_after_a_sync() {
        let mut fx = Fixture::new("n1");
        let mut replica = Replica::new();
        let o = object("n2", 1, "b");
        let handoff = |req_id, o: Object| ReplicaWrite {
            handoff: true,
            ..write(req_id, "k", o, None)
        };

        fx.run(|ctx, view| replica.on_put(ctx, view, id("n2"), handoff(5, o.clone())));

        assert_eq!(fx.take_out(), vec![Output::Sync, ack("n2", 5, true)]);
        assert_eq!(fx.stored(&key("k")), Some(o));

        // A refused one needs no sync.
        fx.run(|ctx, view| replica.on_put(ctx, view, id("n2"), handoff(6, wide(10, "v"))));
        assert_eq!(fx.take_out(), vec![ack("n2", 6, false)]);
    }
}
