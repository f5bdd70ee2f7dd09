//! The experiment report is written whole: markdown tables, SVG charts and
//! JSON, from real runs.

use ringkv_sim::experiment::{Options, pbs_scenario, run_experiment, write_report};

#[test]
fn a_short_tvisibility_experiment_writes_its_report() {
    let mut tvis = pbs_scenario();
    tvis.duration_ms = 1_500;
    let opts = Options {
        seeds: vec![1, 2],
        quick: true,
        tvis_scenario: tvis,
    };
    let e = run_experiment("tvisibility", &opts).unwrap();
    assert_eq!(e.tables[0].rows.len(), 3, "one row per (R, W)");
    assert!(e.ops > 1_000, "too few operations: {}", e.ops);
    let points = &e.figures[0].series[0].points;
    assert!(!points.is_empty());
    assert!(
        points
            .iter()
            .all(|&(_, share)| (0.0..=100.0).contains(&share))
    );
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(&[e], &opts, "test", dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| R=1 W=1 |") && md.contains("tvisibility.svg"));
    let svg = std::fs::read_to_string(dir.path().join("tvisibility.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("R=2 W=1"));
    assert_eq!(files.len(), 3);
    assert!(run_experiment("nonsense", &opts).is_err());
}
