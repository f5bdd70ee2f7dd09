//! Key listing: this node coordinating a page of a bucket's keys, and
//! answering other coordinators as a replica.
//!
//! Owns: the listings this node coordinates, by request id.
//! Emits: [`PeerMsg::List`] to the live primaries of every partition, a
//! deadline ([`Timer::List`]), [`PeerMsg::ListReply`] as a replica, and the
//! client's page ([`ClientReply::Keys`]) or error.
//!
//! A listing asks, for each partition, every live primary of the bucket's
//! keys (fallbacks hold only the writes they stand in for, so they are not
//! asked) for up to [`per_partition_limit`] keys, and answers once every partition has R replies: the merge of
//! them all ([`ringkv_core::list::merge_pages`]), keys whose merged state is
//! deleted dropped. A partition with fewer than R replies by the deadline,
//! or fewer than R primaries that may still answer, fails the listing with
//! [`ClientError::PartitionsUnavailable`], naming those partitions.
//!
//! What a listing promises under concurrent writes: with R + W > N and no
//! sloppy quorum (the writes' acks came from primaries), every key whose
//! write was acknowledged before the listing started, and that was not
//! deleted since, is listed (the R replies of its partition overlap the W
//! that acked it). A key written or deleted while the listing (or the
//! paging through it) runs may be listed or not; a key deleted with an
//! acknowledged delete before the listing started is not listed unless a
//! concurrent write revived it. Pages are not a snapshot: each is merged
//! from the replicas' state when it is asked for. Listings of strong
//! buckets are refused: merged replica state is not linearizable.
//!
//! Every question from a peer is checked (partition in range, bucket and
//! key sizes, `limit`, this node a primary of the partition for the bucket)
//! and every reply (sender asked, page bounded, keys sorted, wanted and in
//! the partition, states within the peer limits); what fails is refused,
//! counted in `peer_refused`, and changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use ringkv_core::bucket::ConflictMode;
use ringkv_core::list::{
    ListEntry, ListQuery, REPLY_BYTES_MAX, ReplicaPage, check_page, check_query, entry_bytes,
    merge_pages, per_partition_limit, shape,
};
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest, PeerMsg};
use ringkv_core::request::{self, check_object};
use ringkv_core::{NodeId, PartitionId, key_hash, partition_of};
use ringkv_storage::Store;
use tracing::{debug, warn};

use crate::ctx::{Ctx, View};
use crate::{ClientId, Output, Timer};

/// One partition's part of a listing.
#[derive(Debug, Default)]
struct Part {
    /// The primaries asked, each until it answers.
    waiting: BTreeSet<NodeId>,
    /// The pages received.
    pages: Vec<ReplicaPage>,
}

/// A listing in flight.
#[derive(Debug)]
struct Listing {
    client_id: ClientId,
    bucket: Bytes,
    /// The client's query.
    query: ListQuery,
    /// What each replica is asked: the query with
    /// [`per_partition_limit`] keys.
    ask: ListQuery,
    conflict: ConflictMode,
    /// Replies needed from each partition.
    need: usize,
    parts: BTreeMap<PartitionId, Part>,
}

impl Listing {
    /// Partitions short of `need` replies, with how many they have.
    fn short(&self) -> Vec<(u32, usize)> {
        self.parts
            .iter()
            .filter(|(_, p)| p.pages.len() < self.need)
            .map(|(&i, p)| (i, p.pages.len()))
            .collect()
    }

    /// Partitions that can no longer reach `need` replies.
    fn hopeless(&self) -> Vec<(u32, usize)> {
        self.parts
            .iter()
            .filter(|(_, p)| p.pages.len() + p.waiting.len() < self.need)
            .map(|(&i, p)| (i, p.pages.len()))
            .collect()
    }
}

/// The listings this node coordinates.
#[derive(Debug, Default)]
pub struct Lister {
    pending: BTreeMap<u64, Listing>,
}

