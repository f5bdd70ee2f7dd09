//! The t-visibility experiment: how fresh reads are by the time since the
//! write's ack, measured in simulated runs, next to what the PBS model
//! ([`ringkv_core::pbs`]) predicts from the latency legs the same runs'
//! nodes measured. Both at the same `t`: every ms to 20, then coarser.

use std::collections::BTreeMap;

use ringkv_core::legs::LegHistograms;
use ringkv_core::pbs::{Curve, LegDists, Model, Reader, T_GRID_MS, predict};

use super::{Experiment, Options, Series, Table, fig, runs_with_legs, rw_label};
use crate::observe::Observations;

/// The `(R, W)` pairs run, N=3.
const PAIRS: [(usize, usize); 3] = [(1, 1), (1, 2), (2, 1)];

/// Monte Carlo trials of the model per pair.
const MODEL_TRIALS: usize = 200_000;

/// The `t` (ms) of the point-by-point table.
const TABLE_TS_MS: [u64; 15] = [0, 1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100, 200];

/// What one pair's runs measured and the model predicted.
struct PairResult {
    /// Measured share of fresh reads (%) by bucket edge (ms), pooled over seeds.
    measured: BTreeMap<u64, (f64, u64)>,
    /// The model's curve from the pooled legs.
    model: Curve,
}

/// Pools the seeds' t-visibility points per bucket edge (ms), weighted by
/// reads: `(fresh %, reads)`.
fn pooled(obs: &[Observations]) -> BTreeMap<u64, (f64, u64)> {
    let mut sums: BTreeMap<u64, (f64, u64)> = BTreeMap::new();
    for o in obs {
        for p in &o.t_visibility {
            let e = sums.entry(p.t_ms as u64).or_default();
            e.0 += p.consistent_share * p.reads as f64;
            e.1 += p.reads;
        }
    }
    sums.into_iter()
        .filter(|(_, (_, n))| *n > 0)
        .map(|(t, (fresh, n))| (t, (100.0 * fresh / n as f64, n)))
        .collect()
}

/// The model's curve for `(r, w)` from every run's legs, with the read
/// coordinated by a node at random (the simulated clients pick one so).
fn model_curve(legs: &[LegHistograms], members: usize, r: usize, w: usize) -> Curve {
    let mut pooled = LegHistograms::default();
    for l in legs {
        pooled.merge(l);
    }
    let model = Model {
        n: 3,
        reader: Reader::Any { members },
        trials: MODEL_TRIALS,
        seed: 1,
    };
    predict(&LegDists::of(&pooled), &model)
        .into_iter()
        .find(|c| c.r == r && c.w == w)
        .expect("every pair of N=3")
}

/// t-visibility curves for N=3 under the scenario's latency legs, measured
/// and modelled.
pub(super) fn tvisibility(opts: &Options) -> Result<Experiment, String> {
    let mut ops = 0;
    let mut series = vec![];
    let mut rows = vec![];
    let mut spread = 0.0f64;
    let mut results = vec![];
    for (r, w) in PAIRS {
        let mut s = opts.tvis_scenario.clone();
        s.n = 3;
        s.r = r;
        s.w = w;
        if !opts.quick {
            s.duration_ms = s.duration_ms.max(60_000);
        }
        let (obs, legs): (Vec<Observations>, Vec<LegHistograms>) =
            runs_with_legs(&s, opts, &mut ops)?.into_iter().unzip();
        let (stale, s1) = super::agg(&obs, |o| o.stale_share * 100.0);
        spread = spread.max(s1);
        let result = PairResult {
            measured: pooled(&obs),
            model: model_curve(&legs, s.nodes, r, w),
        };
        rows.push(summary_row(r, w, stale, &obs, &result.model));
        series.extend(pair_series(r, w, &result));
        results.push(result);
    }
    let mut f = fig(
        "tvisibility",
        "t-visibility: P(read sees the latest acked write), measured and PBS model",
        "time since the write was acknowledged (ms, log)",
        "consistent reads (%)",
        series,
    );
    f.log_x = true;
    Ok(Experiment {
        name: "tvisibility".into(),
        title: "t-visibility (probabilistically bounded staleness)".into(),
        setup: format!(
            "N=3 on {} nodes with the latency legs of scenario {:?} (a slow, heavy-tailed \
             write leg), for each (R, W). Next to each measured curve, the PBS model's \
             prediction ({MODEL_TRIALS} Monte Carlo trials) from the W, A, R, S legs the \
             same runs' nodes measured, the read coordinated by a node at random.",
            opts.tvis_scenario.nodes, opts.tvis_scenario.name
        ),
        figures: vec![f],
        tables: vec![
            Table {
                title: "Stale reads (%), the time after which 99.9 % of reads are consistent \
                        (ms, per seed), and the model's 99 % and 99.9 % points (ms)"
                    .into(),
                headers: [
                    "R/W",
                    "stale %",
                    "t(99.9 %) ms",
                    "model t(99 %)",
                    "model t(99.9 %)",
                ]
                .map(String::from)
                .to_vec(),
                rows,
            },
            point_table(&results),
        ],
        spread,
        ops,
    })
}

