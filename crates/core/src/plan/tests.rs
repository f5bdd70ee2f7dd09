use super::*;
use proptest::prelude::*;

fn member(i: usize, zone: &str, capacity: u32) -> Member {
    Member {
        id: NodeId::from(format!("n{i}")),
        rpc_addr: format!("127.0.0.1:{}", 7000 + i),
        zone: zone.to_string(),
        capacity,
    }
}

fn layout(s: usize, q: u32) -> Layout {
    Layout::initial((1..=s).map(|i| member(i, "", 1)).collect(), q).unwrap()
}

fn join(i: usize, zone: &str, capacity: u32) -> Change {
    let m = member(i, zone, capacity);
    Change::Join {
        id: m.id,
        rpc_addr: m.rpc_addr,
        zone: m.zone,
        capacity,
    }
}

fn id(i: usize) -> NodeId {
    NodeId::from(format!("n{i}"))
}

fn counts(l: &Layout) -> Vec<u32> {
    l.members
        .iter()
        .map(|m| l.partitions_owned(&m.id) as u32)
        .collect()
}

/// The fewest owner changes any layout meeting `next`'s targets needs:
/// every partition of a departed member, and each staying member's excess
/// over its new target.
fn fewest_moves(old: &Layout, next: &Layout) -> u32 {
    let targets = next.targets();
    let mut moves = 0;
    for m in &old.members {
        let owned = old.partitions_owned(&m.id) as u32;
        moves += match next.members.iter().position(|n| n.id == m.id) {
            None => owned,
            Some(i) => owned.saturating_sub(targets[i]),
        };
    }
    moves
}

/// A random change against the current members: join a new node, or
/// leave, remove or re-zone an existing one.
fn arb_change(l: &Layout, next_id: &mut usize, pick: u32, zone: u8, cap: u32) -> Change {
    let zone = if zone == 0 {
        String::new()
    } else {
        format!("z{}", zone % 3)
    };
    let existing = l.members[pick as usize % l.members.len()].id.clone();
    match pick % 4 {
        0 if l.members.len() > 1 => Change::Leave { id: existing },
        1 if l.members.len() > 1 => Change::Remove { id: existing },
        2 => Change::Zone {
            id: existing,
            zone,
            capacity: Some(cap),
        },
        _ => {
            *next_id += 1;
            join(*next_id, &zone, cap)
        }
    }
}

proptest! {
    #[test]
    fn targets_add_up_and_follow_capacity(caps in prop::collection::vec(1u32..=10, 1..=12), bits in 3u32..=10) {
        let q = 1u32 << bits;
        let members: Vec<Member> = caps.iter().enumerate().map(|(i, &c)| member(i, "", c)).collect();
        let l = Layout::initial(members, q).unwrap();
        let t = l.targets();
        prop_assert_eq!(t.iter().sum::<u32>(), q);
        let total: u32 = caps.iter().sum();
        for (i, c) in l.members.iter().map(|m| m.capacity).enumerate() {
            let exact = f64::from(q) * f64::from(c) / f64::from(total);
            prop_assert!((f64::from(t[i]) - exact).abs() < 1.0, "target {} for share {}", t[i], exact);
        }
    }

    /// A sequence of random changes: every layout meets its targets, moves
    /// no more partitions than that requires, keeps a partition's owner
    /// unless it left or was over its target, and has preference lists of
    /// distinct nodes spanning as many zones as the ring offers.
    #[test]
    fn next_layouts_meet_targets_with_fewest_moves(
        s in 1usize..=6,
        bits in 3u32..=8,
        steps in prop::collection::vec((any::<u32>(), any::<u8>(), 1u32..=4), 1..=6),
        n in 1usize..=4,
    ) {
        let q = 1u32 << bits;
        let mut l = layout(s, q);
        let mut next_id = s;
        for (pick, zone, cap) in steps {
            let change = arb_change(&l, &mut next_id, pick, zone, cap);
            let next = l.next(std::slice::from_ref(&change)).unwrap();
            prop_assert_eq!(next.version, l.version + 1);
            prop_assert_eq!(counts(&next), next.targets());
            let plan = Plan::new(&l, &next, n, &[]);
            prop_assert_eq!(plan.owners_changed, fewest_moves(&l, &next));
            let targets_old_members: Vec<(NodeId, u32)> = next.members.iter().zip(next.targets())
                .map(|(m, t)| (m.id.clone(), t)).collect();
            for p in 0..q {
                let owner = l.owner(p);
                let stays = targets_old_members.iter()
                    .any(|(m, t)| m == owner && (l.partitions_owned(owner) as u32) <= *t);
                if stays {
                    prop_assert_eq!(next.owner(p), owner, "partition {} moved needlessly", p);
                }
                let pl = next.preference_list(p, n);
                let mut d = pl.clone();
                d.sort();
                d.dedup();
                prop_assert_eq!(d.len(), pl.len());
                prop_assert_eq!(pl.len(), n.min(next.members.len()));
                let zones_owning = zones_with_partitions(&next);
                prop_assert_eq!(next.zones_spanned(p, n), n.min(zones_owning).max(1).min(pl.len()));
            }
            l = next;
        }
    }

    /// With equal capacities a change never leaves one member more than one
    /// partition ahead of another.
    #[test]
    fn equal_capacities_stay_balanced(s in 1usize..=9, bits in 3u32..=9, joins in 1usize..=4, leaves in 0usize..=2) {
        let q = 1u32 << bits;
        let l = layout(s, q);
        let mut changes: Vec<Change> = (1..=joins).map(|j| join(s + j, "", 1)).collect();
        changes.extend((1..=leaves.min(s - 1)).map(|i| Change::Leave { id: id(i) }));
        let next = l.next(&changes).unwrap();
        prop_assert!(balance(&next) <= 1, "counts {:?}", counts(&next));
    }
}

