//! The example scenarios under `scenarios/` parse and run, and invalid
//! scenarios are refused with a message instead of a panic.

use std::path::PathBuf;

use ringkv_sim::history::Outcome;
use ringkv_sim::scenario::{Scenario, ScenarioError};
use ringkv_sim::{run, try_run};

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_scenario_parses_and_runs_briefly() {
    let files = scenario_files();
    assert!(files.len() >= 3, "{files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut s =
            Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Short: the first 1.5 s, with the faults scheduled in it.
        s.duration_ms = s.duration_ms.min(1_500);
        let end = s.duration_ms;
        s.faults.retain(|f| f.at_ms < end);
        let r = run(&s, 1, &Default::default());
        let good = r
            .history
            .ops
            .iter()
            .filter(|op| matches!(op.outcome, Outcome::Written { .. } | Outcome::Read { .. }))
            .count();
        // Strong keys wait for their group's first election (groups start
        // on first use) and a majority, so fewer of their ops complete in
        // the first 1.5 s, under the scenario's early faults.
        let floor = if s.workload.strong.is_some() { 50 } else { 100 };
        assert!(
            good > floor,
            "{}: only {good} successful ops",
            path.display()
        );
        assert_eq!(r.stats.ops_invoked as usize, r.history.ops.len());
        assert!(r.stats.sim_ms >= end, "{}: {:?}", path.display(), r.stats);
    }
}

fn refused(text: &str, says: &str) {
    match Scenario::from_toml(text) {
        Err(ScenarioError::Invalid(m) | ScenarioError::Parse(m)) => {
            assert!(m.contains(says), "{text}\n=> {m}\n(expected {says:?})")
        }
        Ok(_) => panic!("accepted: {text}"),
    }
}

#[test]
fn invalid_scenarios_are_refused_with_a_reason() {
    refused("timeout_ms = 0", "timeout_ms=0");
    refused("duration_ms = 0", "duration_ms=0");
    refused(
        "sync = { kind = \"periodic\", interval_ms = 0 }",
        "interval_ms=0",
    );
    refused(
        "[network.latency.default]\nkind = \"uniform\"\nmin_ms = 5.0\nmax_ms = 1.0",
        "min_ms <= max_ms",
    );
    refused(
        "[network.latency.read_request]\nkind = \"pareto\"\nscale_ms = 0.0\nshape = 2.0",
        "network.latency.read_request: pareto",
    );
    refused(
        "[network.latency.default]\nkind = \"mixture\"\nparts = []",
        "at least one part",
    );
    refused("[network]\nreorder_ms = -1.0", "reorder_ms");
    refused(
        "[workload]\nkey_dist = { kind = \"zipfian\", theta = 1.0 }",
        "theta",
    );
    refused(
        "[workload]\nmix = { get = 0.0, put = 0.0, rmw = 0.0, delete = 0.0 }",
        "not all 0",
    );
    refused(
        "[workload]\narrival = { kind = \"open\", rate_per_s = 0.0 }",
        "rate_per_s",
    );
    refused(
        "[workload]\narrival = { kind = \"closed\", think_ms = 99999999999 }",
        "think_ms",
    );
    refused("[random_faults]\ncrashes_per_s = 1.0", "max_down");
    refused(
        "duration_ms = 1000\n[[faults]]\nat_ms = 1000\nkind = \"heal\"",
        "before duration_ms",
    );
    refused(
        "[[faults]]\nat_ms = 1\nkind = \"slow\"\nnode = \"n1\"\nfactor = 0.0",
        "slow factor",
    );
    refused(
        "[[faults]]\nat_ms = 1\nkind = \"crash\"\nnode = \"n1\"\nspeed = 3",
        "unknown field",
    );
    refused(
        "[[faults]]\nat_ms = 1\nkind = \"crash\"\nnode = \"n9\"",
        "n9",
    );
    // try_run refuses instead of panicking on a scenario built in code.
    let s = Scenario {
        r: 9,
        ..Scenario::default()
    };
    assert!(try_run(&s, 1, &Default::default()).is_err());
}

/// Regression: a huge `nodes` overflowed a list of node names built before
/// the range checks (found by tests/untrusted_scenarios.rs).
#[test]
fn a_huge_node_count_is_refused_not_a_panic() {
    for nodes in ["9223372036854775807", "1000000000"] {
        refused(&format!("nodes = {nodes}"), "must be at most 1024");
        refused(
            &format!("nodes = {nodes}\n[[faults]]\nat_ms = 1\nkind = \"crash\"\nnode = \"n2\""),
            "must be at most 1024",
        );
    }
    // Fault node names are still exactly n1..n{nodes}.
    for name in ["n0", "n6", "n01", "n+1", "n", "1", "N1"] {
        refused(
            &format!("nodes = 5\n[[faults]]\nat_ms = 1\nkind = \"crash\"\nnode = \"{name}\""),
            "nodes are n1..n5",
        );
    }
    Scenario::from_toml("nodes = 5\n[[faults]]\nat_ms = 1\nkind = \"crash\"\nnode = \"n5\"")
        .unwrap();
}

#[test]
fn fault_fields_parse() {
    let s = Scenario::from_toml(
        r#"
        [[faults]]
        at_ms = 10
        kind = "partition"
        a = ["n1"]
        b = ["n2", "n3"]
        one_way = true
        [[faults]]
        at_ms = 20
        kind = "slow"
        node = "n4"
        factor = 2.5
        "#,
    )
    .unwrap();
    assert_eq!(s.faults.len(), 2);
    assert_eq!(s.faults[1].at_ms, 20);
}
