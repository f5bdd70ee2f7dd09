//! The cluster manager, as one node takes part in it.
//!
//! The manager's state is one document ([`ClusterDoc`]: the layout in
//! force, staged changes, a committed target) in a strong key, so it is
//! replicated and changed through that key's consensus group like any
//! strong write. An operator's request ([`ClusterOp`]) that reaches any
//! node is served here: read the document (linearizably), apply the op
//! (pure, in `core`), write it back with a compare-and-set on the version
//! read; when someone wrote in between, read again and retry. Nothing
//! about the layout is decided by clocks.
//!
//! Every node adopts the highest version it has seen and remembers it
//! across restarts. Gossip spreads only "version V exists"; a node that
//! hears of a newer one reads the document through the group itself.

use std::collections::BTreeMap;

use bytes::Bytes;
use ringkv_core::cluster::{
    CLUSTER_BUCKET, CLUSTER_KEY, ClusterDoc, ClusterError, ClusterOp, ClusterState,
};
use ringkv_core::hash::BucketKey;
use ringkv_core::msg::PeerMsg;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest};
use ringkv_core::plan::Plan;
use ringkv_core::strong::{self, Condition};
use ringkv_core::{Layout, NodeId, Value};
use ringkv_storage::Store;
use tracing::{info, warn};

use crate::ctx::Ctx;
use crate::{ClientId, Output, Timer};

/// Metadata key under which a node keeps the document it adopted.
const META_DOC: &[u8] = b"cluster/doc";

/// Gossip key announcing the newest document version.
pub(crate) const META_ANNOUNCE: &[u8] = b"cluster/version";

/// Operators' requests served at once by one node.
const OPS_MAX: usize = 16;

/// How often a node tells one peer (in turn) its document version, so that
/// a version spreads even when gossip and direct announcements were lost.
pub(crate) const TICK_MS: u64 = 1_000;

/// Read-modify-write rounds an op may take when others keep writing.
const TRIES_MAX: u8 = 8;

/// One operator's request in progress.
struct Op {
    client: ClientId,
    op: ClusterOp,
    tries: u8,
    /// The document written, while its compare-and-set is in flight.
    writing: Option<ClusterDoc>,
}

/// What the manager asks of the rest of the node.
#[derive(Default)]
pub(crate) struct Effects {
    /// Requests on the document's strong key, by internal id, for the
    /// consensus machine.
    pub(crate) submit: Vec<(u64, ClientRequest)>,
    /// A newer document was adopted: announce it, and put its layout in
    /// force where that is possible.
    pub(crate) adopted: Option<ClusterState>,
}

/// The cluster manager's node side.
#[derive(Default)]
pub(crate) struct Manager {
    /// The newest document this node adopted (`None`: none yet, layout
    /// version 1 from the configuration is in force).
    state: Option<ClusterState>,
    /// Operators' requests in progress, by internal request id.
    ops: BTreeMap<u64, Op>,
    /// A background read of the document (after an announcement), by id.
    reading: Option<u64>,
    /// The highest version announced and not yet adopted.
    announced: u64,
    /// Ticks so far (picks the peer told next).
    ticks: u64,
    /// Whether a [`PeerMsg::ClusterFetch`] waits for its answer.
    fetching: bool,
}

/// The document's key.
pub(crate) fn doc_key() -> BucketKey {
    BucketKey {
        bucket: Bytes::from_static(CLUSTER_BUCKET),
        key: Bytes::from_static(CLUSTER_KEY),
    }
}

/// How long a request on the document may take: long enough for the
/// group to elect a leader after split votes, as operators' requests are
/// rare and a retry costs them more than a wait.
fn timeout_ms<S>(ctx: &Ctx<'_, S>) -> Option<u64> {
    let c = &ctx.cfg.consensus;
    let elections = 4 * c.tick_ms * c.election_ticks as u64;
    Some(ctx.cfg.timeout_ms.max(elections))
}

fn read_request<S>(ctx: &Ctx<'_, S>) -> ClientRequest {
    ClientRequest {
        key: doc_key(),
        op: ClientOp::Get { r: None, pr: None },
        timeout_ms: timeout_ms(ctx),
    }
}

