//! The glue between [`Node`] and its gossip [`Membership`]: packets, timers,
//! liveness, and suspicion fed by timed-out requests.
//!
//! - Gossip packets travel as [`PeerMsg::Gossip`] on the ordinary peer
//!   links; join announces to bare addresses (`--join`) as
//!   [`Output::SendAddr`]. A member gossip tells us about comes out as
//!   [`Output::PeerAddr`] before any message to it, so the runtime can reach
//!   peers it did not know at start.
//! - Timers: the membership's tokens become timer ids with the top bit set
//!   ([`TIMER_BIT`]). Request ids stay below 2^62 and the handoff timer is
//!   `u64::MAX`, which a token never reaches, so the three never collide.
//! - Liveness ([`Node::liveness`]) is the worse of two views: the transport's
//!   (a link that is down: a refused connection is the fastest signal of a
//!   killed process) and gossip's (Suspect or Down: the only signal across a
//!   partition, where TCP notices nothing). A peer gossip never heard of is
//!   Alive unless its link is down.
//! - A read or write whose deadline passes with targets that never answered
//!   makes the node suspect them ([`Membership::suspect`]): gossip spreads
//!   the suspicion, a live member refutes it, a dead one goes Down.
//! - A member gossip sees Alive again after Suspect or Down gets our bucket
//!   properties, as a peer whose link comes back does.

use std::collections::BTreeMap;

use ringkv_core::NodeId;
use ringkv_core::msg::PeerMsg;
use ringkv_storage::Store;
use tracing::{debug, info};

use crate::membership::{GossipOut, Liveness, MemberInfo, MemberStatus, Membership};
use crate::{Node, Output, TimerId, handoff};

/// Requests in a row a peer must leave unanswered before a coordinator
/// suspects it (any message from the peer starts the count again).
pub const SILENT_TIMEOUTS: u32 = 3;

/// Set in the timer id of every gossip timer.
pub const TIMER_BIT: u64 = 1 << 63;

