//! The staleness prediction (`GET /v1/buckets/{bucket}/staleness`) against
//! the measured freshness of a real cluster.
//!
//! Four server processes, N=3, R=1, W=1, every link delayed by the fault
//! layer by a random 0 to [`JITTER_MS`] ms. Each trial writes a new key
//! through its first primary, waits for the ack, sleeps `t` and reads the
//! key through the one node that holds no replica (so every read crosses
//! the network, as in the paper's WARS model): fresh when the read returns
//! the value written. After the trials, each node's prediction (from the
//! legs it measured meanwhile, `reader=non-replica`) is compared with the
//! measured share at each `t`.
//!
//! Why this is not flaky:
//! - The injected delays (0 to 40 ms, uniform) are large against the
//!   scheduling noise of a loaded machine, and the curve is gentle (a few
//!   points per ms at most), so a ms of noise moves it little.
//! - The read starts after the ack by `t` plus the client's own overhead
//!   (the ack's way back to the test, the sleep's overshoot, the read's way
//!   to its coordinator). The test measures that overhead instead of
//!   assuming it is small: the sleep as it really took, and the round trip
//!   of the write (at W=1 nothing but the HTTP overhead), and accepts the
//!   measured share anywhere between the prediction at the actual `t` and
//!   at `t` plus that overhead. A slow machine widens the window; it does
//!   not fail the test.
//! - The measured share is binomial (at p = 0.6 and 600 trials its
//!   standard deviation is 2 points). So each `t` must be within three
//!   standard deviations plus two points of the window (a gross error
//!   fails there), and the mean distance over the seven `t` within
//!   [`MEAN_OFF_MAX`] points (the mean of seven has a standard deviation
//!   under 1 point): "within a few points at each t" on average, without
//!   a flaky bound on each single share.
//!
//! With `RINGKV_PBS_OUT=FILE` the comparison is also written to FILE as a
//! Markdown table (docs/experiments/pbs-live.md is made so).
mod common;

use std::time::{Duration, Instant};

use common::TestCluster;
use futures::StreamExt as _;
use serde_json::Value;

/// The random delay on every link, in ms (uniform from 0).
const JITTER_MS: u64 = 40;

/// The `t` (ms) at which freshness is measured and compared.
const TS_MS: [u64; 7] = [0, 2, 5, 10, 15, 20, 30];

/// Trials at each `t`.
const TRIALS_PER_T: usize = 600;

/// The largest mean distance (points) of the measured shares from the
/// predicted windows.
const MEAN_OFF_MAX: f64 = 3.5;

/// Trials running at once.
const WORKERS: usize = 6;

/// Where a key lives: its first primary and the node without a replica.
#[derive(Clone)]
struct Placement {
    key: String,
    writer: usize,
    reader: usize,
}

/// One trial's outcome.
struct Outcome {
    t_ms: u64,
    fresh: bool,
    /// How long the sleep really took, in ms.
    slept_ms: f64,
    /// The write's round trip seen by the test, in ms.
    put_rtt_ms: f64,
}

async fn place(c: &TestCluster, key: String) -> Placement {
    let loc = c.get_json(&format!("{}/v1/ring/pbs/{key}", c.url(0))).await;
    let nodes = loc["nodes"].as_array().expect("nodes");
    let index = |id: &str| c.nodes.iter().position(|n| n.id == id).expect("member");
    let primaries: Vec<usize> = nodes
        .iter()
        .filter(|n| n["role"] == "primary")
        .map(|n| index(n["node"].as_str().unwrap()))
        .collect();
    assert_eq!(primaries.len(), 3, "{loc}");
    let reader = (0..4)
        .find(|i| !primaries.contains(i))
        .expect("a non-replica");
    Placement {
        key,
        writer: primaries[0],
        reader,
    }
}