/// A background read after an announcement: with the node's usual
/// timeout, as the next tick asks again when it fails.
fn background_read<S>(ctx: &Ctx<'_, S>) -> ClientRequest {
    ClientRequest {
        timeout_ms: None,
        ..read_request(ctx)
    }
}

impl Manager {
    /// The manager with the document `store` kept, if any.
    pub(crate) fn load<S: Store>(store: &S) -> Self {
        let state = match store.metas() {
            Ok(metas) => metas
                .into_iter()
                .find(|(k, _)| k == META_DOC)
                .and_then(|(_, v)| decode_state(&v)),
            Err(e) => {
                warn!(error = %e, "could not load the cluster document; peers will tell");
                None
            }
        };
        Manager {
            state,
            ..Manager::default()
        }
    }

    /// Arms the first tick.
    pub(crate) fn start<S>(&mut self, ctx: &mut Ctx<'_, S>) {
        ctx.out.push(Output::SetTimer {
            id: Timer::Manager,
            at_ms: ctx.now_ms + TICK_MS,
        });
    }

    /// A tick: tells the next member in turn the version held, and reads
    /// the document again if a newer one was announced and the last read
    /// did not bring it.
    pub(crate) fn tick<S>(&mut self, ctx: &mut Ctx<'_, S>) -> Effects {
        self.start(ctx);
        self.ticks += 1;
        self.fetching = false;
        let others: Vec<&NodeId> = ctx
            .layout
            .members
            .iter()
            .map(|m| &m.id)
            .filter(|id| *id != ctx.me())
            .collect();
        let version = self.version();
        if version > 0 && !others.is_empty() {
            let to = others[(self.ticks % others.len() as u64) as usize].clone();
            ctx.out.push(Output::Send {
                to,
                msg: PeerMsg::ClusterVersion { version },
            });
        }
        self.read_if_behind(ctx)
    }

    /// Starts a background read when a newer version was announced than
    /// the one held and no read is in flight.
    fn read_if_behind<S>(&mut self, ctx: &mut Ctx<'_, S>) -> Effects {
        if self.announced <= self.version() || self.reading.is_some() {
            return Effects::default();
        }
        let id = ctx.ids.next();
        self.reading = Some(id);
        Effects {
            submit: vec![(id, background_read(ctx))],
            adopted: None,
        }
    }

    /// The adopted document, if any.
    pub(crate) fn state(&self) -> Option<&ClusterState> {
        self.state.as_ref()
    }

    /// The adopted document's version (0: none).
    pub(crate) fn version(&self) -> u64 {
        self.state.as_ref().map_or(0, |s| s.version)
    }

