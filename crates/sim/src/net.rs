//! The simulated network between nodes: latency per leg, loss, duplication,
//! reordering, partitions and slow nodes.
//!
//! Each message a node sends gets a [`Fate`] at send time: dropped (a blocked
//! link or random loss) or delivered after a latency drawn from its leg's
//! distribution (the WARS legs of PBS: write request, write ack, read
//! request, read response; everything else uses the default leg), multiplied
//! by the slow factors of both ends, plus a random extra delay when it is
//! reordered; a duplicated message is delivered a second time with a latency
//! of its own.
//!
//! Partitions are *cuts*: sets of blocked directed links. A link is blocked
//! while any cut blocks it, so a random partition can end on its own without
//! lifting a scheduled one; `heal_all` lifts every cut.

use std::collections::BTreeMap;

use ringkv_core::msg::PeerMsg;

use crate::dist::{Sampler, ms_to_us};
use crate::rng::SimRng;
use crate::scenario::Network;

/// Which latency distribution a message takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// Forwards, their replies and anything without a leg of its own.
    Default = 0,
    /// W: coordinator -> replica write ([`PeerMsg::ReplicaPut`]).
    WriteRequest = 1,
    /// A: replica -> coordinator write ack ([`PeerMsg::ReplicaPutAck`]).
    WriteAck = 2,
    /// R: coordinator -> replica read ([`PeerMsg::ReplicaGet`]).
    ReadRequest = 3,
    /// S: replica -> coordinator read reply ([`PeerMsg::ReplicaGetReply`]).
    ReadResponse = 4,
}

impl Leg {
    /// The leg of `msg`.
    pub fn of(msg: &PeerMsg) -> Leg {
        match msg {
            PeerMsg::ReplicaPut { .. } | PeerMsg::HandoffPut { .. } => Leg::WriteRequest,
            PeerMsg::ReplicaPutAck { .. } => Leg::WriteAck,
            PeerMsg::ReplicaGet { .. } => Leg::ReadRequest,
            PeerMsg::ReplicaGetReply { .. } => Leg::ReadResponse,
            PeerMsg::Forward { .. }
            | PeerMsg::ForwardReply { .. }
            | PeerMsg::Bucket { .. }
            | PeerMsg::ClusterVersion { .. }
            | PeerMsg::ClusterFetch
            | PeerMsg::ClusterDoc { .. }
            | PeerMsg::Gossip { .. }
            | PeerMsg::Raft { .. }
            | PeerMsg::StrongForward { .. }
            | PeerMsg::StrongReply { .. }
            | PeerMsg::AaeBranches { .. }
            | PeerMsg::AaeSegments { .. }
            | PeerMsg::AaeKeys { .. }
            | PeerMsg::AaeWant { .. }
            | PeerMsg::AaePut { .. }
            | PeerMsg::AaeRootDiffers { .. }
            | PeerMsg::PurgeCheck { .. }
            | PeerMsg::PurgeHave { .. }
            | PeerMsg::Purge { .. }
            | PeerMsg::List { .. }
            | PeerMsg::ListReply { .. } => Leg::Default,
        }
    }
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// A partition blocks the link.
    Partition,
    /// Random loss.
    Loss,
}

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Not delivered.
    Dropped(DropReason),
    /// Delivered after `first_us`, and again after `second_us` if duplicated.
    Deliver {
        /// Delay of the message, µs.
        first_us: u64,
        /// Delay of its duplicate, µs.
        second_us: Option<u64>,
    },
}

/// The state of the simulated network: fixed parameters plus the faults in
/// force (cuts, slow nodes). Nodes are indexes `0..nodes`.
#[derive(Clone, Debug)]
pub struct Net {
    nodes: usize,
    legs: [Sampler; 5],
    loss: f64,
    duplicate: f64,
    reorder: f64,
    reorder_ms: f64,
    /// `blocked[from * nodes + to]`: how many cuts block the link.
    blocked: Vec<u32>,
    cuts: BTreeMap<u64, Vec<(usize, usize)>>,
    next_cut: u64,
    slow: Vec<f64>,
}

