//! The standard set of measurements: which system, workload and key choice
//! each ringkv run measures, which ceiling runs it is compared with, and how
//! the rounds of one case are summed up.

use super::report::{SuiteReport, SuiteRun};
use crate::bench::{DistKind, Workload};

/// One cluster the suite starts.
#[derive(Clone, Copy, Debug)]
pub(super) struct ClusterSpec {
    /// Its name in the report, e.g. `ringkv 3 nodes`.
    pub(super) system: &'static str,
    /// How many nodes.
    pub(super) nodes: usize,
    /// N, R and W of its nodes.
    pub(super) nrw: (usize, usize, usize),
}

/// The clusters of the suite, in the order started.
pub(super) const CLUSTERS: [ClusterSpec; 2] = [
    ClusterSpec {
        system: "ringkv 3 nodes",
        nodes: 3,
        nrw: (3, 2, 2),
    },
    ClusterSpec {
        system: "ringkv 1 node",
        nodes: 1,
        nrw: (1, 1, 1),
    },
];

/// One ringkv measurement of the standard set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Case {
    /// The cluster's name, as in [`CLUSTERS`].
    pub(super) system: &'static str,
    /// Index of the cluster in [`CLUSTERS`].
    pub(super) cluster: usize,
    /// The workload.
    pub(super) workload: Workload,
    /// The key choice.
    pub(super) dist: DistKind,
}

impl Case {
    /// The fresh bucket of this case in `round`, so that no run reads
    /// another's keys: `suite-{nodes}-{workload}-{dist}-{round}`.
    pub(super) fn bucket(&self, round: u32) -> String {
        format!(
            "suite-{}-{}-{}-{round}",
            CLUSTERS[self.cluster].nodes,
            self.workload.name(),
            self.dist.name()
        )
    }
}

/// The standard set: A, B, C, W, uniform and zipfian, on 3 nodes; A uniform on 1 node.
pub(super) fn standard_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for workload in [Workload::A, Workload::B, Workload::C, Workload::W] {
        for dist in [DistKind::Uniform, DistKind::Zipfian] {
            cases.push(Case {
                system: CLUSTERS[0].system,
                cluster: 0,
                workload,
                dist,
            });
        }
    }
    cases.push(Case {
        system: CLUSTERS[1].system,
        cluster: 1,
        workload: Workload::A,
        dist: DistKind::Uniform,
    });
    cases
}

/// The ceiling runs a workload is compared with: PUT-only (W) if it writes,
/// GET-only (C) if it reads.
pub(super) fn reference_workloads(w: Workload) -> Vec<Workload> {
    let f = w.read_fraction();
    let mut v = Vec::new();
    if f < 1.0 {
        v.push(Workload::W);
    }
    if f > 0.0 {
        v.push(Workload::C);
    }
    v
}

/// The reference throughput of a workload: the best ceiling GET and PUT
/// throughputs (`best(C)`, `best(W)`) weighted by the workload's mix.
pub(super) fn reference_throughput(w: Workload, best: impl Fn(Workload) -> f64) -> f64 {
    let f = w.read_fraction();
    f * best(Workload::C) + (1.0 - f) * best(Workload::W)
}

/// The ringkv measurements of one case over all rounds.
pub(super) struct CaseResult<'a> {
    /// The round with the median ratio (the lower one for an even count).
    pub(super) median: &'a SuiteRun,
    /// Lowest and highest ratio over the rounds.
    pub(super) range: (f64, f64),
    /// How many rounds measured the case.
    pub(super) rounds: usize,
}

/// One [`CaseResult`] per case, in the order of the standard set.
pub(super) fn case_results(rep: &SuiteReport) -> Vec<CaseResult<'_>> {
    let mut out = Vec::new();
    for case in standard_cases() {
        let mut of_case: Vec<&SuiteRun> = rep
            .runs
            .iter()
            .filter(|r| {
                r.system == case.system
                    && r.report.settings.workload == case.workload
                    && r.report.settings.dist == case.dist
            })
            .collect();
        if of_case.is_empty() {
            continue;
        }
        of_case.sort_by(|a, b| a.ratio.unwrap_or(0.0).total_cmp(&b.ratio.unwrap_or(0.0)));
        let ratio = |r: &SuiteRun| r.ratio.unwrap_or(0.0);
        out.push(CaseResult {
            median: of_case[(of_case.len() - 1) / 2],
            range: (ratio(of_case[0]), ratio(of_case[of_case.len() - 1])),
            rounds: of_case.len(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_set() {
        let cases = standard_cases();
        assert_eq!(cases.len(), 9);
        assert!(cases[..8].iter().all(|c| c.system == "ringkv 3 nodes"));
        assert_eq!(
            cases[8],
            Case {
                system: "ringkv 1 node",
                cluster: 1,
                workload: Workload::A,
                dist: DistKind::Uniform
            }
        );
        assert_eq!(cases[3].bucket(2), "suite-3-b-zipfian-2");
        assert_eq!(cases[8].bucket(1), "suite-1-a-uniform-1");
    }

    #[test]
    fn references_follow_the_mix() {
        assert_eq!(reference_workloads(Workload::A), [Workload::W, Workload::C]);
        assert_eq!(reference_workloads(Workload::C), [Workload::C]);
        assert_eq!(reference_workloads(Workload::W), [Workload::W]);
        let best = |w: Workload| if w == Workload::C { 1000.0 } else { 500.0 };
        assert_eq!(reference_throughput(Workload::A, best), 750.0);
        assert_eq!(reference_throughput(Workload::C, best), 1000.0);
        assert_eq!(reference_throughput(Workload::W, best), 500.0);
        assert!((reference_throughput(Workload::B, best) - 975.0).abs() < 1e-9);
    }

    #[test]
    fn each_case_reports_its_median_round_and_range() {
        let rep = super::super::sample::suite_report();
        let results = case_results(&rep);
        assert_eq!(results.len(), 9);
        for r in &results {
            assert_eq!(r.rounds, 2);
            assert!(r.range.0 <= r.range.1);
            // The lower of two is the median.
            assert_eq!(r.median.ratio, Some(r.range.0));
        }
    }
}
