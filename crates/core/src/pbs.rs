//! Probabilistically bounded staleness (Bailis et al., "PBS"): how likely
//! is a read started `t` after a write's ack to return that write, given
//! the measured latencies of the four WARS legs ([`crate::legs`]).
//!
//! The model is a Monte Carlo over the legs, as in the paper, with one
//! change that ringkv's coordinators make true: the write's coordinator is
//! one of the N replicas (a node that is not forwards the write to one), so
//! its own W and A legs are zero. Each trial
//!
//! 1. draws `w_i, a_i, r_i, s_i` for each replica `i` (replica 0 is the
//!    write's coordinator: `w_0 = a_0 = 0`; when the read's coordinator is
//!    replica `j`, `r_j = s_j = 0`);
//! 2. acks the write at the W-th smallest `w_i + a_i`;
//! 3. starts a read at `ack + t`; replica `i` answers from its state at
//!    `ack + t + r_i`, so it has the write when `w_i <= ack + t + r_i`;
//! 4. takes the first R replies by `r_i + s_i`: the read is fresh when any
//!    of them has the write.
//!
//! The smallest `t` at which a trial's read is fresh is
//! `min over its first R replies of max(0, w_i - ack - r_i)`, so one trial
//! gives the whole curve, and every `(R, W)` pair from the same draws.
//! Randomness comes from a seed: the same inputs give the same answer.

use serde::{Deserialize, Serialize};

use crate::legs::LegHistograms;

/// Largest N the model runs (buckets have at most this many replicas).
pub const N_MAX: usize = 16;

/// Bound on the staleness values one prediction keeps (N² pairs × trials),
/// which bounds its memory (4 bytes each).
pub const VALUES_MAX: usize = 4_000_000;

/// Samples each leg needs before a prediction is made.
pub const SAMPLES_MIN: u64 = 200;

/// Trials of a prediction unless asked otherwise.
pub const TRIALS_DEFAULT: usize = 50_000;

/// The `t` of the curve's points, in ms: every ms to 20, then coarser.
pub const T_GRID_MS: [u64; 31] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 25, 30, 40, 50, 75,
    100, 150, 200, 500, 1000,
];

/// A distribution given by samples: draws pick a sample uniformly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Empirical {
    /// Distinct values, ascending.
    values: Vec<u64>,
    /// `cumulative[k]`: samples with a value up to `values[k]`.
    cumulative: Vec<u64>,
}

impl Empirical {
    /// From `(value, count)` pairs in any order.
    pub fn from_weighted(mut pairs: Vec<(u64, u64)>) -> Self {
        pairs.sort_unstable();
        let mut e = Empirical::default();
        let mut total = 0u64;
        for (v, c) in pairs {
            if c == 0 {
                continue;
            }
            total = total.saturating_add(c);
            if e.values.last() == Some(&v) {
                *e.cumulative.last_mut().expect("same length") = total;
            } else {
                e.values.push(v);
                e.cumulative.push(total);
            }
        }
        e
    }

    /// From single samples.
    pub fn from_samples(samples: &[u64]) -> Self {
        Empirical::from_weighted(samples.iter().map(|&v| (v, 1)).collect())
    }

    /// How many samples.
    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The `index`-th smallest sample (`index < total()`; larger indexes
    /// give the largest sample, an empty distribution 0).
    pub fn draw(&self, index: u64) -> u64 {
        let k = self.cumulative.partition_point(|&c| c <= index);
        self.values
            .get(k.min(self.values.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    }

    fn sample(&self, rng: &mut SplitMix) -> u64 {
        match self.total() {
            0 => 0,
            t => self.draw(rng.below(t)),
        }
    }
}

/// The four legs' distributions, in µs.
#[derive(Clone, Debug, Default)]
pub struct LegDists {
    /// W: write to replica.
    pub write: Empirical,
    /// A: ack to coordinator.
    pub ack: Empirical,
    /// R: read to replica.
    pub read: Empirical,
    /// S: reply to coordinator.
    pub response: Empirical,
}

impl LegDists {
    /// The distributions of measured windows.
    pub fn of(h: &LegHistograms) -> Self {
        LegDists {
            write: h.write.empirical(),
            ack: h.ack.empirical(),
            read: h.read.empirical(),
            response: h.response.empirical(),
        }
    }
}

/// Which node coordinates the read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reader {
    /// A node picked uniformly among `members` (a client spreading its
    /// requests over the cluster): the write's coordinator with probability
    /// 1/members, another replica with (N-1)/members, else a node that
    /// holds no replica.
    Any {
        /// Nodes in the cluster (at least N).
        members: usize,
    },
    /// A replica other than the write's coordinator (reads its own copy at once).
    Replica,
    /// A node that is not a replica: every reply crosses the network.
    NonReplica,
}

/// What to predict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Model {
    /// Replicas per key (1..=[`N_MAX`]).
    pub n: usize,
    /// Who coordinates the read.
    pub reader: Reader,
    /// Monte Carlo trials (capped so that N² × trials <= [`VALUES_MAX`]).
    pub trials: usize,
    /// Seed of the draws.
    pub seed: u64,
}

/// The staleness of one `(R, W)` pair: for each trial, the smallest `t`
/// (µs) at which its read was fresh, sorted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Curve {
    /// Replies the read waits for.
    pub r: usize,
    /// Acks the write waits for.
    pub w: usize,
    /// The median time from the write's start to its W-th ack, in µs
    /// (what a larger W costs).
    pub ack_p50_us: u64,
    staleness_us: Vec<u32>,
}

