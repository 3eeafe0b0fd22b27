//! `GET /metrics` over HTTP/1.1, and nothing else: any other path is 404, any other method on
//! it 405. Each connection gets a bounded time to send its request and to be answered, and the
//! number of connections at once is capped, so a slow or flooding client costs little.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::MetricsConfig;

/// The OpenMetrics text format prometheus-client writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The one path served.
const PATH: &str = "/metrics";
/// Connections served at once: 16 (a scraper or two, and room for a person with curl).
const MAX_CONNECTIONS: usize = 16;
/// Time for a client to send its request head: 5 s.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole connection: 30 s (a scrape takes milliseconds).
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What `/metrics` shows: the owner samples what it reads at scrape time (queue depths, open
/// incidents, link state) and encodes its registry.
pub trait Source: Send + Sync + 'static {
    fn scrape(&self) -> BoxFuture<'_, Result<String, std::fmt::Error>>;
}

/// The OpenMetrics text of `registry` (ending in `# EOF`).
pub fn render(registry: &Registry) -> Result<String, std::fmt::Error> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)?;
    Ok(text)
}

/// Bind `config.listen` (after [`MetricsConfig::validate`]).
pub async fn bind(config: &MetricsConfig) -> std::io::Result<TcpListener> {
    config
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()))?;
    TcpListener::bind(config.listen).await
}

/// Serve `source` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn Source>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!("metrics: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: {peer} refused, {MAX_CONNECTIONS} connections open");
            continue;
        };
        let source = source.clone();
        tokio::spawn(async move {
            connection(stream, peer, source).await;
            drop(permit);
        });
    }
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, source: Arc<dyn Source>) {
    let service = service_fn(move |req| {
        let source = source.clone();
        async move { Ok::<_, Infallible>(respond(&req, source.as_ref()).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout(CONNECTION_TIMEOUT, served).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("metrics: {peer}: {e}"),
        Err(_) => tracing::debug!("metrics: {peer}: closed after {CONNECTION_TIMEOUT:?}"),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn respond(req: &Request<Incoming>, source: &dyn Source) -> Response<Full<Bytes>> {
    if req.uri().path() != PATH {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; metrics are at /metrics\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n");
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match source.scrape().await {
        Ok(text) => {
            let mut response = Response::new(Full::new(Bytes::from(text)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        Err(_) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be encoded\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct One(Registry);

    impl Source for One {
        fn scrape(&self) -> BoxFuture<'_, Result<String, std::fmt::Error>> {
            Box::pin(async move { render(&self.0) })
        }
    }

    async fn ask(addr: SocketAddr, request: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("request sent");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .expect("answer read");
        answer
    }

    #[tokio::test]
    async fn metrics_are_served_at_their_path_and_nothing_else_is() {
        let mut registry = Registry::default();
        let counter = Counter::<u64>::default();
        registry.register("warden_test_things", "Things counted", counter.clone());
        counter.inc_by(3);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve(listener, Arc::new(One(registry)), stop));

        let ok = ask(
            addr,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE), "{ok}");
        assert!(ok.contains("\nwarden_test_things_total 3\n"), "{ok}");
        assert!(ok.ends_with("# EOF\n"), "{ok}");

        let missing = ask(
            addr,
            "GET /debug HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        assert!(!missing.contains("warden_test_things"), "{missing}");

        let posted = ask(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            posted.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{posted}"
        );
        assert!(!posted.contains("warden_test_things"), "{posted}");

        let _ = stop_tx.send(true);
        server.await.expect("the server stops");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the port is closed after stop"
        );
    }
}
