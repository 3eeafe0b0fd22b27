//! The transport behind `warden:plugin/http`: name resolution, and one HTTP/1.1 exchange on a
//! connection the host opens itself to an address it already vetted (hyper's connection API
//! over a tokio socket, TLS by rustls on `ring`). Nothing here decides what is allowed: the
//! capability checks the origin and the resolved addresses first and hands over only what passed.
//!
//! Deliberately absent: a connection pool (a reused connection would skip the address check),
//! redirects (a `3xx` goes back to the plugin as it is), proxies taken from the environment, and
//! a second name resolution at connect time (the socket is connected to the vetted address).
//!
//! The wasm side is synchronous, so each call runs on one small shared runtime and the calling
//! thread waits for it, in short slices, checking the run's cancellation; the call's deadline
//! ends it from inside. A call in flight per running plugin at most, so `max-instances` bounds
//! how many connections this runtime holds.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::runtime::Runtime;
use warden_core::CancelToken;
use warden_core::egress::{HttpHost, HttpOrigin};

/// Threads resolving names at once (getaddrinfo blocks); more calls wait their turn.
pub const MAX_RESOLVER_THREADS: usize = 4;
/// Addresses kept of one resolution: a name with more is a round-robin pool, and trying a
/// handful is enough to find one that answers.
pub const MAX_RESOLVED_ADDRESSES: usize = 16;
/// How often a waiting call looks at the run's cancellation.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// One request, ready to send: everything checked, the addresses vetted.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: http::Method,
    pub origin: HttpOrigin,
    pub path_and_query: String,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Vec<u8>,
    /// Tried in order until one connects.
    pub addresses: Vec<SocketAddr>,
    /// Largest response body returned.
    pub response_cap: u64,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS with `{host}`: {cause}")]
    Tls { host: String, cause: String },
    #[error("HTTP exchange failed: {0}")]
    Protocol(String),
    #[error("the response body is larger than {0} bytes")]
    TooLarge(u64),
}

/// Why a call ended before its work did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    TimedOut,
    Cancelled,
    /// The HTTP runtime could not start or lost the task.
    Lost(String),
}

fn runtime() -> Result<&'static Runtime, Interrupted> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(MAX_RESOLVER_THREADS)
                .thread_name("warden-http")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the HTTP runtime: {e}"))
        })
        .as_ref()
        .map_err(|e| Interrupted::Lost(e.clone()))
}

/// Run `work` on the HTTP runtime until it finishes, `deadline` passes or `cancel` is set.
/// Ending early drops the work, and with it its sockets.
fn bounded<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
    deadline: Instant,
    cancel: &CancelToken,
) -> Result<T, Interrupted> {
    let rt = runtime()?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let task = rt.spawn(async move {
        let out = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work).await;
        let _ = tx.send(out);
    });
    loop {
        if cancel.is_cancelled() {
            task.abort();
            return Err(Interrupted::Cancelled);
        }
        match rx.recv_timeout(CANCEL_POLL) {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(_elapsed)) => return Err(Interrupted::TimedOut),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Interrupted::Lost(
                    "the HTTP task ended without an answer".into(),
                ));
            }
        }
    }
}

/// The addresses `name` resolves to (at most [`MAX_RESOLVED_ADDRESSES`], duplicates dropped).
pub fn resolve(
    name: &str,
    port: u16,
    deadline: Instant,
    cancel: &CancelToken,
) -> Result<Result<Vec<IpAddr>, String>, Interrupted> {
    let name = name.to_string();
    bounded(
        async move {
            let found = tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| e.to_string())?;
            let mut ips: Vec<IpAddr> = Vec::new();
            for addr in found {
                if !ips.contains(&addr.ip()) && ips.len() < MAX_RESOLVED_ADDRESSES {
                    ips.push(addr.ip());
                }
            }
            Ok::<_, String>(ips)
        },
        deadline,
        cancel,
    )
}

