//! Peers: who is reachable, from two views, and the glue to the gossip
//! [`Membership`].
//!
//! Owns: the gossip membership (foca), the transport's view of links that
//! are down, which peers were heard up, gossip's last reported liveness per
//! member, and the count of requests each peer left unanswered.
//! Emits: gossip packets ([`Output::Send`] of [`PeerMsg::Gossip`], and
//! [`Output::SendAddr`] for `--join` addresses), gossip timers, peer
//! addresses ([`Output::PeerAddr`], before any message to a new member), and
//! [`PeerEvent`]s for the router: cluster metadata that arrived by gossip,
//! and peers that came back (they get our bucket properties).
//!
//! - Liveness ([`Peers::liveness`]) is the worse of two views: the
//!   transport's (a link that is down: a refused connection is the fastest
//!   signal of a killed process) and gossip's (Suspect or Down: the only
//!   signal across a partition, where TCP notices nothing). A peer gossip
//!   never heard of is Alive unless its link is down.
//! - A read or write whose deadline passes with targets that never answered
//!   makes the node suspect them ([`Membership::suspect`]) after
//!   [`SILENT_TIMEOUTS`] in a row: gossip spreads the suspicion, a live
//!   member refutes it, a dead one goes Down.

use std::collections::{BTreeMap, BTreeSet};

use ringkv_core::msg::PeerMsg;
use ringkv_core::{Layout, NodeId};
use tracing::{debug, info};

use crate::ctx::Ctx;
use crate::membership::{GossipOut, Liveness, MemberInfo, MemberStatus, Membership};
use crate::{NodeConfig, Output, Timer};

/// Requests in a row a peer must leave unanswered before a coordinator
/// suspects it (any message from the peer starts the count again).
pub const SILENT_TIMEOUTS: u32 = 3;

/// What the peers machine tells the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PeerEvent {
    /// Cluster metadata arrived by gossip.
    Metadata {
        /// Its key (the prefix says whose it is).
        key: Vec<u8>,
        /// Its encoded value.
        data: Vec<u8>,
    },
    /// A layout member is reachable again (or for the first time): it gets
    /// our bucket properties, in case it missed changes while away.
    Back(NodeId),
}

/// Who is reachable, and the gossip protocol that tells.
pub struct Peers {
    membership: Membership,
    /// Peers the transport reports unreachable.
    down: BTreeSet<NodeId>,
    /// Peers reported reachable at least once.
    heard_up: BTreeSet<NodeId>,
    /// Gossip's last reported liveness per member (to see "alive again").
    gossip_seen: BTreeMap<NodeId, Liveness>,
    /// Requests in a row each peer left unanswered (reset by any message).
    silent: BTreeMap<NodeId, u32>,
}

/// A layout member as a join target: only its id and address matter (foca
/// accepts an announce by the receiver's id whatever the rest says).
fn layout_info(id: &NodeId, rpc_addr: &str) -> MemberInfo {
    MemberInfo {
        id: id.clone(),
        rpc_addr: rpc_addr.to_string(),
        http_addr: String::new(),
        incarnation: 0,
        layout_version: 0,
        status: MemberStatus::Active,
    }
}

impl Peers {
    /// The peers machine of a node with `cfg`, starting in `layout`.
    pub(crate) fn new(cfg: &NodeConfig, layout: &Layout) -> Self {
        let me = MemberInfo {
            id: cfg.id.clone(),
            rpc_addr: cfg.rpc_addr.clone(),
            http_addr: cfg.http_addr.clone(),
            incarnation: cfg.incarnation,
            layout_version: layout.version,
            status: MemberStatus::Active,
        };
        Peers {
            membership: Membership::new(me, cfg.generation, cfg.gossip_seed, cfg.gossip.clone()),
            down: BTreeSet::new(),
            heard_up: BTreeSet::new(),
            gossip_seen: BTreeMap::new(),
            silent: BTreeMap::new(),
        }
    }

    /// Announces this node to the layout's other members and to the
    /// configured join addresses.
    pub(crate) fn join<S>(&mut self, ctx: &mut Ctx<'_, S>) -> Vec<PeerEvent> {
        let peers: Vec<MemberInfo> = ctx
            .layout
            .members
            .iter()
            .filter(|m| m.id != ctx.cfg.id)
            .map(|m| layout_info(&m.id, &m.rpc_addr))
            .collect();
        let mut g = Vec::new();
        self.membership.join_known(ctx.now_ms, &peers, &mut g);
        if !ctx.cfg.join.is_empty() {
            self.membership
                .join_addrs(ctx.now_ms, &ctx.cfg.join, &mut g);
        }
        self.gossip_out(ctx, g)
    }

