//! The simulated world: the event loop's state and what each event does to
//! nodes and the network.
//!
//! ```text
//!   EventQueue ──pop──> World::dispatch ──> Cluster::handle (a real Node)
//!        ^                                        │ outputs, after flush/sync
//!        └── Deliver (Net::fate) / Timer / Reply ─┘
//! ```
//!
//! Clients live in [`crate::workload`], faults in [`crate::faults`]; both
//! extend [`World`] with their own events. Time is kept in µs (latencies are
//! fractional ms); nodes see `now_us / 1000`.

use ringkv_core::NodeId;
use ringkv_core::msg::PeerMsg;
use ringkv_node::{InjectedBugs, Input, Output, Timer};

use crate::cluster::Cluster;
use crate::faults::SimFault;
use crate::history::History;
use crate::net::{Fate, Leg, Net};
use crate::queue::EventQueue;
use crate::rng::{SimRng, Stream};
use crate::run::SimStats;
use crate::scenario::{Scenario, SimSync};
use crate::workload::Clients;

/// Something scheduled to happen at a simulated time.
#[derive(Debug)]
pub enum Event {
    /// A peer message arrives at `to` (if it is still the process, `epoch`,
    /// the message was sent to).
    Deliver {
        /// Receiver.
        to: usize,
        /// Receiver's epoch at send time.
        epoch: u64,
        /// Sender.
        from: usize,
        /// The message.
        msg: PeerMsg,
    },
    /// The transport tells `to` that `peer` went down or came up.
    PeerStatus {
        /// Who learns it.
        to: usize,
        /// Its epoch when the news left.
        epoch: u64,
        /// About whom.
        peer: usize,
        /// Up or down.
        up: bool,
    },
    /// A node's timer fires.
    Timer {
        /// The node.
        node: usize,
        /// Its epoch when the timer was set.
        epoch: u64,
        /// The node's timer id.
        id: Timer,
    },
    /// Periodic sync of a node's disk.
    Sync {
        /// The node.
        node: usize,
    },
    /// Scheduled fault number `i` of the scenario.
    Fault(usize),
    /// A random crash arrives.
    RandomCrash,
    /// A randomly crashed node comes back (if still down since `epoch`).
    RandomRestart {
        /// The node.
        node: usize,
        /// Its epoch right after the crash.
        epoch: u64,
    },
    /// A random partition arrives.
    RandomPartition,
    /// A random partition ends.
    RandomHeal {
        /// The cut to lift.
        cut: u64,
    },
    /// A closed-loop client starts its next operation.
    ClientNext {
        /// The client.
        client: u32,
    },
    /// An open-loop arrival.
    Arrival,
    /// An operator stages layout change `i` (see [`crate::check::manager`]).
    ClusterOp {
        /// Its index.
        i: usize,
    },
    /// The write half of a read-modify-write or delete whose read was `op`.
    SecondPhase {
        /// The read.
        op: u64,
    },
    /// The client gives up waiting for `op`.
    ClientTimeout {
        /// The operation.
        op: u64,
    },
    /// `duration_ms` reached: no new operations; faults end.
    EndWorkload,
    /// The run ends.
    Stop,
}

/// Everything one run changes, driven by [`World::dispatch`].
pub struct World<'a> {
    /// The scenario (validated).
    pub scenario: &'a Scenario,
    /// Simulated time, µs.
    pub now_us: u64,
    /// Pending events.
    pub queue: EventQueue<Event>,
    /// The nodes.
    pub cluster: Cluster,
    /// The network.
    pub net: Net,
    /// Randomness of the network.
    pub rng_net: SimRng,
    /// Randomness of the clients.
    pub rng_work: SimRng,
    /// Randomness of random faults.
    pub rng_faults: SimRng,
    /// Randomness of node identities.
    pub rng_nodes: SimRng,
    /// The clients' state.
    pub clients: Clients,
    /// The scenario's scheduled faults, compiled.
    pub faults: Vec<SimFault>,
    /// What the clients saw.
    pub history: History,
    /// Counters.
    pub stats: SimStats,
    /// The operators' layout changes and what came of them.
    pub cluster_records: Vec<crate::check::manager::ClusterRecord>,
    /// Whether the workload is over (no new operations, no more faults).
    pub over: bool,
    /// Whether the final [`Event::Stop`] is scheduled.
    pub stopping: bool,
    /// Reused buffer for a node's outputs.
    out: Vec<Output>,
}