/// Send `exchange` and read its response, within `deadline`.
pub fn fetch(
    exchange: Exchange,
    tls: Arc<rustls::ClientConfig>,
    deadline: Instant,
    cancel: &CancelToken,
) -> Result<Result<Fetched, FetchError>, Interrupted> {
    bounded(run(exchange, tls), deadline, cancel)
}

async fn run(ex: Exchange, tls: Arc<rustls::ClientConfig>) -> Result<Fetched, FetchError> {
    let tcp = connect(&ex.addresses).await?;
    match ex.origin.scheme {
        warden_core::egress::HttpScheme::Http => exchange(tcp, ex).await,
        warden_core::egress::HttpScheme::Https => {
            let server_name = match &ex.origin.host {
                HttpHost::Name(n) => {
                    ServerName::try_from(n.clone()).map_err(|e| FetchError::Tls {
                        host: n.clone(),
                        cause: e.to_string(),
                    })?
                }
                HttpHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
            };
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(server_name, tcp)
                .await
                .map_err(|e| FetchError::Tls {
                    host: ex.origin.host.to_string(),
                    cause: e.to_string(),
                })?;
            exchange(stream, ex).await
        }
    }
}

/// Connect to the first of `addresses` that accepts: exactly these, never a name.
async fn connect(addresses: &[SocketAddr]) -> Result<tokio::net::TcpStream, FetchError> {
    let mut failures = Vec::new();
    for addr in addresses {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => failures.push(format!("{addr}: {e}")),
        }
    }
    Err(FetchError::Connect(failures.join("; ")))
}

async fn exchange<S>(io: S, ex: Exchange) -> Result<Fetched, FetchError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let protocol = |e: hyper::Error| FetchError::Protocol(e.to_string());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(protocol)?;
    let mut request = http::Request::builder()
        .method(ex.method)
        .uri(ex.path_and_query.as_str())
        .header(http::header::HOST, host_header(&ex.origin));
    for (name, value) in ex.headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(ex.body)))
        .map_err(|e| FetchError::Protocol(e.to_string()))?;
    let cap = ex.response_cap;
    let work = async move {
        let response = sender.send_request(request).await.map_err(protocol)?;
        read_capped(response, cap).await
    };
    let mut work = std::pin::pin!(work);
    let mut conn = std::pin::pin!(conn);
    // The connection is driven alongside the exchange; when it ends first, what it delivered is
    // still in the body's channel, so the exchange is finished on its own.
    tokio::select! {
        out = &mut work => out,
        ended = &mut conn => match ended {
            Ok(()) => work.await,
            Err(e) => Err(protocol(e)),
        },
    }
}

/// `Host:` as the origin names it: the port only when it is not the scheme's.
fn host_header(origin: &HttpOrigin) -> String {
    if origin.port == origin.scheme.default_port() {
        origin.host.to_string()
    } else {
        format!("{}:{}", origin.host, origin.port)
    }
}

async fn read_capped(
    response: http::Response<hyper::body::Incoming>,
    cap: u64,
) -> Result<Fetched, FetchError> {
    let (parts, mut body) = response.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap) {
        return Err(FetchError::TooLarge(cap));
    }
    let mut data = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| FetchError::Protocol(e.to_string()))?;
        if let Ok(chunk) = frame.into_data() {
            if data.len() as u64 + chunk.len() as u64 > cap {
                return Err(FetchError::TooLarge(cap));
            }
            data.extend_from_slice(&chunk);
        }
    }
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Fetched {
        status: parts.status.as_u16(),
        headers,
        body: data,
    })
}

