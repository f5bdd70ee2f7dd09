//! Facts about the machine the suite ran on, for the report: CPUs, memory,
//! kernel, compiler, load and the git commit. Each is "unknown" where the
//! system does not tell; none makes the suite fail.

use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

/// The machine the suite ran on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Machine {
    /// CPUs this process may use.
    pub(crate) nproc: usize,
    /// `MemTotal` of /proc/meminfo.
    pub(crate) memory: String,
    /// `model name` of /proc/cpuinfo.
    pub(crate) cpu: String,
    /// Kernel release.
    pub(crate) kernel: String,
    /// `rustc --version`.
    pub(crate) rustc: String,
    /// The 1/5/15-minute load averages when the suite started and ended.
    pub(crate) load_average: (String, String),
    /// The git commit of the working directory, if any.
    pub(crate) commit: String,
    /// Whether this executable is an optimized build.
    pub(crate) release_build: bool,
}

/// The machine, as far as it tells (the load average at the end is left
/// empty for the caller to fill in).
pub(super) async fn machine() -> Machine {
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory: memory(),
        cpu: cpu_model(),
        kernel: kernel(),
        rustc: output_of("rustc", &["--version"])
            .await
            .unwrap_or_else(|| "unknown (rustc not on PATH)".into()),
        load_average: (load_average(), String::new()),
        commit: commit().await,
        release_build: !cfg!(debug_assertions),
    }
}

/// The 1/5/15-minute load averages, `"0.50 0.40 0.30"`.
pub(super) fn load_average() -> String {
    read_trim("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// `model name` of /proc/cpuinfo.
fn cpu_model() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string())
}

/// `MemTotal` of /proc/meminfo, in GiB.
fn memory() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?.to_string();
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `Linux 6.1.0`, or the OS's name where /proc does not tell.
fn kernel() -> String {
    match (
        read_trim("/proc/sys/kernel/ostype"),
        read_trim("/proc/sys/kernel/osrelease"),
    ) {
        (Some(t), Some(r)) => format!("{t} {r}"),
        _ => std::env::consts::OS.to_string(),
    }
}

/// The working directory's commit, saying so when it has uncommitted changes.
async fn commit() -> String {
    match output_of("git", &["rev-parse", "--short=12", "HEAD"]).await {
        Some(c) => {
            let dirty = output_of("git", &["status", "--porcelain", "--untracked-files=no"])
                .await
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c} with uncommitted changes")
            } else {
                c
            }
        }
        None => "unknown".into(),
    }
}

/// A file's contents, trimmed; `None` if it cannot be read.
fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// What `program args` prints on stdout, trimmed; `None` if it cannot be run
/// or fails.
async fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_fact_has_a_value() {
        let m = machine().await;
        assert!(m.nproc >= 1);
        for fact in [
            &m.memory,
            &m.cpu,
            &m.kernel,
            &m.rustc,
            &m.commit,
            &m.load_average.0,
        ] {
            assert!(!fact.is_empty(), "{m:?}");
        }
        assert!(m.load_average.1.is_empty(), "filled in at the end");
        assert_eq!(m.release_build, !cfg!(debug_assertions));
    }

    #[tokio::test]
    async fn a_missing_program_is_none() {
        assert_eq!(output_of("ringkv-no-such-program", &[]).await, None);
        assert_eq!(read_trim("/nonexistent/ringkv"), None);
    }
}