    /// An operator's request: starts by reading the document.
    pub(crate) fn on_client<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        client: ClientId,
        op: ClusterOp,
    ) -> Effects {
        if self.ops.len() >= OPS_MAX {
            let e = ClientError::Overloaded(format!(
                "{OPS_MAX} cluster manager requests are in flight on this node; retry later"
            ));
            reply_to(ctx, client, ClientReply::Error(e));
            return Effects::default();
        }
        let id = ctx.ids.next();
        self.ops.insert(
            id,
            Op {
                client,
                op,
                tries: 0,
                writing: None,
            },
        );
        Effects {
            submit: vec![(id, read_request(ctx))],
            adopted: None,
        }
    }

    /// A peer holds `version`: ask it for the document if that is newer
    /// than ours (one fetch at a time; a tick forgets one unanswered).
    pub(crate) fn on_version<S>(&mut self, ctx: &mut Ctx<'_, S>, from: &NodeId, version: u64) {
        self.announced = self.announced.max(version);
        if version > self.version() && !self.fetching {
            self.fetching = true;
            ctx.out.push(Output::Send {
                to: from.clone(),
                msg: PeerMsg::ClusterFetch,
            });
        }
    }

    /// A peer asks for our document.
    pub(crate) fn on_fetch<S>(&self, ctx: &mut Ctx<'_, S>, from: NodeId) {
        if let Some(s) = &self.state {
            ctx.out.push(Output::Send {
                to: from,
                msg: PeerMsg::ClusterDoc {
                    version: s.version,
                    doc: s.doc.to_bytes(),
                },
            });
        }
    }

    /// A peer sent its document: checked, adopted if newer.
    pub(crate) fn on_doc<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        from: &NodeId,
        version: u64,
        doc: &[u8],
    ) -> Effects {
        self.fetching = false;
        match ClusterDoc::from_bytes(doc) {
            Ok(doc) if doc.layout.ring_size == ctx.layout.ring_size => {
                self.adopt(ctx, ClusterState { version, doc })
            }
            Ok(_) => {
                ctx.stats.peer_refused += 1;
                warn!(peer = %from, "a cluster document with another ring size; dropped");
                Effects::default()
            }
            Err(e) => {
                ctx.stats.peer_refused += 1;
                warn!(peer = %from, error = %e, "a cluster document that does not decode; dropped");
                Effects::default()
            }
        }
    }

    /// Gossip says version `data` exists: read it if it is newer.
    pub(crate) fn on_announce<S>(&mut self, ctx: &mut Ctx<'_, S>, data: &[u8]) -> Effects {
        let Ok(bytes) = <[u8; 8]>::try_from(data) else {
            ctx.stats.gossip_errors += 1;
            return Effects::default();
        };
        self.announced = self.announced.max(u64::from_le_bytes(bytes));
        self.read_if_behind(ctx)
    }

    /// The consensus machine answered request `id` on the document.
    pub(crate) fn on_reply<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        id: u64,
        reply: ClientReply,
    ) -> Effects {
        let reply = match reply {
            ClientReply::Strong { reply, .. } => *reply,
            other => other,
        };
        if self.reading == Some(id) {
            self.reading = None;
            return match read_state(ctx.layout, &reply) {
                Some(Ok(state)) => self.adopt(ctx, state),
                _ => Effects::default(),
            };
        }
        let Some(mut op) = self.ops.remove(&id) else {
            return Effects::default();
        };
        match op.writing.take() {
            None => self.on_read(ctx, id, op, &reply),
            Some(doc) => self.on_written(ctx, op, doc, reply),
        }
    }

    /// An op's read came back: apply the op and write, or answer.
    fn on_read<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        id: u64,
        mut op: Op,
        reply: &ClientReply,
    ) -> Effects {
        let state = match read_state(ctx.layout, reply) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                reply_to(ctx, op.client, ClientReply::Error(e));
                return Effects::default();
            }
            None => {
                reply_to(ctx, op.client, reply.clone());
                return Effects::default();
            }
        };
        let mut fx = self.adopt(ctx, state.clone());
        if op.op == ClusterOp::Get {
            reply_to(ctx, op.client, ClientReply::Cluster(Box::new(state)));
            return fx;
        }
        let mut doc = state.doc.clone();
        if let Err(e) = op.op.apply(&mut doc, ctx.cfg.n) {
            reply_to(ctx, op.client, ClientReply::Error(cluster_error(e)));
            return fx;
        }
        if let Some(target) = doc.target.as_ref().filter(|_| state.doc.target.is_none()) {
            // Streaming partitions to new owners is not built yet: a target
            // could never come into force, and would block every later
            // commit.
            let moves = Plan::new(&state.doc.layout, target, ctx.cfg.n, &[])
                .moves
                .len();
            let e = ClientError::Conflict(format!(
                "this plan moves {moves} partitions' replicas, and this version of ringkv cannot \
                 stream data to new owners yet; only changes that move no replica (zones, \
                 capacities that keep every preference list) can be committed. Nothing was \
                 changed; `ringkv cluster clear` drops the staged changes"
            ));
            reply_to(ctx, op.client, ClientReply::Error(e));
            return fx;
        }
        let condition = if state.version == 0 {
            Condition::IfAbsent
        } else {
            Condition::IfVersion(state.version)
        };
        let value = Value::Data(Bytes::from(doc.to_bytes()));
        let op_ = if ctx.cfg.bugs.cluster_blind_writes {
            ClientOp::Put {
                value,
                context: None,
                w: None,
                pw: None,
            }
        } else {
            ClientOp::PutIf { value, condition }
        };
        let write = ClientRequest {
            key: doc_key(),
            op: op_,
            timeout_ms: timeout_ms(ctx),
        };
        op.writing = Some(doc);
        self.ops.insert(id, op);
        fx.submit.push((id, write));
        fx
    }

    /// An op's compare-and-set came back: adopt and answer, or retry.
    fn on_written<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        mut op: Op,
        doc: ClusterDoc,
        reply: ClientReply,
    ) -> Effects {
        match reply {
            ClientReply::Written { context, .. } => {
                let state = ClusterState {
                    version: strong::version_of(&context),
                    doc,
                };
                info!(version = state.version, op = ?op.op, "cluster document changed");
                let fx = self.adopt(ctx, state.clone());
                reply_to(ctx, op.client, ClientReply::Cluster(Box::new(state)));
                fx
            }
            ClientReply::Error(ClientError::PreconditionFailed { .. }) if op.tries < TRIES_MAX => {
                // Someone wrote in between: read again and redo the op on
                // what they wrote.
                op.tries += 1;
                let id = ctx.ids.next();
                self.ops.insert(id, op);
                Effects {
                    submit: vec![(id, read_request(ctx))],
                    adopted: None,
                }
            }
            ClientReply::Error(ClientError::PreconditionFailed { .. }) => {
                let e = ClientError::Conflict(
                    "the cluster document kept changing under this request; retry".into(),
                );
                reply_to(ctx, op.client, ClientReply::Error(e));
                Effects::default()
            }
            other => {
                reply_to(ctx, op.client, other);
                Effects::default()
            }
        }
    }

    /// Adopts `state` if it is newer than the one held: remembers it.
    fn adopt<S: Store>(&mut self, ctx: &mut Ctx<'_, S>, state: ClusterState) -> Effects {
        if state.version <= self.version() {
            return Effects::default();
        }
        if let Err(e) = ctx.store.put_meta(META_DOC, &encode_state(&state)) {
            // Kept in memory all the same: peers and the group have it.
            ctx.stats.store_errors += 1;
            warn!(error = %e, "could not store the cluster document");
        }
        self.state = Some(state.clone());
        Effects {
            submit: Vec::new(),
            adopted: Some(state),
        }
    }
}