impl<'a> World<'a> {
    /// A world for a validated scenario: nodes up, nothing scheduled yet.
    pub fn new(scenario: &'a Scenario, seed: u64, bugs: &InjectedBugs) -> Self {
        let mut rng_nodes = SimRng::new(seed, Stream::Nodes);
        let cluster = Cluster::new(scenario, bugs, &mut rng_nodes);
        let faults = crate::faults::compile(scenario, &cluster);
        World {
            scenario,
            now_us: 0,
            queue: EventQueue::new(),
            net: Net::new(&scenario.network, scenario.nodes),
            cluster,
            rng_net: SimRng::new(seed, Stream::Network),
            rng_work: SimRng::new(seed, Stream::Workload),
            rng_faults: SimRng::new(seed, Stream::Faults),
            rng_nodes,
            clients: Clients::new(scenario),
            faults,
            history: History {
                n: scenario.n,
                ops: Vec::new(),
            },
            stats: SimStats {
                seed,
                ..SimStats::default()
            },
            cluster_records: Vec::new(),
            over: false,
            stopping: false,
            out: Vec::new(),
        }
    }

    /// Schedules the run: the end of the workload, faults, periodic syncs and
    /// the clients' first operations.
    pub fn start(&mut self) {
        let inc: Vec<String> = (0..self.cluster.len())
            .map(|i| format!("{}={}", self.cluster.id(i), self.cluster.incarnation(i)))
            .collect();
        let s = self.scenario;
        self.log(format!(
            "start: seed {}, scenario {:?}, {} nodes, N={} R={} W={}, incarnations {}",
            self.stats.seed,
            s.name,
            s.nodes,
            s.n,
            s.r,
            s.w,
            inc.join(" ")
        ));
        self.queue.push(s.duration_ms * 1_000, Event::EndWorkload);
        if s.workload.strong.is_some() {
            self.make_strong_bucket();
        }
        for i in 0..self.cluster.len() {
            self.boot(i);
        }
        self.schedule_faults();
        if let SimSync::Periodic { interval_ms } = s.sync {
            for node in 0..self.cluster.len() {
                // Nodes sync out of phase, as independent processes do.
                let phase = 1 + self.rng_nodes.below(interval_ms * 1_000);
                self.queue.push(phase, Event::Sync { node });
            }
        }
        self.start_clients();
        // Operators' changes, in bursts of 4 spread over the workload:
        // concurrent changes at different nodes contend.
        let ops = s.cluster_ops as u64;
        let bursts = ops.div_ceil(4);
        for i in 0..ops {
            let at = (i / 4 + 1) * s.duration_ms * 1_000 / (bursts + 1) + (i % 4) * 300;
            self.queue.push(at, Event::ClusterOp { i: i as usize });
        }
    }

    /// Sends operator change `i` to a random node.
    fn cluster_op(&mut self, i: usize) {
        use crate::check::manager::{CLUSTER_OP_BASE, ClusterOutcome, ClusterRecord, staged_node};
        use ringkv_core::cluster::{CLUSTER_BUCKET, CLUSTER_KEY, ClusterOp};
        use ringkv_core::msg::{ClientOp, ClientRequest};
        let node = self.rng_work.below(self.cluster.len() as u64) as usize;
        let up = self.cluster.is_up(node);
        let now = self.now_ms();
        self.cluster_records.push(ClusterRecord {
            invoke_ms: now,
            complete_ms: (!up).then_some(now),
            outcome: if up {
                ClusterOutcome::Pending
            } else {
                ClusterOutcome::Refused("node down".into())
            },
        });
        if !up {
            return;
        }
        let id = ringkv_core::NodeId::from(staged_node(i));
        let change = ringkv_core::plan::Change::Join {
            rpc_addr: format!("sim:{id}"),
            id,
            zone: String::new(),
            capacity: 1,
        };
        let request = ClientRequest {
            key: ringkv_core::hash::BucketKey::new(
                bytes::Bytes::from_static(CLUSTER_BUCKET),
                bytes::Bytes::from_static(CLUSTER_KEY),
            ),
            op: ClientOp::Cluster(ClusterOp::Stage(change)),
            timeout_ms: None,
        };
        let client_id = CLUSTER_OP_BASE + i as u64;
        self.step(node, Input::Client { client_id, request });
    }

