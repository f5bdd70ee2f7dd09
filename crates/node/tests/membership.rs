//! Gossip membership on a tiny in-process network of `Membership`s, driven by
//! a deterministic event loop (a heap of (time, seq) events, latencies from a
//! seeded generator).

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use ringkv_core::NodeId;
use ringkv_node::membership::{
    GossipConfig, GossipError, GossipOut, Liveness, MemberInfo, MemberStatus, Membership,
};

fn id(s: &str) -> NodeId {
    NodeId::from(s)
}

fn info(i: usize, incarnation: u32) -> MemberInfo {
    MemberInfo {
        id: NodeId::from(format!("n{i}")),
        rpc_addr: format!("10.0.0.{i}:7000"),
        http_addr: format!("10.0.0.{i}:8000"),
        incarnation,
        layout_version: 1,
        status: MemberStatus::Active,
    }
}

enum Ev {
    Deliver {
        from: NodeId,
        to: NodeId,
        data: Vec<u8>,
    },
    Timer {
        node: NodeId,
        epoch: u64,
        token: u64,
    },
}

struct Slot {
    m: Membership,
    epoch: u64,
    up: bool,
}

/// What an observer saw: (time, observer, member, liveness).
type Change = (u64, NodeId, NodeId, Liveness);

struct Net {
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    nodes: BTreeMap<NodeId, Slot>,
    addrs: BTreeMap<String, NodeId>,
    rng: u64,
    /// Every output of every node, in order, with packet bytes hashed.
    log: Vec<String>,
    changes: Vec<Change>,
    /// (observer, key, version, data)
    metadata: Vec<(NodeId, Vec<u8>, u64, Vec<u8>)>,
    /// One packet of each kind seen, for the garbage test.
    sample_packets: Vec<Vec<u8>>,
    errors: Vec<String>,
    seed: u64,
    /// Nodes cut off from every other node (packets to and from them are lost).
    isolated: Vec<NodeId>,
    /// One side of a partition: packets between it and the other nodes are
    /// lost (empty: no partition).
    side: Vec<NodeId>,
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

impl Net {
    fn new(seed: u64) -> Self {
        Net {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            nodes: BTreeMap::new(),
            addrs: BTreeMap::new(),
            rng: seed | 1,
            log: Vec::new(),
            changes: Vec::new(),
            metadata: Vec::new(),
            sample_packets: Vec::new(),
            errors: Vec::new(),
            seed,
            isolated: Vec::new(),
            side: Vec::new(),
        }
    }