impl Net {
    /// The network of a validated scenario with `nodes` nodes, no faults.
    pub fn new(net: &Network, nodes: usize) -> Self {
        let l = &net.latency;
        let leg = |o: &Option<_>| Sampler::new(o.as_ref().unwrap_or(&l.default));
        Net {
            nodes,
            legs: [
                Sampler::new(&l.default),
                leg(&l.write_request),
                leg(&l.write_ack),
                leg(&l.read_request),
                leg(&l.read_response),
            ],
            loss: net.loss,
            duplicate: net.duplicate,
            reorder: net.reorder,
            reorder_ms: net.reorder_ms,
            blocked: vec![0; nodes * nodes],
            cuts: BTreeMap::new(),
            next_cut: 1,
            slow: vec![1.0; nodes],
        }
    }

    /// Decides the fate of a message on `leg` from `from` to `to`, sent now.
    pub fn fate(&self, from: usize, to: usize, leg: Leg, rng: &mut SimRng) -> Fate {
        if self.is_blocked(from, to) {
            return Fate::Dropped(DropReason::Partition);
        }
        if rng.chance(self.loss) {
            return Fate::Dropped(DropReason::Loss);
        }
        let first_us = self.delay_us(from, to, leg, rng);
        let second_us = if rng.chance(self.duplicate) {
            Some(self.delay_us(from, to, leg, rng))
        } else {
            None
        };
        Fate::Deliver {
            first_us,
            second_us,
        }
    }

    /// One latency from `from` to `to` on `leg`, with slowness and
    /// reordering, in µs. Also used for connection resets, which travel too.
    pub fn delay_us(&self, from: usize, to: usize, leg: Leg, rng: &mut SimRng) -> u64 {
        let mut ms = self.legs[leg as usize].sample_ms(rng) * self.slow[from] * self.slow[to];
        if rng.chance(self.reorder) {
            ms += rng.unit() * self.reorder_ms;
        }
        ms_to_us(ms)
    }

    /// Whether a cut blocks `from -> to` (a node always reaches itself).
    pub fn is_blocked(&self, from: usize, to: usize) -> bool {
        from != to && self.blocked[from * self.nodes + to] > 0
    }

    /// Blocks the given directed links until [`Net::heal`] of the returned
    /// cut id or [`Net::heal_all`].
    pub fn cut(&mut self, links: Vec<(usize, usize)>) -> u64 {
        for &(a, b) in &links {
            self.blocked[a * self.nodes + b] += 1;
        }
        let id = self.next_cut;
        self.next_cut += 1;
        self.cuts.insert(id, links);
        id
    }

    /// Lifts one cut; returns whether it was still in force.
    pub fn heal(&mut self, cut: u64) -> bool {
        let Some(links) = self.cuts.remove(&cut) else {
            return false;
        };
        for (a, b) in links {
            self.blocked[a * self.nodes + b] -= 1;
        }
        true
    }

    /// Lifts every cut; returns how many there were.
    pub fn heal_all(&mut self) -> usize {
        let n = self.cuts.len();
        self.cuts.clear();
        self.blocked.iter_mut().for_each(|b| *b = 0);
        n
    }

    /// Multiplies the latency of every message to or from `node` by `factor`
    /// (1.0 = normal).
    pub fn set_slow(&mut self, node: usize, factor: f64) {
        self.slow[node] = factor;
    }

    /// Makes every node normal speed again.
    pub fn reset_slow(&mut self) {
        self.slow.iter_mut().for_each(|f| *f = 1.0);
    }

    /// The slow factor of `node`.
    pub fn slow(&self, node: usize) -> f64 {
        self.slow[node]
    }
}

