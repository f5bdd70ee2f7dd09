//! Bucket properties: n, r, w, pr, pw, conflict mode and sibling limits per
//! bucket, as cluster metadata every node converges on.
//!
//! Owns: the entries of the buckets that have properties of their own, and
//! the defaults every other bucket uses.
//! Emits: [`PeerMsg::Bucket`] sends (to every member on a change, to a peer
//! that came back); the router spreads a change by gossip too.
//!
//! A change is accepted by any node ([`crate::Node::set_bucket`]), validated
//! against the cluster size, stamped with that node's hybrid logical clock,
//! spread by gossip as cluster metadata and also sent straight to every
//! member. Each node keeps, per bucket, the entry that
//! [supersedes](BucketEntry::supersedes) all others it has seen (highest
//! stamp, then origin), so every delivery order ends in the same properties.
//! Entries are stored, so a restarted node keeps them, and sent again to a
//! peer whenever it comes back, so a node that was down when a change was
//! made catches up.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::NodeId;
use ringkv_core::bucket::{BucketEntry, BucketError, BucketPatch, BucketProps, Consistency};
use ringkv_core::msg::PeerMsg;
use ringkv_storage::Store;
use tracing::{debug, warn};

use crate::Output;
use crate::ctx::{Ctx, MAX_DRIFT_MS};

/// Metadata key prefix of a bucket's entry (the bucket name follows).
pub(crate) const META_BUCKET: &[u8] = b"bucket/";

/// The properties of every bucket, as this node knows them.
pub struct Buckets {
    /// Properties of the buckets that have their own, by bucket name.
    entries: BTreeMap<Bytes, BucketEntry>,
    /// Properties of every other bucket, from the config.
    defaults: BucketProps,
}

impl Buckets {
    /// The buckets machine with `defaults`, and the entries found in `store`
    /// (none, with a warning, when the store cannot list them: peers resend
    /// them when they next see this node).
    pub(crate) fn load<S: Store>(defaults: BucketProps, store: &S) -> Self {
        let entries = match store.metas() {
            Ok(m) => load_entries(m)
                .into_iter()
                .map(|e| (Bytes::from(e.bucket.clone()), e))
                .collect(),
            Err(e) => {
                warn!(error = %e, "could not load bucket properties; peers will resend them");
                BTreeMap::new()
            }
        };
        Buckets { entries, defaults }
    }

    /// The properties in force for `bucket`: the ones set for it, or the
    /// defaults.
    pub fn props(&self, bucket: &[u8]) -> BucketProps {
        self.entries
            .get(bucket)
            .map(|e| e.props.clone())
            .unwrap_or_else(|| self.defaults.clone())
    }

    /// The defaults every bucket without properties of its own uses.
    pub fn defaults(&self) -> &BucketProps {
        &self.defaults
    }

    /// Every bucket whose properties were set, with its entry.
    pub fn entries(&self) -> impl Iterator<Item = &BucketEntry> {
        self.entries.values()
    }

