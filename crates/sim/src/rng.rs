//! Randomness for the simulator: one seed, split into independent streams.
//!
//! Every random choice of a run comes from [`SimRng`]s made from the run's
//! seed. Each concern draws from its own ChaCha8 stream (same key, different
//! stream number), so, for one seed, adding a fault to a scenario does not
//! change which keys the clients pick, and a change in the workload does not
//! move the random faults. ChaCha8 is used because its output is fixed across
//! `rand` releases (`StdRng` is not): a seed replays on every build.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The independent random streams of one run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Latencies, loss, duplication and reordering of messages.
    Network = 1,
    /// Clients: which node, which key, which operation, arrival times.
    Workload = 2,
    /// Random crashes and partitions: when, which node, which sides.
    Faults = 3,
    /// Node identities: incarnations, sync phases.
    Nodes = 4,
}

/// A seeded random number generator for one [`Stream`] of a run.
#[derive(Clone, Debug)]
pub struct SimRng(ChaCha8Rng);

/// 2^-53: turns 53 random bits into a float in `[0, 1)`.
const UNIT: f64 = 1.0 / (1u64 << 53) as f64;

impl SimRng {
    /// The generator of `stream` for the run with `seed`.
    pub fn new(seed: u64, stream: Stream) -> Self {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream as u64);
        SimRng(r)
    }

    /// A float uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * UNIT
    }

    /// An integer uniform in `0..n` (`n` must be at least 1).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n >= 1, "below(0)");
        self.0.random_range(0..n.max(1))
    }

    /// `true` with probability `p`. Draws nothing when `p` is 0 or 1, so a
    /// feature switched off costs no time (the scenario decides, so runs stay
    /// reproducible).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.unit() < p
        }
    }

    /// An exponentially distributed value with mean `mean` (inverse CDF).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        // 1 - u is in (0, 1], so the logarithm is finite.
        -mean * (1.0 - self.unit()).ln()
    }

    /// A random `u64` (seeds of other generators).
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A random nonzero `u32` different from `previous`: a node incarnation.
    pub fn incarnation(&mut self, previous: Option<u32>) -> u32 {
        loop {
            let n = self.0.next_u32();
            if n != 0 && Some(n) != previous {
                return n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_streams_differ() {
        let draw = |seed, s| {
            let mut r = SimRng::new(seed, s);
            (0..8).map(|_| r.below(1_000_000)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7, Stream::Network), draw(7, Stream::Network));
        assert_ne!(draw(7, Stream::Network), draw(8, Stream::Network));
        assert_ne!(draw(7, Stream::Network), draw(7, Stream::Workload));
    }

    #[test]
    fn unit_and_chance_stay_in_range() {
        let mut r = SimRng::new(1, Stream::Faults);
        for _ in 0..10_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
        let hits = (0..10_000).filter(|_| r.chance(0.25)).count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
        let mean = (0..20_000).map(|_| r.exponential(3.0)).sum::<f64>() / 20_000.0;
        assert!((mean - 3.0).abs() < 0.15, "{mean}");
        assert_ne!(r.incarnation(None), 0);
    }
}
