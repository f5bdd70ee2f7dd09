//! Peers: who is reachable, from two views, and the glue to the gossip
//! [`Membership`].
//!
//! Owns: the gossip membership (foca), the transport's view of links that
//! are down, which peers were heard up, gossip's last reported liveness per
//! member, and the count of requests each peer left unanswered.
//! Emits: gossip packets ([`Output::Send`] of [`PeerMsg::Gossip`], and
//! [`Output::SendAddr`] for `--join` addresses), gossip timers, peer
//! addresses ([`Output::PeerAddr`], before any message to a new member), and
//! `PeerEvent`s for the router: cluster metadata that arrived by gossip,
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
    /// Whether fallbacks may stand in for unreachable primaries
    /// ([`NodeConfig::hinted_handoff`]).
    hinted_handoff: bool,
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
    /// Whether a request may go to fallbacks standing in for unreachable
    /// primaries (sloppy quorum and hinted handoff).
    pub(crate) fn hinted_handoff(&self) -> bool {
        self.hinted_handoff
    }

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
            hinted_handoff: cfg.hinted_handoff,
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

#[cfg(test)]
mod tests {
    use ringkv_core::NodeId;
    use ringkv_core::msg::PeerMsg;

    use super::{PeerEvent, SILENT_TIMEOUTS};
    use crate::membership::Liveness;
    use crate::testing::{Fixture, id};
    use crate::{Output, Timer};

    fn status(fx: &mut Fixture, peer: &str, up: bool) -> Option<PeerEvent> {
        fx.run_peers(|ctx, p| p.on_status(ctx, id(peer), up))
    }

    fn liveness(fx: &Fixture, peer: &str) -> Liveness {
        fx.peers.liveness(&fx.cfg.id, &id(peer))
    }

    fn gossip_liveness(fx: &Fixture, peer: &str) -> Option<Liveness> {
        fx.peers.membership().liveness(&id(peer))
    }

    fn suspect(fx: &mut Fixture, peers: &[&str]) {
        let nodes: Vec<NodeId> = peers.iter().map(|p| id(p)).collect();
        fx.run_peers(|ctx, p| p.suspect_silent(ctx, &nodes));
    }

    /// Gossip packets among `outs` addressed to `to`.
    fn packets_to(outs: Vec<Output>, to: &NodeId) -> Vec<Vec<u8>> {
        outs.into_iter()
            .filter_map(|o| match o {
                Output::Send {
                    to: t,
                    msg: PeerMsg::Gossip { data },
                } if &t == to => Some(data),
                _ => None,
            })
            .collect()
    }

    /// Delivers gossip between `a` and `b` until neither sends the other
    /// anything more (packets to other nodes are lost; no timer fires).
    /// Returns the events `a` reported.
    fn pump(a: &mut Fixture, b: &mut Fixture) -> Vec<PeerEvent> {
        let mut events = Vec::new();
        for _ in 0..100 {
            let to_b = packets_to(a.take_out(), &b.cfg.id);
            let to_a = packets_to(b.take_out(), &a.cfg.id);
            if to_a.is_empty() && to_b.is_empty() {
                return events;
            }
            for data in to_b {
                b.run_peers(|ctx, p| p.on_gossip(ctx, &data));
            }
            for data in to_a {
                events.extend(a.run_peers(|ctx, p| p.on_gossip(ctx, &data)));
            }
        }
        panic!("gossip never went quiet");
    }

    /// `n1`, which gossip has told that `n2` is Alive (`n3` it never met).
    fn n1_knowing_n2() -> Fixture {
        n1_and_n2().0
    }

    /// `n1` and `n2`, which met by gossip (neither met `n3`).
    fn n1_and_n2() -> (Fixture, Fixture) {
        let (mut a, mut b) = (Fixture::new("n1"), Fixture::new("n2"));
        let events = a.run_peers(|ctx, p| p.join(ctx));
        assert_eq!(events, vec![]);
        pump(&mut a, &mut b);
        assert_eq!(gossip_liveness(&a, "n2"), Some(Liveness::Alive));
        assert_eq!(gossip_liveness(&a, "n3"), None);
        (a, b)
    }