    fn latency(&mut self) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        1 + self.rng % 5
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, ev);
    }

    /// Starts (or restarts) node `i` and joins it through `peers` (by info).
    fn start(&mut self, i: usize, incarnation: u32, generation: u64, peers: &[usize]) {
        let me = info(i, incarnation);
        let peer_infos: Vec<MemberInfo> = peers.iter().map(|p| info(*p, 1)).collect();
        let m = self.spawn(me, generation);
        let mut out = Vec::new();
        let node = m.me().id.clone();
        self.nodes
            .get_mut(&node)
            .unwrap()
            .m
            .join_known(self.now, &peer_infos, &mut out);
        self.apply(&node, out);
    }

    fn start_by_addr(&mut self, i: usize, addrs: &[String]) {
        let m = self.spawn(info(i, 1), 0);
        let node = m.me().id.clone();
        let mut out = Vec::new();
        self.nodes
            .get_mut(&node)
            .unwrap()
            .m
            .join_addrs(self.now, addrs, &mut out);
        self.apply(&node, out);
    }

    fn spawn(&mut self, me: MemberInfo, generation: u64) -> &Membership {
        let node = me.id.clone();
        self.addrs.insert(me.rpc_addr.clone(), node.clone());
        let seed = self.seed ^ fnv(node.as_str().as_bytes()) ^ generation;
        let m = Membership::new(me, generation, seed, GossipConfig::fast());
        let epoch = self.nodes.get(&node).map(|s| s.epoch + 1).unwrap_or(0);
        self.nodes.insert(node.clone(), Slot { m, epoch, up: true });
        &self.nodes[&node].m
    }

    fn crash(&mut self, i: usize) {
        self.nodes
            .get_mut(&NodeId::from(format!("n{i}")))
            .unwrap()
            .up = false;
    }

    fn m(&mut self, i: usize) -> &mut Membership {
        &mut self
            .nodes
            .get_mut(&NodeId::from(format!("n{i}")))
            .unwrap()
            .m
    }

    /// Runs `f` on node `i`'s membership and performs its outputs.
    fn with(&mut self, i: usize, f: impl FnOnce(u64, &mut Membership, &mut Vec<GossipOut>)) {
        let now = self.now;
        let mut out = Vec::new();
        f(now, self.m(i), &mut out);
        self.apply(&NodeId::from(format!("n{i}")), out);
    }

    fn apply(&mut self, node: &NodeId, out: Vec<GossipOut>) {
        let epoch = self.nodes[node].epoch;
        for o in out {
            match &o {
                GossipOut::Send { data, .. } | GossipOut::SendAddr { data, .. } => {
                    self.log.push(format!(
                        "{} {node} send {} bytes {:x} {}",
                        self.now,
                        data.len(),
                        fnv(data),
                        match &o {
                            GossipOut::Send { to, .. } => to.to_string(),
                            GossipOut::SendAddr { addr, .. } => addr.clone(),
                            _ => unreachable!(),
                        }
                    ));
                    if self.sample_packets.len() < 50 {
                        self.sample_packets.push(data.clone());
                    }
                }
                other => self.log.push(format!("{} {node} {other:?}", self.now)),
            }
            match o {
                GossipOut::Send { to, data } => {
                    let at = self.now + self.latency();
                    let from = node.clone();
                    self.push(at, Ev::Deliver { from, to, data });
                }
                GossipOut::SendAddr { addr, data } => {
                    // An address nobody listens on: the packet is lost.
                    if let Some(to) = self.addrs.get(&addr).cloned() {
                        let at = self.now + self.latency();
                        let from = node.clone();
                        self.push(at, Ev::Deliver { from, to, data });
                    }
                }
                GossipOut::Timer { at_ms, token } => {
                    assert!(at_ms >= self.now, "timer in the past");
                    self.push(
                        at_ms,
                        Ev::Timer {
                            node: node.clone(),
                            epoch,
                            token,
                        },
                    );
                }
                GossipOut::Changed { id, liveness } => {
                    assert_ne!(&id, node, "a node reported itself");
                    assert!(!id.as_str().is_empty(), "placeholder reported as a member");
                    self.changes.push((self.now, node.clone(), id, liveness));
                }
                GossipOut::Updated { info } => {
                    assert!(!info.id.as_str().is_empty(), "placeholder became a member");
                }
                GossipOut::Metadata { key, version, data } => {
                    self.metadata.push((node.clone(), key, version, data));
                }
            }
        }
    }

    fn run_until(&mut self, t_end: u64) {
        while let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at > t_end {
                break;
            }
            self.queue.pop();
            self.now = at;
            let ev = self.events.remove(&seq).unwrap();
            let mut out = Vec::new();
            let node = match ev {
                Ev::Deliver { from, to, data } => {
                    if self.isolated.contains(&from) || self.isolated.contains(&to) {
                        continue;
                    }
                    if !self.side.is_empty() && self.side.contains(&from) != self.side.contains(&to)
                    {
                        continue;
                    }
                    let Some(slot) = self.nodes.get_mut(&to) else {
                        continue;
                    };
                    if !slot.up {
                        continue;
                    }
                    if let Err(e) = slot.m.handle_data(at, &data, &mut out) {
                        self.errors.push(format!("{at} {to}: {e}"));
                    }
                    to
                }
                Ev::Timer { node, epoch, token } => {
                    let slot = self.nodes.get_mut(&node).unwrap();
                    if !slot.up || slot.epoch != epoch {
                        continue;
                    }
                    slot.m.handle_timer(at, token, &mut out);
                    node
                }
            };
            self.apply(&node, out);
        }
        self.now = t_end;
    }

    fn up_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, s)| s.up)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Liveness of `of` as every running node other than `of` sees it.
    fn seen_by_all(&self, of: &NodeId) -> Vec<Option<Liveness>> {
        self.up_ids()
            .iter()
            .filter(|n| *n != of)
            .map(|n| self.nodes[n].m.liveness(of))
            .collect()
    }

    fn all_alive(&self) -> bool {
        let ups = self.up_ids();
        ups.iter().all(|n| {
            let m = &self.nodes[n].m;
            ups.iter().all(|o| m.liveness(o) == Some(Liveness::Alive))
        })
    }
}

