//! Bucket properties: n, r, w, pr, pw, conflict mode and sibling limits per
//! bucket, as cluster metadata every node converges on.
//!
//! A change is accepted by any node ([`Node::set_bucket`]), validated against
//! the cluster size, stamped with that node's hybrid logical clock, spread by
//! gossip as cluster metadata and also sent straight to every member. Each node keeps, per bucket, the entry that
//! [supersedes](BucketEntry::supersedes) all others it has seen (highest
//! stamp, then origin), so every delivery order ends in the same properties.
//! Entries are stored, so a restarted node keeps them, and sent again to a
//! peer whenever it comes back, so a node that was down when a change was made
//! catches up.

use bytes::Bytes;
use ringkv_core::NodeId;
use ringkv_core::bucket::{BucketEntry, BucketError, BucketPatch, BucketProps};
use ringkv_core::msg::PeerMsg;
use ringkv_storage::Store;
use tracing::warn;

use crate::{Node, Output};

/// Metadata key prefix of a bucket's entry (the bucket name follows).
pub(crate) const META_BUCKET: &[u8] = b"bucket/";

impl<S: Store> Node<S> {
    /// The properties in force for `bucket`: the ones set for it, or the
    /// node's defaults.
    pub fn bucket_props(&self, bucket: &[u8]) -> BucketProps {
        self.buckets
            .get(bucket)
            .map(|e| e.props.clone())
            .unwrap_or_else(|| self.default_props.clone())
    }

    /// The defaults every bucket without properties of its own uses.
    pub fn default_props(&self) -> &BucketProps {
        &self.default_props
    }

    /// Every bucket whose properties were set, with its entry.
    pub fn buckets(&self) -> impl Iterator<Item = &BucketEntry> {
        self.buckets.values()
    }

    /// Applies `patch` to `bucket`'s properties and spreads the result to
    /// every member. Invalid properties are refused and change nothing.
    pub fn set_bucket(
        &mut self,
        now_ms: u64,
        bucket: Bytes,
        patch: &BucketPatch,
        out: &mut Vec<Output>,
    ) -> Result<BucketProps, BucketError> {
        let props = self
            .bucket_props(&bucket)
            .apply(patch, self.layout.members.len())?;
        let entry = BucketEntry {
            bucket: bucket.to_vec(),
            props: props.clone(),
            stamp: self.hlc_now(now_ms),
            origin: self.cfg.id.clone(),
        };
        self.adopt_bucket(entry.clone());
        // Gossip carries it to every member, also those outside the layout;
        // direct sends make it fast (and `send_buckets` catches up nodes
        // that were away, which gossip's bounded retransmission may miss).
        let mut key = META_BUCKET.to_vec();
        key.extend_from_slice(&entry.bucket);
        let data = postcard::to_stdvec(&entry).expect("bucket entry encoding cannot fail");
        self.gossip_broadcast(now_ms, &key, entry.stamp.to_u64(), data, out);
        let peers: Vec<NodeId> = self
            .layout
            .members
            .iter()
            .map(|m| m.id.clone())
            .filter(|id| *id != self.cfg.id)
            .collect();
        for to in peers {
            out.push(Output::Send {
                to,
                msg: PeerMsg::Bucket {
                    entry: entry.clone(),
                },
            });
        }
        Ok(props)
    }

    /// An entry from a peer: adopted when it supersedes ours.
    pub(crate) fn on_bucket_entry(&mut self, now_ms: u64, entry: BucketEntry) {
        let wall = self.wall_ms.unwrap_or(now_ms);
        self.hlc.observe(entry.stamp, wall, MAX_DRIFT_MS);
        if entry.props.validate(self.layout.members.len()).is_err() {
            warn!(bucket = ?String::from_utf8_lossy(&entry.bucket), "peer sent invalid bucket properties; ignored");
            return;
        }
        self.adopt_bucket(entry);
    }

    /// Sends every bucket entry to `peer` (it just came back).
    pub(crate) fn send_buckets(&self, peer: &NodeId, out: &mut Vec<Output>) {
        for entry in self.buckets.values() {
            out.push(Output::Send {
                to: peer.clone(),
                msg: PeerMsg::Bucket {
                    entry: entry.clone(),
                },
            });
        }
    }

    fn adopt_bucket(&mut self, entry: BucketEntry) {
        if let Some(have) = self.buckets.get(entry.bucket.as_slice())
            && !entry.supersedes(have)
        {
            return;
        }
        let mut key = META_BUCKET.to_vec();
        key.extend_from_slice(&entry.bucket);
        let value = postcard::to_stdvec(&entry).expect("bucket entry encoding cannot fail");
        if let Err(e) = self.store.put_meta(&key, &value) {
            self.stats.store_errors += 1;
            warn!(error = %e, "could not store bucket properties; they hold until restart");
        }
        self.buckets
            .insert(Bytes::from(entry.bucket.clone()), entry);
    }

    /// A new HLC stamp for a local event.
    pub(crate) fn hlc_now(&mut self, now_ms: u64) -> ringkv_core::Hlc {
        let wall = self.wall_ms.unwrap_or(now_ms);
        self.hlc.now(wall)
    }
}

/// How far ahead of our wall clock a peer's stamp may be before it is
/// clamped (see [`ringkv_core::HlcClock::observe`]).
pub const MAX_DRIFT_MS: u64 = 60_000;

/// Bucket entries found in the store's metadata (damaged ones are skipped
/// with a warning: the cluster sends them again).
pub(crate) fn load_buckets(metas: Vec<ringkv_storage::Meta>) -> Vec<BucketEntry> {
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