    #[test]
    fn join_announces_to_the_other_layout_members_and_arms_a_gossip_timer() {
        let mut fx = Fixture::new("n1");

        fx.run_peers(|ctx, p| p.join(ctx));

        let out = fx.take_out();
        let to = |n: &str| packets_to(out.clone(), &id(n)).len();
        assert_eq!((to("n1"), to("n2"), to("n3")), (0, 1, 1), "{out:?}");
        let timers = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::SetTimer {
                        id: Timer::Gossip(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(timers, 1, "{out:?}");
    }

    #[test]
    fn a_link_reported_down_makes_the_peer_down_until_it_is_up_again() {
        let mut fx = Fixture::new("n1");
        assert_eq!(
            liveness(&fx, "n2"),
            Liveness::Alive,
            "unknown counts as Alive"
        );

        assert_eq!(status(&mut fx, "n2", false), None);
        assert_eq!(liveness(&fx, "n2"), Liveness::Down);
        assert!(!fx.run(|_, view| view.is_live(&id("n2"))));
        assert_eq!(liveness(&fx, "n3"), Liveness::Alive);

        assert_eq!(status(&mut fx, "n2", true), Some(PeerEvent::Back(id("n2"))));
        assert_eq!(liveness(&fx, "n2"), Liveness::Alive);
        assert_eq!(fx.take_out(), vec![]);
    }

    #[test]
    fn this_node_is_never_down() {
        let mut fx = Fixture::new("n1");

        assert_eq!(status(&mut fx, "n1", false), None);

        assert_eq!(liveness(&fx, "n1"), Liveness::Alive);
    }

    #[test]
    fn a_layout_member_coming_back_up_is_reported_once() {
        let mut fx = Fixture::new("n1");
        let back = Some(PeerEvent::Back(id("n2")));

        assert_eq!(status(&mut fx, "n2", true), back, "first time up");
        assert_eq!(status(&mut fx, "n2", true), None);
        assert_eq!(status(&mut fx, "n2", false), None);
        assert_eq!(status(&mut fx, "n2", true), back, "up after down");
        assert_eq!(status(&mut fx, "n2", true), None);
    }

    #[test]
    fn a_stranger_coming_up_is_never_reported() {
        let mut fx = Fixture::new("n1");

        assert_eq!(status(&mut fx, "n9", true), None);
        assert_eq!(status(&mut fx, "n9", false), None);
        assert_eq!(liveness(&fx, "n9"), Liveness::Down);
        assert_eq!(status(&mut fx, "n9", true), None);
        assert_eq!(liveness(&fx, "n9"), Liveness::Alive);
    }

    #[test]
    fn a_peer_is_suspected_only_after_silent_timeouts_in_a_row() {
        let mut fx = n1_knowing_n2();

        for _ in 1..SILENT_TIMEOUTS {
            suspect(&mut fx, &["n2"]);
            assert_eq!(gossip_liveness(&fx, "n2"), Some(Liveness::Alive));
        }
        suspect(&mut fx, &["n2"]);

        assert_eq!(gossip_liveness(&fx, "n2"), Some(Liveness::Suspect));
        assert_eq!(liveness(&fx, "n2"), Liveness::Suspect);
        assert!(!fx.run(|_, view| view.is_live(&id("n2"))));
    }

    #[test]
    fn any_message_from_a_peer_restarts_its_count() {
        let mut fx = n1_knowing_n2();
        for _ in 1..SILENT_TIMEOUTS {
            suspect(&mut fx, &["n2"]);
        }

        fx.peers.heard_from(&id("n2"));
        for _ in 1..SILENT_TIMEOUTS {
            suspect(&mut fx, &["n2"]);
        }
        assert_eq!(gossip_liveness(&fx, "n2"), Some(Liveness::Alive));

        suspect(&mut fx, &["n2"]);
        assert_eq!(gossip_liveness(&fx, "n2"), Some(Liveness::Suspect));
    }

    #[test]
    fn silence_of_this_node_or_of_a_member_gossip_never_met_suspects_nobody() {
        let mut fx = n1_knowing_n2();

        for _ in 0..SILENT_TIMEOUTS {
            suspect(&mut fx, &["n1", "n3"]);
        }

        assert_eq!(liveness(&fx, "n1"), Liveness::Alive);
        assert_eq!(gossip_liveness(&fx, "n3"), None);
        assert_eq!(liveness(&fx, "n3"), Liveness::Alive);
        assert_eq!(gossip_liveness(&fx, "n2"), Some(Liveness::Alive));
    }

    #[test]
    fn a_suspected_member_that_refutes_is_reported_back_once() {
        let (mut a, mut b) = n1_and_n2();
        for _ in 0..SILENT_TIMEOUTS {
            suspect(&mut a, &["n2"]);
        }
        assert_eq!(gossip_liveness(&a, "n2"), Some(Liveness::Suspect));

        let events = pump(&mut a, &mut b);

        assert_eq!(gossip_liveness(&a, "n2"), Some(Liveness::Alive));
        assert_eq!(events, vec![PeerEvent::Back(id("n2"))]);
    }

    #[test]
    fn metadata_broadcast_by_a_peer_is_reported_as_an_event() {
        let (mut a, mut b) = n1_and_n2();
        let events = b.run_peers(|ctx, p| p.broadcast(ctx, b"bucket/x", 7, b"props".to_vec()));
        assert_eq!(events, vec![], "not reported to its own node");

        let events = pump(&mut a, &mut b);

        let metadata = PeerEvent::Metadata {
            key: b"bucket/x".to_vec(),
            data: b"props".to_vec(),
        };
        assert_eq!(events, vec![metadata]);
    }
}
