//! Coordinators: a request's life from arrival to reply.
//!
//! - Targets: each live primary of the key, and for each unreachable primary
//!   the next live fallback of the extended preference list, which keeps a
//!   hint for it (sloppy quorum, [`ringkv_core::sloppy`]). W and R count
//!   every target; PW and PR count primaries only.
//! - PUT/DELETE: a node that is not a target forwards the request to the
//!   first target (the first live primary, or the first fallback when every
//!   primary is down). The coordinator makes a new dot, applies the write to
//!   its own state, stores it, sends the new state to the other targets and
//!   answers after W acks (its own included), PW of them from primaries.
//! - DELETE without a context first reads the key at R, then writes a
//!   tombstone with the read's context, so it deletes every value the quorum
//!   knows instead of adding a tombstone sibling next to them.
//! - GET: any node coordinates. It asks the targets, answers after R
//!   replies (PR of them from primaries) with their merge, keeps listening
//!   until all replied or the deadline, then writes the merge back to the
//!   primaries that were stale (read repair).

use ringkv_core::bucket::{BucketProps, ConflictMode};
use ringkv_core::hash::BucketKey;
use ringkv_core::lww::resolve_lww;
use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest, PeerMsg};
use ringkv_core::params::QuorumParam;
use ringkv_core::quorum::{QuorumStatus, ReadQuorum, WriteQuorum};
use ringkv_core::sloppy::{Hint, Target, choose_targets};
use ringkv_core::{Dot, NodeId, Object, PartitionId, Value, VersionVector};
use ringkv_storage::Store;
use tracing::{debug, warn};

use crate::{ClientId, Node, Output, TIMEOUT_MS_MAX};

/// Who is waiting for a request's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A client of this node.
    Client(ClientId),
    /// A peer that forwarded the request.
    Forward {
        /// The peer.
        from: NodeId,
        /// Its id for the request.
        fwd_id: u64,
    },
}

/// What a GET coordinator does with its result.
#[derive(Clone, Debug)]
pub enum ReadPurpose {
    /// Answer the client with the merged object.
    Client,
    /// First phase of a DELETE without context: then write a tombstone
    /// covering what was read, waiting for `w` acks.
    Delete {
        /// Acks the delete waits for.
        w: usize,
        /// How many of them from primaries.
        pw: usize,
        /// When the whole delete (read and write) must be answered, in ms.
        deadline_ms: u64,
    },
}

/// State of one request in flight at this node.
#[derive(Debug)]
pub enum Coord {
    /// Sent to a primary; waiting for its [`PeerMsg::ForwardReply`].
    Forwarded {
        /// The client.
        client_id: ClientId,
        /// The primary.
        to: NodeId,
        /// Acks the write wanted (reported if the primary never answers).
        required: usize,
    },
    /// A write waiting for acks.
    Put {
        /// Who waits.
        origin: Origin,
        /// Acks so far.
        quorum: WriteQuorum,
        /// The context to answer with: covers the new value.
        context: VersionVector,
        /// The new write's dot.
        dot: Dot,
    },
    /// A read waiting for replies.
    Get {
        /// Who waits (`None` once answered).
        origin: Option<Origin>,
        /// The key.
        key: BucketKey,
        /// Replies so far.
        quorum: ReadQuorum,
        /// What to do with the result.
        purpose: ReadPurpose,
        /// The bucket's conflict mode, read once at the start.
        conflict: ConflictMode,
    },
}

/// The outcome of a read's quorum, taken out of its coordinator.
struct ReadDone {
    key: BucketKey,
    status: QuorumStatus,
    merged: Object,
    fallback_replies: usize,
    error: ClientError,
    purpose: ReadPurpose,
}

/// Where a request on one key goes.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The key's N primaries.
    pub primaries: Vec<NodeId>,
    /// The nodes to ask: live primaries, and fallbacks for the others.
    pub targets: Vec<Target>,
}

impl Plan {
    /// How many of the targets are primaries.
    pub fn live_primaries(&self) -> usize {
        self.targets.iter().filter(|t| t.is_primary()).count()
    }

    fn nodes(&self) -> Vec<NodeId> {
        self.targets.iter().map(|t| t.node.clone()).collect()
    }