async fn trial(c: &TestCluster, p: &Placement, t_ms: u64) -> Outcome {
    let put_url = format!("{}/v1/kv/pbs/{}", c.url(p.writer), p.key);
    let started = Instant::now();
    let r = c.http.put(&put_url).body("v").send().await.expect("put");
    assert_eq!(r.status(), 204, "write of {}", p.key);
    let acked = Instant::now();
    tokio::time::sleep(Duration::from_millis(t_ms)).await;
    let slept = acked.elapsed();
    let get_url = format!("{}/v1/kv/pbs/{}", c.url(p.reader), p.key);
    let r = c.http.get(&get_url).send().await.expect("get");
    let status = r.status().as_u16();
    let body = r.bytes().await.expect("body");
    assert!(status == 200 || status == 404, "read answered {status}");
    Outcome {
        t_ms,
        fresh: status == 200 && &body[..] == b"v",
        slept_ms: slept.as_secs_f64() * 1e3,
        put_rtt_ms: (acked - started).as_secs_f64() * 1e3,
    }
}

/// The prediction at `t_ms` (fractional), interpolated between the curve's
/// points.
fn predicted(points: &[(f64, f64)], t_ms: f64) -> f64 {
    let after = points.iter().position(|&(t, _)| t >= t_ms);
    match after {
        None => points.last().expect("points").1,
        Some(0) => points[0].1,
        Some(i) => {
            let ((t0, p0), (t1, p1)) = (points[i - 1], points[i]);
            p0 + (p1 - p0) * (t_ms - t0) / (t1 - t0)
        }
    }
}

/// Each node's curve for reader=non-replica, averaged over the nodes.
async fn prediction(c: &TestCluster) -> Vec<(f64, f64)> {
    let mut sum: Vec<(f64, f64)> = Vec::new();
    for i in 0..c.nodes.len() {
        let url = format!(
            "{}/v1/buckets/pbs/staleness?reader=non-replica&trials=100000",
            c.url(i)
        );
        let rep: Value = c.get_json(&url).await;
        assert_eq!(
            (rep["n"].as_u64(), rep["r"].as_u64(), rep["w"].as_u64()),
            (Some(3), Some(1), Some(1))
        );
        let points = rep["prediction"]["points"]
            .as_array()
            .unwrap_or_else(|| panic!("node {} has no prediction: {rep}", i + 1));
        eprintln!(
            "n{}: samples {} legs_ms {} t99 {} t99.9 {}",
            i + 1,
            rep["samples"],
            rep["legs_ms"],
            rep["prediction"]["t_99_ms"],
            rep["prediction"]["t_999_ms"]
        );
        if sum.is_empty() {
            sum = vec![(0.0, 0.0); points.len()];
        }
        for (s, p) in sum.iter_mut().zip(points) {
            s.0 = p["t_ms"].as_f64().unwrap();
            s.1 += p["p_fresh"].as_f64().unwrap() / c.nodes.len() as f64;
        }
    }
    sum
}

