//! Gossip failure detection in the simulator: a partition (no crash, so the
//! transport says nothing) makes each side see the other Suspect or Down
//! through gossip alone, writes at W=1 through every node on either side go
//! to fallbacks and succeed, and after the heal the hints are handed off.

use ringkv_node::membership::Liveness;
use ringkv_sim::check::check_all;
use ringkv_sim::history::{Op, OpKind, Outcome};
use ringkv_sim::scenario::Scenario;
use ringkv_sim::world::World;

const SPLIT: &str = r#"
name = "gossip-split"
nodes = 5
n = 3
r = 1
w = 1
timeout_ms = 300
duration_ms = 7000
sync = { kind = "always" }

[[faults]]
at_ms = 1000
kind = "partition"
a = ["n1", "n2"]
b = ["n3", "n4", "n5"]

[[faults]]
at_ms = 3500
kind = "heal"

[workload]
clients = 10
keys = 40
arrival = { kind = "closed", think_ms = 5 }
mix = { get = 0.4, put = 0.3, rmw = 0.3 }
"#;

const A: [usize; 2] = [0, 1];
const B: [usize; 3] = [2, 3, 4];

fn is_write(op: &Op) -> bool {
    matches!(op.kind, OpKind::Put { .. } | OpKind::Delete { .. })
}

#[test]
fn a_partition_is_seen_through_gossip_and_sloppy_writes_are_handed_off() {
    let s = Scenario::from_toml(SPLIT).unwrap();
    let mut hints_delivered = 0;
    for seed in 0..8 {
        let mut w = World::new(&s, seed, &Default::default());
        w.start();

        // Mid-partition: each side holds the other not alive, through gossip
        // (nothing told the nodes through PeerStatus).
        assert!(w.run_until(3_000_000));
        for (here, there) in A
            .iter()
            .flat_map(|&a| B.iter().map(move |&b| (a, b)))
            .flat_map(|(a, b)| [(a, b), (b, a)])
        {
            let node = w.cluster.node(here).expect("no crashes here");
            let peer = w.cluster.id(there).clone();
            let g = node.gossip_liveness(&peer);
            assert!(
                matches!(g, Some(Liveness::Suspect | Liveness::Down)),
                "seed {seed}: n{} sees {peer} as {g:?} through gossip",
                here + 1
            );
            assert!(!node.is_live(&peer));
        }
        w.run_until(u64::MAX);

        let ops = &w.history.ops;
        // Once detected, writes at W=1 through every node succeed.
        for i in 0..5 {
            let id = format!("n{}", i + 1);
            let writes: Vec<&Op> = ops
                .iter()
                .filter(|op| op.node == id && is_write(op))
                .filter(|op| (2_200..3_400).contains(&op.invoke_ms))
                .collect();
            assert!(
                writes.len() > 5,
                "seed {seed}: {} writes on {id}",
                writes.len()
            );
            for op in writes {
                assert!(
                    matches!(op.outcome, Outcome::Written { .. }),
                    "seed {seed}: {op:?}"
                );
            }
        }
        assert!(
            ops.iter().any(|op| is_write(op) && op.fallbacks > 0),
            "seed {seed}: no write used a fallback"
        );

        // Healed: the hints went back to their primaries.
        let mut delivered = 0;
        for i in 0..5 {
            let node = w.cluster.node(i).unwrap();
            assert_eq!(
                node.hints_len(),
                0,
                "seed {seed}: n{} still holds hints {:?}",
                i + 1,
                node.hints_by_primary()
            );
            delivered += node.stats().hints_delivered;
            for j in (0..5).filter(|&j| j != i) {
                assert!(node.is_live(w.cluster.id(j)), "seed {seed}");
            }
        }
        assert!(delivered > 0, "seed {seed}: no hint delivered");
        hints_delivered += delivered;

        let v = check_all(&w.history);
        assert!(v.is_empty(), "seed {seed}: {}", v[0]);
    }
    eprintln!("hints delivered over 8 seeds: {hints_delivered}");
}
