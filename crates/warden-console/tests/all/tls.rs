//! The console over its own TLS (`[console] tls-cert`, `tls-key`): a certificate from a test
//! CA, a client trusting that CA gets the sign-in page with a `Secure` cookie; a client that
//! trusts another CA, and one speaking plain HTTP to the TLS port, get nothing, and a client
//! that connects and says nothing does not hold up the others (handshakes run beside the accept
//! loop). Bad certificate files are refused with what is wrong.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warden_console::tls::{TlsError, acceptor};
use warden_natstest::TestPki;

use crate::support::*;

fn client(ca: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("CA pem"))
        .expect("root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `GET path` over TLS trusting `ca`: the whole response, or the handshake's error.
async fn get(addr: SocketAddr, ca: &Path, path: &str) -> std::io::Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = client(ca).connect(name, tcp).await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_serves_its_own_tls_to_a_client_trusting_its_ca_only() {
    let h = Harness::start().await;
    let pki = TestPki::generate("console test CA").expect("CA");
    let server = pki.server("console", &["127.0.0.1"]).expect("server cert");
    let tls = acceptor(&server.cert_file, &server.key_file).expect("acceptor");
    let listener = warden_console::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let options = warden_console::Options {
        idle_timeout: IDLE,
        absolute_timeout: ABSOLUTE,
        secure_cookies: true,
    };
    let tokens = warden_access::Tokens::new(&h.config.tokens).expect("tokens");
    tokio::spawn(warden_console::serve(
        h.controller().clone(),
        tokens,
        options,
        listener,
        Some(tls),
        std::future::pending(),
    ));

    // A client that connects and never speaks holds a handshake slot, nothing else.
    let _silent = TcpStream::connect(addr).await.expect("connects");

    let page = tokio::time::timeout(
        Duration::from_secs(20),
        get(addr, &pki.ca_file(), "/signin"),
    )
    .await
    .expect("served while another client stays silent")
    .expect("a TLS response");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let cookie = page
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie in {page}"));
    assert!(cookie.contains("Secure"), "{cookie}");
    assert!(page.contains("Sign in"), "{page}");

    // Another CA's client refuses the certificate: no page.
    let other = TestPki::generate("another CA").expect("CA");
    assert!(get(addr, &other.ca_file(), "/signin").await.is_err());

    // Plain HTTP to the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.expect("connects");
    plain
        .write_all(b"GET /signin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"),
        "{answer:?}"
    );

    // Still serving after all that.
    let again = get(addr, &pki.ca_file(), "/signin").await.expect("served");
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
}

#[test]
fn bad_certificate_files_are_refused_saying_which_and_why() {
    let refused = |cert: &Path, key: &Path| match acceptor(cert, key) {
        Ok(_) => panic!("{} with {} was accepted", cert.display(), key.display()),
        Err(e) => e,
    };
    let pki = TestPki::generate("console test CA").expect("CA");
    let server = pki.server("console", &["127.0.0.1"]).expect("server cert");
    let missing = server.cert_file.with_file_name("missing.pem");
    assert!(matches!(
        refused(&missing, &server.key_file),
        TlsError::Read { .. }
    ));
    // The certificate where the key should be: no key in it.
    let err = refused(&server.cert_file, &server.cert_file);
    assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    assert!(err.to_string().contains("console.pem"), "{err}");
    // The key where the certificate should be.
    let err = refused(&server.key_file, &server.key_file);
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    // A key that is not the certificate's.
    let other = pki.server("other", &["127.0.0.1"]).expect("other cert");
    let err = refused(&server.cert_file, &other.key_file);
    assert!(matches!(err, TlsError::Config(_)), "{err}");
}
