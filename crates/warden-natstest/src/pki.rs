//! A throw-away certificate authority for TLS tests, made afresh in each test (rcgen, ECDSA
//! P-256): its CA certificate for the clients' trust, and server certificates it signs for
//! chosen names, as PEM files in a temporary directory. The CA's key lives only in memory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{Error, Result, ServerTls};

/// A test CA. Dropping it removes its files.
pub struct TestPki {
    ca: Certificate,
    ca_key: KeyPair,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for TestPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestPki")
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Certificate(e.to_string())
}

impl TestPki {
    /// A new CA called `name` (its subject's common name), its certificate in `ca.pem`.
    pub fn generate(name: &str) -> Result<TestPki> {
        let dir = tempfile::Builder::new()
            .prefix("warden-pki-")
            .tempdir()
            .map_err(Error::io("creating a temporary directory"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_error)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(cert_error)?;
        let ca = params.self_signed(&ca_key).map_err(cert_error)?;
        let pki = TestPki { ca, ca_key, dir };
        write(&pki.ca_file(), &pki.ca.pem())?;
        Ok(pki)
    }

    /// The CA certificate (PEM), what a client trusting this CA is given.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate signed by this CA for `names` (DNS names or IP addresses), written
    /// as `<file>.pem` and `<file>.key`.
    pub fn server(&self, file: &str, names: &[&str]) -> Result<ServerTls> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_string()).collect();
        let mut params = CertificateParams::new(names).map_err(cert_error)?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("warden test server {file}"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(cert_error)?;
        let cert = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .map_err(cert_error)?;
        let tls = ServerTls {
            cert_file: self.dir.path().join(format!("{file}.pem")),
            key_file: self.dir.path().join(format!("{file}.key")),
        };
        write(&tls.cert_file, &cert.pem())?;
        write(&tls.key_file, &key.serialize_pem())?;
        Ok(tls)
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))
}