impl Lister {
    /// Listings in flight.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A client asks for a page of `req.key.bucket`'s keys
    /// ([`ClientOp::List`]).
    pub(crate) fn on_client<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        client_id: ClientId,
        req: ClientRequest,
    ) {
        let (listing, timeout_ms) = match admit(ctx, view, client_id, &req) {
            Ok(l) => l,
            Err(e) => {
                ctx.stats.rejected += 1;
                let reply = ClientReply::Error(e);
                return ctx.out.push(Output::Reply { client_id, reply });
            }
        };
        if self.pending.len() >= ctx.cfg.pending_max {
            ctx.stats.overloaded += 1;
            let e = ClientError::Overloaded(format!(
                "{} listings are in flight on this node (--pending-max); retry later",
                self.pending.len()
            ));
            let reply = ClientReply::Error(e);
            return ctx.out.push(Output::Reply { client_id, reply });
        }
        ctx.stats.lists_coordinated += 1;
        let req_id = ctx.ids.next();
        let mut listing = listing;
        for (&partition, part) in &mut listing.parts {
            for node in &part.waiting {
                if node != ctx.me() {
                    ctx.out.push(Output::Send {
                        to: node.clone(),
                        msg: PeerMsg::List {
                            req_id,
                            partition,
                            bucket: listing.bucket.clone(),
                            query: listing.ask.clone(),
                        },
                    });
                }
            }
            if part.waiting.remove(ctx.me()) {
                // A failed local read counts as a failed reply.
                if let Some(page) = local_page(ctx, partition, &listing.bucket, &listing.ask) {
                    part.pages.push(page);
                }
            }
        }
        self.pending.insert(req_id, listing);
        ctx.out.push(Output::SetTimer {
            id: Timer::List(req_id),
            at_ms: ctx.now_ms + timeout_ms,
        });
        self.progress(ctx, req_id);
    }

    /// A replica's answer for one partition of listing `req_id`.
    pub(crate) fn on_reply<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: NodeId,
        req_id: u64,
        partition: u32,
        page: Option<ReplicaPage>,
    ) {
        let Some(l) = self.pending.get_mut(&req_id) else {
            return; // late reply for a finished listing
        };
        let Some(part) = l.parts.get_mut(&partition) else {
            ctx.stats.peer_refused += 1;
            debug!(peer = %from, partition, "list reply for a partition not asked; refused");
            return;
        };
        if !part.waiting.remove(&from) {
            ctx.stats.peer_refused += 1;
            debug!(peer = %from, partition, "list reply from a node not asked; refused");
            return;
        }
        let page = page.filter(
            |page| match check_reply(ctx, &l.bucket, &l.ask, partition, page) {
                Ok(()) => true,
                Err(why) => {
                    ctx.stats.peer_refused += 1;
                    debug!(peer = %from, partition, why, "list reply refused");
                    false
                }
            },
        );
        if let Some(page) = page {
            part.pages.push(page);
        }
        self.progress(ctx, req_id);
    }

    /// The deadline of listing `req_id` passed.
    pub(crate) fn on_deadline<S>(&mut self, ctx: &mut Ctx<'_, S>, req_id: u64) {
        let Some(l) = self.pending.remove(&req_id) else {
            return;
        };
        let short = l.short();
        debug_assert!(!short.is_empty(), "a listing with every reply ends at once");
        fail(ctx, &l, short);
    }

    /// Answers listing `req_id` once every partition has R replies, or as
    /// soon as one never can.
    fn progress<S>(&mut self, ctx: &mut Ctx<'_, S>, req_id: u64) {
        let Some(l) = self.pending.get(&req_id) else {
            return;
        };
        let hopeless = l.hopeless();
        if !hopeless.is_empty() {
            let l = self.pending.remove(&req_id).expect("just seen");
            return fail(ctx, &l, hopeless);
        }
        if !l.short().is_empty() {
            return;
        }
        let l = self.pending.remove(&req_id).expect("just seen");
        let pages = l.parts.values().flat_map(|p| &p.pages);
        let page = merge_pages(pages, l.conflict, l.query.limit);
        ctx.out.push(Output::Reply {
            client_id: l.client_id,
            reply: ClientReply::Keys(page),
        });
    }

    /// A coordinator asks for this node's keys of `bucket` in `partition`.
    /// Answered with a page, or with `None` when the question is refused or
    /// the store failed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_list<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        from: NodeId,
        req_id: u64,
        partition: u32,
        bucket: Bytes,
        query: ListQuery,
    ) {
        let page = match check_question(ctx, view, partition, &bucket, &query) {
            Ok(()) => local_page(ctx, partition, &bucket, &query),
            Err(why) => {
                ctx.stats.peer_refused += 1;
                debug!(peer = %from, partition, why, "list question refused");
                None
            }
        };
        ctx.out.push(Output::Send {
            to: from,
            msg: PeerMsg::ListReply {
                req_id,
                partition,
                page,
            },
        });
    }
}

