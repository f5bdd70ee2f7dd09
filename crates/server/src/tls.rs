//! Mutual TLS between peers: the cluster CA, node certificates, and the
//! rustls configurations the transport uses.
//!
//! # Files
//! A certificate directory (`--certs DIR`) holds:
//! - `ca.crt`, `ca.key`: the cluster CA (PEM; the key readable by its owner
//!   only), made by [`init`] (`ringkv cert init`).
//! - `cluster.secret`: 32 random bytes as 64 lowercase hex digits and a
//!   newline (mode 0600), made with the CA: the key of the MAC over client
//!   contexts. This module writes it and never reads it.
//! - `NODE.crt`, `NODE.key`: one node's certificate and key (PEM), made by
//!   [`issue`] (`ringkv cert issue`). The certificate's subject alternative
//!   name is the node id as a DNS name, e.g. `n1`.
//!
//! # Trust
//! A node presents its certificate both as a server (peers dial it) and as
//! a client (it dials peers). A server accepts only clients whose
//! certificate chains to the CA, and then only a hello whose node id is a
//! name in that certificate ([`check_claim`]). A link to peer `n2` accepts
//! only a server certificate from the CA naming `n2`. A one-off send to a
//! bare address (a `--join` announce) accepts any certificate from the CA
//! and learns the id from it. Certificates are ECDSA P-256, TLS 1.3 only,
//! with ring as the crypto provider.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use ringkv_core::NodeId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// The CA's certificate in a certificate directory.
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key in a certificate directory.
pub const CA_KEY: &str = "ca.key";
/// The cluster secret in a certificate directory.
pub const CLUSTER_SECRET: &str = "cluster.secret";
/// Bytes of the cluster secret (written as twice as many hex digits).
pub const CLUSTER_SECRET_BYTES: usize = 32;

/// Subject of the cluster CA. Fixed, so a node certificate can be issued
/// from `ca.crt` and `ca.key` without parsing the CA certificate; CAs of
/// different clusters differ by their keys.
const CA_NAME: &str = "ringkv cluster CA";
/// Years a CA or node certificate is valid, from the start of this year.
const VALID_YEARS: i32 = 10;

/// The certificate file of `node` in `dir`.
pub fn node_cert_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.crt"))
}

/// The key file of `node` in `dir`.
pub fn node_key_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.key"))
}

/// The crypto provider of every TLS configuration here.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Checks that `node` can name a certificate: a valid node id that is also
/// a DNS name (letters, digits, `-`, `_`, dots between labels; not an IP
/// address).
pub fn check_node_name(node: &str) -> anyhow::Result<()> {
    NodeId::parse(node).map_err(|e| anyhow!("node id {node:?} is not valid: {e}"))?;
    match ServerName::try_from(node) {
        Ok(ServerName::DnsName(_)) => Ok(()),
        _ => bail!(
            "node id {node:?} cannot name a certificate: use letters, digits, '-' and '_', \
             with dots only between such parts (e.g. n1, db-2.east)"
        ),
    }
}

/// Validity of new certificates: from the start of last year (clocks of
/// peers may lag) to [`VALID_YEARS`] after the start of this year.
fn validity(params: &mut CertificateParams) {
    let year = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(2025, |d| 1970 + (d.as_secs() / 31_556_952) as i32);
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + VALID_YEARS, 1, 1);
}

