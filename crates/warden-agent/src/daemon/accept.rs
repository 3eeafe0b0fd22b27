//! The socket options of every connection the agent's API accepts. tonic sets them only on a
//! server it binds itself; the agent is handed its listener (tests bind port 0, `warden serve`
//! binds the configured address), so the accepted sockets are configured here.
//!
//! `TCP_NODELAY`: a Watch event or a small unary answer is one short `writev`; with Nagle's
//! algorithm on, it waits for the client's delayed ACK (~40 ms on Linux). Measured on loopback
//! with a trivial runbook: trigger→finished p50 44 ms (22 runs/s) without it, 2 ms with it.
//!
//! TCP keepalive: HTTP/2 pings ([`crate::grpc::streams::KEEPALIVE_INTERVAL`]) find dead clients
//! once a connection speaks HTTP/2; the kernel's probes also cover a connection that never got
//! that far (a client that vanished during the TLS handshake) and keep the socket from lingering.

use std::time::Duration;
use tonic::transport::server::TcpIncoming;

/// Idle time before the first keepalive probe: longer than the HTTP/2 ping interval, so a live
/// HTTP/2 connection never needs one.
pub const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(60);
/// Between unanswered probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered probes before the kernel drops the connection: a dead peer is gone within
/// 60 + 3 × 10 s of silence.
pub const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// The connections `listener` accepts, each with `TCP_NODELAY` and TCP keepalive set.
pub fn incoming(listener: tokio::net::TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(TCP_KEEPALIVE_TIME))
        .with_keepalive_interval(Some(TCP_KEEPALIVE_INTERVAL))
        .with_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt as _;

    #[tokio::test]
    async fn accepted_connections_have_nodelay_and_keepalive_set() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut accepted = incoming(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let server_side = accepted
            .next()
            .await
            .expect("a connection")
            .expect("accepted");
        assert!(server_side.nodelay().expect("TCP_NODELAY"), "TCP_NODELAY");
        let socket = socket2::SockRef::from(&server_side);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"), "SO_KEEPALIVE");
        #[cfg(target_os = "linux")]
        {
            assert_eq!(
                socket.tcp_keepalive_time().expect("idle"),
                TCP_KEEPALIVE_TIME
            );
            assert_eq!(
                socket.tcp_keepalive_interval().expect("interval"),
                TCP_KEEPALIVE_INTERVAL
            );
            assert_eq!(
                socket.tcp_keepalive_retries().expect("retries"),
                TCP_KEEPALIVE_RETRIES
            );
        }
    }
}
