//! Sampling message latencies from the scenario's distributions.
//!
//! A [`Latency`] from the scenario is compiled once into a [`Sampler`]
//! (mixture weights turned into cumulative thresholds), then sampled per
//! message by inverse-CDF: one uniform draw per sample (two for a mixture,
//! none for a constant). Samples are clamped to
//! [`crate::scenario::LATENCY_MS_MAX`] so a heavy Pareto tail
//! cannot overflow the clock.

use crate::rng::SimRng;
use crate::scenario::{LATENCY_MS_MAX, Latency};

/// A latency distribution ready to sample, in ms.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampler(Kind);

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Constant(f64),
    Uniform {
        min: f64,
        span: f64,
    },
    Exponential {
        mean: f64,
        min: f64,
    },
    Pareto {
        scale: f64,
        inv_shape: f64,
        shape: f64,
    },
    /// `thresholds[i]` is the cumulative share of parts `0..=i`.
    Mixture {
        thresholds: Vec<f64>,
        parts: Vec<Sampler>,
    },
}

impl Sampler {
    /// Compiles a validated distribution (see [`Latency::validate`]).
    pub fn new(latency: &Latency) -> Sampler {
        Sampler(match latency {
            Latency::Constant { ms } => Kind::Constant(*ms),
            Latency::Uniform { min_ms, max_ms } => Kind::Uniform {
                min: *min_ms,
                span: (max_ms - min_ms).max(0.0),
            },
            Latency::Exponential { mean_ms, min_ms } => Kind::Exponential {
                mean: *mean_ms,
                min: *min_ms,
            },
            Latency::Pareto { scale_ms, shape } => Kind::Pareto {
                scale: *scale_ms,
                inv_shape: 1.0 / shape,
                shape: *shape,
            },
            Latency::Mixture { parts } => {
                let total: f64 = parts.iter().map(|p| p.weight).sum();
                let mut acc = 0.0;
                let thresholds = parts
                    .iter()
                    .map(|p| {
                        acc += p.weight / total;
                        acc
                    })
                    .collect();
                Kind::Mixture {
                    thresholds,
                    parts: parts.iter().map(|p| Sampler::new(&p.latency)).collect(),
                }
            }
        })
    }

    /// One latency, in ms, from 0 to `LATENCY_MS_MAX`.
    pub fn sample_ms(&self, rng: &mut SimRng) -> f64 {
        let x = match &self.0 {
            Kind::Constant(ms) => *ms,
            Kind::Uniform { min, span } => min + rng.unit() * span,
            Kind::Exponential { mean, min } => min + rng.exponential(*mean),
            // F(x) = 1 - (scale/x)^shape  =>  x = scale * (1-u)^(-1/shape).
            Kind::Pareto {
                scale, inv_shape, ..
            } => scale * (1.0 - rng.unit()).powf(-inv_shape),
            Kind::Mixture { thresholds, parts } => {
                let u = rng.unit();
                let i = thresholds
                    .iter()
                    .position(|t| u < *t)
                    .unwrap_or(parts.len() - 1);
                parts[i].sample_ms(rng)
            }
        };
        if x.is_finite() {
            x.clamp(0.0, LATENCY_MS_MAX)
        } else {
            LATENCY_MS_MAX
        }
    }

    /// The distribution's mean in ms, before clamping (infinite for a Pareto
    /// with shape <= 1). For reports and tests.
    pub fn mean_ms(&self) -> f64 {
        match &self.0 {
            Kind::Constant(ms) => *ms,
            Kind::Uniform { min, span } => min + span / 2.0,
            Kind::Exponential { mean, min } => min + mean,
            Kind::Pareto { scale, shape, .. } => {
                if *shape <= 1.0 {
                    f64::INFINITY
                } else {
                    scale * shape / (shape - 1.0)
                }
            }
            Kind::Mixture { thresholds, parts } => {
                let mut prev = 0.0;
                thresholds
                    .iter()
                    .zip(parts)
                    .map(|(t, p)| {
                        let w = t - prev;
                        prev = *t;
                        w * p.mean_ms()
                    })
                    .sum()
            }
        }
    }
}

/// Converts ms to whole µs (rounded; negative and NaN become 0).
pub fn ms_to_us(ms: f64) -> u64 {
    if ms.is_nan() || ms <= 0.0 {
        0
    } else {
        // Saturating float-to-int conversion: at most u64::MAX.
        (ms * 1_000.0).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;
    use crate::scenario::MixturePart;

    fn mean_of(l: &Latency, samples: usize) -> f64 {
        let s = Sampler::new(l);
        let mut rng = SimRng::new(42, Stream::Network);
        (0..samples).map(|_| s.sample_ms(&mut rng)).sum::<f64>() / samples as f64
    }

    fn close(got: f64, want: f64, rel: f64) {
        assert!(
            (got - want).abs() <= rel * want,
            "sampled mean {got}, expected {want} within {rel}"
        );
    }

    #[test]
    fn sampled_means_match_the_distributions() {
        let cases = [
            Latency::Constant { ms: 7.5 },
            Latency::Uniform {
                min_ms: 2.0,
                max_ms: 10.0,
            },
            Latency::Exponential {
                mean_ms: 4.0,
                min_ms: 1.0,
            },
            Latency::Pareto {
                scale_ms: 2.0,
                shape: 3.0,
            },
            Latency::Mixture {
                parts: vec![
                    MixturePart {
                        weight: 9.0,
                        latency: Latency::Constant { ms: 1.0 },
                    },
                    MixturePart {
                        weight: 1.0,
                        latency: Latency::Exponential {
                            mean_ms: 50.0,
                            min_ms: 10.0,
                        },
                    },
                ],
            },
        ];
        let want = [7.5, 6.0, 5.0, 3.0, 0.9 + 0.1 * 60.0];
        for (l, w) in cases.iter().zip(want) {
            assert!((Sampler::new(l).mean_ms() - w).abs() < 1e-9, "{l:?}");
            close(mean_of(l, 200_000), w, 0.02);
        }
    }

    #[test]
    fn samples_stay_in_range() {
        let heavy = Sampler::new(&Latency::Pareto {
            scale_ms: 1.0,
            shape: 0.05,
        });
        assert_eq!(heavy.mean_ms(), f64::INFINITY);
        let mut rng = SimRng::new(3, Stream::Network);
        for _ in 0..10_000 {
            let x = heavy.sample_ms(&mut rng);
            assert!((1.0..=LATENCY_MS_MAX).contains(&x), "{x}");
        }
        let u = Sampler::new(&Latency::Uniform {
            min_ms: 3.0,
            max_ms: 4.0,
        });
        for _ in 0..10_000 {
            let x = u.sample_ms(&mut rng);
            assert!((3.0..=4.0).contains(&x), "{x}");
        }
    }

    #[test]
    fn converts_to_whole_microseconds() {
        assert_eq!(ms_to_us(1.0005), 1_001);
        assert_eq!(ms_to_us(0.0), 0);
        assert_eq!(ms_to_us(-3.0), 0);
        assert_eq!(ms_to_us(f64::NAN), 0);
        assert_eq!(ms_to_us(LATENCY_MS_MAX), 600_000_000);
    }
}
