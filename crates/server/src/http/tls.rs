//! Optional TLS on the HTTP API (`ringkv server --http-cert FILE --http-key
//! FILE`): rustls with the ring crypto provider, HTTP/2 and HTTP/1.1 offered
//! by ALPN. Clients are not asked for certificates: they authenticate with
//! bearer tokens ([`crate::auth`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS configuration of the HTTP API from a PEM certificate chain
/// (the node's certificate first) and its PEM private key.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "the certificate file {} holds no PEM certificate",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot read the private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and the key do not make a TLS identity")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
