//! The answer of `GET /v1/buckets/{bucket}/staleness`: the [`crate::pbs`]
//! prediction for a bucket's N, R and W from a node's measured legs, with
//! what other `(R, W)` pairs would give, or why there is none yet.

use serde::{Deserialize, Serialize};

use crate::legs::{LegHistograms, LegWindow};
use crate::pbs::{self, Curve, LegDists, Model, Reader, SAMPLES_MIN, T_GRID_MS};

/// Samples held per leg.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegSamples {
    /// W: write to replica.
    pub write: u64,
    /// A: ack to coordinator.
    pub ack: u64,
    /// R: read to replica.
    pub read: u64,
    /// S: reply to coordinator.
    pub response: u64,
}

/// The median and 99th percentile of one leg, in ms.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LegMs {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Each leg's median and 99th percentile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LegsMs {
    /// W: write to replica.
    pub write: LegMs,
    /// A: ack to coordinator.
    pub ack: LegMs,
    /// R: read to replica.
    pub read: LegMs,
    /// S: reply to coordinator.
    pub response: LegMs,
}

/// One point of the curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Time from the write's ack to the read's start, in ms.
    pub t_ms: u64,
    /// Probability that the read returns the write (or a newer value).
    pub p_fresh: f64,
}

/// What another `(R, W)` pair would give.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WhatIf {
    /// Replies a read waits for.
    pub r: usize,
    /// Acks a write waits for.
    pub w: usize,
    /// Probability that a read at once after the ack is fresh.
    pub p_fresh_at_0: f64,
    /// `t` (ms) from which reads are fresh with probability 0.99.
    pub t_99_ms: f64,
    /// `t` (ms) from which reads are fresh with probability 0.999.
    pub t_999_ms: f64,
    /// Median time from a write's start at its coordinator to its W-th ack,
    /// in ms, from the same draws (what a larger W costs).
    pub write_p50_ms: f64,
}

/// The prediction, when every leg has enough samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Monte Carlo trials behind each curve.
    pub trials: usize,
    /// The curve at the bucket's R and W, at each `t` of [`T_GRID_MS`].
    pub points: Vec<Point>,
    /// `t` (ms) from which reads are fresh with probability 0.99.
    pub t_99_ms: f64,
    /// `t` (ms) from which reads are fresh with probability 0.999.
    pub t_999_ms: f64,
    /// Every `(R, W)` pair of the bucket's N, the bucket's own included.
    pub what_if: Vec<WhatIf>,
}

/// The body of `GET /v1/buckets/{bucket}/staleness`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StalenessReport {
    /// The bucket.
    pub bucket: String,
    /// Its replicas per key.
    pub n: usize,
    /// Its read quorum.
    pub r: usize,
    /// Its write quorum.
    pub w: usize,
    /// Who coordinates the read, as modelled.
    pub reader: Reader,
    /// Samples each leg has (this node's, as a coordinator).
    pub samples: LegSamples,
    /// Samples each leg needs before a prediction is made.
    pub samples_min: u64,
    /// Each leg's median and 99th percentile.
    pub legs_ms: LegsMs,
    /// The prediction, or `None` with `message` saying why.
    pub prediction: Option<Prediction>,
    /// What the numbers are, or why there are none.
    pub message: String,
}

/// The quorum and model choices of a report.
#[derive(Clone, Copy, Debug)]
pub struct Ask {
    /// Replicas per key.
    pub n: usize,
    /// Read quorum.
    pub r: usize,
    /// Write quorum.
    pub w: usize,
    /// Who coordinates the read.
    pub reader: Reader,
    /// Monte Carlo trials.
    pub trials: usize,
    /// Seed of the draws.
    pub seed: u64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1_000.0
}

fn leg_ms(w: &LegWindow) -> LegMs {
    LegMs {
        p50: ms(w.quantile_us(0.5)),
        p99: ms(w.quantile_us(0.99)),
    }
}