/// The document a read returned: `None` when the read failed (the reply
/// is the error to pass on), an error when what is stored does not decode.
fn read_state(layout: &Layout, reply: &ClientReply) -> Option<Result<ClusterState, ClientError>> {
    let ClientReply::Read { object, .. } = reply else {
        return None;
    };
    let data = object.siblings.iter().find_map(|s| match &s.value {
        Value::Data(b) => Some(b),
        Value::Tombstone => None,
    });
    let Some(data) = data else {
        // Never written: layout version 1, which every node started from.
        let first = if layout.version == 1 {
            layout.clone()
        } else {
            return Some(Err(ClientError::Internal(
                "the cluster document is missing but this node runs a later layout".into(),
            )));
        };
        return Some(Ok(ClusterState {
            version: 0,
            doc: ClusterDoc::initial(first),
        }));
    };
    Some(
        ClusterDoc::from_bytes(data)
            .map(|doc| ClusterState {
                version: strong::stored_version(Some(object)),
                doc,
            })
            .map_err(ClientError::Internal),
    )
}

fn cluster_error(e: ClusterError) -> ClientError {
    match e {
        ClusterError::Plan(p) => ClientError::BadRequest(p.to_string()),
        other => ClientError::Conflict(other.to_string()),
    }
}

fn reply_to<S>(ctx: &mut Ctx<'_, S>, client: ClientId, reply: ClientReply) {
    ctx.out.push(Output::Reply {
        client_id: client,
        reply,
    });
}

fn encode_state(state: &ClusterState) -> Vec<u8> {
    let mut b = state.version.to_le_bytes().to_vec();
    b.extend(state.doc.to_bytes());
    b
}

fn decode_state(b: &[u8]) -> Option<ClusterState> {
    let (v, doc) = b.split_at_checked(8)?;
    let version = u64::from_le_bytes(v.try_into().ok()?);
    match ClusterDoc::from_bytes(doc) {
        Ok(doc) => Some(ClusterState { version, doc }),
        Err(e) => {
            warn!(error = %e, "the stored cluster document does not decode; peers will tell");
            None
        }
    }
}
