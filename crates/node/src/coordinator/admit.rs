//! Admission: a client request, from a client of this node or forwarded by a
//! peer, is checked, its quorum resolved once and its targets chosen; then
//! it is read, written, forwarded, or (a DELETE without context) read first.

use ringkv_core::msg::{ClientError, ClientOp, ClientReply, ClientRequest};
use ringkv_core::request::{self, Need};
use ringkv_core::{Value, VersionVector};
use ringkv_storage::Store;

use super::get::ReadPurpose;
use super::{Admitted, Coordinator, Origin, answer, reject, too_few_primaries};
use crate::ctx::{Ctx, View};
use crate::replica::Replica;

impl Coordinator {
    /// A client request; `forwarded` when a peer sent it on (it is then
    /// never forwarded again).
    pub(crate) fn on_client<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        origin: Origin,
        req: ClientRequest,
    ) {
        let adm = match self.admit(ctx, view, origin.clone(), &req) {
            Ok(adm) => adm,
            Err(e) => return reject(ctx, origin, e),
        };
        let is_target = adm.plan.target(ctx.me()).is_some();
        if let (ClientOp::Put { .. }, false, Origin::Forward { .. }) = (&req.op, is_target, &origin)
        {
            // Never forward twice: the sender's view disagrees with ours.
            let msg = "this node is not a replica of the key in its own view of the \
                       cluster (views of liveness or layout disagree); retry"
                .to_string();
            return answer(ctx, origin, ClientReply::Error(ClientError::Internal(msg)));
        }
        if too_few_primaries(ctx, &adm.origin, adm.need.primaries, &adm.plan) {
            return;
        }
        match (req.op, origin) {
            (ClientOp::Get { .. }, _) => {
                self.start_get(ctx, view, replica, adm, ReadPurpose::Client)
            }
            (ClientOp::Put { value, context, .. }, Origin::Client(client_id)) if !is_target => {
                self.forward_put(ctx, client_id, adm, value, context)
            }
            (
                ClientOp::Put {
                    value: Value::Tombstone,
                    context: None,
                    ..
                },
                _,
            ) => self.start_delete(ctx, view, replica, adm),
            (ClientOp::Put { value, context, .. }, _) => {
                let context = context.unwrap_or_default();
                self.start_put(ctx, view, replica, adm, value, context)
            }
            // `admit` refused it already (resolve_need): never reached.
            // `admit` refused it already (an empty key): listings are never
            // forwarded (the router hands clients' listings to `list`).
            (ClientOp::List(_), origin) => {
                let e = "a key listing is not forwarded".to_string();
                reject(ctx, origin, ClientError::BadRequest(e))
            }
            (ClientOp::PutIf { .. }, origin) => {
                let e = "compare-and-set is only for strong buckets".to_string();
                reject(ctx, origin, ClientError::BadRequest(e))
            }
            // `admit` refused it already (resolve_need): the router hands
            // them to the cluster manager.
            (ClientOp::Cluster(_), origin) => {
                let e = "a cluster manager request is not forwarded".to_string();
                reject(ctx, origin, ClientError::BadRequest(e))
            }
        }
    }

    /// Checks `req` and resolves where it goes and what it waits for.
    /// Refuses (nothing done) a bad request or one over the node's load.
    fn admit<S>(
        &self,
        ctx: &Ctx<'_, S>,
        view: View<'_>,
        origin: Origin,
        req: &ClientRequest,
    ) -> Result<Admitted, ClientError> {
        let timeout_ms = request::check_request(req, &ctx.cfg.limits, ctx.cfg.timeout_ms)?;
        let props = view.props(&req.key.bucket);
        let need = request::resolve_need(&props, &req.op)?;
        if self.pending.len() >= ctx.cfg.pending_max {
            return Err(ClientError::Overloaded(format!(
                "{} requests are in flight on this node (--pending-max); retry later or use \
                 another node",
                self.pending.len()
            )));
        }
        let partition = req.key.partition(ctx.layout.ring_size);
        Ok(Admitted {
            origin,
            key: req.key.clone(),
            partition,
            plan: view.plan(partition, props.n),
            props,
            need,
            timeout_ms,
        })
    }

    /// A DELETE without context: read at R first, then write a tombstone
    /// covering what the read found, within the same deadline.
    fn start_delete<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        adm: Admitted,
    ) {
        let purpose = ReadPurpose::Delete {
            need: adm.need,
            deadline_ms: ctx.now_ms + adm.timeout_ms,
        };
        let read = Admitted {
            need: Need {
                all: adm.props.r.min(adm.props.n),
                primaries: 0,
            },
            ..adm
        };
        self.start_get(ctx, view, replica, read, purpose);
    }

    /// The second half of a DELETE without context: its read found
    /// `context`; write a tombstone covering it.
    pub(super) fn delete_after_read<S: Store>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        view: View<'_>,
        replica: &mut Replica,
        read: Admitted,
        context: VersionVector,
        (need, deadline_ms): (Need, u64),
    ) {
        let plan = view.plan(read.partition, view.props(&read.key.bucket).n);
        if too_few_primaries(ctx, &read.origin, need.primaries, &plan) {
            return;
        }
        let write = Admitted {
            plan,
            need,
            timeout_ms: deadline_ms.saturating_sub(ctx.now_ms).max(1),
            ..read
        };
        self.start_put(ctx, view, replica, write, Value::Tombstone, context);
    }

    /// Answers a request that cannot start for want of any target.
    pub(super) fn no_target<S>(ctx: &mut Ctx<'_, S>, adm: Admitted) {
        let err = ClientError::Unavailable {
            required: adm.need.all,
            acks: 0,
        };
        answer(ctx, adm.origin, ClientReply::Error(err));
    }
}
