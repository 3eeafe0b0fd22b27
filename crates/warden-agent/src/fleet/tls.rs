//! TLS to the fleet's NATS servers. The agent builds its own rustls client config (ring, the
//! provider the rest of the workspace uses) trusting exactly the roots of `ca-file`, or the
//! system's roots without one, and wraps the certificate verifier so a refused server
//! certificate is *said*: async-nats reports a failed handshake only as "IO error", and an agent
//! that keeps retrying against a server it must not trust would otherwise look merely offline.
//!
//! Nothing is sent before the handshake has verified the server: the credentials (the JWT and
//! the signed nonce) go in the CONNECT, after it.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Largest CA file read: a system bundle of every public root is about 200 KiB.
pub const MAX_CA_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read the fleet CA file {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("the fleet CA file {path} holds no usable PEM certificate{detail}")]
    NoCertificate { path: PathBuf, detail: String },
    #[error("no system root certificates to verify the fleet's servers with: set fleet.ca-file")]
    NoSystemRoots,
    #[error("the fleet's TLS configuration: {0}")]
    Config(String),
}

/// The last server certificate the verifier refused, and why; taken by the connection's error
/// event, which is all async-nats tells of a failed handshake.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<Mutex<Option<String>>>);

impl Refusals {
    fn record(&self, reason: String) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(reason);
    }

    /// The refusal since the last call, if any.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// rustls' own WebPKI verification, with each refusal recorded.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    refusals: Refusals,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .inspect_err(|e| {
                self.refusals.record(format!(
                    "the certificate of {} was refused: {e}",
                    server_name.to_str()
                ));
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The client config for the fleet's servers: the roots of `ca_file` only, or the system's.
pub fn client_config(ca_file: Option<&Path>) -> Result<(ClientConfig, Refusals), TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match ca_file {
        Some(path) => roots_from(path)?,
        None => system_roots()?,
    };
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?;
    let refusals = Refusals::default();
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording {
            inner,
            refusals: refusals.clone(),
        }))
        .with_no_client_auth();
    Ok((config, refusals))
}

fn roots_from(path: &Path) -> Result<RootCertStore, TlsSetupError> {
    let bytes = warden_core::fsutil::read_capped(path, MAX_CA_FILE_BYTES).map_err(|e| {
        TlsSetupError::Read {
            path: path.into(),
            message: e.to_string(),
        }
    })?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsSetupError::NoCertificate {
            path: path.into(),
            detail: format!(": {e}"),
        })?;
    let mut roots = RootCertStore::empty();
    let (_, unusable) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            path: path.into(),
            detail: if unusable > 0 {
                format!(" ({unusable} could not be parsed)")
            } else {
                String::new()
            },
        });
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsSetupError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        return Err(TlsSetupError::NoSystemRoots);
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").expect("write");
        let err = client_config(Some(&path)).expect_err("no certificate");
        assert!(
            err.to_string().contains("no usable PEM certificate"),
            "{err}"
        );
        let err = client_config(Some(&dir.path().join("missing.pem"))).expect_err("missing");
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