/// The measured curve (at each bucket's lower edge) and the model's (at
/// the grid's points); t = 0 is drawn at 0.5 ms on the log axis.
fn pair_series(r: usize, w: usize, result: &PairResult) -> [Series; 2] {
    let measured = Series {
        label: rw_label(r, w),
        points: result
            .measured
            .iter()
            .map(|(&t, &(pct, _))| ((t as f64).max(0.5), pct))
            .collect(),
    };
    let at = |t: u64| {
        (
            (t as f64).max(0.5),
            100.0 * result.model.fresh_at(t * 1_000),
        )
    };
    let model = Series {
        label: format!("{} model", rw_label(r, w)),
        points: T_GRID_MS.iter().map(|&t| at(t)).collect(),
    };
    [measured, model]
}

fn summary_row(r: usize, w: usize, stale: f64, obs: &[Observations], model: &Curve) -> Vec<String> {
    let t999: Vec<String> = obs
        .iter()
        .map(|o| {
            o.t_visibility_999_ms
                .map(|t| format!("{t}"))
                .unwrap_or_else(|| "never".into())
        })
        .collect();
    vec![
        rw_label(r, w),
        format!("{stale:.2}"),
        t999.join(" / "),
        format!("{:.1}", model.t_at_us(0.99) as f64 / 1_000.0),
        format!("{:.1}", model.t_at_us(0.999) as f64 / 1_000.0),
    ]
}

/// The model's freshness averaged over the bucket that starts at `lo_ms`
/// (up to the next edge of [`crate::observe::t_bucket`]): the measured
/// share at a bucket is over reads spread across it (simulated time is in
/// ms, so bucket `t` holds reads from `t` to just under `t + 1`).
fn model_in_bucket(model: &Curve, lo_ms: u64) -> f64 {
    let hi_ms = T_GRID_MS
        .iter()
        .copied()
        .find(|&t| t > lo_ms)
        .unwrap_or(lo_ms + 1);
    const STEPS: u64 = 100;
    let span_us = (hi_ms - lo_ms) * 1_000;
    let sum: f64 = (0..STEPS)
        .map(|i| model.fresh_at(lo_ms * 1_000 + span_us * (2 * i + 1) / (2 * STEPS)))
        .sum();
    sum / STEPS as f64
}

/// Measured and modelled freshness (%) at the same `t`, for each pair.
fn point_table(results: &[PairResult]) -> Table {
    let mut headers = vec!["t (ms)".to_string()];
    for (r, w) in PAIRS {
        headers.push(format!("{} measured", rw_label(r, w)));
        headers.push(format!("{} model", rw_label(r, w)));
    }
    let rows = TABLE_TS_MS
        .iter()
        .map(|&t| {
            let mut row = vec![t.to_string()];
            for res in results {
                row.push(match res.measured.get(&t) {
                    Some((pct, n)) => format!("{pct:.1} ({n})"),
                    None => "-".into(),
                });
                row.push(format!("{:.1}", 100.0 * model_in_bucket(&res.model, t)));
            }
            row
        })
        .collect();
    Table {
        title: "Fresh reads (%) in the bucket of t that starts at each row's t (to t + 1 \
                up to 20 ms, then to the next of 25, 30, 40, 50, 75, 100, 150, 200, 500): \
                measured in the runs (reads in the bucket) and predicted by the model from \
                the runs' legs (averaged over the bucket)"
            .into(),
        headers,
        rows,
    }
}