/// A client configuration on `ring` (chosen explicitly, so no process-wide default provider is
/// needed and none other is compiled in), TLS 1.2 and 1.3, HTTP/1.1 by ALPN, verifying the
/// server's certificate against `roots` for the URL's host.
pub fn client_config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's trusted roots, loaded once per process.
pub fn system_tls() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            for cert in loaded.certs {
                // One unparsable system certificate must not take the others with it.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                tracing::warn!("no system TLS root certificates found: https requests will fail");
            }
            client_config(roots)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    //! TLS on loopback against a test CA (`testdata/tls`): the certificate is verified for the
    //! URL's host, not for the address dialled.
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const CA: &[u8] = include_bytes!("../testdata/tls/ca.der");
    const LEAF: &[u8] = include_bytes!("../testdata/tls/leaf.der");
    const LEAF_KEY: &[u8] = include_bytes!("../testdata/tls/leaf.key.der");

    /// A TLS server on 127.0.0.1 that answers every connection `200 ok`; it lives as long as the
    /// returned runtime.
    fn tls_server() -> (tokio::runtime::Runtime, SocketAddr) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(LEAF.to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(LEAF_KEY.to_vec())),
            )
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(n) if n > 0 => seen.extend_from_slice(&buf[..n]),
                            _ => return,
                        }
                    }
                    let _ = tls
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (rt, addr)
    }

    fn exchange(host: HttpHost, addr: SocketAddr) -> Exchange {
        Exchange {
            method: http::Method::GET,
            origin: HttpOrigin {
                scheme: warden_core::egress::HttpScheme::Https,
                host,
                port: addr.port(),
            },
            path_and_query: "/".into(),
            headers: vec![],
            body: vec![],
            addresses: vec![addr],
            response_cap: 1024,
        }
    }

    fn trusting_the_test_ca() -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(CA.to_vec()))
            .expect("test CA");
        client_config(roots).expect("client config")
    }

    fn send(ex: Exchange, tls: Arc<rustls::ClientConfig>) -> Result<Fetched, FetchError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        fetch(ex, tls, deadline, &CancelToken::default()).expect("not interrupted")
    }

    #[test]
    fn https_verifies_the_certificate_for_the_urls_host() {
        let (_server, addr) = tls_server();
        let tls = trusting_the_test_ca();
        let ok = send(
            exchange(HttpHost::Name("localhost".into()), addr),
            tls.clone(),
        )
        .expect("the certificate names localhost");
        assert_eq!((ok.status, ok.body.as_slice()), (200, b"ok".as_slice()));
        let ok = send(exchange(HttpHost::Ip(addr.ip()), addr), tls.clone())
            .expect("the certificate names 127.0.0.1");
        assert_eq!(ok.status, 200);

        // The same server and address, reached under a name its certificate does not carry.
        let err = send(
            exchange(HttpHost::Name("psa.example.com".into()), addr),
            tls,
        )
        .expect_err("wrong name");
        assert!(
            matches!(&err, FetchError::Tls { cause, .. } if cause.contains("not valid for name")),
            "{err}"
        );
    }

    #[test]
    fn https_refuses_a_certificate_from_an_untrusted_issuer() {
        let (_server, addr) = tls_server();
        let untrusting = client_config(rustls::RootCertStore::empty()).expect("config");
        let err = send(
            exchange(HttpHost::Name("localhost".into()), addr),
            untrusting,
        )
        .expect_err("unknown issuer");
        assert!(
            matches!(&err, FetchError::Tls { cause, .. } if cause.contains("UnknownIssuer")),
            "{err}"
        );
    }

    #[test]
    fn a_cancelled_call_returns_and_drops_its_connection() {
        // A listener that accepts and never answers: only cancellation can end the call.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cancel = CancelToken::default();
        let mut ex = exchange(HttpHost::Ip(addr.ip()), addr);
        ex.origin.scheme = warden_core::egress::HttpScheme::Http;
        let far = Instant::now() + Duration::from_secs(600);
        let out = std::thread::scope(|s| {
            let call = s.spawn(|| fetch(ex, trusting_the_test_ca(), far, &cancel));
            let (mut conn, _) = listener.accept().expect("the call connects");
            cancel.cancel();
            let out = call.join().expect("call thread");
            // The host hangs up: the read ends (EOF or reset) instead of blocking forever.
            let mut rest = Vec::new();
            let _ = std::io::Read::read_to_end(&mut conn, &mut rest);
            out
        });
        assert_eq!(out, Err(Interrupted::Cancelled));
    }
}
