use proptest::prelude::*;

use super::*;

fn dists(w: &[u64], a: &[u64], r: &[u64], s: &[u64]) -> LegDists {
    LegDists {
        write: Empirical::from_samples(w),
        ack: Empirical::from_samples(a),
        read: Empirical::from_samples(r),
        response: Empirical::from_samples(s),
    }
}

fn model(n: usize, reader: Reader) -> Model {
    Model {
        n,
        reader,
        trials: 20_000,
        seed: 7,
    }
}

fn curve(curves: &[Curve], r: usize, w: usize) -> &Curve {
    curves.iter().find(|c| c.r == r && c.w == w).unwrap()
}

#[test]
fn empirical_draws_cover_each_sample_once() {
    let e = Empirical::from_samples(&[5, 1, 3, 3]);
    assert_eq!(e.total(), 4);
    let drawn: Vec<u64> = (0..4).map(|i| e.draw(i)).collect();
    assert_eq!(drawn, [1, 3, 3, 5]);
    assert_eq!(e.draw(99), 5);
    assert_eq!(Empirical::default().draw(0), 0);
}

/// N=2, W=1, the read at the other replica: fresh exactly when that
/// replica had the write, `w <= t`: the curve is the W leg's CDF.
#[test]
fn a_local_read_at_the_other_replica_follows_the_write_leg() {
    let w: Vec<u64> = (0..100).map(|i| i * 1_000).collect(); // 0..99 ms, uniform
    let d = dists(&w, &[500], &[700], &[900]);
    let curves = predict(&d, &model(2, Reader::Replica));
    let c = curve(&curves, 1, 1);
    for t_ms in [0u64, 10, 25, 50, 90] {
        let exact = (t_ms + 1) as f64 / 100.0;
        let got = c.fresh_at(t_ms * 1_000);
        assert!((got - exact).abs() < 0.015, "t={t_ms}: {got} vs {exact}");
    }
    // 99 % needs about the 99th of 100 values (a Monte Carlo estimate).
    assert!(
        (97_000..=99_000).contains(&c.t_at_us(0.99)),
        "{}",
        c.t_at_us(0.99)
    );
}

/// The paper's case without a local replica for the read: N=3, R=W=1,
/// every leg fixed. The write reaches each other replica at 10 ms, the
/// ack is at once (the coordinator's own), a read reaches each replica
/// 1 ms after it starts; the first reply is the coordinator's (ties by
/// index), which has the write: always fresh.
#[test]
fn fixed_legs_give_a_step() {
    let d = dists(&[10_000], &[0], &[1_000], &[1_000]);
    let curves = predict(&d, &model(3, Reader::NonReplica));
    assert_eq!(curve(&curves, 1, 1).fresh_at(0), 1.0);
    // Read at the other replica: stale until t + 0 >= 10 ms.
    let curves = predict(&d, &model(3, Reader::Replica));
    let c = curve(&curves, 1, 1);
    assert_eq!(c.fresh_at(9_999), 0.0);
    assert_eq!(c.fresh_at(10_000), 1.0);
    assert_eq!(c.t_at_us(0.999), 10_000);
}

/// W=1 is acked by the coordinator at once; W=2 after the faster of two
/// round trips of 10 ms; W=3 after the slower.
#[test]
fn a_larger_w_costs_the_next_round_trip() {
    let d = dists(&[4_000, 8_000], &[2_000], &[1_000], &[1_000]);
    let curves = predict(&d, &model(3, Reader::NonReplica));
    assert_eq!(curve(&curves, 1, 1).ack_p50_us, 0);
    assert_eq!(curve(&curves, 2, 2).ack_p50_us, 6_000);
    assert_eq!(curve(&curves, 1, 3).ack_p50_us, 10_000);
}

#[test]
fn the_same_seed_gives_the_same_prediction() {
    let d = dists(&[1_000, 9_000], &[2_000, 3_000], &[500, 4_000], &[800, 100]);
    let m = model(3, Reader::Any { members: 5 });
    assert_eq!(predict(&d, &m), predict(&d, &m));
}

#[test]
fn trials_are_capped_by_the_memory_bound() {
    let d = dists(&[1], &[1], &[1], &[1]);
    let m = Model {
        n: 100,
        reader: Reader::NonReplica,
        trials: usize::MAX,
        seed: 0,
    };
    let curves = predict(&d, &m);
    assert_eq!(curves.len(), N_MAX * N_MAX);
    assert_eq!(curves[0].trials(), VALUES_MAX / (N_MAX * N_MAX));
}

fn leg() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(0u64..50_000, 1..20)
}

fn reader() -> impl Strategy<Value = Reader> {
    prop_oneof![
        Just(Reader::Replica),
        Just(Reader::NonReplica),
        (1usize..8).prop_map(|members| Reader::Any { members }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Freshness never drops as t grows, nor as R or W grows (from the same
    /// draws), and R + W > N is always fresh.
    #[test]
    fn monotone_and_strict_quorums_always_fresh(
        w in leg(), a in leg(), r in leg(), s in leg(),
        n in 1usize..6, reader in reader(), seed in any::<u64>(),
    ) {
        let d = dists(&w, &a, &r, &s);
        let curves = predict(&d, &Model { n, reader, trials: 300, seed });
        prop_assert_eq!(curves.len(), n * n);
        for c in &curves {
            let ps: Vec<f64> = T_GRID_MS.iter().map(|&t| c.fresh_at(t * 1_000)).collect();
            prop_assert!(ps.windows(2).all(|p| p[0] <= p[1]), "{:?}", ps);
            prop_assert!(c.fresh_at(u64::MAX) == 1.0);
            prop_assert!(c.t_at_us(0.99) <= c.t_at_us(0.999));
            if c.r + c.w > n {
                prop_assert_eq!(c.fresh_at(0), 1.0, "R={} W={} N={}", c.r, c.w, n);
            }
            if c.r < n {
                let more_r = curve(&curves, c.r + 1, c.w);
                prop_assert!(more_r.fresh_at(0) >= c.fresh_at(0));
            }
            if c.w < n {
                let more_w = curve(&curves, c.r, c.w + 1);
                prop_assert!(more_w.fresh_at(0) >= c.fresh_at(0));
            }
        }
    }
}
