//! Faults: scheduled ones from the scenario, random ones drawn from the seed,
//! and what each does to the nodes and the network.
//!
//! - A crash takes the node's process away (its disk keeps what was flushed,
//!   or, for a power cut, what was synced). Its peers hear of it after one
//!   network delay (the TCP connection resets); partitions and loss do not
//!   stop that news, so a peer never waits forever for a reset.
//! - A restart starts a new process on the disk; peers hear it is up.
//! - Partitions block links silently: TCP does not notice; nodes time out,
//!   and gossip (whose packets the cut drops too) finds the other side
//!   Suspect, then Down.
//! - Random crashes and partitions arrive as Poisson processes while the
//!   workload runs; a crashed node is restarted after `down_ms` and never
//!   more than `max_down` nodes are down at once because of them.
//! - When the workload ends every fault ends: crashed nodes restart,
//!   partitions heal, slow nodes recover.
//!
//! Every fault is logged with its time in `SimStats::fault_log`.

use crate::cluster::Cluster;
use crate::net::{Leg, isolate_links, partition_links};
use crate::scenario::{FaultKind, Scenario};
use crate::world::{Event, World};

/// A scheduled fault with node names resolved to indexes.
#[derive(Clone, Debug, PartialEq)]
pub enum SimFault {
    /// Kill (`power = false`) or power-cut (`power = true`) a node.
    Crash {
        /// The node.
        node: usize,
        /// Whether unsynced writes are lost too.
        power: bool,
    },
    /// Start a crashed node again.
    Restart(usize),
    /// Block links.
    Cut {
        /// The directed links.
        links: Vec<(usize, usize)>,
        /// What the partition is, for the log.
        what: String,
    },
    /// Lift every partition.
    Heal,
    /// Change a node's latency factor.
    Slow {
        /// The node.
        node: usize,
        /// Latency multiplier.
        factor: f64,
    },
}

/// Resolves the scenario's scheduled faults (validated names) against the
/// cluster, in scenario order.
pub fn compile(s: &Scenario, c: &Cluster) -> Vec<SimFault> {
    let ix = |name: &String| {
        c.index(&ringkv_core::NodeId::from(name.as_str()))
            .expect("fault node names were validated")
    };
    let ixs = |names: &[String]| names.iter().map(ix).collect::<Vec<_>>();
    s.faults
        .iter()
        .map(|f| match &f.kind {
            FaultKind::Crash { node } => SimFault::Crash {
                node: ix(node),
                power: false,
            },
            FaultKind::CrashPower { node } => SimFault::Crash {
                node: ix(node),
                power: true,
            },
            FaultKind::Restart { node } => SimFault::Restart(ix(node)),
            FaultKind::Partition { a, b, one_way } => SimFault::Cut {
                links: partition_links(&ixs(a), &ixs(b), *one_way),
                what: format!(
                    "partition [{}] {} [{}]",
                    a.join(" "),
                    if *one_way { "->" } else { "<->" },
                    b.join(" ")
                ),
            },
            FaultKind::Isolate { node } => SimFault::Cut {
                links: isolate_links(ix(node), c.len()),
                what: format!("isolate {node}"),
            },
            FaultKind::Heal => SimFault::Heal,
            FaultKind::Slow { node, factor } => SimFault::Slow {
                node: ix(node),
                factor: *factor,
            },
        })
        .collect()
}