impl Curve {
    /// The probability that a read started `t_us` after the ack is fresh.
    pub fn fresh_at(&self, t_us: u64) -> f64 {
        if self.staleness_us.is_empty() {
            return 1.0;
        }
        let t = u32::try_from(t_us).unwrap_or(u32::MAX);
        let fresh = self.staleness_us.partition_point(|&s| s <= t);
        fresh as f64 / self.staleness_us.len() as f64
    }

    /// The smallest `t` (µs) at which reads are fresh with probability
    /// at least `p` (0..=1).
    pub fn t_at_us(&self, p: f64) -> u64 {
        let len = self.staleness_us.len();
        if len == 0 {
            return 0;
        }
        let need = (p.clamp(0.0, 1.0) * len as f64).ceil() as usize;
        u64::from(self.staleness_us[need.clamp(1, len) - 1])
    }

    /// Trials behind the curve.
    pub fn trials(&self) -> usize {
        self.staleness_us.len()
    }
}

/// The curves of every `(R, W)` pair with `1 <= R, W <= model.n`, R-major.
/// N is capped at [`N_MAX`].
pub fn predict(d: &LegDists, model: &Model) -> Vec<Curve> {
    let n = model.n.clamp(1, N_MAX);
    let trials = model.trials.clamp(1, VALUES_MAX / (n * n));
    let mut out: Vec<Vec<u32>> = vec![Vec::with_capacity(trials); n * n];
    let mut acks: Vec<Vec<u64>> = vec![Vec::with_capacity(trials); n];
    let mut rng = SplitMix(model.seed);
    let mut t = Trial::new(n);
    for _ in 0..trials {
        t.draw(d, model.reader, &mut rng);
        t.staleness(&mut out);
        for (w, &ack) in t.acks.iter().enumerate() {
            acks[w].push(ack);
        }
    }
    let ack_p50_us: Vec<u64> = acks
        .iter_mut()
        .map(|a| {
            a.sort_unstable();
            a[a.len() / 2]
        })
        .collect();
    let mut curves = Vec::with_capacity(n * n);
    for (k, mut staleness_us) in out.into_iter().enumerate() {
        staleness_us.sort_unstable();
        curves.push(Curve {
            w: k % n + 1,
            r: k / n + 1,
            ack_p50_us: ack_p50_us[k % n],
            staleness_us,
        });
    }
    curves
}

/// One trial's draws, reused from trial to trial.
struct Trial {
    w: Vec<u64>,
    a: Vec<u64>,
    r: Vec<u64>,
    s: Vec<u64>,
    /// `w_i + a_i`, ascending.
    acks: Vec<u64>,
    /// Replicas by `r_i + s_i`, ascending (ties by index).
    order: Vec<usize>,
}

impl Trial {
    fn new(n: usize) -> Self {
        Trial {
            w: vec![0; n],
            a: vec![0; n],
            r: vec![0; n],
            s: vec![0; n],
            acks: vec![0; n],
            order: (0..n).collect(),
        }
    }

    fn draw(&mut self, d: &LegDists, reader: Reader, rng: &mut SplitMix) {
        let n = self.w.len();
        for i in 0..n {
            // Replica 0 coordinates the write: its legs are local.
            let local = i == 0;
            self.w[i] = if local { 0 } else { d.write.sample(rng) };
            self.a[i] = if local { 0 } else { d.ack.sample(rng) };
            self.r[i] = d.read.sample(rng);
            self.s[i] = d.response.sample(rng);
        }
        let reads_at = match reader {
            Reader::NonReplica => None,
            Reader::Replica => Some(1.min(n - 1)),
            Reader::Any { members } => {
                let u = rng.below(members.max(n) as u64) as usize;
                (u < n).then_some(u)
            }
        };
        if let Some(j) = reads_at {
            self.r[j] = 0;
            self.s[j] = 0;
        }
        for i in 0..n {
            self.acks[i] = self.w[i] + self.a[i];
        }
        self.acks.sort_unstable();
        let (r, s) = (&self.r, &self.s);
        self.order.sort_unstable_by_key(|&i| (r[i] + s[i], i));
    }

    /// Appends this trial's staleness to each pair's list (`out[(R-1)*n + W-1]`).
    fn staleness(&self, out: &mut [Vec<u32>]) {
        let n = self.w.len();
        for (wi, &ack) in self.acks.iter().enumerate() {
            let mut best = u64::MAX;
            for (ri, &i) in self.order.iter().enumerate() {
                best = best.min(self.w[i].saturating_sub(ack + self.r[i]));
                out[ri * n + wi].push(u32::try_from(best).unwrap_or(u32::MAX));
            }
        }
    }
}

/// A small, fast, seeded generator (SplitMix64): the model's only source
/// of randomness, so a prediction is a function of its inputs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`; the modulo bias is below 2^-40
    /// for the bounds used here).
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

#[cfg(test)]
mod tests;