    /// A node answered operator change `i`.
    fn on_cluster_reply(&mut self, i: usize, reply: &ringkv_core::msg::ClientReply) {
        use crate::check::manager::ClusterOutcome;
        let now = self.now_ms();
        if let Some(r) = self.cluster_records.get_mut(i) {
            r.complete_ms = Some(now);
            r.outcome = ClusterOutcome::of(reply);
        }
    }

    /// Makes the strong workload's bucket strong on every node, before
    /// anything else happens (the nodes keep it in their metadata, so it
    /// survives restarts).
    fn make_strong_bucket(&mut self) {
        use crate::workload::strong::{STRONG_BUCKET, strong_patch};
        let patch = strong_patch();
        for i in 0..self.cluster.len() {
            let mut out = std::mem::take(&mut self.out);
            if let Err(e) =
                self.cluster
                    .set_bucket(i, self.now_ms(), STRONG_BUCKET, &patch, &mut out)
            {
                panic!("the strong bucket cannot be set on node {i}: {e}");
            }
            self.perform(i, out);
        }
    }

    /// Simulated time in ms, as nodes and the history see it.
    pub fn now_ms(&self) -> u64 {
        self.now_us / 1_000
    }

    /// Appends a line to the fault log, stamped with the time.
    pub fn log(&mut self, line: String) {
        let t = self.now_ms();
        self.stats.fault_log.push(format!("{t} ms: {line}"));
    }

    /// Does what `event` says; returns `false` when the run must stop.
    pub fn dispatch(&mut self, event: Event) -> bool {
        match event {
            Event::Deliver {
                to,
                epoch,
                from,
                msg,
            } => {
                if self.cluster.is_up(to) && self.cluster.epoch(to) == epoch {
                    let from = self.cluster.id(from).clone();
                    self.step(to, Input::Peer { from, msg });
                } else {
                    self.stats.messages_dropped += 1;
                }
            }
            Event::PeerStatus {
                to,
                epoch,
                peer,
                up,
            } => {
                if self.cluster.is_up(to) && self.cluster.epoch(to) == epoch {
                    let peer = self.cluster.id(peer).clone();
                    self.step(to, Input::PeerStatus { peer, up });
                }
            }
            Event::Timer { node, epoch, id } => {
                if self.cluster.is_up(node) && self.cluster.epoch(node) == epoch {
                    self.step(node, Input::Timer(id));
                }
            }
            Event::Sync { node } => {
                self.cluster.sync(node);
                if let SimSync::Periodic { interval_ms } = self.scenario.sync {
                    let at = self.now_us + interval_ms * 1_000;
                    self.queue.push(at, Event::Sync { node });
                }
            }
            Event::Fault(i) => self.apply_fault(i),
            Event::RandomCrash => self.random_crash(),
            Event::RandomRestart { node, epoch } => self.random_restart(node, epoch),
            Event::RandomPartition => self.random_partition(),
            Event::RandomHeal { cut } => self.random_heal(cut),
            Event::ClientNext { client } => self.client_next(client),
            Event::Arrival => self.arrival(),
            Event::SecondPhase { op } => self.second_phase(op),
            Event::ClusterOp { i } => {
                if !self.over {
                    self.cluster_op(i)
                }
            }
            Event::ClientTimeout { op } => self.client_timeout(op),
            Event::EndWorkload => self.end_workload(),
            Event::Stop => return false,
        }
        true
    }

    /// Processes events in time order up to and including `until_us`
    /// (simulated µs); returns `false` once the run stopped (or nothing is
    /// left to do). Tests step a world with it to look at nodes mid-run.
    pub fn run_until(&mut self, until_us: u64) -> bool {
        while let Some(at) = self.queue.peek_us() {
            if at > until_us {
                return true;
            }
            let (at_us, event) = self.queue.pop().expect("peeked");
            debug_assert!(at_us >= self.now_us, "time never goes back");
            self.now_us = at_us;
            self.stats.events += 1;
            if !self.dispatch(event) {
                return false;
            }
        }
        false
    }

