//! A made-up suite report for the tests, with every feature the Markdown
//! shows: two rounds, two ceiling thread counts, errors, siblings, a run
//! without latency figures.

use std::collections::BTreeMap;

use super::cases::{reference_workloads, standard_cases};
use super::machine::Machine;
use super::report::{SuiteReport, SuiteRun};
use crate::bench::http::HttpClient;
use crate::bench::stats::{Latency, OpReport, PhaseReport};
use crate::bench::{DistKind, Report, Settings, Target, Workload};

fn op(throughput: f64, errors: u64, siblings: u64, lat: bool) -> OpReport {
    let mut errors_by_kind = BTreeMap::new();
    if errors > 0 {
        errors_by_kind.insert("http 503".to_string(), errors);
    }
    OpReport {
        count: 1000 + errors,
        ok: 1000,
        errors,
        errors_by_kind,
        throughput,
        not_found: 0,
        siblings,
        latency_ms: lat.then(|| Latency {
            p50: throughput / 10_000.0,
            p90: throughput / 5_000.0,
            p99: throughput / 1_000.0,
            p99_9: throughput / 500.0,
            max: throughput / 100.0,
            mean: throughput / 9_000.0,
        }),
    }
}

fn report(
    target: Target,
    workload: Workload,
    dist: DistKind,
    threads: u16,
    tput: f64,
    errors: u64,
) -> Report {
    let mut ops = BTreeMap::new();
    let f = workload.read_fraction();
    if f > 0.0 {
        ops.insert("read".to_string(), op(tput * f, 0, 3, true));
    }
    if f < 1.0 {
        ops.insert(
            "update".to_string(),
            op(tput * (1.0 - f), errors, 0, errors == 0),
        );
    }
    Report {
        version: 1,
        command: "ringkv bench".into(),
        settings: Settings {
            target,
            endpoints: vec!["http://127.0.0.1:1".into()],
            workload,
            dist,
            zipf_theta: None,
            hotspot: None,
            keys: 1000,
            value_bytes: 100,
            concurrency: 64,
            duration_s: Some(2.0),
            ops: None,
            rate: None,
            r: None,
            w: None,
            bucket: None,
            load: true,
            warmup_s: Some(1.0),
            blind_updates: false,
            threads,
            http_client: HttpClient::Hyper,
            seed: 1,
        },
        load: None,
        run: PhaseReport {
            elapsed_s: 2.0,
            total: op(tput, errors, 0, true),
            ops,
            unsent: 0,
            generator_cpu_s: (threads == 1).then_some(1.5),
        },
    }
}

/// The made-up report.
pub(crate) fn suite_report() -> SuiteReport {
    let mut runs: Vec<SuiteRun> = Vec::new();
    for round in 1..=2u32 {
        for (ci, case) in standard_cases().into_iter().enumerate() {
            let mut references = Vec::new();
            for workload in reference_workloads(case.workload) {
                for threads in [1u16, 2] {
                    let tput = 40_000.0
                        + 1_000.0 * f64::from(threads)
                        + 10.0 * f64::from(round)
                        + 7.0 * ci as f64;
                    references.push(runs.len());
                    runs.push(SuiteRun {
                        system: "ceiling".into(),
                        round,
                        command: format!("ringkv bench --target ceiling --round {round}"),
                        references: Vec::new(),
                        reference: None,
                        ratio: None,
                        report: report(
                            Target::Ceiling,
                            workload,
                            DistKind::Uniform,
                            threads,
                            tput,
                            0,
                        ),
                    });
                }
            }
            let tput = 12_345.0 + 321.0 * ci as f64 - 100.0 * f64::from(round);
            let reference = 42_000.0 + 10.0 * f64::from(round);
            let errors = if ci == 2 && round == 2 { 4 } else { 0 };
            runs.push(SuiteRun {
                system: case.system.into(),
                round,
                command: format!("ringkv bench --target ringkv --case {ci} --round {round}"),
                references,
                reference: Some(reference),
                ratio: Some(tput / reference),
                report: report(Target::Ringkv, case.workload, case.dist, 1, tput, errors),
            });
        }
    }
    SuiteReport {
        version: 1,
        label: "sample".into(),
        started_unix_s: 1_700_000_000,
        command: "ringkv bench suite --label sample".into(),
        server_commands: vec![
            "http-ceiling 127.0.0.1:20001".into(),
            "ringkv server --node-id n1".into(),
        ],
        machine: Machine {
            nproc: 2,
            memory: "7.8 GiB".into(),
            cpu: "Some CPU".into(),
            kernel: "Linux 6.1".into(),
            rustc: "rustc 1.90.0".into(),
            load_average: ("0.50 0.40 0.30".into(), "1.50 0.90 0.50".into()),
            commit: "0123456789ab".into(),
            release_build: true,
        },
        rounds: 2,
        ceiling_threads: vec![1, 2],
        runs,
    }
}