    /// Applies `patch` to `bucket`'s properties and adopts the result.
    /// Returns the new entry for the router to spread. Invalid properties,
    /// a change the properties in force would supersede (they were stamped
    /// ahead of this node's clock), and a new bucket past `buckets_max` are
    /// refused and change nothing.
    pub(crate) fn set<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        bucket: Bytes,
        patch: &BucketPatch,
    ) -> Result<BucketEntry, BucketError> {
        self.check_room(ctx, &bucket)?;
        let props = self.props(&bucket).apply(patch, ctx.layout.members.len())?;
        self.check_consistency(ctx, &bucket, &props)?;
        let entry = BucketEntry {
            bucket: bucket.to_vec(),
            props,
            stamp: ctx.clock.now(ctx.now_ms),
            origin: ctx.cfg.id.clone(),
        };
        if let Some(have) = self.entries.get(&bucket)
            && !entry.supersedes(have)
        {
            return Err(BucketError::Superseded {
                origin: have.origin.to_string(),
                have: have.stamp,
                mine: entry.stamp,
            });
        }
        self.adopt(ctx, entry.clone());
        Ok(entry)
    }

    /// Refuses a change of consistency of a bucket that exists (has
    /// properties of its own, or keys on this node), and a strong bucket
    /// whose `n` is not the cluster's (its consensus group's voters).
    ///
    /// Known limit: only this node's keys are looked at, and the scan reads
    /// every partition it holds; bucket creation is rare. Committing bucket
    /// creation through the cluster manager will make this cluster-wide.
    fn check_consistency<S: Store>(
        &self,
        ctx: &Ctx<'_, S>,
        bucket: &[u8],
        next: &BucketProps,
    ) -> Result<(), BucketError> {
        let have = self.props(bucket).consistency;
        if next.consistency == Consistency::Strong {
            let cluster_n = ctx.cfg.n.min(ctx.layout.members.len());
            if next.n != cluster_n {
                return Err(BucketError::StrongN {
                    n: next.n,
                    cluster_n,
                });
            }
        }
        if next.consistency == have {
            return Ok(());
        }
        let fixed = || BucketError::ConsistencyFixed {
            bucket: String::from_utf8_lossy(bucket).into_owned(),
            have,
        };
        if self.entries.contains_key(bucket) {
            return Err(fixed());
        }
        for p in 0..ctx.layout.ring_size {
            let keys = ctx.store.scan_partition(p).unwrap_or_default();
            if keys.iter().any(|(k, _)| k.bucket.as_ref() == bucket) {
                return Err(fixed());
            }
        }
        Ok(())
    }

    /// Refuses to give one more bucket properties past `buckets_max`.
    fn check_room<S>(&self, ctx: &Ctx<'_, S>, bucket: &[u8]) -> Result<(), BucketError> {
        let max = ctx.cfg.buckets_max;
        if !self.entries.contains_key(bucket) && self.entries.len() >= max {
            return Err(BucketError::TooManyBuckets { max });
        }
        Ok(())
    }

    /// Sends a changed `entry` straight to every other member: faster than
    /// gossip, and together with `send_to` it catches up nodes that were
    /// away, which gossip's bounded retransmission may miss.
    pub(crate) fn send_to_members<S>(&self, ctx: &mut Ctx<'_, S>, entry: &BucketEntry) {
        for m in ctx.layout.members.iter().filter(|m| m.id != ctx.cfg.id) {
            ctx.out.push(Output::Send {
                to: m.id.clone(),
                msg: PeerMsg::Bucket {
                    entry: entry.clone(),
                },
            });
        }
    }

    /// An entry from a peer: adopted when it supersedes ours. Refused
    /// (counted, logged at debug, nothing changes, the clock does not move) when it
    /// is stamped further ahead of our clock than [`MAX_DRIFT_MS`] (it would
    /// pin the bucket's properties until our clock caught up), names no
    /// bucket or one over the length limit, holds invalid properties, or
    /// would be one bucket too many.
    pub(crate) fn on_entry<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, entry: BucketEntry) {
        if let Err(why) = self.check_entry(ctx, &entry) {
            ctx.stats.buckets_refused += 1;
            // At debug: gossip delivers an entry again and again, and the
            // counter is what operators watch.
            debug!(bucket = ?String::from_utf8_lossy(&entry.bucket), origin = %entry.origin, %why, "bucket properties from a peer refused");
            return;
        }
        ctx.clock.observe(entry.stamp, ctx.now_ms);
        self.adopt(ctx, entry);
    }

    /// Why a peer's entry is refused, if it is.
    fn check_entry<S>(&self, ctx: &Ctx<'_, S>, entry: &BucketEntry) -> Result<(), String> {
        if ctx.clock.beyond_drift(entry.stamp, ctx.now_ms) {
            return Err(format!(
                "stamped {}, more than {MAX_DRIFT_MS} ms ahead of this node's clock",
                entry.stamp
            ));
        }
        let len = entry.bucket.len();
        if len == 0 || len > ctx.cfg.limits.bucket_bytes_max {
            return Err(format!("a bucket name of {len} bytes"));
        }
        entry
            .props
            .validate(ctx.layout.members.len())
            .map_err(|e| e.to_string())?;
        self.check_room(ctx, &entry.bucket)
            .map_err(|e| e.to_string())
    }

    /// Cluster metadata that arrived by gossip, if it is a bucket entry.
    pub(crate) fn on_metadata<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, key: &[u8], data: &[u8]) {
        if !key.starts_with(META_BUCKET) {
            return;
        }
        match postcard::from_bytes(data) {
            Ok(entry) => self.on_entry(ctx, entry),
            Err(e) => {
                ctx.stats.gossip_errors += 1;
                debug!(error = %e, "gossiped bucket properties do not decode");
            }
        }
    }

    /// Sends every bucket entry to `peer` (it just came back).
    pub(crate) fn send_to<S>(&self, ctx: &mut Ctx<'_, S>, peer: &NodeId) {
        for entry in self.entries.values() {
            ctx.out.push(Output::Send {
                to: peer.clone(),
                msg: PeerMsg::Bucket {
                    entry: entry.clone(),
                },
            });
        }
    }

    fn adopt<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, entry: BucketEntry) {
        if let Some(have) = self.entries.get(entry.bucket.as_slice())
            && !entry.supersedes(have)
        {
            return;
        }
        let before = self.props(&entry.bucket);
        if (before.n, before.consistency) != (entry.props.n, entry.props.consistency) {
            // The bucket's keys belong to other trees now: rebuild them.
            ctx.trees.clear();
        }
        let (key, value) = encode_entry(&entry);
        if let Err(e) = ctx.store.put_meta(&key, &value) {
            ctx.stats.store_errors += 1;
            warn!(error = %e, "could not store bucket properties; they hold until restart");
        }
        self.entries
            .insert(Bytes::from(entry.bucket.clone()), entry);
    }
}