    /// Starts node `i`'s background work (gossip join, handoff timer), as a
    /// process does when it starts, and performs its outputs.
    pub fn boot(&mut self, i: usize) {
        let mut out = std::mem::take(&mut self.out);
        self.cluster.start(i, self.now_ms(), &mut out);
        self.perform(i, out);
    }

    /// Feeds `input` to node `i` and performs its outputs: messages go to the
    /// network, replies to the clients, timers to the queue.
    pub fn step(&mut self, i: usize, input: Input) {
        let mut out = std::mem::take(&mut self.out);
        self.cluster.set_clock_us(i, self.now_us);
        self.cluster.handle(i, self.now_ms(), input, &mut out);
        self.perform(i, out);
    }

    fn perform(&mut self, i: usize, mut out: Vec<Output>) {
        for o in out.drain(..).map(Output::unnest) {
            match o {
                Output::Send { to, msg } => self.send(i, &to, msg),
                Output::SendAddr { addr, msg } => match self.cluster.index_of_addr(&addr) {
                    Some(to) => {
                        let to = self.cluster.id(to).clone();
                        self.send(i, &to, msg)
                    }
                    None => {
                        self.stats.messages_sent += 1;
                        self.stats.messages_dropped += 1;
                    }
                },
                // Every simulated node is known by id from the start.
                Output::PeerAddr { .. } => {}
                // Done by `Cluster::handle` before the outputs got here.
                Output::Sync => {}
                Output::Now(_) => unreachable!("unnested above"),
                Output::Reply { client_id, reply }
                    if client_id >= crate::check::manager::CLUSTER_OP_BASE =>
                {
                    let i = (client_id - crate::check::manager::CLUSTER_OP_BASE) as usize;
                    self.on_cluster_reply(i, &reply)
                }
                Output::Reply { client_id, reply } => self.on_reply(client_id, reply),
                Output::SetTimer { id, at_ms } => {
                    let at = at_ms.saturating_mul(1_000).max(self.now_us);
                    let epoch = self.cluster.epoch(i);
                    // Coordinators set timers a fixed delay ahead: one FIFO
                    // lane per delay.
                    let lane = at_ms.saturating_sub(self.now_ms());
                    self.queue
                        .push_fifo(lane, at, Event::Timer { node: i, epoch, id });
                }
            }
        }
        self.out = out;
    }

    /// Puts a message from node `from` on the simulated network.
    fn send(&mut self, from: usize, to: &NodeId, msg: PeerMsg) {
        self.stats.messages_sent += 1;
        let Some(to) = self.cluster.index(to) else {
            self.stats.messages_dropped += 1;
            return;
        };
        if !self.cluster.is_up(to) {
            // Connection refused: nobody listens.
            self.stats.messages_dropped += 1;
            return;
        }
        match self.net.fate(from, to, Leg::of(&msg), &mut self.rng_net) {
            Fate::Dropped(_) => self.stats.messages_dropped += 1,
            Fate::Deliver {
                first_us,
                second_us,
            } => {
                let epoch = self.cluster.epoch(to);
                if let Some(second_us) = second_us {
                    self.stats.messages_duplicated += 1;
                    let copy = Event::Deliver {
                        to,
                        epoch,
                        from,
                        msg: msg.clone(),
                    };
                    self.queue.push(self.now_us.saturating_add(second_us), copy);
                }
                let ev = Event::Deliver {
                    to,
                    epoch,
                    from,
                    msg,
                };
                self.queue.push(self.now_us.saturating_add(first_us), ev);
            }
        }
    }

    /// Schedules the end of the run once the workload is over and no
    /// operation is in flight, after a quiet period in which coordinators
    /// finish (timeouts, read repair), gossip sees healed peers again (its
    /// announce to Down members) and hinted handoff runs a few ticks, so
    /// later checks see settled replicas.
    pub fn maybe_stop(&mut self) {
        if self.over && !self.stopping && self.clients.in_flight() == 0 {
            self.stopping = true;
            let handoff_ms = 3 * ringkv_node::HANDOFF_INTERVAL_MS_DEFAULT;
            let settle_us =
                (self.scenario.timeout_ms + 1_000 + handoff_ms + self.scenario.converge_ms) * 1_000;
            self.queue.push(self.now_us + settle_us, Event::Stop);
        }
    }
}