/// The directed links a partition between sides `a` and `b` blocks: `a -> b`,
/// and `b -> a` unless `one_way`. A node on both sides keeps its self-link.
pub fn partition_links(a: &[usize], b: &[usize], one_way: bool) -> Vec<(usize, usize)> {
    let mut links = Vec::new();
    for &x in a {
        for &y in b {
            if x != y {
                links.push((x, y));
                if !one_way {
                    links.push((y, x));
                }
            }
        }
    }
    links
}

/// The links that cut `node` off from every other of `nodes` nodes.
pub fn isolate_links(node: usize, nodes: usize) -> Vec<(usize, usize)> {
    let others: Vec<usize> = (0..nodes).filter(|&o| o != node).collect();
    partition_links(&[node], &others, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use crate::scenario::Latency;

    fn net(loss: f64, duplicate: f64) -> Net {
        let mut n = Network {
            loss,
            duplicate,
            ..Network::default()
        };
        n.latency.default = Latency::Constant { ms: 2.0 };
        n.latency.write_ack = Some(Latency::Constant { ms: 5.0 });
        Net::new(&n, 3)
    }

    #[test]
    fn legs_pick_their_distribution_and_slowness_multiplies() {
        let mut n = net(0.0, 0.0);
        let mut rng = SimRng::new(1, Stream::Network);
        let fate = |n: &Net, leg, rng: &mut SimRng| n.fate(0, 1, leg, rng);
        let d = |first_us| Fate::Deliver {
            first_us,
            second_us: None,
        };
        assert_eq!(fate(&n, Leg::Default, &mut rng), d(2_000));
        assert_eq!(fate(&n, Leg::WriteRequest, &mut rng), d(2_000));
        assert_eq!(fate(&n, Leg::WriteAck, &mut rng), d(5_000));
        n.set_slow(1, 3.0);
        assert_eq!(fate(&n, Leg::Default, &mut rng), d(6_000));
        n.set_slow(0, 2.0);
        assert_eq!(fate(&n, Leg::Default, &mut rng), d(12_000));
        n.reset_slow();
        assert_eq!(n.slow(1), 1.0);
    }

    #[test]
    fn cuts_block_until_healed() {
        let mut n = net(0.0, 0.0);
        let mut rng = SimRng::new(1, Stream::Network);
        let one_way = n.cut(partition_links(&[0], &[1, 2], true));
        assert!(n.is_blocked(0, 1) && n.is_blocked(0, 2));
        assert!(!n.is_blocked(1, 0) && !n.is_blocked(1, 2) && !n.is_blocked(0, 0));
        assert_eq!(
            n.fate(0, 2, Leg::Default, &mut rng),
            Fate::Dropped(DropReason::Partition)
        );
        let iso = n.cut(isolate_links(0, 3));
        assert!(n.is_blocked(1, 0));
        assert!(n.heal(iso));
        assert!(!n.heal(iso));
        assert!(n.is_blocked(0, 1) && !n.is_blocked(1, 0));
        n.cut(isolate_links(2, 3));
        assert_eq!(n.heal_all(), 2);
        assert!(!n.heal(one_way));
        assert!((0..3).all(|a| (0..3).all(|b| !n.is_blocked(a, b))));
    }

    #[test]
    fn loss_and_duplication() {
        let mut rng = SimRng::new(5, Stream::Network);
        let all_lost = net(1.0, 0.0);
        assert_eq!(
            all_lost.fate(0, 1, Leg::Default, &mut rng),
            Fate::Dropped(DropReason::Loss)
        );
        let dup = net(0.0, 1.0);
        assert_eq!(
            dup.fate(0, 1, Leg::Default, &mut rng),
            Fate::Deliver {
                first_us: 2_000,
                second_us: Some(2_000)
            }
        );
        let half = net(0.5, 0.0);
        let lost = (0..10_000)
            .filter(|_| matches!(half.fate(1, 2, Leg::Default, &mut rng), Fate::Dropped(_)))
            .count();
        assert!((4_700..5_300).contains(&lost), "{lost}");
    }
}