/// The report for `bucket` with `ask`'s quorum, from `legs`.
pub fn report(bucket: &str, legs: &LegHistograms, ask: Ask) -> StalenessReport {
    let [write, ack, read, response] = legs.counts();
    let samples = LegSamples {
        write,
        ack,
        read,
        response,
    };
    let fewest = write.min(ack).min(read).min(response);
    let mut rep = StalenessReport {
        bucket: bucket.to_string(),
        n: ask.n,
        r: ask.r,
        w: ask.w,
        reader: ask.reader,
        samples,
        samples_min: SAMPLES_MIN,
        legs_ms: LegsMs {
            write: leg_ms(&legs.write),
            ack: leg_ms(&legs.ack),
            read: leg_ms(&legs.read),
            response: leg_ms(&legs.response),
        },
        prediction: None,
        message: String::new(),
    };
    if ask.n > 1 && fewest < SAMPLES_MIN {
        rep.message = format!(
            "too few samples for a prediction: each leg needs {SAMPLES_MIN} and the fewest \
             has {fewest}; this node measures the legs of the reads and writes it \
             coordinates with other replicas, so send it some traffic and ask again"
        );
        return rep;
    }
    let model = Model {
        n: ask.n,
        reader: ask.reader,
        trials: ask.trials,
        seed: ask.seed,
    };
    let curves = pbs::predict(&LegDists::of(legs), &model);
    rep.prediction = prediction(&curves, ask.r, ask.w);
    rep.message = "p_fresh: probability that a read started t ms after a write's ack \
                   returns that write, from the latencies this node measured (Monte Carlo \
                   over the WARS legs, Bailis et al.)"
        .to_string();
    rep
}

/// The prediction of the bucket's pair with every pair's summary.
fn prediction(curves: &[Curve], r: usize, w: usize) -> Option<Prediction> {
    let main = curves.iter().find(|c| c.r == r && c.w == w)?;
    let points = T_GRID_MS
        .iter()
        .map(|&t_ms| Point {
            t_ms,
            p_fresh: main.fresh_at(t_ms * 1_000),
        })
        .collect();
    let what_if = curves
        .iter()
        .map(|c| WhatIf {
            r: c.r,
            w: c.w,
            p_fresh_at_0: c.fresh_at(0),
            t_99_ms: ms(c.t_at_us(0.99)),
            t_999_ms: ms(c.t_at_us(0.999)),
            write_p50_ms: ms(c.ack_p50_us),
        })
        .collect();
    Some(Prediction {
        trials: main.trials(),
        points,
        t_99_ms: ms(main.t_at_us(0.99)),
        t_999_ms: ms(main.t_at_us(0.999)),
        what_if,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(n: usize, r: usize, w: usize) -> Ask {
        Ask {
            n,
            r,
            w,
            reader: Reader::NonReplica,
            trials: 2_000,
            seed: 1,
        }
    }

    #[test]
    fn too_few_samples_say_so_and_predict_nothing() {
        let mut legs = LegHistograms::default();
        for _ in 0..SAMPLES_MIN - 1 {
            legs.write.record(1_000);
            legs.ack.record(1_000);
            legs.read.record(1_000);
            legs.response.record(1_000);
        }
        let rep = report("b", &legs, ask(3, 1, 1));
        assert!(rep.prediction.is_none());
        assert!(rep.message.contains("too few samples"), "{}", rep.message);
        legs.write.record(1_000);
        legs.ack.record(1_000);
        legs.read.record(1_000);
        legs.response.record(1_000);
        let rep = report("b", &legs, ask(3, 1, 1));
        let p = rep.prediction.expect("enough samples");
        assert_eq!(p.points.len(), T_GRID_MS.len());
        assert_eq!(p.what_if.len(), 9);
        // JSON both ways.
        let json = serde_json::to_string(&report("b", &legs, ask(3, 2, 2))).unwrap();
        let back: StalenessReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back.r, 2);
        assert!(json.contains("\"reader\":\"non-replica\""), "{json}");
    }

    #[test]
    fn one_replica_needs_no_samples() {
        let rep = report("b", &LegHistograms::default(), ask(1, 1, 1));
        let p = rep.prediction.expect("N=1 is always fresh");
        assert!(p.points.iter().all(|pt| pt.p_fresh == 1.0));
    }
}
