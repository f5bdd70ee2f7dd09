//! `ringkv cert init|issue` (the work is in [`ringkv_server::tls`]), and the
//! certificates `ringkv dev` and `ringkv bench suite` make for their own
//! clusters.

use std::path::Path;
use std::process::ExitCode;

use ringkv_server::tls;

use crate::cli::CertCommand;

/// Runs `ringkv cert init` or `ringkv cert issue`, saying what it wrote.
pub(crate) fn run(cmd: CertCommand) -> anyhow::Result<ExitCode> {
    let (files, next) = match cmd {
        CertCommand::Init(a) => (
            tls::init(&a.dir, a.force)?,
            format!(
                "next: `ringkv cert issue --dir {} NODE` for each node id",
                a.dir.display()
            ),
        ),
        CertCommand::Issue(a) => (
            tls::issue(&a.dir, &a.node, a.force)?,
            format!(
                "start the node with `ringkv server --node-id {} --certs DIR ...`, where DIR \
                 holds ca.crt, {}.crt and {}.key",
                a.node, a.node, a.node
            ),
        ),
    };
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    eprintln!("{next}");
    Ok(ExitCode::SUCCESS)
}

/// Makes what a local cluster's nodes need in `dir`, once: the CA (unless
/// there is one) and a certificate for each of `nodes` (unless it has one).
/// Reused across runs, like the nodes' data.
pub(crate) fn ensure(dir: &Path, nodes: &[&str]) -> anyhow::Result<()> {
    if !dir.join(tls::CA_CERT).exists() {
        tls::init(dir, false)?;
    }
    for node in nodes {
        if !tls::node_cert_path(dir, node).exists() {
            tls::issue(dir, node, false)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_makes_once_and_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        ensure(&dir, &["n1", "n2"]).unwrap();
        let ca = std::fs::read(dir.join(tls::CA_CERT)).unwrap();
        let n1 = std::fs::read(dir.join("n1.crt")).unwrap();
        ensure(&dir, &["n1", "n2", "n3"]).unwrap();
        assert_eq!(std::fs::read(dir.join(tls::CA_CERT)).unwrap(), ca);
        assert_eq!(std::fs::read(dir.join("n1.crt")).unwrap(), n1);
        tls::PeerTls::load(&dir, "n3").unwrap();
    }
}
