//! The simulated nodes: real [`Node<MemStore>`] state machines, their disks,
//! and what a crash and a restart do to them.
//!
//! Like the real runtime, every batch of node work is made durable before
//! its outputs leave: [`Cluster::handle`] flushes the store after each input
//! (and syncs it with `sync = always`), so a killed process never loses an
//! acknowledged write. With periodic sync the engine calls [`Cluster::sync`]
//! every interval; a power cut loses what came after the last one.
//!
//! Gossip runs for real: every node has its membership (with
//! [`GossipConfig::fast`]), its packets cross the simulated network and its
//! timers run on the simulated clock. A start's gossip generation is
//! `(now_ms << 20) + starts`, so it grows with every start, as the wall clock
//! does for a real process, and its gossip seed comes from the run's seed.
//!
//! A node's *epoch* counts its crashes. Events addressed to a node (messages,
//! timers, connection news) carry the epoch they were meant for and are
//! discarded when it changed: a restarted process has new sockets and no
//! timers.

use ringkv_core::{Layout, Limits, Member, NodeId};
use ringkv_node::membership::GossipConfig;
use ringkv_node::{InjectedBugs, Input, Node, NodeConfig, Output};
use ringkv_storage::Store;
use ringkv_storage::memory::MemStore;

use crate::rng::SimRng;
use crate::scenario::{Scenario, SimSync};

/// Most requests a simulated node coordinates at once (the server default).
pub const PENDING_MAX: usize = 10_000;

/// One simulated machine.
struct Slot {
    /// The running process, `None` while crashed.
    node: Option<Node<MemStore>>,
    /// The disk while the process is down.
    disk: Option<MemStore>,
    /// Crashes so far.
    epoch: u64,
    /// Incarnation of the data directory (part of every dot it makes).
    incarnation: u32,
    /// Entered around every input, so each of the node's log lines carries
    /// its id, as on a real server.
    span: tracing::Span,
}

/// Every node of a run, by index (`n1` is index 0).
pub struct Cluster {
    ids: Vec<NodeId>,
    layout: Layout,
    template: NodeConfig,
    sync: SimSync,
    slots: Vec<Slot>,
    /// Node starts so far, restarts included: each start numbers its
    /// requests from a fresh range, as a real process does.
    starts: u64,
    /// Drawn once from the run's seed; each start's gossip seed derives from it.
    gossip_seed: u64,
}

impl Cluster {
    /// Nodes `n1..` of a validated scenario, all up with empty stores and
    /// incarnations drawn from `rng`.
    pub fn new(s: &Scenario, bugs: &InjectedBugs, rng: &mut SimRng) -> Self {
        let ids: Vec<NodeId> = (1..=s.nodes)
            .map(|i| NodeId::from(format!("n{i}")))
            .collect();
        let members = ids
            .iter()
            .map(|id| Member::new(id.clone(), format!("sim:{id}")))
            .collect();
        let layout = Layout::initial(members, s.ring_size).expect("scenario was validated");
        let template = NodeConfig {
            id: ids[0].clone(),
            incarnation: 1,
            n: s.n,
            r: s.r,
            w: s.w,
            timeout_ms: s.timeout_ms,
            limits: Limits::default(),
            pending_max: PENDING_MAX,
            bugs: bugs.clone(),
            request_id_base: 0,
            hints_max: ringkv_node::HINTS_MAX_DEFAULT,
            buckets_max: ringkv_node::BUCKETS_MAX_DEFAULT,
            handoff_interval_ms: ringkv_node::HANDOFF_INTERVAL_MS_DEFAULT,
            handoff_window: ringkv_node::HANDOFF_WINDOW_DEFAULT,
            gossip: gossip_config(s),
            rpc_addr: String::new(),
            http_addr: String::new(),
            generation: 0,
            gossip_seed: 0,
            join: vec![],
            consensus: ringkv_node::ConsensusConfig::default(),
            aae: ringkv_node::AaeConfig {
                interval_ms: s.aae_interval_ms,
                tombstone_grace_ms: s.tombstone_grace_ms,
                ..Default::default()
            },
            hinted_handoff: s.hinted_handoff,
        };
        let mut c = Cluster {
            ids,
            layout,
            template,
            sync: s.sync.clone(),
            slots: Vec::new(),
            starts: 0,
            gossip_seed: 0,
        };
        let incarnations: Vec<u32> = (0..s.nodes).map(|_| rng.incarnation(None)).collect();
        c.gossip_seed = rng.next_u64();
        for (i, incarnation) in incarnations.into_iter().enumerate() {
            let node = c.make_node(i, incarnation, MemStore::new(), 0);
            c.slots.push(Slot {
                node: Some(node),
                disk: None,
                epoch: 0,
                incarnation,
                span: tracing::info_span!("node", id = %c.ids[i]),
            });
        }
        c
    }