/// The metadata key and value of `entry`, as stored and gossiped.
pub(crate) fn encode_entry(entry: &BucketEntry) -> (Vec<u8>, Vec<u8>) {
    let mut key = META_BUCKET.to_vec();
    key.extend_from_slice(&entry.bucket);
    let value = postcard::to_stdvec(entry).expect("bucket entry encoding cannot fail");
    (key, value)
}

/// Bucket entries found in the store's metadata (damaged ones are skipped
/// with a warning: the cluster sends them again).
fn load_entries(metas: Vec<ringkv_storage::Meta>) -> Vec<BucketEntry> {
    metas
        .into_iter()
        .filter(|(k, _)| k.starts_with(META_BUCKET))
        .filter_map(|(_, v)| match postcard::from_bytes::<BucketEntry>(&v) {
            Ok(e) => Some(e),
            Err(e) => {
                warn!(error = %e, "stored bucket properties do not decode; skipped");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use ringkv_core::bucket::{BucketEntry, BucketError, BucketPatch, BucketProps};
    use ringkv_core::msg::PeerMsg;
    use ringkv_core::params::QuorumParam;
    use ringkv_core::{Hlc, NodeId};
    use ringkv_storage::Store;

    use super::{Buckets, encode_entry};
    use crate::Output;
    use crate::testing::{Fixture, id};

    /// An entry for `bucket` from `origin`, stamped `wall_ms`, with the
    /// fixture's defaults but `r`.
    fn entry(bucket: &str, wall_ms: u64, origin: &str, r: usize) -> BucketEntry {
        BucketEntry {
            bucket: bucket.as_bytes().to_vec(),
            props: BucketProps { r, ..defaults() },
            stamp: Hlc::from_parts(wall_ms, 0),
            origin: id(origin),
        }
    }

    fn defaults() -> BucketProps {
        BucketProps::defaults(3, 2, 2, 3)
    }

    fn send(to: &NodeId, entry: &BucketEntry) -> Output {
        Output::Send {
            to: to.clone(),
            msg: PeerMsg::Bucket {
                entry: entry.clone(),
            },
        }
    }

    fn set(
        fx: &mut Fixture,
        bucket: &'static str,
        patch: BucketPatch,
    ) -> Result<BucketEntry, BucketError> {
        fx.run_buckets(|ctx, b| b.set(ctx, Bytes::from_static(bucket.as_bytes()), &patch))
    }

    fn entries(b: &Buckets) -> Vec<BucketEntry> {
        b.entries().cloned().collect()
    }

    #[test]
    fn set_refuses_properties_invalid_for_the_cluster_size_and_changes_nothing() {
        let mut fx = Fixture::new("n1");
        let patch = BucketPatch {
            n: Some(4),
            ..Default::default()
        };

        let err = set(&mut fx, "b", patch).unwrap_err();

        assert_eq!(err, BucketError::NOutOfRange { n: 4, members: 3 });
        assert_eq!(entries(&fx.buckets), vec![]);
        assert_eq!(fx.buckets.props(b"b"), defaults());
        assert_eq!(fx.store.metas().unwrap(), vec![]);
        assert_eq!(fx.take_out(), vec![]);
    }

    #[test]
    fn set_adopts_a_stamped_entry_and_stores_it() {
        let mut fx = Fixture::new("n1");
        fx.now_ms = 1_234;
        let patch = BucketPatch {
            r: Some(QuorumParam::Count(1)),
            ..Default::default()
        };

        let e = set(&mut fx, "b", patch).unwrap();

        assert_eq!(e.bucket, b"b");
        assert_eq!(e.props, BucketProps { r: 1, ..defaults() });
        assert_eq!((e.origin.clone(), e.stamp.wall_ms()), (id("n1"), 1_234));
        assert_eq!(fx.buckets.props(b"b"), e.props);
        assert_eq!(fx.buckets.props(b"other"), defaults());
        assert_eq!(fx.store.metas().unwrap(), vec![encode_entry(&e)]);
        assert_eq!(fx.take_out(), vec![], "the router spreads it");
    }

    #[test]
    fn a_later_set_stamps_above_the_entry_it_replaces() {
        let mut fx = Fixture::new("n1");
        let seen = entry("b", 5_000, "n2", 1);
        fx.run_buckets(|ctx, b| b.on_entry(ctx, seen.clone()));
        let patch = BucketPatch {
            w: Some(QuorumParam::Count(1)),
            ..Default::default()
        };

        let e = set(&mut fx, "b", patch).unwrap();

        assert!(e.supersedes(&seen), "{e:?} over {seen:?}");
        assert_eq!(
            e.props,
            BucketProps {
                r: 1,
                w: 1,
                ..defaults()
            }
        );
    }

    #[test]
    fn an_entry_with_a_higher_stamp_supersedes_and_a_lower_one_does_not() {
        let mut fx = Fixture::new("n1");
        let (mid, low, high) = (
            entry("b", 100, "n2", 1),
            entry("b", 50, "n3", 3),
            entry("b", 200, "n2", 2),
        );

        fx.run_buckets(|ctx, b| b.on_entry(ctx, mid.clone()));
        assert_eq!(entries(&fx.buckets), vec![mid.clone()]);

        fx.run_buckets(|ctx, b| b.on_entry(ctx, low.clone()));
        assert_eq!(entries(&fx.buckets), vec![mid.clone()]);
        assert_eq!(fx.store.metas().unwrap(), vec![encode_entry(&mid)]);

        fx.run_buckets(|ctx, b| b.on_entry(ctx, high.clone()));
        assert_eq!(entries(&fx.buckets), vec![high.clone()]);
        assert_eq!(fx.buckets.props(b"b").r, 2);
        assert_eq!(fx.store.metas().unwrap(), vec![encode_entry(&high)]);
        assert_eq!(fx.take_out(), vec![]);
    }

    #[test]
    fn an_invalid_entry_from_a_peer_is_ignored() {
        let mut fx = Fixture::new("n1");
        let mut bad = entry("b", 100, "n2", 1);
        bad.props.n = 5;

        fx.run_buckets(|ctx, b| b.on_entry(ctx, bad));

        assert_eq!(entries(&fx.buckets), vec![]);
        assert_eq!(fx.store.metas().unwrap(), vec![]);
    }

    #[test]
    fn entries_persist_in_the_store_and_reload() {
        let mut fx = Fixture::new("n1");
        let patch = BucketPatch {
            r: Some(QuorumParam::Count(1)),
            ..Default::default()
        };
        set(&mut fx, "a", patch).unwrap();
        fx.run_buckets(|ctx, b| b.on_entry(ctx, entry("b", 100, "n2", 3)));
        // Damaged or foreign metadata is skipped.
        fx.store.put_meta(b"bucket/c", b"garbage").unwrap();
        fx.store.put_meta(b"other/x", b"whatever").unwrap();

        let reloaded = Buckets::load(defaults(), &fx.store);

        assert_eq!(entries(&reloaded), entries(&fx.buckets));
        assert_eq!(entries(&reloaded).len(), 2);
        assert_eq!(reloaded.props(b"b").r, 3);
        assert_eq!(reloaded.defaults(), &defaults());
    }

    #[test]
    fn send_to_sends_every_entry_to_the_peer() {
        let mut fx = Fixture::new("n1");
        let (a, b) = (entry("a", 100, "n2", 1), entry("b", 100, "n3", 3));
        fx.run_buckets(|ctx, bk| {
            bk.on_entry(ctx, a.clone());
            bk.on_entry(ctx, b.clone());
        });

        fx.run_buckets(|ctx, bk| bk.send_to(ctx, &id("n3")));

        assert_eq!(
            fx.take_out(),
            vec![send(&id("n3"), &a), send(&id("n3"), &b)]
        );
    }

    #[test]
    fn send_to_members_sends_the_entry_to_every_other_member() {
        let mut fx = Fixture::new("n2");
        let e = entry("a", 100, "n2", 1);

        fx.run_buckets(|ctx, b| b.send_to_members(ctx, &e));

        assert_eq!(
            fx.take_out(),
            vec![send(&id("n1"), &e), send(&id("n3"), &e)]
        );
    }

    #[test]
    fn gossiped_metadata_is_adopted_when_it_is_a_bucket_entry() {
        let mut fx = Fixture::new("n1");
        let e = entry("a", 100, "n2", 1);
        let (key, data) = encode_entry(&e);

        fx.run_buckets(|ctx, b| {
            b.on_metadata(ctx, b"layout/1", &data);
            b.on_metadata(ctx, &key, b"garbage");
        });
        assert_eq!(entries(&fx.buckets), vec![]);
        assert_eq!(fx.stats.gossip_errors, 1);

        fx.run_buckets(|ctx, b| b.on_metadata(ctx, &key, &data));
        assert_eq!(entries(&fx.buckets), vec![e]);
    }

    #[test]
    fn an_entry_stamped_beyond_the_drift_bound_is_refused() {
        let mut fx = Fixture::new("n1");
        fx.now_ms = 1_000;
        let limit = 1_000 + crate::MAX_DRIFT_MS;
        let (ahead, within) = (entry("a", limit + 1, "n2", 1), entry("b", limit, "n2", 1));

        fx.run_buckets(|ctx, b| {
            b.on_entry(ctx, ahead.clone());
            b.on_entry(ctx, within.clone());
        });

        assert_eq!(entries(&fx.buckets), vec![within]);
        assert_eq!(fx.stats.buckets_refused, 1);
        // The refused stamp did not move the clock: a set now stamps below it.
        let e = set(&mut fx, "c", BucketPatch::default()).unwrap();
        assert!(e.stamp < ahead.stamp, "{} vs {}", e.stamp, ahead.stamp);
    }

    #[test]
    fn a_peer_entry_with_a_bad_bucket_name_is_refused() {
        let mut fx = Fixture::new("n1");
        let long = "b".repeat(256);
        fx.run_buckets(|ctx, b| {
            b.on_entry(ctx, entry("", 100, "n2", 1));
            b.on_entry(ctx, entry(&long, 100, "n2", 1));
        });
        assert_eq!(entries(&fx.buckets), vec![]);
        assert_eq!(fx.stats.buckets_refused, 2);
    }

    #[test]
    fn a_set_the_stamp_rule_refuses_is_an_error_and_changes_nothing() {
        let mut fx = Fixture::new("n1");
        // Stored before a restart by a node whose clock was far ahead.
        let ahead = entry("b", 10_000_000, "n2", 1);
        let (key, value) = encode_entry(&ahead);
        fx.store.put_meta(&key, &value).unwrap();
        fx.buckets = Buckets::load(defaults(), &fx.store);
        let patch = BucketPatch {
            r: Some(QuorumParam::Count(3)),
            ..Default::default()
        };

        let err = set(&mut fx, "b", patch).unwrap_err();

        assert!(
            matches!(&err, BucketError::Superseded { origin, have, .. } if origin == "n2" && *have == ahead.stamp),
            "{err:?}"
        );
        assert!(err.to_string().contains("not applied"), "{err}");
        assert_eq!(entries(&fx.buckets), vec![ahead.clone()]);
        assert_eq!(fx.store.metas().unwrap(), vec![encode_entry(&ahead)]);
        assert_eq!(fx.take_out(), vec![]);
    }

    #[test]
    fn buckets_past_buckets_max_are_refused_from_clients_and_peers() {
        let mut fx = Fixture::with("n1", |c| c.buckets_max = 1);
        let r1 = || BucketPatch {
            r: Some(QuorumParam::Count(1)),
            ..Default::default()
        };
        set(&mut fx, "a", r1()).unwrap();

        let err = set(&mut fx, "b", r1()).unwrap_err();
        assert_eq!(err, BucketError::TooManyBuckets { max: 1 });
        fx.run_buckets(|ctx, b| b.on_entry(ctx, entry("c", 100, "n2", 1)));

        assert_eq!(fx.buckets.entries().count(), 1);
        assert_eq!(fx.buckets.props(b"b"), defaults());
        assert_eq!(fx.store.metas().unwrap().len(), 1);
        assert_eq!(fx.stats.buckets_refused, 1);
        // A bucket that has properties already may still change.
        let patch = BucketPatch {
            w: Some(QuorumParam::Count(1)),
            ..Default::default()
        };
        assert_eq!(set(&mut fx, "a", patch).unwrap().props.w, 1);
    }
}