    fn target(&self, node: &NodeId) -> Option<&Target> {
        self.targets.iter().find(|t| &t.node == node)
    }
}

/// The error for a quorum that was not met: short of primaries (PR/PW) or
/// short of replies in all.
fn shortfall(strict_short: bool, strict: (usize, usize), all: (usize, usize)) -> ClientError {
    if strict_short {
        ClientError::PrimariesUnavailable {
            required: strict.0,
            acks: strict.1,
        }
    } else {
        ClientError::Unavailable {
            required: all.0,
            acks: all.1,
        }
    }
}

/// A request that passed validation.
struct Checked {
    partition: PartitionId,
    props: BucketProps,
    timeout_ms: u64,
}

impl<S: Store> Node<S> {
    /// Sends `reply` to whoever waits for it.
    pub(crate) fn answer(&mut self, origin: Origin, reply: ClientReply, out: &mut Vec<Output>) {
        if let ClientReply::Error(ClientError::Unavailable { .. }) = &reply {
            self.stats.unavailable += 1;
        }
        match origin {
            Origin::Client(client_id) => out.push(Output::Reply { client_id, reply }),
            Origin::Forward { from, fwd_id } => out.push(Output::Send {
                to: from,
                msg: PeerMsg::ForwardReply { fwd_id, reply },
            }),
        }
    }

    fn reject(&mut self, origin: Origin, err: ClientError, out: &mut Vec<Output>) {
        match &err {
            ClientError::Overloaded(_) => self.stats.overloaded += 1,
            _ => self.stats.rejected += 1,
        }
        self.answer(origin, ClientReply::Error(err), out);
    }

    fn check(&self, req: &ClientRequest) -> Result<Checked, ClientError> {
        let l = &self.cfg.limits;
        if req.key.bucket.is_empty() {
            return Err(ClientError::BadRequest(
                "the bucket name is empty: give a bucket of 1 to 255 bytes".into(),
            ));
        }
        if req.key.bucket.len() > l.bucket_bytes_max {
            return Err(ClientError::TooLarge(format!(
                "bucket name is {} bytes, more than the limit of {}",
                req.key.bucket.len(),
                l.bucket_bytes_max
            )));
        }
        if req.key.key.is_empty() {
            return Err(ClientError::BadRequest(
                "the key is empty: give a key of 1 or more bytes".into(),
            ));
        }
        if req.key.key.len() > l.key_bytes_max {
            return Err(ClientError::TooLarge(format!(
                "key is {} bytes, more than the limit of {} (--key-bytes-max)",
                req.key.key.len(),
                l.key_bytes_max
            )));
        }
        if let ClientOp::Put {
            value: Value::Data(v),
            ..
        } = &req.op
            && v.len() > l.value_bytes_max
        {
            return Err(ClientError::TooLarge(format!(
                "value is {} bytes, more than the limit of {} (--value-bytes-max)",
                v.len(),
                l.value_bytes_max
            )));
        }
        let timeout_ms = req.timeout_ms.unwrap_or(self.cfg.timeout_ms);
        let mut props = self.bucket_props(&req.key.bucket);
        props.n = props.n.min(self.layout.members.len());
        if timeout_ms == 0 || timeout_ms > TIMEOUT_MS_MAX {
            return Err(ClientError::BadRequest(format!(
                "timeout_ms={timeout_ms} is out of range: use 1 to {TIMEOUT_MS_MAX}"
            )));
        }
        match &req.op {
            ClientOp::Get { r, pr } => {
                resolve_strict(&props, "r", *r, "pr", *pr)?;
            }
            ClientOp::Put { w, pw, .. } => {
                resolve_strict(&props, "w", *w, "pw", *pw)?;
            }
        }
        Ok(Checked {
            props,
            partition: req.key.partition(self.layout.ring_size),
            timeout_ms,
        })
    }

    /// The primaries and targets of a request on `partition`, from this
    /// node's view of who is live.
    pub fn plan(&self, partition: PartitionId, n: usize) -> Plan {
        let n = n.min(self.layout.members.len());
        let extended = self
            .layout
            .preference_list(partition, self.layout.members.len());
        let targets = choose_targets(&extended, n, true, |x| self.is_live(x));
        Plan {
            primaries: extended[..n].to_vec(),
            targets,
        }
    }

