//! An attacker's tools against a running cluster's peer port, shared by the
//! tests that play one (`peer_trust`, `adversary`): TLS client configs with
//! any certificate, raw connections speaking the peer framing, hand-made
//! hellos, outsider server processes, and reads of what a node counted.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ringkv_core::NodeId;
use ringkv_server::transport::{Hello, WIRE_VERSION};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestCluster, eventually};

/// How long [`connect`] waits for a TLS handshake before taking it as
/// failed (only a limit on a hang).
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(30);

/// A TLS client config that trusts the CA in `trust` and presents the
/// certificate and key of `node` from `dir`.
pub(crate) fn client_config(trust: &Path, dir: &Path, node: &str) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(trust.join("ca.crt")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join(format!("{node}.crt")))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{node}.key"))).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// A connection to a peer port, plain TCP or TLS alike.
pub(crate) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Connects to node `target` at `addr`, with TLS when `config` is given.
/// `None` when the TLS handshake failed (or did not finish within
/// [`HANDSHAKE_WITHIN`]).
pub(crate) async fn connect(
    addr: &str,
    target: &str,
    config: Option<Arc<rustls::ClientConfig>>,
) -> Option<Box<dyn Io>> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let Some(config) = config else {
        return Some(Box::new(tcp));
    };
    let name = ServerName::try_from(target.to_string()).unwrap();
    match tokio::time::timeout(
        HANDSHAKE_WITHIN,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    {
        Ok(Ok(s)) => Some(Box::new(s)),
        _ => None,
    }
}

/// One length-delimited frame (4-byte big-endian length, as the transport).
pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = u32::try_from(payload.len()).unwrap().to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// A hello frame claiming to be `node`, serving HTTP at `http`.
pub(crate) fn hello(node: &str, http: &str) -> Vec<u8> {
    frame(
        &postcard::to_stdvec(&Hello {
            version: WIRE_VERSION,
            node: NodeId::from(node),
            http_addr: http.into(),
        })
        .unwrap(),
    )
}

/// Sends `bytes`, then waits until the other side closes (or `within`
/// passes). Returns whether it closed.
pub(crate) async fn send_and_wait_close(
    io: &mut Box<dyn Io>,
    bytes: &[u8],
    within: Duration,
) -> bool {
    // A refused peer may see its write fail already.
    if io.write_all(bytes).await.is_err() || io.flush().await.is_err() {
        return true;
    }
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout(within, io.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// The value of the metric line starting `name ` on node `i` (0 when not
/// there yet).
pub(crate) async fn metric(c: &TestCluster, i: usize, name: &str) -> u64 {
    let text = c
        .http
        .get(format!("{}/metrics", c.url(i)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// The name of the metric counting peer connections refused for `reason`
/// (`tls`, `id_mismatch`, `hello`, `hello_timeout`, `full`, ...).
pub(crate) fn refused(reason: &str) -> String {
    format!("ringkv_peer_connections_refused_total{{reason=\"{reason}\"}}")
}

/// Waits (up to `within`) until the metric `name` of node `i` reaches at
/// least `at_least`, and returns its value then.
pub(crate) async fn wait_metric(
    c: &TestCluster,
    i: usize,
    name: &str,
    at_least: u64,
    within: Duration,
) -> u64 {
    eventually(within, async || {
        let now = metric(c, i, name).await;
        if now >= at_least {
            Ok(now)
        } else {
            Err(c.saw(i, format!("{name} is {now}, waiting for {at_least}")))
        }
    })
    .await
}

/// The status of `GET key` (bucket `default`) on node `i`, reading every
/// replica.
pub(crate) async fn read_all(c: &TestCluster, i: usize, key: &str) -> u16 {
    c.http
        .get(format!("{}?r=all", c.kv(i, "default", key)))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A `ringkv server` outside the cluster, killed on drop.
pub(crate) struct Outsider(Child);

impl Drop for Outsider {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts node `id` alone in its layout (N=R=W=1, free loopback ports, data
/// in the cluster's temporary directory), joining `seed`, with `security`
/// flags (`--certs DIR` or `--insecure`); logs to `log`.
pub(crate) fn outsider(
    c: &TestCluster,
    id: &str,
    seed: &str,
    security: &[&str],
    log: &Path,
) -> Outsider {
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let rpc = format!("127.0.0.1:{}", port());
    let http = format!("127.0.0.1:{}", port());
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ringkv"))
        .args(["server", "--node-id", id, "--listen", &rpc, "--http", &http])
        .arg("--data-dir")
        .arg(c.tmp.path().join(id))
        .args(["--initial-cluster", &format!("{id}={rpc}")])
        .args(["--n", "1", "--r", "1", "--w", "1", "--join", seed])
        .args(security)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Outsider(child)
}
