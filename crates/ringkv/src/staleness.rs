//! `ringkv staleness BUCKET`: the node's prediction of how stale the
//! bucket's reads are (`GET /v1/buckets/{bucket}/staleness`), as a table.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use ringkv_core::pbs::Reader;
use ringkv_core::staleness::{Prediction, StalenessReport};

use crate::cli::StalenessArgs;
use crate::kv::client;

/// Fetches and prints the prediction.
pub(crate) async fn staleness(args: StalenessArgs) -> anyhow::Result<ExitCode> {
    let rep = client(&args.admin.connection)?
        .staleness(&args.bucket, args.reader.as_deref())
        .await
        .with_context(|| format!("cannot get the staleness of bucket {}", args.bucket))?;
    if args.admin.json {
        println!("{}", serde_json::to_string_pretty(&rep)?);
    } else {
        print!("{}", render(&rep));
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as text: the legs, the curve, the 99 % and 99.9 % points and
/// the other (R, W) pairs.
pub(crate) fn render(rep: &StalenessReport) -> String {
    let mut s = String::new();
    let reader = match rep.reader {
        Reader::Any { members } => format!("a node at random of {members}"),
        Reader::Replica => "another replica".to_string(),
        Reader::NonReplica => "a node without a replica".to_string(),
    };
    let _ = writeln!(
        s,
        "bucket {}: N={} R={} W={}, read coordinated by {reader}",
        rep.bucket, rep.n, rep.r, rep.w
    );
    let l = &rep.legs_ms;
    let _ = writeln!(
        s,
        "legs (ms, p50/p99; samples): W {:.2}/{:.2} ({}), A {:.2}/{:.2} ({}), R {:.2}/{:.2} ({}), \
         S {:.2}/{:.2} ({})",
        l.write.p50,
        l.write.p99,
        rep.samples.write,
        l.ack.p50,
        l.ack.p99,
        rep.samples.ack,
        l.read.p50,
        l.read.p99,
        rep.samples.read,
        l.response.p50,
        l.response.p99,
        rep.samples.response
    );
    match &rep.prediction {
        None => {
            let _ = writeln!(s, "no prediction: {}", rep.message);
        }
        Some(p) => render_prediction(&mut s, p),
    }
    s
}

fn render_prediction(s: &mut String, p: &Prediction) {
    let _ = writeln!(s, "t (ms)  P(fresh read)   [{} trials]", p.trials);
    for pt in &p.points {
        let _ = writeln!(s, "{:>6}  {:>8.2} %", pt.t_ms, pt.p_fresh * 100.0);
    }
    let _ = writeln!(
        s,
        "99 % fresh from t = {:.1} ms, 99.9 % from t = {:.1} ms",
        p.t_99_ms, p.t_999_ms
    );
    let _ = writeln!(
        s,
        "what if:  R  W   P(fresh at 0)   t 99 % (ms)   t 99.9 % (ms)   write p50 (ms)"
    );
    for w in &p.what_if {
        let _ = writeln!(
            s,
            "         {:>2} {:>2}   {:>11.2} %   {:>11.1}   {:>13.1}   {:>14.2}",
            w.r,
            w.w,
            w.p_fresh_at_0 * 100.0,
            w.t_99_ms,
            w.t_999_ms,
            w.write_p50_ms
        );
    }
}

#[cfg(test)]
mod tests {
    use ringkv_core::legs::LegHistograms;
    use ringkv_core::staleness::{Ask, report};

    use super::*;

    #[test]
    fn the_table_shows_the_curve_or_why_not() {
        let ask = Ask {
            n: 3,
            r: 1,
            w: 1,
            reader: Reader::NonReplica,
            trials: 1_000,
            seed: 1,
        };
        let mut legs = LegHistograms::default();
        let text = render(&report("b", &legs, ask));
        assert!(text.contains("no prediction: too few samples"), "{text}");
        assert!(text.contains("by a node without a replica"), "{text}");
        for i in 0..500 {
            legs.write.record(1_000 + i * 20);
            legs.ack.record(500);
            legs.read.record(700);
            legs.response.record(900);
        }
        let text = render(&report("b", &legs, ask));
        assert!(text.contains("99 % fresh from t ="), "{text}");
        assert!(text.contains("what if:"), "{text}");
        assert!(text.contains("    20  "), "{text}");
    }
}