    /// Refuses a request that needs more primaries than are reachable, before
    /// anything is written.
    fn too_few_primaries(
        &mut self,
        origin: Origin,
        strict: usize,
        plan: &Plan,
        out: &mut Vec<Output>,
    ) -> bool {
        if plan.live_primaries() >= strict {
            return false;
        }
        let err = ClientError::PrimariesUnavailable {
            required: strict,
            acks: 0,
        };
        self.answer(origin, ClientReply::Error(err), out);
        true
    }

    /// A client request, from a client of this node or forwarded by a peer.
    pub(crate) fn on_client(
        &mut self,
        now_ms: u64,
        origin: Origin,
        req: ClientRequest,
        forwarded: bool,
        out: &mut Vec<Output>,
    ) {
        let checked = match self.check(&req) {
            Ok(c) => c,
            Err(e) => return self.reject(origin, e, out),
        };
        if self.coords.len() >= self.cfg.pending_max {
            let msg = format!(
                "{} requests are in flight on this node (--pending-max); retry later or use another node",
                self.coords.len()
            );
            return self.reject(origin, ClientError::Overloaded(msg), out);
        }
        let plan = self.plan(checked.partition, checked.props.n);
        match req.op {
            ClientOp::Get { r, pr } => {
                let (r, pr) = resolve_strict(&checked.props, "r", r, "pr", pr).expect("checked");
                if self.too_few_primaries(origin.clone(), pr, &plan, out) {
                    return;
                }
                self.start_get(
                    now_ms,
                    origin,
                    req.key,
                    plan,
                    (r, pr),
                    checked.timeout_ms,
                    ReadPurpose::Client,
                    out,
                );
            }
            ClientOp::Put {
                value,
                context,
                w,
                pw,
            } => {
                let (w, pw) = resolve_strict(&checked.props, "w", w, "pw", pw).expect("checked");
                if plan.target(&self.cfg.id).is_none() {
                    if forwarded {
                        // Never forward twice: the sender's view disagrees with ours.
                        let msg = "this node is not a replica of the key in its own view of the \
                                   cluster (views of liveness or layout disagree); retry"
                            .to_string();
                        return self.answer(
                            origin,
                            ClientReply::Error(ClientError::Internal(msg)),
                            out,
                        );
                    }
                    let Origin::Client(client_id) = origin else {
                        unreachable!("forwarded handled above")
                    };
                    if self.too_few_primaries(origin.clone(), pw, &plan, out) {
                        return;
                    }
                    let Some(to) = plan.targets.first().map(|t| t.node.clone()) else {
                        return self.answer(
                            origin,
                            ClientReply::Error(ClientError::Unavailable {
                                required: w,
                                acks: 0,
                            }),
                            out,
                        );
                    };
                    let fwd_id = self.next_id();
                    self.stats.forwarded += 1;
                    let request = ClientRequest {
                        key: req.key,
                        op: ClientOp::Put {
                            value,
                            context,
                            w: Some(QuorumParam::Count(w as u32)),
                            pw: Some(QuorumParam::Count(pw as u32)),
                        },
                        timeout_ms: Some(checked.timeout_ms),
                    };
                    out.push(Output::Send {
                        to: to.clone(),
                        msg: PeerMsg::Forward { fwd_id, request },
                    });
                    // Give the coordinator its whole timeout plus a margin for the hops.
                    out.push(Output::SetTimer {
                        id: fwd_id,
                        at_ms: now_ms + checked.timeout_ms + 1_000,
                    });
                    self.coords.insert(
                        fwd_id,
                        Coord::Forwarded {
                            client_id,
                            to,
                            required: w,
                        },
                    );
                    return;
                }
                if self.too_few_primaries(origin.clone(), pw, &plan, out) {
                    return;
                }
                match (value, context) {
                    (Value::Tombstone, None) => {
                        let r = checked.props.r.min(checked.props.n);
                        let purpose = ReadPurpose::Delete {
                            w,
                            pw,
                            deadline_ms: now_ms + checked.timeout_ms,
                        };
                        self.start_get(
                            now_ms,
                            origin,
                            req.key,
                            plan,
                            (r, 0),
                            checked.timeout_ms,
                            purpose,
                            out,
                        );
                    }
                    (value, context) => {
                        let context = context.unwrap_or_default();
                        self.start_put(
                            now_ms,
                            origin,
                            req.key,
                            checked.partition,
                            plan,
                            value,
                            context,
                            (w, pw),
                            checked.timeout_ms,
                            out,
                        );
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_put(
        &mut self,
        now_ms: u64,
        origin: Origin,
        key: BucketKey,
        partition: PartitionId,
        plan: Plan,
        value: Value,
        context: VersionVector,
        (w, pw): (usize, usize),
        timeout_ms: u64,
        out: &mut Vec<Output>,
    ) {
        // The coordinator must store the write itself: it makes the dot from
        // its own state, and a dot is never reused only if every dot of its
        // actor is stored here.
        let stands_in_for = match plan.target(&self.cfg.id) {
            Some(t) => t.stands_in_for.clone(),
            None => {
                let err = ClientError::Unavailable {
                    required: w,
                    acks: 0,
                };
                return self.answer(origin, ClientReply::Error(err), out);
            }
        };
        if let Some(p) = &stands_in_for
            && !self.can_hint(p, &key)
        {
            self.stats.hints_refused += 1;
            let msg = format!(
                "this node would coordinate the write as a fallback for {p}, but it holds \
                 --hints-max={} hints already; retry when handoff has made room",
                self.cfg.hints_max
            );
            return self.answer(
                origin,
                ClientReply::Error(ClientError::Overloaded(msg)),
                out,
            );
        }
        self.stats.puts_coordinated += 1;
        let local = match self.store.get(partition, &key) {
            Ok(o) => o.unwrap_or_default(),
            Err(e) => return self.store_failed(origin, e, out),
        };
        let context = if self.cfg.bugs.ignore_context {
            VersionVector::new()
        } else {
            context
        };
        if context.get(&self.actor) > local.vv.get(&self.actor) {
            // Only this node makes dots of its actor, and it stores each before
            // anyone can read it: the context was not read from this key.
            let msg = "the context names writes this key never had: pass the X-Ringkv-Context \
                       of a read of this same key"
                .to_string();
            return self.reject(origin, ClientError::BadRequest(msg), out);
        }
        let dot = local.next_dot(&self.actor, &context);
        let props = self.bucket_props(&key.bucket);
        let stamp = self.hlc_now(now_ms).to_u64();
        let new = match props.conflict {
            ConflictMode::Siblings => local.update(&context, dot.clone(), value, stamp),
            // Last write wins: every write competes by stamp with everything
            // stored; a context must not drop a sibling with a larger stamp
            // (see `ringkv_core::lww`). The context still chose the dot.
            ConflictMode::Lww => {
                resolve_lww(&local.update(&VersionVector::new(), dot.clone(), value, stamp))
            }
        };
        let limits = &self.cfg.limits;
        // A write may always add its own actor to what is stored; the
        // context may add others only up to the limit.
        let actors = new.vv.actors();
        if actors > limits.actors_max.max(local.vv.actors() + 1) {
            let msg = format!(
                "the context names writers this key never had: its version vector would have \
                 {actors} entries, over the limit of {}; pass the X-Ringkv-Context of a read of \
                 this same key unchanged",
                limits.actors_max
            );
            return self.reject(origin, ClientError::BadRequest(msg), out);
        }
        let bytes = new.value_bytes();
        let siblings_max = props.siblings_max.min(limits.siblings_max);
        if new.siblings.len() > siblings_max || bytes > limits.object_bytes_max {
            let msg = format!(
                "the key would have {} siblings and {bytes} bytes, over the limits of {} siblings \
                 and {} bytes: read it and write the resolved value with the read's context",
                new.siblings.len(),
                siblings_max,
                limits.object_bytes_max
            );
            return self.reject(origin, ClientError::TooLarge(msg), out);
        }
        if new.siblings.len() > props.siblings_warn {
            self.stats.siblings_warned += 1;
            warn!(
                siblings = new.siblings.len(),
                warn_at = props.siblings_warn,
                max = siblings_max,
                "a key has many siblings: clients should write back resolved values with their read's context"
            );
        }
        if let Err(e) = self.store.put(partition, &key, &new) {
            return self.store_failed(origin, e, out);
        }
        let mut quorum = WriteQuorum::new(plan.nodes(), w).with_strict(plan.primaries.clone(), pw);
        if let Some(primary) = stands_in_for {
            let hint = Hint {
                primary,
                partition,
                key: key.clone(),
            };
            if self.add_hint(hint) {
                quorum.ack(&self.cfg.id);
            } else {
                quorum.fail(&self.cfg.id);
            }
        } else {
            quorum.ack(&self.cfg.id);
        }
        let req_id = self.next_id();
        for t in plan.targets.iter().filter(|t| t.node != self.cfg.id) {
            out.push(Output::Send {
                to: t.node.clone(),
                msg: PeerMsg::ReplicaPut {
                    req_id,
                    key: key.clone(),
                    object: new.clone(),
                    stands_in_for: t.stands_in_for.clone(),
                },
            });
        }
        let context = new.vv;
        let status = if self.cfg.bugs.ack_before_quorum {
            QuorumStatus::Met
        } else {
            quorum.status()
        };
        match status {
            QuorumStatus::Met => {
                let reply = ClientReply::Written {
                    context,
                    dot: Some(dot),
                    fallback_acks: quorum.acks() - quorum.primary_acks(),
                };
                self.answer(origin, reply, out)
            }
            QuorumStatus::Failed => {
                let err = put_error(&quorum);
                self.answer(origin, ClientReply::Error(err), out)
            }
            QuorumStatus::Pending => {
                out.push(Output::SetTimer {
                    id: req_id,
                    at_ms: now_ms + timeout_ms,
                });
                self.coords.insert(
                    req_id,
                    Coord::Put {
                        origin,
                        quorum,
                        context,
                        dot,
                    },
                );
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn start_get(
        &mut self,
        now_ms: u64,
        origin: Origin,
        key: BucketKey,
        plan: Plan,
        (r, pr): (usize, usize),
        timeout_ms: u64,
        purpose: ReadPurpose,
        out: &mut Vec<Output>,
    ) {
        self.stats.gets_coordinated += 1;
        let partition = key.partition(self.layout.ring_size);
        let mut quorum = ReadQuorum::new(plan.nodes(), r).with_strict(plan.primaries.clone(), pr);
        if plan.live_primaries() < plan.targets.len() {
            // Fallbacks stand in: their "not found" must not outvote a
            // live primary that holds the key.
            let fallbacks: Vec<NodeId> = plan
                .targets
                .iter()
                .filter(|t| !t.is_primary())
                .map(|t| t.node.clone())
                .collect();
            quorum = quorum.with_fallbacks(fallbacks);
        }
        let req_id = self.next_id();
        for p in &plan.nodes() {
            if *p == self.cfg.id {
                match self.store.get(partition, &key) {
                    Ok(o) => {
                        quorum.reply(p, o.unwrap_or_default());
                    }
                    Err(e) => {
                        self.stats.store_errors += 1;
                        warn!(error = %e, "local read failed");
                        quorum.fail(p);
                    }
                }
            } else {
                out.push(Output::Send {
                    to: p.clone(),
                    msg: PeerMsg::ReplicaGet {
                        req_id,
                        key: key.clone(),
                    },
                });
            }
        }
        self.coords.insert(
            req_id,
            Coord::Get {
                conflict: self.bucket_props(&key.bucket).conflict,
                origin: Some(origin),
                key,
                quorum,
                purpose,
            },
        );
        out.push(Output::SetTimer {
            id: req_id,
            at_ms: now_ms + timeout_ms,
        });
        self.progress_get(now_ms, req_id, out);
    }

    fn store_failed(
        &mut self,
        origin: Origin,
        e: ringkv_storage::StoreError,
        out: &mut Vec<Output>,
    ) {
        self.stats.store_errors += 1;
        warn!(error = %e, "store failed");
        let msg =
            format!("this node could not access its store: {e}; the write was not applied here");
        self.answer(origin, ClientReply::Error(ClientError::Internal(msg)), out);
    }

    pub(crate) fn on_forward_reply(
        &mut self,
        fwd_id: u64,
        reply: ClientReply,
        out: &mut Vec<Output>,
    ) {
        if let Some(Coord::Forwarded { client_id, .. }) = self.coords.get(&fwd_id) {
            let client_id = *client_id;
            self.coords.remove(&fwd_id);
            out.push(Output::Reply { client_id, reply });
        }
    }

    pub(crate) fn on_put_ack(
        &mut self,
        _now_ms: u64,
        from: NodeId,
        req_id: u64,
        ok: bool,
        out: &mut Vec<Output>,
    ) {
        let Some(Coord::Put { quorum, .. }) = self.coords.get_mut(&req_id) else {
            return; // late ack for a finished write
        };
        let status = if ok {
            quorum.ack(&from)
        } else {
            quorum.fail(&from)
        };
        self.finish_put(req_id, status, out);
    }

    fn finish_put(&mut self, req_id: u64, status: QuorumStatus, out: &mut Vec<Output>) {
        if status == QuorumStatus::Pending {
            return;
        }
        let Some(Coord::Put {
            origin,
            quorum,
            context,
            dot,
        }) = self.coords.remove(&req_id)
        else {
            unreachable!("finish_put on a put")
        };
        let reply = if status == QuorumStatus::Met {
            debug!(acks = quorum.acks(), "write quorum met");
            ClientReply::Written {
                context,
                dot: Some(dot),
                fallback_acks: quorum.acks() - quorum.primary_acks(),
            }
        } else {
            ClientReply::Error(put_error(&quorum))
        };
        self.answer(origin, reply, out);
    }

    pub(crate) fn on_get_reply(
        &mut self,
        now_ms: u64,
        from: NodeId,
        req_id: u64,
        object: Option<Object>,
        out: &mut Vec<Output>,
    ) {
        let Some(Coord::Get { quorum, .. }) = self.coords.get_mut(&req_id) else {
            return; // late reply for a finished read
        };
        match object {
            Some(o) => quorum.reply(&from, o),
            None => quorum.fail(&from),
        };
        self.progress_get(now_ms, req_id, out);
    }

    /// Answers a read once its quorum is met or failed; ends it (with read
    /// repair) once every target answered.
    fn progress_get(&mut self, now_ms: u64, req_id: u64, out: &mut Vec<Output>) {
        let Some(Coord::Get {
            origin,
            key,
            quorum,
            purpose,
            conflict,
        }) = self.coords.get_mut(&req_id)
        else {
            return;
        };
        let status = quorum.status();
        if status != QuorumStatus::Pending
            && let Some(origin) = origin.take()
        {
            let done = ReadDone {
                key: key.clone(),
                status,
                merged: resolve_for(*conflict, quorum.merged()),
                fallback_replies: quorum.replies() - quorum.primary_replies(),
                error: shortfall(
                    quorum.strict_shortfall(),
                    (quorum.strict(), quorum.primary_replies()),
                    (quorum.required(), quorum.replies()),
                ),
                purpose: purpose.clone(),
            };
            self.read_done(now_ms, origin, done, out);
        }
        let done =
            matches!(self.coords.get(&req_id), Some(Coord::Get { quorum, .. }) if quorum.all_in());
        if done {
            self.end_get(req_id, out);
        }
    }

    fn read_done(&mut self, now_ms: u64, origin: Origin, done: ReadDone, out: &mut Vec<Output>) {
        let ReadDone {
            key,
            status,
            merged,
            fallback_replies,
            error,
            purpose,
        } = done;
        if status == QuorumStatus::Failed {
            return self.answer(origin, ClientReply::Error(error), out);
        }
        match purpose {
            ReadPurpose::Client => {
                let reply = ClientReply::Read {
                    object: merged,
                    fallback_replies,
                };
                self.answer(origin, reply, out)
            }
            ReadPurpose::Delete { w, pw, deadline_ms } => {
                let timeout_ms = deadline_ms.saturating_sub(now_ms).max(1);
                if merged.is_deleted() {
                    // Nothing to delete: every value the quorum knows is gone already.
                    let context = merged.vv;
                    let reply = ClientReply::Written {
                        context,
                        dot: None,
                        fallback_acks: 0,
                    };
                    return self.answer(origin, reply, out);
                }
                let partition = key.partition(self.layout.ring_size);
                let n = self.bucket_props(&key.bucket).n;
                let plan = self.plan(partition, n);
                if self.too_few_primaries(origin.clone(), pw, &plan, out) {
                    return;
                }
                self.start_put(
                    now_ms,
                    origin,
                    key,
                    partition,
                    plan,
                    Value::Tombstone,
                    merged.vv,
                    (w, pw),
                    timeout_ms,
                    out,
                );
            }
        }
    }

    /// Ends a read: writes the merged object back to every replica whose
    /// reply lacked part of it.
    fn end_get(&mut self, req_id: u64, out: &mut Vec<Output>) {
        let Some(Coord::Get {
            key,
            quorum,
            conflict,
            ..
        }) = self.coords.remove(&req_id)
        else {
            return;
        };
        let merged = resolve_for(conflict, quorum.merged());
        if merged.is_empty() {
            return;
        }
        for node in quorum.stale(&merged) {
            self.stats.read_repairs += 1;
            if node == self.cfg.id {
                self.merge_local(&key, &merged);
            } else {
                out.push(Output::Send {
                    to: node,
                    msg: PeerMsg::ReplicaPut {
                        req_id: 0,
                        key: key.clone(),
                        object: merged.clone(),
                        stands_in_for: None,
                    },
                });
            }
        }
    }

    pub(crate) fn on_timer(&mut self, now_ms: u64, id: u64, out: &mut Vec<Output>) {
        if id == crate::handoff::TIMER {
            return self.handoff_tick(now_ms, out);
        }
        if crate::gossip::is_gossip_timer(id) {
            return self.on_gossip_timer(now_ms, id, out);
        }
        match self.coords.get_mut(&id) {
            None => {}
            Some(Coord::Forwarded { .. }) => {
                let Some(Coord::Forwarded {
                    client_id,
                    to,
                    required,
                }) = self.coords.remove(&id)
                else {
                    unreachable!()
                };
                debug!(%to, "forwarded request timed out");
                self.stats.unavailable += 1;
                let reply = ClientReply::Error(ClientError::Unavailable { required, acks: 0 });
                out.push(Output::Reply { client_id, reply });
            }
            Some(Coord::Put { quorum, .. }) => {
                let status = quorum.expire();
                let silent = quorum.outstanding();
                self.finish_put(id, status, out);
                self.suspect_silent(now_ms, &silent, out);
            }
            Some(Coord::Get { quorum, .. }) => {
                quorum.expire();
                let silent = quorum.outstanding();
                self.progress_get(now_ms, id, out);
                self.end_get(id, out);
                self.suspect_silent(now_ms, &silent, out);
            }
        }
    }
}

/// The error of a write that missed its quorum.
fn put_error(q: &WriteQuorum) -> ClientError {
    shortfall(
        q.strict_shortfall(),
        (q.strict(), q.primary_acks()),
        (q.required(), q.acks()),
    )
}

/// Replies needed for a request asking for `p` replies (default: the
/// bucket's) of which `strict` (default: the bucket's) must come from
/// primaries: (all replies, primary replies). Primary replies count toward
/// all, so all is at least strict.
fn resolve_strict(
    props: &BucketProps,
    name: &str,
    p: Option<QuorumParam>,
    strict_name: &str,
    strict: Option<QuorumParam>,
) -> Result<(usize, usize), ClientError> {
    let n = props.n;
    let (default, strict_default) = if name == "r" {
        (props.r, props.pr)
    } else {
        (props.w, props.pw)
    };
    let resolve = |name: &str, p: QuorumParam| {
        p.resolve(name, n)
            .map_err(|e| ClientError::BadRequest(e.to_string()))
    };
    let q = match p {
        None => default.min(n),
        Some(p) => resolve(name, p)?,
    };
    let s = match strict {
        None => strict_default.min(n),
        Some(QuorumParam::Count(0)) => 0,
        Some(s) => resolve(strict_name, s)?,
    };
    Ok((q.max(s), s))
}

/// A merged object as the bucket's conflict mode keeps it.
pub(crate) fn resolve_for(conflict: ConflictMode, merged: Object) -> Object {
    match conflict {
        ConflictMode::Siblings => merged,
        ConflictMode::Lww => resolve_lww(&merged),
    }
}