/// `n` nodes, each joining through n1 only.
fn cluster(n: usize, seed: u64) -> Net {
    let mut net = Net::new(seed);
    net.start(1, 1, 0, &[]);
    for i in 2..=n {
        net.start(i, 1, 0, &[1]);
    }
    net
}

#[test]
fn all_learn_each_other_from_one_seed() {
    let mut net = cluster(5, 7);
    net.run_until(3_000);
    assert!(net.all_alive(), "changes: {:?}", net.changes);
    for n in net.up_ids() {
        let members = net.nodes[&n].m.members();
        let ids: Vec<&str> = members.iter().map(|(i, _)| i.id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2", "n3", "n4", "n5"], "as seen by {n}");
        assert!(members.iter().all(|(_, l)| *l == Liveness::Alive));
        // Full info travelled, not just ids.
        assert!(
            members
                .iter()
                .all(|(i, _)| i.rpc_addr.starts_with("10.0.0."))
        );
    }
    assert!(net.errors.is_empty(), "{:?}", net.errors);
}

#[test]
fn join_by_address_only() {
    let mut net = Net::new(11);
    net.start(1, 1, 0, &[]);
    net.start_by_addr(2, &["10.0.0.1:7000".to_string()]);
    net.run_until(1_000);
    assert!(net.all_alive(), "changes: {:?}", net.changes);
    // n3 knows only n2's address and still learns n1 through it.
    net.start_by_addr(3, &["10.0.0.2:7000".to_string()]);
    // And an address nobody answers on does not hurt.
    net.start_by_addr(
        4,
        &["10.0.0.9:7000".to_string(), "10.0.0.3:7000".to_string()],
    );
    net.run_until(3_000);
    assert!(net.all_alive(), "changes: {:?}", net.changes);
    for n in net.up_ids() {
        let m = &net.nodes[&n].m;
        let ids: Vec<String> = m.members().iter().map(|(i, _)| i.id.to_string()).collect();
        assert_eq!(ids, ["n1", "n2", "n3", "n4"], "as seen by {n}");
        // The placeholder identity used for the address-only announce is never a member.
        assert_eq!(m.liveness(&NodeId::from("")), None);
    }
    assert!(
        net.log
            .iter()
            .any(|l| l.contains("send") && l.ends_with("10.0.0.1:7000")),
        "the first announce went out by address"
    );
}

/// Time from `t0` until every running observer sees `of` as `want`, if it does by `t_end`.
fn time_until(net: &mut Net, of: &NodeId, want: Liveness, t0: u64, t_end: u64) -> Option<u64> {
    let mut t = t0;
    while t <= t_end {
        net.run_until(t);
        if net.seen_by_all(of).iter().all(|l| *l == Some(want)) {
            return Some(t - t0);
        }
        t += 10;
    }
    None
}

#[test]
fn crashed_member_goes_suspect_then_down_and_comes_back_when_restarted() {
    let mut net = cluster(4, 3);
    net.run_until(2_000);
    assert!(net.all_alive());

    net.crash(4);
    let n4 = id("n4");
    let down_after = time_until(&mut net, &n4, Liveness::Down, 2_000, 5_000)
        .expect("everyone sees n4 down within 3 s");
    // Bound with the fast profile: probe round (3 members x 100 ms, twice at
    // worst) + probe + 500 ms suspicion + gossip.
    assert!(down_after <= 1_500, "took {down_after} ms");
    for o in ["n1", "n2", "n3"] {
        let seen: Vec<Liveness> = net
            .changes
            .iter()
            .filter(|(t, obs, of, _)| *t >= 2_000 && obs.as_str() == o && *of == n4)
            .map(|c| c.3)
            .collect();
        // (Deterministic run; in general an observer may hear of the Down
        // before the suspicion.)
        assert_eq!(seen, [Liveness::Suspect, Liveness::Down], "{o}");
    }
    let down_at = net.now;

    // Restart: new process (new generation), new data-dir incarnation.
    net.start(4, 77, 1_000_000, &[1, 2, 3]);
    let back_after = time_until(&mut net, &n4, Liveness::Alive, down_at, down_at + 2_000)
        .expect("n4 alive again everywhere");
    assert!(back_after <= 1_000, "took {back_after} ms");
    net.run_until(net.now + 1_000);
    assert!(net.all_alive());
    for o in ["n1", "n2", "n3"] {
        let m = &net.nodes[&id(o)].m;
        let (i, _) = m.members().into_iter().find(|(i, _)| i.id == n4).unwrap();
        assert_eq!(i.incarnation, 77, "{o} has n4's new info");
    }
    assert!(net.errors.is_empty() || net.errors.iter().all(|e| e.contains("refused")));
}

#[test]
fn restart_without_a_larger_generation_still_gets_back_in() {
    restart_same_generation(0, true);
}

#[test]
fn restart_with_a_lower_rank_than_the_old_start_still_gets_back_in() {
    restart_same_generation(3, true);
}

#[test]
fn quick_restart_with_a_lower_rank_supersedes_the_old_start() {
    // Restarted before the cluster noticed the crash.
    restart_same_generation(3, false);
}

fn restart_same_generation(renewals: u64, wait_for_down: bool) {
    // Same generation and same info as before the crash: the restarted
    // identity equals the dead one, and foca's "you are down" + renew (or our
    // rank healing) must get it back.
    let mut net = cluster(3, 5);
    net.run_until(2_000);
    if renewals > 0 {
        // The old start renewed its identity a few times (info updates):
        // its rank is above a fresh start's.
        for v in 0..renewals {
            let mut i = net.m(3).me().clone();
            i.layout_version = 10 + v;
            net.with(3, |now, m, out| m.update_me(now, i, out));
            net.run_until(net.now + 100);
        }
    }
    net.crash(3);
    let n3 = id("n3");
    if wait_for_down {
        let t = net.now;
        time_until(&mut net, &n3, Liveness::Down, t, t + 3_000).expect("down");
    }
    let t = net.now;
    // New data-dir incarnation so we can tell the new start's info from the old.
    net.start(3, 55, 0, &[1, 2]);
    let mut back = None;
    while net.now < t + 5_000 {
        net.run_until(net.now + 10);
        let ok = [1, 2].iter().all(|o| {
            net.m(*o)
                .members()
                .iter()
                .any(|(i, l)| i.id == n3 && i.incarnation == 55 && *l == Liveness::Alive)
        });
        if ok {
            back = Some(net.now - t);
            break;
        }
    }
    let back = back.expect("the new start of n3 is alive everywhere");
    assert!(back <= 1_000, "took {back} ms");
    net.run_until(net.now + 1_000);
    assert!(net.all_alive(), "changes: {:?}", net.changes);
}

#[test]
fn isolated_member_comes_back_after_the_partition_heals() {
    let mut net = cluster(3, 31);
    net.run_until(2_000);
    net.isolated.push(id("n3"));
    net.run_until(5_000);
    // Each side sees the other down.
    assert_eq!(net.seen_by_all(&id("n3")), [Some(Liveness::Down); 2]);
    assert_eq!(net.m(3).liveness(&id("n1")), Some(Liveness::Down));
    assert_eq!(net.m(3).liveness(&id("n2")), Some(Liveness::Down));
    assert_eq!(net.m(1).liveness(&id("n2")), Some(Liveness::Alive));
    net.isolated.clear();
    let mut healed = None;
    while net.now < 10_000 {
        net.run_until(net.now + 10);
        if net.all_alive() {
            healed = Some(net.now - 5_000);
            break;
        }
    }
    let healed = healed.expect("all alive again after the partition heals");
    assert!(healed <= 1_000, "took {healed} ms");
    net.run_until(net.now + 2_000);
    assert!(net.all_alive());
}

/// A 2|3 partition that heals while suspicions are pending: every node must
/// see every node alive again. A suspicion whose gossip was spent on packets
/// the partition dropped never reached the suspect, and a live suspect
/// answers probes at the suspected incarnation, which clears nothing; only
/// the prober's Down timer could end it, and foca drops that timer when the
/// prober changes identity (it rejoins once it learns the other side
/// declared it down). The suspicion then stayed forever.
#[test]
fn suspicions_pending_when_a_partition_heals_are_refuted() {
    let mut stuck = Vec::new();
    for seed in 1..=16u64 {
        for partition_ms in [250, 400, 550, 700, 3_000] {
            let mut net = cluster(5, seed);
            net.run_until(2_000);
            assert!(net.all_alive(), "seed {seed}: not all alive before");
            net.side = vec![id("n1"), id("n2")];
            net.run_until(2_000 + partition_ms);
            net.side.clear();
            let healed = net.now;
            // Generous for the fast profile: 100 ms probes, Down 500 ms
            // after Suspect.
            while !net.all_alive() && net.now < healed + 3_000 {
                net.run_until(net.now + 10);
            }
            net.run_until(net.now + 2_000);
            if !net.all_alive() {
                let views: Vec<String> = net
                    .up_ids()
                    .iter()
                    .map(|n| {
                        let m = &net.nodes[n].m;
                        let not_alive: Vec<String> = m
                            .members()
                            .iter()
                            .filter(|(_, l)| *l != Liveness::Alive)
                            .map(|(i, l)| format!("{}:{l:?}", i.id))
                            .collect();
                        format!("{n} sees {not_alive:?}")
                    })
                    .collect();
                stuck.push(format!("seed {seed}, {partition_ms} ms: {views:?}"));
            }
        }
    }
    assert!(
        stuck.is_empty(),
        "not all alive after the heal:\n{}",
        stuck.join("\n")
    );
}

#[test]
fn suspect_from_outside_is_refuted_by_a_live_member() {
    let mut net = cluster(3, 21);
    net.run_until(2_000);
    let n3 = id("n3");
    net.with(1, |now, m, out| m.suspect(now, &NodeId::from("n3"), out));
    assert_eq!(
        net.nodes[&id("n1")].m.liveness(&n3),
        Some(Liveness::Suspect)
    );
    assert!(net.changes.iter().any(|(t, o, of, l)| *t == 2_000
        && o.as_str() == "n1"
        && *of == n3
        && *l == Liveness::Suspect));
    let back = time_until(&mut net, &n3, Liveness::Alive, 2_000, 3_000).expect("refuted");
    net.run_until(4_000);
    assert!(net.all_alive());
    assert!(
        !net.changes
            .iter()
            .any(|(_, _, of, l)| *of == n3 && *l == Liveness::Down),
        "a live member was declared down"
    );
    eprintln!("suspicion refuted after {back} ms");
    // Suspecting ourselves or an unknown member does nothing.
    let before = net.log.len();
    net.with(1, |now, m, out| m.suspect(now, &NodeId::from("n1"), out));
    net.with(1, |now, m, out| m.suspect(now, &NodeId::from("nx"), out));
    assert_eq!(net.log.len(), before);
}

#[test]
fn suspected_member_that_is_really_gone_goes_down() {
    let mut net = cluster(3, 8);
    net.run_until(2_000);
    net.crash(3);
    net.with(1, |now, m, out| m.suspect(now, &NodeId::from("n3"), out));
    time_until(&mut net, &id("n3"), Liveness::Down, 2_000, 4_000).expect("down");
}

#[test]
fn garbage_is_refused_and_changes_nothing() {
    // Two identical runs; the second also gets garbage fed to every node.
    // Refused input must leave no trace: same outputs afterwards.
    let mut clean = cluster(3, 99);
    clean.run_until(1_000);
    let mut dirty = cluster(3, 99);
    dirty.run_until(1_000);
    let sample = dirty.sample_packets.last().unwrap().clone();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![0xff; 7],
        vec![0xff; 100_000],
        b"hello, this is not gossip".to_vec(),
    ];
    garbage.push(sample[..sample.len() / 2].to_vec());
    let mut trailing = sample.clone();
    trailing.push(1);
    garbage.push(trailing);
    let mut trailing2 = sample.clone();
    trailing2.extend([0, 3, 1, 2, 3]); // a "broadcast" that is not a metadata item
    garbage.push(trailing2);
    for (i, g) in garbage.iter().enumerate() {
        for n in 1..=3 {
            let members_before = dirty.m(n).members();
            let mut out = Vec::new();
            let r = dirty.m(n).handle_data(1_000, g, &mut out);
            assert!(r.is_err(), "garbage {i} accepted by n{n}");
            assert!(
                out.is_empty(),
                "garbage {i} produced output at n{n}: {out:?}"
            );
            assert_eq!(dirty.m(n).members(), members_before);
        }
    }
    let e = dirty
        .m(1)
        .handle_data(1_000, &[0xff; 100_000], &mut Vec::new());
    assert!(matches!(e, Err(GossipError::TooBig { .. })), "{e:?}");
    let e = dirty.m(1).handle_data(1_000, b"nope", &mut Vec::new());
    assert!(e.unwrap_err().to_string().contains("malformed"));
    clean.run_until(3_000);
    dirty.run_until(3_000);
    assert_eq!(clean.log, dirty.log);
}

