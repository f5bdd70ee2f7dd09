//! HTTPS to nodes that serve the API over TLS (`ringkv server --http-cert
//! FILE --http-key FILE`), trusting the cluster's CA (`ringkv cert init`).
//!
//! reqwest is built with `rustls-no-provider`: it brings no crypto of its
//! own, and every `reqwest::Client` here is handed a rustls configuration
//! made with the ring provider explicitly ([`reqwest_builder`]), so no
//! process-wide provider is installed and aws-lc is never compiled.
//!
//! # What is checked
//! A node's certificate must chain to the given CA and be valid now; its
//! name is *not* compared with the host of the URL. The cluster CA signs
//! only node certificates, which name node ids (`n1`), not the addresses
//! clients dial (`127.0.0.1:8081`), and any node of the cluster may answer
//! any request (as with the peers' mutual TLS, holding a node's key is
//! being that node). So give `--ca` the cluster's own CA, never a public
//! one: with a public CA any certificate it signed would be accepted.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The trust anchors of a client: the cluster CA's certificates.
#[derive(Clone, Debug)]
pub struct ClusterCa {
    roots: Arc<RootCertStore>,
}

impl ClusterCa {
    /// Reads the PEM text of a CA certificate file (e.g. `ca.crt` from
    /// `ringkv cert init`). Every certificate in it is trusted. The error
    /// says what is wrong with the text; callers add the file's name.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("it is not PEM ({e})"))?;
            roots
                .add(cert)
                .map_err(|e| format!("it holds a certificate that is not valid ({e})"))?;
        }
        if roots.is_empty() {
            return Err("it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_string());
        }
        Ok(ClusterCa {
            roots: Arc::new(roots),
        })
    }
}

/// The crypto provider of every TLS configuration here: ring.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration trusting `ca` (HTTP/1.1 by ALPN). Without
/// a CA, no server certificate is accepted: callers refuse `https://`
/// endpoints before sending anything (see [`crate::Client::with_ca`]).
pub fn rustls_config(ca: Option<&ClusterCa>) -> rustls::ClientConfig {
    let p = provider();
    let verifier = Arc::new(CaOnlyVerifier {
        roots: ca.map_or_else(|| Arc::new(RootCertStore::empty()), |c| c.roots.clone()),
        provider: p.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // reqwest and the bench speak HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// A `reqwest::ClientBuilder` whose TLS is [`rustls_config`]`(ca)`. Every
/// reqwest client of the workspace must start here: reqwest is built
/// without a crypto provider of its own, and its own TLS setup would panic.
pub fn reqwest_builder(ca: Option<&ClusterCa>) -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(rustls_config(ca))
}

/// Checks the chain to the cluster CA and the validity dates, not the name
/// (see the module documentation).
#[derive(Debug)]
struct CaOnlyVerifier {
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaOnlyVerifier {
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

    #[test]
    fn a_ca_file_must_hold_a_pem_certificate() {
        assert!(
            ClusterCa::from_pem(b"")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        assert!(ClusterCa::from_pem(b"hello\n").is_err());
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(ClusterCa::from_pem(garbage).is_err());
    }

    #[test]
    fn a_client_builds_without_a_process_wide_provider() {
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        reqwest_builder(None).build().unwrap();
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    }
}
