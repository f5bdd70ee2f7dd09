//! What a replica does with a coordinator's messages: merge incoming states
//! into its own and answer reads with what it has.

use ringkv_core::hash::BucketKey;
use ringkv_core::msg::PeerMsg;
use ringkv_core::sloppy::Hint;
use ringkv_core::{NodeId, Object};
use ringkv_storage::Store;
use tracing::warn;

use crate::{Node, Output};

impl<S: Store> Node<S> {
    /// Merges `incoming` into the stored state of `key`; returns whether the
    /// result is stored.
    pub(crate) fn merge_local(&mut self, key: &BucketKey, incoming: &Object) -> bool {
        let partition = key.partition(self.layout.ring_size);
        let local = match self.store.get(partition, key) {
            Ok(o) => o.unwrap_or_default(),
            Err(e) => {
                self.stats.store_errors += 1;
                warn!(error = %e, "replica read failed");
                return false;
            }
        };
        let conflict = self.bucket_props(&key.bucket).conflict;
        if let Some(ts) = incoming.siblings.iter().map(|s| s.timestamp_ms).max() {
            let wall = self.wall_ms.unwrap_or(0).max(self.hlc.last().wall_ms());
            self.hlc.observe(
                ringkv_core::Hlc::from_u64(ts),
                wall,
                crate::buckets::MAX_DRIFT_MS,
            );
        }
        let merged = crate::coordinator::resolve_for(conflict, local.merge(incoming));
        if merged == local {
            return true;
        }
        match self.store.put(partition, key, &merged) {
            Ok(()) => true,
            Err(e) => {
                self.stats.store_errors += 1;
                warn!(error = %e, "replica write failed");
                false
            }
        }
    }

    pub(crate) fn replica_put(
        &mut self,
        from: NodeId,
        req_id: u64,
        key: BucketKey,
        object: Object,
        stands_in_for: Option<NodeId>,
        out: &mut Vec<Output>,
    ) {
        self.stats.replica_puts += 1;
        let ok = match stands_in_for {
            None => self.merge_local(&key, &object),
            Some(primary) => {
                // A fallback: refuse before storing anything when the hints
                // are full, so the coordinator counts no ack from us.
                if self.can_hint(&primary, &key) {
                    let partition = key.partition(self.layout.ring_size);
                    self.merge_local(&key, &object)
                        && self.add_hint(Hint {
                            primary,
                            partition,
                            key: key.clone(),
                        })
                } else {
                    self.stats.hints_refused += 1;
                    false
                }
            }
        };
        if req_id != 0 {
            out.push(Output::Send {
                to: from,
                msg: PeerMsg::ReplicaPutAck { req_id, ok },
            });
        }
    }

    pub(crate) fn replica_get(
        &mut self,
        from: NodeId,
        req_id: u64,
        key: BucketKey,
        out: &mut Vec<Output>,
    ) {
        let partition = key.partition(self.layout.ring_size);
        let object = match self.store.get(partition, &key) {
            Ok(o) => Some(o.unwrap_or_default()),
            Err(e) => {
                self.stats.store_errors += 1;
                warn!(error = %e, "replica read failed");
                None
            }
        };
        out.push(Output::Send {
            to: from,
            msg: PeerMsg::ReplicaGetReply { req_id, object },
        });
    }
}