/// Feeds `packet` to node `n`; a refused packet must leave no trace.
fn refused_changes_nothing(net: &mut Net, n: usize, packet: &[u8]) -> Result<bool, TestCaseError> {
    let members_before = net.m(n).members();
    let mut out = Vec::new();
    let r = net.m(n).handle_data(1_000, packet, &mut out);
    if let Err(e) = &r {
        prop_assert!(!e.to_string().is_empty());
        prop_assert!(out.is_empty(), "refused packet produced output: {out:?}");
        prop_assert_eq!(net.m(n).members(), members_before);
    }
    Ok(r.is_ok())
}

#[test]
fn arbitrary_packets_are_refused_and_change_nothing() {
    // As in `garbage_is_refused_and_changes_nothing`, with generated garbage:
    // the run that was fed it must go on exactly like the one that was not.
    let mut clean = cluster(3, 99);
    clean.run_until(1_000);
    let dirty = RefCell::new(cluster(3, 99));
    dirty.borrow_mut().run_until(1_000);
    let mut runner = TestRunner::new(ProptestConfig::with_cases(512));
    let garbage = (1usize..=3, prop::collection::vec(any::<u8>(), 0..512));
    runner
        .run(&garbage, |(n, packet)| {
            let accepted = refused_changes_nothing(&mut dirty.borrow_mut(), n, &packet)?;
            prop_assert!(!accepted, "garbage accepted by n{n}: {packet:?}");
            Ok(())
        })
        .unwrap();
    let mut dirty = dirty.into_inner();
    clean.run_until(3_000);
    dirty.run_until(3_000);
    assert_eq!(clean.log, dirty.log);
}