async fn run_trials(c: &TestCluster, places: &[Placement]) -> Vec<Outcome> {
    // The t values interleaved, so that each meets the same cluster state.
    let plan: Vec<(usize, u64)> = (0..TRIALS_PER_T)
        .flat_map(|i| (0..TS_MS.len()).map(move |j| (i, j)))
        .map(|(i, j)| (i * TS_MS.len() + j, TS_MS[j]))
        .collect();
    let chunks: Vec<Vec<(usize, u64)>> = (0..WORKERS)
        .map(|w| plan.iter().copied().skip(w).step_by(WORKERS).collect())
        .collect();
    let runs = chunks.into_iter().map(|chunk| async move {
        let mut out = Vec::new();
        for (i, t) in chunk {
            out.push(trial(c, &places[i], t).await);
        }
        out
    });
    futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicted_staleness_matches_measured_freshness() {
    let c = TestCluster::start(
        4,
        &[
            "--insecure",
            "--fault-injection",
            "--n",
            "3",
            "--r",
            "1",
            "--w",
            "1",
        ],
    )
    .await;
    let total = TS_MS.len() * TRIALS_PER_T;
    let places: Vec<Placement> =
        futures::stream::iter((0..total).map(|i| place(&c, format!("k{i}"))))
            .buffered(16)
            .collect()
            .await;
    for i in 0..c.nodes.len() {
        for peer in c.nodes.iter().filter(|p| p.id != c.nodes[i].id) {
            let url = format!("{}/v1/admin/faults/{}", c.url(i), peer.id);
            let body = format!("{{\"jitter_ms\": {JITTER_MS}}}");
            let r = c.http.put(&url).body(body).send().await.unwrap();
            assert_eq!(r.status(), 204);
        }
    }
    let start = Instant::now();
    let outcomes = run_trials(&c, &places).await;
    eprintln!("{total} trials in {:?}", start.elapsed());
    let curve = prediction(&c).await;
    compare(&outcomes, &curve);
}

/// One `t`'s comparison.
struct Row {
    t_ms: u64,
    trials: usize,
    slept_ms: f64,
    overhead_ms: f64,
    measured: f64,
    low: f64,
    high: f64,
    tolerance: f64,
}

impl Row {
    /// How far (0..1) the measured share is outside the predicted window.
    fn off(&self) -> f64 {
        (self.low - self.measured)
            .max(self.measured - self.high)
            .max(0.0)
    }
}

fn row(outcomes: &[Outcome], curve: &[(f64, f64)], t: u64) -> Row {
    let at: Vec<&Outcome> = outcomes.iter().filter(|o| o.t_ms == t).collect();
    let k = at.len() as f64;
    let measured = at.iter().filter(|o| o.fresh).count() as f64 / k;
    let slept_ms = at.iter().map(|o| o.slept_ms).sum::<f64>() / k;
    let mut rtts: Vec<f64> = at.iter().map(|o| o.put_rtt_ms).collect();
    rtts.sort_by(f64::total_cmp);
    let overhead_ms = rtts[rtts.len() / 2];
    let low = predicted(curve, slept_ms);
    let high = predicted(curve, slept_ms + overhead_ms);
    let p = low.clamp(0.01, 0.99);
    Row {
        t_ms: t,
        trials: at.len(),
        slept_ms,
        overhead_ms,
        measured,
        low,
        high,
        tolerance: 3.0 * (p * (1.0 - p) / k).sqrt() + 0.02,
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| t (ms) | trials | slept (ms) | overhead (ms) | measured fresh | predicted (t .. t+overhead) | off (points) |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {:.2} | {:.2} | {:.1} % | {:.1} % .. {:.1} % | {:.1} |\n",
            r.t_ms,
            r.trials,
            r.slept_ms,
            r.overhead_ms,
            r.measured * 100.0,
            r.low * 100.0,
            r.high * 100.0,
            r.off() * 100.0
        );
    }
    s
}

/// Checks each `t`'s measured share against the prediction's window, and
/// the mean distance over all `t`.
fn compare(outcomes: &[Outcome], curve: &[(f64, f64)]) {
    let rows: Vec<Row> = TS_MS.iter().map(|&t| row(outcomes, curve, t)).collect();
    let text = table(&rows);
    eprintln!("{text}");
    if let Ok(path) = std::env::var("RINGKV_PBS_OUT") {
        std::fs::write(&path, &text).expect("writing RINGKV_PBS_OUT");
    }
    let failures: Vec<String> = rows
        .iter()
        .filter(|r| r.off() > r.tolerance)
        .map(|r| {
            format!(
                "t={} ms: off by {:.3} > {:.3}",
                r.t_ms,
                r.off(),
                r.tolerance
            )
        })
        .collect();
    assert!(failures.is_empty(), "prediction off: {failures:#?}\n{text}");
    let mean_off = rows.iter().map(Row::off).sum::<f64>() / rows.len() as f64 * 100.0;
    assert!(
        mean_off <= MEAN_OFF_MAX,
        "measured shares are {mean_off:.1} points from the prediction on average (at most \
         {MEAN_OFF_MAX}):\n{text}"
    );
}