/// Zones, counting each member without one as its own.
fn zones_with_partitions(l: &Layout) -> usize {
    let mut zones: Vec<&Member> = Vec::new();
    for m in &l.members {
        if l.partitions_owned(&m.id) > 0 && !zones.iter().any(|z| z.same_zone(m)) {
            zones.push(m);
        }
    }
    zones.len()
}

#[test]
fn joins_only_move_partitions_to_the_new_nodes() {
    let l = layout(3, 64);
    let next = l.next(&[join(4, "", 1), join(5, "", 1)]).unwrap();
    for p in 0..64 {
        if next.owner(p) != l.owner(p) {
            assert!(
                [id(4), id(5)].contains(next.owner(p)),
                "partition {p} went from {} to {}",
                l.owner(p),
                next.owner(p)
            );
        }
    }
    assert_eq!(counts(&next), vec![13, 13, 13, 13, 12]);
    let plan = Plan::new(&l, &next, 3, &[]);
    assert_eq!(plan.owners_changed, 25);
    assert_eq!(plan.balance_before, 1);
    assert_eq!(plan.balance_after, 1);
    assert!(plan.short_of_nodes.is_empty());
}

#[test]
fn growing_one_node_at_a_time_keeps_neighbours_distinct() {
    // 3 -> 4 -> 5 nodes, as an operator would: most windows of 3
    // consecutive partitions keep 3 distinct owners, so a preference list
    // is the next owners on the ring.
    let mut l = layout(3, 64);
    for new in 4..=5 {
        l = l.next(&[join(new, "", 1)]).unwrap();
    }
    let distinct_windows = (0..64)
        .filter(|&p| {
            let w = [l.owner(p), l.owner((p + 1) % 64), l.owner((p + 2) % 64)];
            w[0] != w[1] && w[1] != w[2] && w[0] != w[2]
        })
        .count();
    assert!(
        distinct_windows >= 56,
        "only {distinct_windows} of 64 windows distinct"
    );
    assert!(balance(&l) <= 1);
}