    fn make_node(
        &mut self,
        i: usize,
        incarnation: u32,
        store: MemStore,
        now_ms: u64,
    ) -> Node<MemStore> {
        self.starts += 1;
        let cfg = NodeConfig {
            id: self.ids[i].clone(),
            incarnation,
            request_id_base: self.starts << 40,
            rpc_addr: self.layout.members[i].rpc_addr.clone(),
            generation: (now_ms << 20) + self.starts,
            gossip_seed: self
                .gossip_seed
                .wrapping_add(self.starts.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            consensus: ringkv_node::ConsensusConfig {
                // Election timeouts from the seed: raft-rs's own draw uses
                // the thread's generator, which would break replay.
                election_seed: Some(self.gossip_seed.wrapping_add(self.starts)),
                ..self.template.consensus.clone()
            },
            ..self.template.clone()
        };
        Node::new(cfg, self.layout.clone(), store)
            .expect("the scenario's validation covers every node setting")
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no nodes (never, for a valid scenario).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The id of node `i`.
    pub fn id(&self, i: usize) -> &NodeId {
        &self.ids[i]
    }

    /// The index of the node whose RPC address is `addr` (`sim:n3`).
    pub fn index_of_addr(&self, addr: &str) -> Option<usize> {
        self.layout.members.iter().position(|m| m.rpc_addr == addr)
    }

    /// Starts node `i`'s background work (gossip join, handoff timer), as
    /// the real runtime does when its process starts.
    pub fn start(&mut self, i: usize, now_ms: u64, out: &mut Vec<Output>) {
        let slot = &mut self.slots[i];
        if let Some(node) = slot.node.as_mut() {
            let _node = slot.span.enter();
            node.start(now_ms, out);
        }
    }

    /// The index of `id`, if it is a node of this cluster.
    pub fn index(&self, id: &NodeId) -> Option<usize> {
        let i: usize = id.as_str().strip_prefix('n')?.parse().ok()?;
        (i >= 1 && i <= self.ids.len() && self.ids[i - 1] == *id).then(|| i - 1)
    }

    /// Whether node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.slots[i].node.is_some()
    }

    /// How many nodes are down.
    pub fn down_count(&self) -> usize {
        self.slots.iter().filter(|s| s.node.is_none()).count()
    }

    /// Crashes of node `i` so far.
    pub fn epoch(&self, i: usize) -> u64 {
        self.slots[i].epoch
    }

    /// Node `i`'s incarnation.
    pub fn incarnation(&self, i: usize) -> u32 {
        self.slots[i].incarnation
    }

    /// The running node `i`, for inspection.
    pub fn node(&self, i: usize) -> Option<&Node<MemStore>> {
        self.slots[i].node.as_ref()
    }

    /// Tells node `i` the simulated time in µs, which stamps its replica
    /// requests to measure their latency legs ([`ringkv_core::legs`]): the
    /// simulated network's delays have µs resolution, the nodes' clock ms.
    pub fn set_clock_us(&mut self, i: usize, now_us: u64) {
        if let Some(node) = self.slots[i].node.as_mut() {
            node.set_wall_clock_us(now_us);
        }
    }

    /// Feeds `input` to node `i` at `now_ms` and makes its writes durable
    /// (flush, or sync with `sync = always` or when the outputs ask for it
    /// with [`Output::Sync`]) before the outputs are released
    /// into `out`. Does nothing when the node is down. If the store fails,
    /// only the timers are kept, as the real runtime does.
    pub fn handle(&mut self, i: usize, now_ms: u64, input: Input, out: &mut Vec<Output>) {
        let slot = &mut self.slots[i];
        let Some(node) = slot.node.as_mut() else {
            return;
        };
        let start = out.len();
        let _node = slot.span.enter();
        node.handle(now_ms, input, out);
        let store = node.store_mut();
        // A handoff's ack waits for the disk in every sync mode.
        let sync_now = out[start..].contains(&Output::Sync);
        let persisted = match self.sync {
            SimSync::Always => store.sync(),
            SimSync::Periodic { .. } if sync_now => store.sync(),
            SimSync::Periodic { .. } => store.flush(),
        };
        if persisted.is_err() {
            let batch = out.split_off(start);
            out.extend(
                batch
                    .into_iter()
                    // What left before the write (Output::Now) is out already.
                    .filter(|o| matches!(o, Output::SetTimer { .. } | Output::Now(_))),
            );
        }
    }

    /// Sets `bucket`'s properties on node `i` (as `PUT /buckets/..` does)
    /// and syncs its disk, so they survive any crash. Does nothing when the
    /// node is down.
    pub fn set_bucket(
        &mut self,
        i: usize,
        now_ms: u64,
        bucket: &'static [u8],
        patch: &ringkv_core::bucket::BucketPatch,
        out: &mut Vec<Output>,
    ) -> Result<(), String> {
        let slot = &mut self.slots[i];
        let Some(node) = slot.node.as_mut() else {
            return Ok(());
        };
        let _node = slot.span.enter();
        node.set_bucket(now_ms, bytes::Bytes::from_static(bucket), patch, out)
            .map_err(|e| e.to_string())?;
        node.store_mut().sync().map_err(|e| e.to_string())
    }

    /// A periodic sync of node `i`'s disk (nothing while it is down).
    pub fn sync(&mut self, i: usize) {
        if let Some(node) = self.slots[i].node.as_mut() {
            // MemStore cannot fail; a real engine's failure would be retried
            // at the next interval.
            let _ = node.store_mut().sync();
        }
    }

    /// Kills node `i`'s process (`power = false`: the OS keeps what was
    /// flushed) or cuts its power (`power = true`: only what was synced
    /// survives). Its in-memory state is gone and its epoch moves on.
    /// Returns `false` (and does nothing) if it was already down.
    pub fn crash(&mut self, i: usize, power: bool) -> bool {
        let slot = &mut self.slots[i];
        let Some(mut node) = slot.node.take() else {
            return false;
        };
        let mut disk = std::mem::take(node.store_mut());
        if power {
            disk.crash_power();
        } else {
            disk.crash_process();
        }
        slot.disk = Some(disk);
        slot.epoch += 1;
        true
    }

    /// Starts node `i` again on what its disk kept, with a new incarnation
    /// drawn from `rng`, as the real data directory does after every
    /// unclean shutdown whatever the sync mode (a crash may have lost dots
    /// that peers already hold). Returns `false` (and does nothing) if it
    /// was running.
    pub fn restart(&mut self, i: usize, now_ms: u64, rng: &mut SimRng) -> bool {
        if self.slots[i].node.is_some() {
            return false;
        }
        let disk = self.slots[i].disk.take().unwrap_or_default();
        let previous = self.slots[i].incarnation;
        let incarnation = rng.incarnation(Some(previous));
        let node = self.make_node(i, incarnation, disk, now_ms);
        let slot = &mut self.slots[i];
        slot.incarnation = incarnation;
        slot.node = Some(node);
        true
    }
}

/// Gossip timing for the scenario's network: the fast profile, its probe
/// timeout stretched to four mean round trips of the leg gossip travels
/// (the default leg) and its probe period to 2.5 timeouts. SWIM suspects a
/// member whose probe is not answered in time, so a timeout near the
/// network's round trip makes healthy nodes flap: in the delay experiment
/// at 40-80 ms per message the fixed 40 ms made reads up to 5 times slower.
/// A heavy-tailed leg without a mean gets the LAN profile.
fn gossip_config(s: &Scenario) -> GossipConfig {
    let mut g = GossipConfig::fast();
    let mean_ms = crate::dist::Sampler::new(&s.network.latency.default).mean_ms();
    if !mean_ms.is_finite() {
        return GossipConfig::lan(s.nodes as u32);
    }
    let rtt_ms = (8.0 * mean_ms).ceil() as u64;
    if rtt_ms > g.probe_rtt_ms {
        g.probe_rtt_ms = rtt_ms;
        g.probe_period_ms = rtt_ms * 5 / 2;
        g.suspect_to_down_ms = g.suspect_to_down_ms.max(5 * g.probe_period_ms);
        g.periodic_announce_down_ms = g.periodic_announce_down_ms.max(g.probe_period_ms);
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use bytes::Bytes;
    use ringkv_core::hash::BucketKey;
    use ringkv_core::msg::{ClientOp, ClientReply, ClientRequest};
    use ringkv_core::{Object, Value};

    /// One node, N = R = W = 1: every request completes inside `handle`.
    fn one_node(sync: SimSync) -> (Cluster, SimRng) {
        let s = Scenario {
            nodes: 1,
            n: 1,
            r: 1,
            w: 1,
            sync,
            ..Scenario::default()
        };
        let mut rng = SimRng::new(9, Stream::Nodes);
        (Cluster::new(&s, &InjectedBugs::default(), &mut rng), rng)
    }

    fn request(op: ClientOp) -> Input {
        let key = BucketKey::new(Bytes::from_static(b"default"), Bytes::from_static(b"k"));
        let request = ClientRequest {
            key,
            op,
            timeout_ms: None,
        };
        Input::Client {
            client_id: 1,
            request,
        }
    }

    fn put(c: &mut Cluster) {
        let mut out = Vec::new();
        let op = ClientOp::Put {
            value: Value::Data(Bytes::from_static(b"v")),
            context: None,
            w: None,
            pw: None,
        };
        c.handle(0, 10, request(op), &mut out);
        assert!(
            out.iter().any(|o| matches!(
                o,
                Output::Reply {
                    reply: ClientReply::Written { .. },
                    ..
                }
            )),
            "{out:?}"
        );
    }

    fn read(c: &mut Cluster) -> Object {
        let mut out = Vec::new();
        c.handle(
            0,
            20,
            request(ClientOp::Get { r: None, pr: None }),
            &mut out,
        );
        out.into_iter()
            .find_map(|o| match o {
                Output::Reply {
                    reply: ClientReply::Read { object, .. },
                    ..
                } => Some(object),
                _ => None,
            })
            .expect("a read reply")
    }

    #[test]
    fn acknowledged_writes_are_flushed_so_a_process_crash_keeps_them() {
        let (mut c, mut rng) = one_node(SimSync::Periodic { interval_ms: 1_000 });
        put(&mut c);
        assert_eq!(c.node(0).unwrap().store().unflushed_len(), 0);
        let inc = c.incarnation(0);
        assert!(c.crash(0, false));
        assert!(!c.is_up(0) && c.epoch(0) == 1 && c.down_count() == 1);
        assert!(!c.crash(0, false), "already down");
        assert!(c.restart(0, 5_000, &mut rng));
        assert!(!c.restart(0, 5_000, &mut rng), "already up");
        assert_eq!(read(&mut c).siblings.len(), 1);
        // Periodic sync: an unclean restart takes a new incarnation.
        assert_ne!(c.incarnation(0), inc);
    }

    #[test]
    fn power_cut_keeps_only_what_was_synced() {
        let (mut c, mut rng) = one_node(SimSync::Periodic { interval_ms: 1_000 });
        put(&mut c);
        c.crash(0, true);
        c.restart(0, 5_000, &mut rng);
        assert!(read(&mut c).is_empty(), "the unsynced write survived");
        put(&mut c);
        c.sync(0);
        c.crash(0, true);
        c.restart(0, 5_000, &mut rng);
        assert_eq!(read(&mut c).siblings.len(), 1, "a synced write was lost");
    }

    #[test]
    fn sync_always_survives_power_cuts_with_a_new_incarnation() {
        let (mut c, mut rng) = one_node(SimSync::Always);
        put(&mut c);
        assert_eq!(c.node(0).unwrap().store().unsynced_len(), 0);
        let inc = c.incarnation(0);
        c.crash(0, true);
        c.restart(0, 5_000, &mut rng);
        assert_eq!(read(&mut c).siblings.len(), 1);
        assert_ne!(c.incarnation(0), inc);
        assert_eq!(c.index(&NodeId::from("n1")), Some(0));
        assert_eq!(c.index(&NodeId::from("n2")), None);
        assert_eq!(c.index(&NodeId::from("x1")), None);
    }
}