/// The CA's parameters: the same every time, so [`issue`] can sign with the
/// key of a CA made earlier.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Writes `contents` to `path` with `mode` (on Unix), replacing the file
/// only when `force`.
fn write_file(path: &Path, contents: &[u8], mode: u32, force: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        opts.mode(mode);
        let mut f = opts
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        // A replaced file keeps its old mode: set it.
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        f.write_all(contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        opts.open(path)
            .and_then(|mut f| f.write_all(contents))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Fails, naming them, when any of `paths` exists and `force` is not set.
fn refuse_existing(paths: &[PathBuf], force: bool) -> anyhow::Result<()> {
    if force {
        return Ok(());
    }
    let existing: Vec<String> = paths
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        bail!(
            "{} already exist(s); nothing was changed (pass --force to replace)",
            existing.join(", ")
        );
    }
    Ok(())
}

/// Makes a cluster CA and secret in `dir` (created if missing): `ca.crt`,
/// `ca.key` (0600) and `cluster.secret` (0600). Existing files are not
/// replaced unless `force` (replacing the CA invalidates every node
/// certificate it issued). Returns the files written.
pub fn init(dir: &Path, force: bool) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let files = [
        dir.join(CA_CERT),
        dir.join(CA_KEY),
        dir.join(CLUSTER_SECRET),
    ];
    refuse_existing(&files, force)?;
    let key = KeyPair::generate().context("cannot make the CA key")?;
    let mut params = ca_params();
    validity(&mut params);
    let cert = params
        .self_signed(&key)
        .context("cannot make the CA certificate")?;
    let secret: [u8; CLUSTER_SECRET_BYTES] = rand::random();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    write_file(&files[1], key.serialize_pem().as_bytes(), 0o600, force)?;
    write_file(&files[0], cert.pem().as_bytes(), 0o644, force)?;
    write_file(&files[2], format!("{hex}\n").as_bytes(), 0o600, force)?;
    Ok(files.to_vec())
}

/// Reads a file of a certificate directory; a missing CA file says to run
/// `ringkv cert init`.
fn read_ca_file(dir: &Path, name: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} not found: no cluster CA in {}; run `ringkv cert init --dir {}` first",
            path.display(),
            dir.display(),
            dir.display()
        ),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Makes `dir/NODE.crt` and `dir/NODE.key` (0600): a certificate for
/// `node` signed by the CA in `dir`. Existing files are not replaced
/// unless `force`. Returns the files written.
pub fn issue(dir: &Path, node: &str, force: bool) -> anyhow::Result<Vec<PathBuf>> {
    check_node_name(node)?;
    let ca_pem = read_ca_file(dir, CA_CERT)?;
    let ca_key_pem = read_ca_file(dir, CA_KEY)?;
    let files = [node_cert_path(dir, node), node_key_path(dir, node)];
    refuse_existing(&files, force)?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .with_context(|| format!("{} is not a private key", dir.join(CA_KEY).display()))?;
    let issuer = Issuer::new(ca_params(), ca_key);
    let key = KeyPair::generate().context("cannot make the node key")?;
    let mut params = CertificateParams::new(vec![node.to_string()])
        .with_context(|| format!("node id {node:?} cannot name a certificate"))?;
    params.distinguished_name.push(DnType::CommonName, node);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params);
    let cert = params
        .signed_by(&key, &issuer)
        .context("cannot sign the node certificate")?;
    // ca.key must be the key of ca.crt, or the certificate is worthless.
    let roots = roots_from_pem(&ca_pem, &dir.join(CA_CERT))?;
    verify_chain(cert.der(), &roots).map_err(|e| {
        anyhow!(
            "{} and {} do not belong together ({e}); nothing was written",
            dir.join(CA_CERT).display(),
            dir.join(CA_KEY).display()
        )
    })?;
    write_file(&files[1], key.serialize_pem().as_bytes(), 0o600, force)?;
    write_file(&files[0], cert.pem().as_bytes(), 0o644, force)?;
    Ok(files.to_vec())
}

/// The trust anchors of a CA certificate file's text.
fn roots_from_pem(pem: &str, path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.with_context(|| format!("{} is not PEM", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("{} holds a certificate that is not valid", path.display()))?;
        n += 1;
    }
    if n == 0 {
        bail!("{} holds no certificate", path.display());
    }
    Ok(roots)
}

/// Checks that `cert` chains to `roots` (names are not looked at).
fn verify_chain(cert: &CertificateDer<'_>, roots: &RootCertStore) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        roots,
        &[],
        UnixTime::now(),
        provider().signature_verification_algorithms.all,
    )
}

/// The node ids a certificate names: its DNS subject alternative names.
pub fn cert_node_ids(cert: &CertificateDer<'_>) -> Vec<String> {
    match webpki::EndEntityCert::try_from(cert) {
        Ok(c) => c.valid_dns_names().map(str::to_string).collect(),
        Err(_) => Vec::new(),
    }
}

