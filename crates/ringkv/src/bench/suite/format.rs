//! Number, date and cell formats of the suite's tables.

use super::report::SuiteRun;
use crate::bench::stats::{Latency, ms};
use crate::bench::{Target, Workload};

/// `YYYY-MM-DD HH:MM UTC` of a unix time (proleptic Gregorian calendar).
pub(super) fn utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

/// `PUT only`, `GET only` for the ceiling; the workload letter otherwise.
pub(super) fn workload_label(r: &SuiteRun) -> String {
    let s = &r.report.settings;
    match (s.target, s.workload) {
        (Target::Ceiling, Workload::W) => "PUT only".into(),
        (Target::Ceiling, Workload::C) => "GET only".into(),
        (_, w) => w.name().to_uppercase(),
    }
}

/// A whole number with `,` between thousands: `1,234,567`.
pub(super) fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fraction as a percentage with one decimal: `28.9 %`.
pub(super) fn percent(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The cells of the chosen latency percentiles, `-` for each when absent.
pub(super) fn latency_cells(l: Option<&Latency>, which: &[fn(&Latency) -> f64]) -> Vec<String> {
    which
        .iter()
        .map(|f| l.map_or_else(|| "-".to_string(), |l| ms(f(l))))
        .collect()
}

/// The generator's CPU time as a share of one core, `-` when not known.
pub(super) fn generator_cpu(r: &SuiteRun) -> String {
    let run = &r.report.run;
    run.generator_cpu_s
        .filter(|_| run.elapsed_s > 0.0)
        .map_or("-".into(), |c| {
            format!("{:.0} %", c / run.elapsed_s * 100.0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400 + 3_661), "2000-02-29 01:01 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13 UTC");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }

    #[test]
    fn cells() {
        assert_eq!(percent(0.2894), "28.9 %");
        let lat = Latency {
            p50: 0.5,
            p90: 1.0,
            p99: 12.34,
            p99_9: 150.0,
            max: 200.0,
            mean: 0.6,
        };
        assert_eq!(
            latency_cells(Some(&lat), &[|l| l.p50, |l| l.p99, |l| l.p99_9]),
            ["0.500", "12.3", "150"]
        );
        assert_eq!(latency_cells(None, &[|l| l.p50, |l| l.max]), ["-", "-"]);
    }

    #[test]
    fn labels_and_generator_cpu() {
        let rep = super::super::sample::suite_report();
        let ceiling_put = &rep.runs[0];
        assert_eq!(workload_label(ceiling_put), "PUT only");
        assert_eq!(generator_cpu(ceiling_put), "75 %");
        assert_eq!(generator_cpu(&rep.runs[1]), "-", "no CPU figure");
        let ringkv = rep.runs.iter().find(|r| r.system != "ceiling").unwrap();
        assert_eq!(workload_label(ringkv), "A");
    }
}