/// Whether timer `id` belongs to gossip.
pub fn is_gossip_timer(id: TimerId) -> bool {
    id & TIMER_BIT != 0 && id != handoff::TIMER
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

/// Gossip's last reported liveness of each member, as the node saw it.
pub(crate) type GossipSeen = BTreeMap<NodeId, Liveness>;

impl<S: Store> Node<S> {
    /// Announces this node to the layout's other members and to the
    /// configured join addresses.
    pub(crate) fn gossip_join(&mut self, now_ms: u64, out: &mut Vec<Output>) {
        let peers: Vec<MemberInfo> = self
            .layout
            .members
            .iter()
            .filter(|m| m.id != self.cfg.id)
            .map(|m| layout_info(&m.id, &m.rpc_addr))
            .collect();
        let mut g = Vec::new();
        self.membership.join_known(now_ms, &peers, &mut g);
        if !self.cfg.join.is_empty() {
            let addrs = self.cfg.join.clone();
            self.membership.join_addrs(now_ms, &addrs, &mut g);
        }
        self.gossip_out(now_ms, g, out);
    }

    /// A gossip packet from a peer. Garbage is counted and dropped.
    pub(crate) fn on_gossip(&mut self, now_ms: u64, data: &[u8], out: &mut Vec<Output>) {
        let mut g = Vec::new();
        if let Err(e) = self.membership.handle_data(now_ms, data, &mut g) {
            self.stats.gossip_errors += 1;
            debug!(error = %e, "gossip packet dropped");
        }
        self.gossip_out(now_ms, g, out);
    }

    /// A gossip timer fired.
    pub(crate) fn on_gossip_timer(&mut self, now_ms: u64, id: TimerId, out: &mut Vec<Output>) {
        let mut g = Vec::new();
        self.membership
            .handle_timer(now_ms, id & !TIMER_BIT, &mut g);
        self.gossip_out(now_ms, g, out);
    }

    /// Requests to `nodes` timed out: suspect the ones that have now left
    /// [`SILENT_TIMEOUTS`] requests in a row unanswered (no-op for ourselves,
    /// members gossip does not know and members not Alive). One lost message
    /// is not a failure: suspecting on the first timeout made healthy nodes
    /// flap under 1 % message loss in the simulator, and reads went to
    /// fallbacks that lacked the data.
    pub(crate) fn suspect_silent(&mut self, now_ms: u64, nodes: &[NodeId], out: &mut Vec<Output>) {
        let mut g = Vec::new();
        for n in nodes.iter().filter(|n| **n != self.cfg.id) {
            let count = self.silent.entry(n.clone()).or_insert(0);
            *count += 1;
            if *count >= SILENT_TIMEOUTS {
                self.silent.remove(n);
                self.membership.suspect(now_ms, n, &mut g);
            }
        }
        self.gossip_out(now_ms, g, out);
    }

    /// Spreads a piece of cluster metadata by gossip (a newer `version` of
    /// the same `key` replaces an older one on the way).
    pub(crate) fn gossip_broadcast(
        &mut self,
        now_ms: u64,
        key: &[u8],
        version: u64,
        data: Vec<u8>,
        out: &mut Vec<Output>,
    ) {
        let mut g = Vec::new();
        if let Err(e) = self.membership.broadcast(key, version, data, &mut g) {
            // Too big for a packet: the direct sends still carry it.
            debug!(error = %e, "metadata not spread by gossip");
        }
        self.gossip_out(now_ms, g, out);
    }

    /// Cluster metadata that arrived by gossip.
    fn on_gossip_metadata(&mut self, now_ms: u64, key: &[u8], data: &[u8]) {
        if key.starts_with(crate::buckets::META_BUCKET) {
            match postcard::from_bytes(data) {
                Ok(entry) => self.on_bucket_entry(now_ms, entry),
                Err(e) => {
                    self.stats.gossip_errors += 1;
                    debug!(error = %e, "gossiped bucket properties do not decode");
                }
            }
        }
    }

    /// Turns what the membership asked for into node outputs.
    fn gossip_out(&mut self, now_ms: u64, g: Vec<GossipOut>, out: &mut Vec<Output>) {
        // Addresses first: a Send to a member met in this very batch needs
        // the runtime to know where it is.
        for o in &g {
            if let GossipOut::Updated { info } = o
                && info.id != self.cfg.id
                && !info.rpc_addr.is_empty()
            {
                out.push(Output::PeerAddr {
                    peer: info.id.clone(),
                    rpc_addr: info.rpc_addr.clone(),
                });
            }
        }
        for o in g {
            match o {
                GossipOut::Send { to, data } => out.push(Output::Send {
                    to,
                    msg: PeerMsg::Gossip { data },
                }),
                GossipOut::SendAddr { addr, data } => out.push(Output::SendAddr {
                    addr,
                    msg: PeerMsg::Gossip { data },
                }),
                GossipOut::Timer { at_ms, token } => {
                    debug_assert!(token < 1 << 62, "gossip timer token overflow");
                    out.push(Output::SetTimer {
                        id: TIMER_BIT | token,
                        at_ms,
                    });
                }
                GossipOut::Changed { id, liveness } => self.on_gossip_changed(id, liveness, out),
                GossipOut::Metadata { key, data, .. } => {
                    self.on_gossip_metadata(now_ms, &key, &data)
                }
                GossipOut::Updated { .. } => {}
            }
        }
    }

    fn on_gossip_changed(&mut self, id: NodeId, liveness: Liveness, out: &mut Vec<Output>) {
        let prev = self.gossip_seen.insert(id.clone(), liveness);
        match liveness {
            Liveness::Alive => debug!(peer = %id, "gossip: alive"),
            _ => info!(peer = %id, ?liveness, "gossip: peer not alive"),
        }
        let again = matches!(prev, Some(Liveness::Suspect | Liveness::Down));
        if liveness == Liveness::Alive && again && self.layout.member(&id).is_some() {
            info!(peer = %id, "gossip: peer alive again");
            self.send_buckets(&id, out);
        }
    }

    /// `peer`'s liveness as this node sees it: the worse of the transport's
    /// view (a link that is down counts as Down) and gossip's (unknown
    /// counts as Alive). This node itself is always Alive.
    pub fn liveness(&self, peer: &NodeId) -> Liveness {
        if *peer == self.cfg.id {
            return Liveness::Alive;
        }
        let link = if self.down.contains(peer) {
            Liveness::Down
        } else {
            Liveness::Alive
        };
        link.max(self.membership.liveness(peer).unwrap_or(Liveness::Alive))
    }

    /// `peer`'s liveness according to gossip alone; `None` if gossip never
    /// heard of it.
    pub fn gossip_liveness(&self, peer: &NodeId) -> Option<Liveness> {
        self.membership.liveness(peer)
    }

    /// Every member this node knows, by id: gossip's members (with the info
    /// they spread) and the layout's members gossip has not met (with their
    /// layout address, empty HTTP address and incarnation 0), each with its
    /// [`Node::liveness`].
    pub fn members(&self) -> Vec<(MemberInfo, Liveness)> {
        let mut v: Vec<(MemberInfo, Liveness)> = self.membership.members();
        for m in &self.layout.members {
            if !v.iter().any(|(i, _)| i.id == m.id) {
                v.push((layout_info(&m.id, &m.rpc_addr), Liveness::Alive));
            }
        }
        for (info, l) in &mut v {
            *l = self.liveness(&info.id);
        }
        v.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        v
    }

    /// The gossip membership, read-only (tests, status pages).
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
}
