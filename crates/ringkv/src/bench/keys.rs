//! What the load generator asks for: a fast seeded RNG, the key
//! distributions (uniform, YCSB zipfian, hotspot) and the operation mixes of
//! the workloads.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

/// A small, fast, seeded generator (wyrand). Not for cryptography; the
/// benchmark only needs it cheap and reproducible.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed` and stream `stream` (one stream per client).
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        // SplitMix64 of the pair, so neighbouring streams start far apart.
        let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng(z ^ (z >> 31))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xA076_1D64_78BD_642F);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xE703_7ED1_A0B4_28DB);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[0, n)`; `n` must be at least 1.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// How keys are picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DistKind {
    /// Every key equally likely.
    Uniform,
    /// YCSB's zipfian (theta 0.99 by default): a few keys get most operations.
    /// Ranks are scattered over the key space.
    Zipfian,
    /// A hot set (the first --hot-keys fraction of the keys) gets --hot-ops of
    /// the operations, the rest spread evenly over the other keys.
    Hotspot,
}

impl DistKind {
    /// Lower-case name, as on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DistKind::Uniform => "uniform",
            DistKind::Zipfian => "zipfian",
            DistKind::Hotspot => "hotspot",
        }
    }
}

/// A key chooser: `next` returns a key index in `[0, keys)`.
#[derive(Clone, Debug)]
pub(super) enum KeyDist {
    /// See [`DistKind::Uniform`].
    Uniform {
        /// Number of keys.
        keys: u64,
    },
    /// See [`DistKind::Zipfian`].
    Zipfian(Zipfian),
    /// See [`DistKind::Hotspot`].
    Hotspot {
        /// Number of keys.
        keys: u64,
        /// Keys `[0, hot)` are hot.
        hot: u64,
        /// Probability that an operation goes to the hot set.
        hot_ops: f64,
    },
}

impl KeyDist {
    /// Builds a chooser; checks its parameters.
    pub(super) fn new(
        kind: DistKind,
        keys: u64,
        theta: f64,
        hot_keys: f64,
        hot_ops: f64,
    ) -> Result<Self, String> {
        if keys == 0 {
            return Err("--keys must be at least 1".into());
        }
        Ok(match kind {
            DistKind::Uniform => KeyDist::Uniform { keys },
            DistKind::Zipfian => KeyDist::Zipfian(Zipfian::new(keys, theta)?),
            DistKind::Hotspot => {
                if !(hot_keys > 0.0 && hot_keys <= 1.0) {
                    return Err(format!(
                        "--hot-keys {hot_keys} must be a fraction of the keys in (0, 1]"
                    ));
                }
                if !(0.0..=1.0).contains(&hot_ops) {
                    return Err(format!(
                        "--hot-ops {hot_ops} must be a fraction of the operations in [0, 1]"
                    ));
                }
                let hot = ((keys as f64 * hot_keys).round() as u64).clamp(1, keys);
                KeyDist::Hotspot { keys, hot, hot_ops }
            }
        })
    }

    /// The next key index.
    pub(super) fn next(&self, rng: &mut Rng) -> u64 {
        match self {
            KeyDist::Uniform { keys } => rng.below(*keys),
            KeyDist::Zipfian(z) => z.next(rng),
            KeyDist::Hotspot { keys, hot, hot_ops } => {
                if *hot == *keys || rng.next_f64() < *hot_ops {
                    rng.below(*hot)
                } else {
                    hot + rng.below(keys - hot)
                }
            }
        }
    }
}

/// YCSB's `ZipfianGenerator` (Gray et al., "Quickly generating billion-record
/// synthetic databases"), with rank `i` mapped to key `(a * i + b) mod n` for
/// an `a` coprime to `n`: a permutation, so no key is lost to collisions, and
/// the popular keys are not neighbours.
#[derive(Clone, Debug)]
pub(super) struct Zipfian {
    items: u64,
    zetan: f64,
    alpha: f64,
    eta: f64,
    half_pow_theta: f64,
    mul: u64,
    add: u64,
}

/// Most keys `--dist zipfian` takes (its set-up costs one `powf` per key).
pub(super) const MAX_ZIPFIAN_KEYS: u64 = 200_000_000;

impl Zipfian {
    /// A generator over `items` keys with skew `theta` in (0, 1).
    pub(super) fn new(items: u64, theta: f64) -> Result<Self, String> {
        if !(theta > 0.0 && theta < 1.0) {
            return Err(format!(
                "--zipf-theta {theta} must be in (0, 1) (YCSB uses 0.99)"
            ));
        }
        if items == 0 {
            return Err("--keys must be at least 1".into());
        }
        if items > MAX_ZIPFIAN_KEYS {
            return Err(format!(
                "--dist zipfian sums over every key once at the start; use at most \
                 {MAX_ZIPFIAN_KEYS} keys (or --dist uniform or hotspot)"
            ));
        }
        // Zeta(n) costs n powf calls: about 1 s per 50 million keys, once.
        let zetan: f64 = (1..=items).map(|i| 1.0 / (i as f64).powf(theta)).sum();
        let zeta2 = 1.0 + 0.5f64.powf(theta);
        let alpha = 1.0 / (1.0 - theta);
        let eta = if items > 1 {
            (1.0 - (2.0 / items as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0
        };
        // Any multiplier coprime to the key count makes a permutation; start
        // from a large odd constant so that popular ranks land far apart.
        let mut mul = (0x9E37_79B9_7F4A_7C15 % items).max(1);
        while gcd(mul, items) != 1 {
            mul += 1;
        }
        Ok(Zipfian {
            items,
            zetan,
            alpha,
            eta,
            half_pow_theta: 0.5f64.powf(theta),
            mul,
            add: 0x2545_F491_4F6C_DD1D % items,
        })
    }

    /// Rank of the next draw (0 is the most popular), before scattering.
    pub(super) fn next_rank(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + self.half_pow_theta && self.items > 1 {
            return 1;
        }
        let r = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        r.min(self.items - 1)
    }

    /// The key index of the next draw.
    pub(super) fn next(&self, rng: &mut Rng) -> u64 {
        self.scatter(self.next_rank(rng))
    }

    /// Key index of a rank: a fixed permutation of `[0, items)`.
    pub(super) fn scatter(&self, rank: u64) -> u64 {
        ((u128::from(self.mul) * u128::from(rank) + u128::from(self.add)) % u128::from(self.items))
            as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The workloads, after YCSB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Workload {
    /// 50 % reads, 50 % updates (YCSB A, "update heavy").
    A,
    /// 95 % reads, 5 % updates (YCSB B, "read mostly").
    B,
    /// Reads only (YCSB C).
    C,
    /// Updates only.
    W,
    /// Read-modify-write: a read, then a write with the read's context.
    Rmw,
}

impl Workload {
    /// Lower-case name, as on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::A => "a",
            Workload::B => "b",
            Workload::C => "c",
            Workload::W => "w",
            Workload::Rmw => "rmw",
        }
    }

    /// Fraction of operations that are plain reads (the rest are updates,
    /// or read-modify-writes for [`Workload::Rmw`]).
    pub(crate) fn read_fraction(self) -> f64 {
        match self {
            Workload::A => 0.5,
            Workload::B => 0.95,
            Workload::C => 1.0,
            Workload::W | Workload::Rmw => 0.0,
        }
    }

    /// Whether the workload writes (so contexts are worth remembering).
    pub(crate) fn writes(self) -> bool {
        self != Workload::C
    }

    /// Picks the next operation.
    pub(crate) fn next_op(self, rng: &mut Rng) -> Op {
        match self {
            Workload::C => Op::Read,
            Workload::W => Op::Update,
            Workload::Rmw => Op::Rmw,
            Workload::A | Workload::B => {
                if rng.next_f64() < self.read_fraction() {
                    Op::Read
                } else {
                    Op::Update
                }
            }
        }
    }
}

/// One kind of operation, a row of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// A GET.
    Read,
    /// A PUT of an existing key (with the latest context the generator saw).
    Update,
    /// A PUT of a key in the load phase.
    Insert,
    /// A GET and a PUT with its context, timed together.
    Rmw,
}

impl Op {
    /// Every operation, in report order.
    pub(crate) const ALL: [Op; 4] = [Op::Read, Op::Update, Op::Insert, Op::Rmw];

    /// Index into per-operation arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Update => "update",
            Op::Insert => "insert",
            Op::Rmw => "rmw",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(1, 0);
        let mut seen = [0u32; 7];
        for _ in 0..7000 {
            seen[rng.below(7) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800 && c < 1200), "{seen:?}");
        assert_eq!(Rng::new(1, 0).next_u64(), Rng::new(1, 0).next_u64());
        assert_ne!(Rng::new(1, 0).next_u64(), Rng::new(1, 1).next_u64());
    }

    #[test]
    fn zipfian_is_skewed_and_scatter_is_a_permutation() {
        let z = Zipfian::new(1000, 0.99).unwrap();
        let mut rng = Rng::new(7, 0);
        let mut counts = vec![0u32; 1000];
        for _ in 0..100_000 {
            counts[z.next_rank(&mut rng) as usize] += 1;
        }
        // With theta 0.99 over 1000 items, rank 0 gets about 13 % of draws.
        assert!(counts[0] > 10_000 && counts[0] < 16_000, "{}", counts[0]);
        assert!(counts[0] > counts[1] && counts[1] > counts[10]);
        assert!(counts[10] > counts[900]);
        let mut image: Vec<u64> = (0..1000).map(|r| z.scatter(r)).collect();
        image.sort_unstable();
        assert_eq!(image, (0..1000).collect::<Vec<_>>());
        // Tiny key spaces work too.
        for n in 1..5 {
            let z = Zipfian::new(n, 0.99).unwrap();
            for _ in 0..100 {
                assert!(z.next(&mut rng) < n);
            }
        }
        assert!(Zipfian::new(10, 1.0).is_err());
    }

    #[test]
    fn hotspot_sends_most_operations_to_the_hot_set() {
        let d = KeyDist::new(DistKind::Hotspot, 1000, 0.99, 0.1, 0.9).unwrap();
        let mut rng = Rng::new(3, 0);
        let hot = (0..10_000).filter(|_| d.next(&mut rng) < 100).count();
        assert!((8700..9300).contains(&hot), "{hot}");
        assert!(KeyDist::new(DistKind::Hotspot, 10, 0.99, 0.0, 0.9).is_err());
        assert!(KeyDist::new(DistKind::Hotspot, 10, 0.99, 0.5, 1.5).is_err());
        assert!(KeyDist::new(DistKind::Uniform, 0, 0.99, 0.1, 0.9).is_err());
        let all_hot = KeyDist::new(DistKind::Hotspot, 10, 0.99, 1.0, 0.5).unwrap();
        for _ in 0..100 {
            assert!(all_hot.next(&mut rng) < 10);
        }
    }

    #[test]
    fn workload_mixes() {
        let mut rng = Rng::new(5, 0);
        let reads = (0..10_000)
            .filter(|_| Workload::B.next_op(&mut rng) == Op::Read)
            .count();
        assert!((9300..9700).contains(&reads), "{reads}");
        assert_eq!(Workload::C.next_op(&mut rng), Op::Read);
        assert_eq!(Workload::W.next_op(&mut rng), Op::Update);
        assert_eq!(Workload::Rmw.next_op(&mut rng), Op::Rmw);
    }
}