#[test]
fn zones_spread_replicas_and_plans_say_when_they_cannot() {
    // Three zones of two nodes: every preference list of 3 spans all three.
    let mut l = layout(1, 64);
    let changes: Vec<Change> = (2..=6)
        .map(|i| join(i, &format!("z{}", i % 3), 1))
        .chain([Change::Zone {
            id: id(1),
            zone: "z1".into(),
            capacity: None,
        }])
        .collect();
    let next = l.next(&changes).unwrap();
    let plan = Plan::new(&l, &next, 3, &[]);
    assert!(plan.shared_zones.is_empty(), "{:?}", plan.shared_zones);
    for p in 0..64 {
        assert_eq!(next.zones_spanned(p, 3), 3);
    }
    // Two zones cannot hold three replicas apart: every partition is named.
    l = next;
    let two_zones: Vec<Change> = (1..=6)
        .filter(|i| i % 3 == 0)
        .map(|i| Change::Zone {
            id: id(i),
            zone: "z1".into(),
            capacity: None,
        })
        .collect();
    let next = l.next(&two_zones).unwrap();
    let plan = Plan::new(&l, &next, 3, &[]);
    assert_eq!(plan.shared_zones.len(), 64);
    assert_eq!(plan.owners_changed, 0, "a zone change alone moves no owner");
}

#[test]
fn capacity_weights_shares() {
    let l = layout(2, 64);
    let next = l.next(&[join(3, "", 2)]).unwrap();
    assert_eq!(counts(&next), vec![16, 16, 32]);
}

#[test]
fn plans_count_what_each_node_receives() {
    let l = layout(3, 16);
    let next = l.next(&[join(4, "", 1)]).unwrap();
    let sizes: Vec<PartitionSize> = (0..16)
        .map(|p| PartitionSize {
            keys: 10 + p,
            bytes: 1000 * (10 + p),
        })
        .collect();
    let plan = Plan::new(&l, &next, 3, &sizes);
    let mut want_keys: BTreeMap<NodeId, u64> = BTreeMap::new();
    for m in &plan.moves {
        for node in m.to.iter().filter(|n| !m.from.contains(n)) {
            *want_keys.entry(node.clone()).or_default() += sizes[m.partition as usize].keys;
        }
    }
    for np in &plan.nodes {
        assert_eq!(np.receive_keys, want_keys.get(&np.id).copied().unwrap_or(0));
        assert_eq!(np.receive_bytes, np.receive_keys * 1000);
        assert_eq!(np.replicas_before, if np.id == id(4) { 0 } else { 16 });
    }
    let n4 = plan.nodes.iter().find(|n| n.id == id(4)).unwrap();
    assert_eq!((n4.owned_before, n4.owned_after), (0, 4));
    assert_eq!(n4.receives, n4.replicas_after);
}

#[test]
fn bad_changes_are_refused_with_what_to_do() {
    let l = layout(3, 16);
    let cases: Vec<(Vec<Change>, PlanError)> = vec![
        (vec![], PlanError::Nothing),
        (vec![join(1, "", 1)], PlanError::AlreadyMember(id(1))),
        (
            vec![Change::Leave { id: id(9) }],
            PlanError::NotMember(id(9)),
        ),
        (
            vec![Change::Leave { id: id(1) }, Change::Remove { id: id(1) }],
            PlanError::Twice(id(1)),
        ),
        (
            (1..=3).map(|i| Change::Remove { id: id(i) }).collect(),
            PlanError::Empty,
        ),
        (
            vec![join(4, "bad zone", 1)],
            PlanError::Layout(LayoutError::BadZone("bad zone".into())),
        ),
        (
            vec![join(4, "", 0)],
            PlanError::Layout(LayoutError::BadCapacity(0)),
        ),
    ];
    for (changes, want) in cases {
        assert_eq!(l.next(&changes), Err(want.clone()));
        assert!(!want.to_string().is_empty());
    }
}

#[test]
fn changes_read_as_json_operators_write() {
    let c: Change =
        serde_json::from_str(r#"{"join":{"id":"n4","rpc_addr":"10.0.0.4:7081"}}"#).unwrap();
    assert_eq!(c, join(4, "", 1).clone_with_addr("10.0.0.4:7081"));
}

impl Change {
    fn clone_with_addr(self, addr: &str) -> Change {
        match self {
            Change::Join {
                id, zone, capacity, ..
            } => Change::Join {
                id,
                rpc_addr: addr.into(),
                zone,
                capacity,
            },
            c => c,
        }
    }
}