/// Why a peer's claimed node id was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The certificate names other node ids than the one claimed.
    #[error("claims to be {claimed} but its certificate names {named:?}")]
    Mismatch {
        /// The id in the hello.
        claimed: String,
        /// The ids in the certificate.
        named: Vec<String>,
    },
}

/// Checks that the peer whose (already verified) certificate chain is
/// `certs` may call itself `claimed`: its certificate names exactly that
/// id (case-sensitive, unlike DNS).
pub fn check_claim(certs: Option<&[CertificateDer<'_>]>, claimed: &str) -> Result<(), ClaimError> {
    let Some(leaf) = certs.and_then(<[_]>::first) else {
        return Err(ClaimError::NoCertificate);
    };
    let named = cert_node_ids(leaf);
    if named.iter().any(|n| n == claimed) {
        Ok(())
    } else {
        Err(ClaimError::Mismatch {
            claimed: claimed.to_string(),
            named,
        })
    }
}

/// What the peer transport uses for mutual TLS: loaded once at start.
#[derive(Clone, Debug)]
pub struct PeerTls {
    /// Accepting peers: presents this node's certificate, requires a
    /// client certificate from the CA.
    pub server: Arc<ServerConfig>,
    /// Dialing a known peer: the server certificate must name it.
    pub client: Arc<ClientConfig>,
    /// Dialing a bare address (`--join`): any certificate from the CA.
    pub any_member: Arc<ClientConfig>,
}

impl PeerTls {
    /// Loads `dir/ca.crt`, `dir/NODE.crt` and `dir/NODE.key` for node `me`,
    /// and checks that the certificate is the CA's and names `me`. Errors
    /// name the file and the command that makes it.
    pub fn load(dir: &Path, me: &str) -> anyhow::Result<PeerTls> {
        let ca_path = dir.join(CA_CERT);
        let roots = Arc::new(roots_from_pem(&read_ca_file(dir, CA_CERT)?, &ca_path)?);
        let (cert_path, key_path) = (node_cert_path(dir, me), node_key_path(dir, me));
        let hint = format!(
            "run `ringkv cert issue --dir {} {me}` (with the CA's directory)",
            dir.display()
        );
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
            .and_then(Iterator::collect)
            .map_err(|e| anyhow!("cannot read {} ({e}); {hint}", cert_path.display()))?;
        let Some(leaf) = chain.first() else {
            bail!("{} holds no certificate; {hint}", cert_path.display());
        };
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| anyhow!("cannot read {} ({e}); {hint}", key_path.display()))?;
        verify_chain(leaf, &roots).map_err(|e| {
            anyhow!(
                "{} is not signed by {} ({e}); {hint}",
                cert_path.display(),
                ca_path.display()
            )
        })?;
        check_claim(Some(&chain), me).map_err(|e| {
            anyhow!(
                "{} is not a certificate for node {me}: it {e}; {hint}",
                cert_path.display()
            )
        })?;
        let p = provider();
        let versions = &[&rustls::version::TLS13];
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), p.clone())
            .build()
            .context("cannot build the client certificate verifier")?;
        let server = ServerConfig::builder_with_provider(p.clone())
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .with_context(|| {
                format!(
                    "{} does not fit {}",
                    key_path.display(),
                    cert_path.display()
                )
            })?;
        let client = ClientConfig::builder_with_provider(p.clone())
            .with_protocol_versions(versions)?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())?;
        let any_member = ClientConfig::builder_with_provider(p.clone())
            .with_protocol_versions(versions)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaOnly { roots, provider: p }))
            .with_client_auth_cert(chain, key)?;
        Ok(PeerTls {
            server: Arc::new(server),
            client: Arc::new(client),
            any_member: Arc::new(any_member),
        })
    }
}