    /// The transport reached `peer` or lost it.
    pub(crate) fn on_status<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        peer: NodeId,
        up: bool,
    ) -> Option<PeerEvent> {
        if !up {
            if peer != ctx.cfg.id {
                self.down.insert(peer);
            }
            return None;
        }
        let back = self.down.remove(&peer) || !self.heard_up.contains(&peer);
        if back && ctx.layout.member(&peer).is_some() {
            self.heard_up.insert(peer.clone());
            return Some(PeerEvent::Back(peer));
        }
        None
    }

    /// Any message from `peer` shows it is not silent.
    pub(crate) fn heard_from(&mut self, peer: &NodeId) {
        if !self.silent.is_empty() {
            self.silent.remove(peer);
        }
    }

    /// A gossip packet from a peer. Garbage is counted and dropped.
    pub(crate) fn on_gossip<S>(&mut self, ctx: &mut Ctx<'_, S>, data: &[u8]) -> Vec<PeerEvent> {
        let mut g = Vec::new();
        if let Err(e) = self.membership.handle_data(ctx.now_ms, data, &mut g) {
            ctx.stats.gossip_errors += 1;
            debug!(error = %e, "gossip packet dropped");
        }
        self.gossip_out(ctx, g)
    }

    /// A gossip timer fired.
    pub(crate) fn on_timer<S>(&mut self, ctx: &mut Ctx<'_, S>, token: u64) -> Vec<PeerEvent> {
        let mut g = Vec::new();
        self.membership.handle_timer(ctx.now_ms, token, &mut g);
        self.gossip_out(ctx, g)
    }

    /// Requests to `nodes` timed out: suspect the ones that have now left
    /// [`SILENT_TIMEOUTS`] requests in a row unanswered (no-op for ourselves,
    /// members gossip does not know and members not Alive). One lost message
    /// is not a failure: suspecting on the first timeout made healthy nodes
    /// flap under 1 % message loss in the simulator, and reads went to
    /// fallbacks that lacked the data.
    pub(crate) fn suspect_silent<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        nodes: &[NodeId],
    ) -> Vec<PeerEvent> {
        let mut g = Vec::new();
        for n in nodes.iter().filter(|n| *n != ctx.me()) {
            let count = self.silent.entry(n.clone()).or_insert(0);
            *count += 1;
            if *count >= SILENT_TIMEOUTS {
                self.silent.remove(n);
                self.membership.suspect(ctx.now_ms, n, &mut g);
            }
        }
        self.gossip_out(ctx, g)
    }

    /// Spreads a piece of cluster metadata by gossip (a newer `version` of
    /// the same `key` replaces an older one on the way).
    pub(crate) fn broadcast<S>(
        &mut self,
        ctx: &mut Ctx<'_, S>,
        key: &[u8],
        version: u64,
        data: Vec<u8>,
    ) -> Vec<PeerEvent> {
        let mut g = Vec::new();
        if let Err(e) = self.membership.broadcast(key, version, data, &mut g) {
            // Too big for a packet: the direct sends still carry it.
            debug!(error = %e, "metadata not spread by gossip");
        }
        self.gossip_out(ctx, g)
    }

    /// Turns what the membership asked for into node outputs and events.
    fn gossip_out<S>(&mut self, ctx: &mut Ctx<'_, S>, g: Vec<GossipOut>) -> Vec<PeerEvent> {
        // Addresses first: a Send to a member met in this very batch needs
        // the runtime to know where it is.
        for o in &g {
            if let GossipOut::Updated { info } = o
                && info.id != ctx.cfg.id
                && !info.rpc_addr.is_empty()
            {
                ctx.out.push(Output::PeerAddr {
                    peer: info.id.clone(),
                    rpc_addr: info.rpc_addr.clone(),
                });
            }
        }
        let mut events = Vec::new();
        for o in g {
            match o {
                GossipOut::Send { to, data } => ctx.out.push(Output::Send {
                    to,
                    msg: PeerMsg::Gossip { data },
                }),
                GossipOut::SendAddr { addr, data } => ctx.out.push(Output::SendAddr {
                    addr,
                    msg: PeerMsg::Gossip { data },
                }),
                GossipOut::Timer { at_ms, token } => ctx.out.push(Output::SetTimer {
                    id: Timer::Gossip(token),
                    at_ms,
                }),
                GossipOut::Changed { id, liveness } => {
                    events.extend(self.on_changed(ctx.layout, id, liveness))
                }
                GossipOut::Metadata { key, data, .. } => {
                    events.push(PeerEvent::Metadata { key, data })
                }
                GossipOut::Updated { .. } => {}
            }
        }
        events
    }

    fn on_changed(&mut self, layout: &Layout, id: NodeId, liveness: Liveness) -> Option<PeerEvent> {
        let prev = self.gossip_seen.insert(id.clone(), liveness);
        match liveness {
            Liveness::Alive => debug!(peer = %id, "gossip: alive"),
            _ => info!(peer = %id, ?liveness, "gossip: peer not alive"),
        }
        let again = matches!(prev, Some(Liveness::Suspect | Liveness::Down));
        if liveness == Liveness::Alive && again && layout.member(&id).is_some() {
            info!(peer = %id, "gossip: peer alive again");
            return Some(PeerEvent::Back(id));
        }
        None
    }

    /// `peer`'s liveness as node `me` sees it: the worse of the transport's
    /// view (a link that is down counts as Down) and gossip's (unknown counts
    /// as Alive). `me` itself is always Alive.
    pub fn liveness(&self, me: &NodeId, peer: &NodeId) -> Liveness {
        if peer == me {
            return Liveness::Alive;
        }
        let link = if self.down.contains(peer) {
            Liveness::Down
        } else {
            Liveness::Alive
        };
        link.max(self.membership.liveness(peer).unwrap_or(Liveness::Alive))
    }

    /// Every member known, by id: gossip's members (with the info they
    /// spread) and the layout's members gossip has not met (with their
    /// layout address, empty HTTP address and incarnation 0), each with its
    /// [`Peers::liveness`].
    pub fn members(&self, me: &NodeId, layout: &Layout) -> Vec<(MemberInfo, Liveness)> {
        let mut v: Vec<(MemberInfo, Liveness)> = self.membership.members();
        for m in &layout.members {
            if !v.iter().any(|(i, _)| i.id == m.id) {
                v.push((layout_info(&m.id, &m.rpc_addr), Liveness::Alive));
            }
        }
        for (info, l) in &mut v {
            *l = self.liveness(me, &info.id);
        }
        v.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        v
    }

    /// The gossip membership, read-only (tests, status pages).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
}