#[test]
fn damaged_packets_are_refused_without_a_trace_or_accepted() {
    // A damaged real packet may still be a valid one (a flipped bit in an
    // incarnation); if it is refused, nothing may have changed.
    let net = RefCell::new(cluster(3, 7));
    net.borrow_mut().run_until(1_000);
    let samples = net.borrow().sample_packets.clone();
    assert!(!samples.is_empty());
    let mut runner = TestRunner::new(ProptestConfig::with_cases(512));
    let damage = (
        1usize..=3,
        any::<prop::sample::Index>(),
        any::<usize>(),
        0u8..8,
        any::<usize>(),
        prop::collection::vec(any::<u8>(), 0..6),
    );
    runner
        .run(&damage, |(n, which, at, bit, cut, insert)| {
            let mut b = which.get(&samples).clone();
            if !b.is_empty() {
                let i = at % b.len();
                b[i] ^= 1 << bit;
            }
            let j = at % (b.len() + 1);
            b.splice(j..j, insert);
            b.truncate(b.len() - cut % (b.len() / 4 + 1));
            refused_changes_nothing(&mut net.borrow_mut(), n, &b)?;
            Ok(())
        })
        .unwrap();
}

fn scenario(seed: u64) -> Vec<String> {
    let mut net = cluster(5, seed);
    net.run_until(1_500);
    net.with(2, |_, m, out| {
        m.broadcast(b"layout", 3, b"v3".to_vec(), out).unwrap()
    });
    net.run_until(2_000);
    net.crash(5);
    net.with(1, |now, m, out| m.suspect(now, &NodeId::from("n4"), out));
    net.run_until(4_000);
    net.start(5, 2, 10, &[1]);
    net.run_until(6_000);
    net.log
}