/// Checks a listing request and plans it: which primaries of each
/// partition to ask, and the timeout.
fn admit<S>(
    ctx: &Ctx<'_, S>,
    view: View<'_>,
    client_id: ClientId,
    req: &ClientRequest,
) -> Result<(Listing, u64), ClientError> {
    let ClientOp::List(query) = &req.op else {
        unreachable!("the router hands only listings here");
    };
    let limits = &ctx.cfg.limits;
    check_bucket(&req.key.bucket, limits.bucket_bytes_max).map_err(ClientError::BadRequest)?;
    check_query(query, limits)?;
    let timeout_ms = req.timeout_ms.unwrap_or(ctx.cfg.timeout_ms);
    if timeout_ms == 0 || timeout_ms > request::TIMEOUT_MS_MAX {
        return Err(ClientError::BadRequest(format!(
            "timeout_ms={timeout_ms} is out of range: use 1 to {}",
            request::TIMEOUT_MS_MAX
        )));
    }
    if view.is_strong(&req.key.bucket) {
        return Err(ClientError::BadRequest(request::LIST_STRONG.into()));
    }
    let props = view.props(&req.key.bucket);
    let need = request::resolve_need(&props, &req.op)?.all.max(1);
    let parts = (0..ctx.layout.ring_size)
        .map(|p| {
            let plan = view.plan(p, props.n);
            let waiting = plan
                .targets
                .iter()
                .filter(|t| t.is_primary())
                .map(|t| t.node.clone())
                .collect();
            (
                p,
                Part {
                    waiting,
                    pages: Vec::new(),
                },
            )
        })
        .collect();
    let ask = ListQuery {
        limit: per_partition_limit(query.limit, ctx.layout.ring_size),
        r: None,
        ..query.clone()
    };
    let listing = Listing {
        client_id,
        bucket: req.key.bucket.clone(),
        query: query.clone(),
        ask,
        conflict: props.conflict,
        need,
        parts,
    };
    Ok((listing, timeout_ms))
}

/// Answers a listing that cannot be completed: the partitions short of R.
fn fail<S>(ctx: &mut Ctx<'_, S>, l: &Listing, short: Vec<(u32, usize)>) {
    ctx.stats.unavailable += 1;
    let e = ClientError::PartitionsUnavailable {
        required: l.need,
        short,
    };
    ctx.out.push(Output::Reply {
        client_id: l.client_id,
        reply: ClientReply::Error(e),
    });
}

/// Checks a bucket name: 1 to `max` bytes.
fn check_bucket(bucket: &[u8], max: usize) -> Result<(), String> {
    if bucket.is_empty() || bucket.len() > max {
        return Err(format!(
            "the bucket name is {} bytes: give a bucket of 1 to {max} bytes",
            bucket.len()
        ));
    }
    Ok(())
}

/// Checks a peer's listing question.
fn check_question<S>(
    ctx: &Ctx<'_, S>,
    view: View<'_>,
    partition: u32,
    bucket: &[u8],
    query: &ListQuery,
) -> Result<(), String> {
    if partition >= ctx.layout.ring_size {
        return Err(format!("partition {partition} out of range"));
    }
    check_bucket(bucket, ctx.cfg.limits.bucket_bytes_max)?;
    check_query(query, &ctx.cfg.limits).map_err(|e| format!("{e:?}"))?;
    if view.is_strong(bucket) {
        return Err("a strong bucket".into());
    }
    let n = view.props(bucket).n;
    if !ctx.layout.preference_list(partition, n).contains(ctx.me()) {
        return Err("this node is not a primary of the partition".into());
    }
    Ok(())
}

/// Checks a replica's page for partition `partition` of a listing.
fn check_reply<S>(
    ctx: &Ctx<'_, S>,
    bucket: &[u8],
    query: &ListQuery,
    partition: u32,
    page: &ReplicaPage,
) -> Result<(), String> {
    let limits = &ctx.cfg.limits;
    check_page(query, page, limits.key_bytes_max)?;
    let peer_limits = limits.for_peers(ctx.layout.members.len());
    for e in &page.entries {
        if partition_of(key_hash(bucket, &e.key), ctx.layout.ring_size) != partition {
            return Err("a key of another partition".into());
        }
        check_object(&e.object, &peer_limits).map_err(|e| format!("{e:?}"))?;
    }
    Ok(())
}

/// This node's page of `bucket`'s keys in `partition` for `query`, or
/// `None` when the store failed. Stops early (incomplete) after
/// [`REPLY_BYTES_MAX`] bytes of entries.
fn local_page<S: Store>(
    ctx: &mut Ctx<'_, S>,
    partition: PartitionId,
    bucket: &[u8],
    query: &ListQuery,
) -> Option<ReplicaPage> {
    let limit = query.limit as usize;
    let found = ctx.store.scan_bucket(
        partition,
        bucket,
        &query.prefix,
        query.after.as_deref(),
        limit + 1,
    );
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            ctx.stats.store_errors += 1;
            warn!(error = %e, partition, "listing keys failed");
            return None;
        }
    };
    let mut complete = found.len() <= limit;
    let mut entries = Vec::with_capacity(found.len().min(limit));
    let mut bytes = 0;
    for (key, object) in found.into_iter().take(limit) {
        let e = ListEntry {
            key,
            object: shape(&object),
        };
        bytes += entry_bytes(&e);
        entries.push(e);
        if bytes >= REPLY_BYTES_MAX {
            complete = false;
            break;
        }
    }
    Some(ReplicaPage { entries, complete })
}
