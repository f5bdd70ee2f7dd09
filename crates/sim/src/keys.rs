//! How simulated clients pick keys: uniform, zipfian (YCSB's generator) or
//! hotspot (a small set of keys gets most operations).
//!
//! Key `0` is the most popular under zipfian and hotspot. Keys are hashed to
//! partitions anyway, so popularity is spread over the ring without YCSB's
//! extra scrambling.

use crate::rng::SimRng;
use crate::scenario::KeyDist;

/// Picks key indexes in `0..keys` following a [`KeyDist`].
#[derive(Clone, Debug)]
pub struct KeyChooser(Kind);

#[derive(Clone, Debug)]
enum Kind {
    Uniform {
        keys: u64,
    },
    /// Gray et al.'s "Quickly generating billion-record synthetic databases",
    /// as in YCSB's `ZipfianGenerator`: `zeta_n` is precomputed once.
    Zipfian {
        keys: u64,
        alpha: f64,
        zeta_n: f64,
        eta: f64,
        half_pow_theta: f64,
    },
    Hotspot {
        keys: u64,
        hot: u64,
        hot_ops: f64,
    },
}

/// `sum_{i=1..n} 1/i^theta`.
fn zeta(n: u64, theta: f64) -> f64 {
    (1..=n).map(|i| (i as f64).powf(-theta)).sum()
}

impl KeyChooser {
    /// A chooser over `keys` keys (at least 1) for a validated distribution.
    /// Zipfian costs O(keys) here, once.
    pub fn new(dist: &KeyDist, keys: usize) -> Self {
        let keys = keys.max(1) as u64;
        KeyChooser(match *dist {
            KeyDist::Uniform => Kind::Uniform { keys },
            KeyDist::Zipfian { theta } => {
                let zeta_n = zeta(keys, theta);
                let zeta_2 = zeta(2, theta);
                let eta = if keys > 2 {
                    (1.0 - (2.0 / keys as f64).powf(1.0 - theta)) / (1.0 - zeta_2 / zeta_n)
                } else {
                    0.0
                };
                Kind::Zipfian {
                    keys,
                    alpha: 1.0 / (1.0 - theta),
                    zeta_n,
                    eta,
                    half_pow_theta: 0.5f64.powf(theta),
                }
            }
            KeyDist::Hotspot { hot_keys, hot_ops } => {
                let hot = ((keys as f64 * hot_keys).round() as u64).min(keys);
                Kind::Hotspot { keys, hot, hot_ops }
            }
        })
    }

    /// The next key index, in `0..keys`.
    pub fn pick(&self, rng: &mut SimRng) -> usize {
        let k = match self.0 {
            Kind::Uniform { keys } => rng.below(keys),
            Kind::Zipfian {
                keys,
                alpha,
                zeta_n,
                eta,
                half_pow_theta,
            } => {
                if keys == 1 {
                    return 0;
                }
                let u = rng.unit();
                let uz = u * zeta_n;
                if uz < 1.0 {
                    0
                } else if uz < 1.0 + half_pow_theta {
                    1
                } else {
                    let x = keys as f64 * (eta * u - eta + 1.0).powf(alpha);
                    (x as u64).min(keys - 1)
                }
            }
            Kind::Hotspot { keys, hot, hot_ops } => {
                if hot == 0 || hot == keys {
                    rng.below(keys)
                } else if rng.chance(hot_ops) {
                    rng.below(hot)
                } else {
                    hot + rng.below(keys - hot)
                }
            }
        };
        k as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn counts(d: &KeyDist, keys: usize, draws: usize) -> Vec<usize> {
        let c = KeyChooser::new(d, keys);
        let mut rng = SimRng::new(11, Stream::Workload);
        let mut n = vec![0; keys];
        for _ in 0..draws {
            n[c.pick(&mut rng)] += 1;
        }
        n
    }

    #[test]
    fn uniform_covers_every_key_evenly() {
        let n = counts(&KeyDist::Uniform, 10, 100_000);
        assert!(n.iter().all(|&c| (9_000..11_000).contains(&c)), "{n:?}");
    }

    #[test]
    fn zipfian_follows_the_power_law() {
        let theta = 0.99;
        let n = counts(&KeyDist::Zipfian { theta }, 1_000, 200_000);
        // P(0) = 1/zeta(n); P(1) = 2^-theta / zeta(n).
        let z = zeta(1_000, theta);
        let p0 = n[0] as f64 / 200_000.0;
        let p1 = n[1] as f64 / 200_000.0;
        assert!((p0 - 1.0 / z).abs() < 0.01, "p0={p0} want {}", 1.0 / z);
        assert!((p1 - 0.5f64.powf(theta) / z).abs() < 0.01, "p1={p1}");
        // Popularity falls with the index.
        let head: usize = n[..10].iter().sum();
        let tail: usize = n[990..].iter().sum();
        assert!(head > 20 * tail, "head {head} tail {tail}");
        assert_eq!(counts(&KeyDist::Zipfian { theta }, 1, 10), vec![10]);
        assert_eq!(counts(&KeyDist::Zipfian { theta }, 2, 10).len(), 2);
    }

    #[test]
    fn hotspot_sends_its_share_to_the_hot_keys() {
        let d = KeyDist::Hotspot {
            hot_keys: 0.1,
            hot_ops: 0.9,
        };
        let n = counts(&d, 100, 100_000);
        let hot: usize = n[..10].iter().sum();
        assert!((88_000..92_000).contains(&hot), "{hot}");
        assert!(n[10..].iter().all(|&c| c > 0));
        // Degenerate shares fall back to uniform.
        let all_hot = KeyDist::Hotspot {
            hot_keys: 1.0,
            hot_ops: 0.5,
        };
        assert!(counts(&all_hot, 10, 1_000).iter().all(|&c| c > 0));
    }
}