/// Verifies a server certificate against the CA only, for a peer whose id
/// is not known yet; the certificate must name at least one node id.
#[derive(Debug)]
struct CaOnly {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if cert_node_ids(end_entity).is_empty() {
            return Err(rustls::Error::General(
                "the certificate names no node id".into(),
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(dir: &Path, node: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(node_cert_path(dir, node))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn init_makes_ca_and_secret_and_refuses_to_overwrite() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("certs");
        let files = init(&dir, false).unwrap();
        assert_eq!(files.len(), 3);
        let secret = std::fs::read_to_string(dir.join(CLUSTER_SECRET)).unwrap();
        assert_eq!(secret.len(), 2 * CLUSTER_SECRET_BYTES + 1, "{secret:?}");
        assert!(secret.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for f in [CA_KEY, CLUSTER_SECRET] {
                let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let ca = std::fs::read(dir.join(CA_CERT)).unwrap();
        let err = init(&dir, false).unwrap_err().to_string();
        assert!(
            err.contains("already exist") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(dir.join(CA_CERT)).unwrap(),
            ca,
            "not replaced"
        );
        init(&dir, true).unwrap();
        assert_ne!(std::fs::read(dir.join(CA_CERT)).unwrap(), ca, "replaced");
        let secret2 = std::fs::read_to_string(dir.join(CLUSTER_SECRET)).unwrap();
        assert_ne!(secret, secret2);
    }

    #[test]
    fn issue_names_the_node_and_chains_to_the_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let err = issue(dir, "n1", false).unwrap_err().to_string();
        assert!(err.contains("ringkv cert init --dir"), "{err}");
        init(dir, false).unwrap();
        issue(dir, "n1", false).unwrap();
        let chain = leaf(dir, "n1");
        assert_eq!(cert_node_ids(&chain[0]), ["n1"]);
        let ca = std::fs::read_to_string(dir.join(CA_CERT)).unwrap();
        let roots = roots_from_pem(&ca, &dir.join(CA_CERT)).unwrap();
        verify_chain(&chain[0], &roots).unwrap();
        let err = issue(dir, "n1", false).unwrap_err().to_string();
        assert!(err.contains("n1.crt") && err.contains("--force"), "{err}");
        issue(dir, "n1", true).unwrap();
        PeerTls::load(dir, "n1").unwrap();
        for bad in ["n 1", "", "1.2.3.4", "a..b"] {
            assert!(issue(dir, bad, false).is_err(), "{bad:?}");
        }
        issue(dir, "db_2.east-1", false).unwrap();
        PeerTls::load(dir, "db_2.east-1").unwrap();
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        init(a.path(), false).unwrap();
        init(b.path(), false).unwrap();
        issue(b.path(), "n2", false).unwrap();
        let ca = std::fs::read_to_string(a.path().join(CA_CERT)).unwrap();
        let roots = roots_from_pem(&ca, &a.path().join(CA_CERT)).unwrap();
        assert!(verify_chain(&leaf(b.path(), "n2")[0], &roots).is_err());
        // Another CA's certificate in this CA's directory is refused at load.
        for f in ["n2.crt", "n2.key"] {
            std::fs::copy(b.path().join(f), a.path().join(f)).unwrap();
        }
        let err = PeerTls::load(a.path(), "n2").unwrap_err().to_string();
        assert!(err.contains("is not signed by"), "{err}");
        // A CA key that does not belong to the CA certificate is noticed.
        std::fs::copy(b.path().join(CA_KEY), a.path().join(CA_KEY)).unwrap();
        let err = issue(a.path(), "n3", false).unwrap_err().to_string();
        assert!(err.contains("do not belong together"), "{err}");
        assert!(!node_cert_path(a.path(), "n3").exists());
    }

    #[test]
    fn the_claimed_id_must_be_the_certificates() {
        let tmp = tempfile::tempdir().unwrap();
        init(tmp.path(), false).unwrap();
        issue(tmp.path(), "n4", false).unwrap();
        let chain = leaf(tmp.path(), "n4");
        assert_eq!(check_claim(Some(&chain), "n4"), Ok(()));
        assert_eq!(
            check_claim(Some(&chain), "n2"),
            Err(ClaimError::Mismatch {
                claimed: "n2".into(),
                named: vec!["n4".into()]
            })
        );
        // DNS matching ignores case; node ids do not.
        assert!(check_claim(Some(&chain), "N4").is_err());
        assert_eq!(check_claim(None, "n4"), Err(ClaimError::NoCertificate));
        assert_eq!(check_claim(Some(&[]), "n4"), Err(ClaimError::NoCertificate));
        let err = PeerTls::load(tmp.path(), "n2").unwrap_err().to_string();
        assert!(err.contains("ringkv cert issue"), "{err}");
    }
}