impl World<'_> {
    /// Schedules the scenario's faults and the first random arrivals.
    pub fn schedule_faults(&mut self) {
        for (i, f) in self.scenario.faults.iter().enumerate() {
            self.queue.push(f.at_ms * 1_000, Event::Fault(i));
        }
        let rf = &self.scenario.random_faults;
        let (crashes, partitions) = (rf.crashes_per_s, rf.partitions_per_s);
        self.schedule_random(crashes, Event::RandomCrash);
        self.schedule_random(partitions, Event::RandomPartition);
    }

    /// Schedules the next arrival of a Poisson process of `rate_per_s`, if
    /// it falls before the end of the workload.
    fn schedule_random(&mut self, rate_per_s: f64, event: Event) {
        if rate_per_s <= 0.0 {
            return;
        }
        let gap_us = self.rng_faults.exponential(1e6 / rate_per_s);
        let at = self.now_us.saturating_add(gap_us.min(1e15) as u64);
        if at < self.scenario.duration_ms * 1_000 {
            self.queue.push(at, event);
        }
    }

    /// Applies scheduled fault `i`.
    pub fn apply_fault(&mut self, i: usize) {
        match self.faults[i].clone() {
            SimFault::Crash { node, power } => self.crash(node, power, "scheduled"),
            SimFault::Restart(node) => self.restart(node, "scheduled"),
            SimFault::Cut { links, what } => {
                let cut = self.net.cut(links);
                self.stats.partitions += 1;
                self.log(format!("scheduled {what} (cut #{cut})"));
            }
            SimFault::Heal => {
                let n = self.net.heal_all();
                self.log(format!("scheduled heal: {n} partitions lifted"));
            }
            SimFault::Slow { node, factor } => {
                self.net.set_slow(node, factor);
                let id = self.cluster.id(node).clone();
                self.log(format!("scheduled slow {id}: latency x{factor}"));
            }
        }
    }

    /// Crashes node `i`; its peers hear of it one network delay later, its
    /// clients' requests in flight are lost with it.
    pub fn crash(&mut self, i: usize, power: bool, why: &str) {
        let id = self.cluster.id(i).clone();
        let how = if power { "power cut" } else { "process crash" };
        if !self.cluster.crash(i, power) {
            return self.log(format!("{why} {how} of {id} ignored: already down"));
        }
        self.stats.crashes += 1;
        self.log(format!("{why} {how} of {id}"));
        self.tell_peers(i, false);
        self.abandon_ops_at(i);
    }

    /// Restarts node `i` on its disk; its peers hear it is up.
    pub fn restart(&mut self, i: usize, why: &str) {
        let id = self.cluster.id(i).clone();
        let now_ms = self.now_ms();
        if !self.cluster.restart(i, now_ms, &mut self.rng_nodes) {
            return self.log(format!("{why} restart of {id} ignored: it is running"));
        }
        self.stats.restarts += 1;
        let inc = self.cluster.incarnation(i);
        self.log(format!("{why} restart of {id} (incarnation {inc})"));
        self.tell_peers(i, true);
        self.boot(i);
    }

    /// Sends the news that `peer` went down or up to every other running node.
    fn tell_peers(&mut self, peer: usize, up: bool) {
        for to in 0..self.cluster.len() {
            if to == peer || !self.cluster.is_up(to) {
                continue;
            }
            let delay = self.net.delay_us(peer, to, Leg::Default, &mut self.rng_net);
            let epoch = self.cluster.epoch(to);
            let ev = Event::PeerStatus {
                to,
                epoch,
                peer,
                up,
            };
            self.queue.push(self.now_us.saturating_add(delay), ev);
        }
    }

    /// A random crash arrives: crash a random running node unless
    /// `max_down` are down already; restart it `down_ms` later.
    pub fn random_crash(&mut self) {
        let rf = self.scenario.random_faults.clone();
        self.schedule_random(rf.crashes_per_s, Event::RandomCrash);
        let down = self.cluster.down_count();
        if down >= rf.max_down {
            return self.log(format!(
                "random crash skipped: {down} nodes down (max_down {})",
                rf.max_down
            ));
        }
        let up: Vec<usize> = (0..self.cluster.len())
            .filter(|&i| self.cluster.is_up(i))
            .collect();
        if up.is_empty() {
            return self.log("random crash skipped: every node is down".into());
        }
        let node = up[self.rng_faults.below(up.len() as u64) as usize];
        let power = self.rng_faults.chance(rf.power_share);
        self.crash(node, power, "random");
        let epoch = self.cluster.epoch(node);
        let at = self.now_us + rf.down_ms * 1_000;
        self.queue.push(at, Event::RandomRestart { node, epoch });
    }

    /// The end of a random crash: restart the node if it is still down from
    /// that crash (a scheduled restart or the end of the workload may have
    /// come first).
    pub fn random_restart(&mut self, node: usize, epoch: u64) {
        if !self.cluster.is_up(node) && self.cluster.epoch(node) == epoch {
            self.restart(node, "random");
        }
    }

    /// A random partition arrives: half the time one node is isolated, else
    /// the nodes split into a random minority and majority.
    pub fn random_partition(&mut self) {
        let rf = self.scenario.random_faults.clone();
        self.schedule_random(rf.partitions_per_s, Event::RandomPartition);
        let n = self.cluster.len();
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.rng_faults.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let minority = if self.rng_faults.chance(0.5) {
            1
        } else {
            1 + self.rng_faults.below((n / 2) as u64) as usize
        };
        let (a, b) = order.split_at(minority);
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        a.sort_unstable();
        b.sort_unstable();
        let cut = self.net.cut(partition_links(&a, &b, false));
        self.stats.partitions += 1;
        let names = |v: &[usize]| {
            v.iter()
                .map(|&i| self.cluster.id(i).to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let line = format!(
            "random partition [{}] <-> [{}] (cut #{cut})",
            names(&a),
            names(&b)
        );
        self.log(line);
        let at = self.now_us + rf.partition_ms * 1_000;
        self.queue.push(at, Event::RandomHeal { cut });
    }

    /// The end of a random partition.
    pub fn random_heal(&mut self, cut: u64) {
        if self.net.heal(cut) {
            self.log(format!("random partition ends (cut #{cut})"));
        }
    }

    /// The workload is over: no new operations; every fault ends so the
    /// cluster can settle (convergence checks look at the end state).
    pub fn end_workload(&mut self) {
        self.over = true;
        let cuts = self.net.heal_all();
        self.net.reset_slow();
        self.log(format!(
            "end of workload: {cuts} partitions lifted, slow nodes recovered"
        ));
        for i in 0..self.cluster.len() {
            if !self.cluster.is_up(i) {
                self.restart(i, "final");
            }
        }
        self.maybe_stop();
    }
}