#[test]
fn same_seed_same_outputs() {
    let a = scenario(1234);
    let b = scenario(1234);
    assert!(
        a.len() > 1_000,
        "the scenario does something ({} outputs)",
        a.len()
    );
    assert_eq!(a, b);
    let c = scenario(4321);
    assert_ne!(a, c, "the seed matters");
}

#[test]
fn metadata_reaches_everyone_and_newer_versions_win() {
    let mut net = cluster(5, 42);
    net.run_until(1_500);
    net.with(1, |_, m, out| {
        m.broadcast(b"layout", 1, b"one".to_vec(), out).unwrap()
    });
    net.run_until(2_500);
    let got = |net: &Net, version: u64| -> Vec<String> {
        let mut v: Vec<String> = net
            .metadata
            .iter()
            .filter(|(_, k, ver, _)| k == b"layout" && *ver == version)
            .map(|(o, ..)| o.to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        got(&net, 1),
        ["n2", "n3", "n4", "n5"],
        "each once, not the origin"
    );
    assert!(net.metadata.iter().all(|(_, _, _, d)| d == b"one"));

    // A newer version from another node replaces it everywhere, the origin of v1 included.
    net.with(3, |_, m, out| {
        m.broadcast(b"layout", 2, b"two".to_vec(), out).unwrap()
    });
    // A stale version goes nowhere.
    net.with(4, |_, m, out| {
        m.broadcast(b"layout", 1, b"stale".to_vec(), out).unwrap()
    });
    // Another key travels independently.
    net.with(5, |_, m, out| {
        m.broadcast(b"buckets", 9, b"b".to_vec(), out).unwrap()
    });
    net.run_until(3_500);
    assert_eq!(got(&net, 2), ["n1", "n2", "n4", "n5"]);
    assert!(!net.metadata.iter().any(|(_, _, _, d)| d == b"stale"));
    let buckets: Vec<&NodeId> = net
        .metadata
        .iter()
        .filter(|(_, k, ..)| k == b"buckets")
        .map(|(o, ..)| o)
        .collect();
    assert_eq!(buckets.len(), 4);

    // Two versions queued back to back: the newer one wins at every node.
    net.with(2, |_, m, out| {
        m.broadcast(b"layout", 5, b"five".to_vec(), out).unwrap();
        m.broadcast(b"layout", 6, b"six".to_vec(), out).unwrap();
    });
    net.run_until(4_500);
    for n in ["n1", "n3", "n4", "n5"] {
        let last = net
            .metadata
            .iter()
            .rfind(|(o, k, ..)| o.as_str() == n && k == b"layout")
            .unwrap();
        assert_eq!(last.2, 6, "{n}");
    }
    // Too large for one packet: refused up front.
    let max = GossipConfig::fast().max_metadata_size();
    let r = net
        .m(1)
        .broadcast(b"big", 1, vec![0; max + 1], &mut Vec::new());
    assert!(
        matches!(r, Err(GossipError::MetadataTooBig { .. })),
        "{r:?}"
    );
}

#[test]
fn update_me_spreads_without_flapping() {
    let mut net = cluster(4, 17);
    net.run_until(2_000);
    let changes_before = net.changes.len();
    let mut newer = net.m(2).me().clone();
    newer.layout_version = 7;
    newer.status = MemberStatus::Leaving;
    net.with(2, |now, m, out| m.update_me(now, newer.clone(), out));
    assert_eq!(net.m(2).me(), &newer);
    net.run_until(3_000);
    for n in [1, 3, 4] {
        let members = net.m(n).members();
        let (i, l) = members.iter().find(|(i, _)| i.id.as_str() == "n2").unwrap();
        assert_eq!(i, &newer, "as seen by n{n}");
        assert_eq!(*l, Liveness::Alive);
    }
    assert_eq!(
        net.changes[changes_before..],
        [],
        "no liveness changes from an info update"
    );
    assert!(
        net.log
            .iter()
            .filter(|l| l.contains("Updated") && l.contains("layout_version: 7"))
            .count()
            >= 3
    );
    net.run_until(5_000);
    assert!(net.all_alive());
}

#[test]
fn lan_profile_is_what_the_docs_say() {
    let c = GossipConfig::lan(5);
    assert_eq!(
        (c.probe_period_ms, c.probe_rtt_ms, c.suspect_to_down_ms),
        (1_000, 500, 4_000)
    );
    let c = GossipConfig::lan(100);
    assert_eq!(c.suspect_to_down_ms, 8_000);
}
