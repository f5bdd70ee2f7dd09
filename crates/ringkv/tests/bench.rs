//! `ringkv bench` (the real binary) against three real server processes:
//! it runs short workloads and reports sane counts. No timing is asserted.

mod common;

use std::process::Command;

use common::TestCluster;
use serde_json::Value;

/// Runs `ringkv bench` with `args` plus `--json`, returns the parsed JSON.
fn bench(c: &TestCluster, name: &str, args: &[&str]) -> Value {
    let json = c.tmp.path().join(format!("{name}.json"));
    let endpoints: Vec<String> = (0..c.nodes.len()).map(|i| c.url(i)).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .arg("bench")
        .args(["--endpoint", &endpoints.join(",")])
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running ringkv bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ringkv bench {args:?} failed ({}):\n{stdout}\n{stderr}\nnode 1 log:\n{}",
        out.status,
        c.log(0)
    );
    assert!(stdout.contains("p99.9 ms"), "no table on stdout:\n{stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Counts add up, nothing failed, and latencies are positive and ordered.
fn check_phase(phase: &Value, expected_ops: u64, ops: &[&str]) {
    let total = &phase["total"];
    assert_eq!(total["count"], expected_ops, "{phase:#}");
    assert_eq!(total["errors"], 0, "{phase:#}");
    assert_eq!(total["ok"], expected_ops, "{phase:#}");
    let mut sum = 0;
    for op in ops {
        let o = &phase["ops"][op];
        assert!(o.is_object(), "no {op} in {phase:#}");
        sum += o["count"].as_u64().unwrap();
    }
    assert_eq!(sum, expected_ops, "per-op counts do not add up: {phase:#}");
    for o in phase["ops"].as_object().unwrap().values().chain([total]) {
        let l = &o["latency_ms"];
        let (p50, p90, p99, p999, max) = (
            num(&l["p50"]),
            num(&l["p90"]),
            num(&l["p99"]),
            num(&l["p99_9"]),
            num(&l["max"]),
        );
        assert!(p50 > 0.0, "{l}");
        assert!(
            p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
            "{l}"
        );
        assert!(num(&o["throughput"]) > 0.0, "{o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_workloads_against_a_real_cluster_and_reports_sane_counts() {
    let c = TestCluster::start(3, &[]).await;

    // Workload A, closed loop, after a load phase.
    let v = bench(
        &c,
        "a",
        &[
            "--workload",
            "a",
            "--keys",
            "200",
            "--ops",
            "2000",
            "--concurrency",
            "8",
            "--load",
        ],
    );
    check_phase(&v["run"], 2000, &["read", "update"]);
    check_phase(&v["load"], 200, &["insert"]);
    assert_eq!(v["settings"]["workload"], "a");
    assert_eq!(v["settings"]["concurrency"], 8);
    // Every key was loaded, so no read found nothing.
    assert_eq!(v["run"]["ops"]["read"]["not_found"], 0, "{:#}", v["run"]);

    // Read-modify-write with contexts, zipfian keys, the same bucket again
    // (its keys exist: the load reads their contexts first).
    let v = bench(
        &c,
        "rmw",
        &[
            "--workload",
            "rmw",
            "--dist",
            "zipfian",
            "--keys",
            "200",
            "--ops",
            "500",
            "--concurrency",
            "8",
            "--load",
            "--w",
            "all",
        ],
    );
    check_phase(&v["run"], 500, &["rmw"]);

    // Open loop at a fixed rate, hotspot keys, two generator threads.
    let v = bench(
        &c,
        "open",
        &[
            "--workload",
            "b",
            "--dist",
            "hotspot",
            "--keys",
            "200",
            "--ops",
            "400",
            "--concurrency",
            "4",
            "--rate",
            "2000",
            "--threads",
            "2",
            "--r",
            "1",
        ],
    );
    check_phase(&v["run"], 400, &["read", "update"]);
    assert_eq!(v["settings"]["rate"], 2000.0);
}

#[test]
fn bench_refuses_bad_options_with_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["bench", "--endpoint", "127.0.0.1:1", "--concurrency", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--concurrency"), "{stderr}");

    // Nothing listens on port 1: the error names the endpoint.
    let out = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["bench", "--endpoint", "127.0.0.1:1", "--ops", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}
