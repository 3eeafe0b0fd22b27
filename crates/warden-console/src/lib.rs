//! The fleet controller's web console (issue 18): the NOC's screens, served by
//! `warden controller serve` when its config has `[console]`. An HTTP adapter over the
//! controller's core, as the gRPC API is: every read and action goes through
//! [`warden_controller::Controller`], which checks the caller's role and tenant scope.
//!
//! - [`session`]: sign-in with an API bearer token, server-side sessions (random id in an
//!   HttpOnly, SameSite=Strict cookie), idle and absolute timeouts, a CSRF token per session.
//! - [`throttle`]: failed sign-ins per address, refused (429) past a few in five minutes.
//! - [`filter`]: the fleet table's filter language (`is:offline tag:role=db acme`).
//! - [`inert`]: what agents and plugins wrote, made inert before it is rendered.
//! - [`pages`]: the pages (maud templates: every interpolation is HTML-escaped).
//! - [`routes`]: the handlers, their role checks and audit records; [`reports`]: the client
//!   report download.
//! - [`tls`]: the console over TLS, with its own certificate (`[console] tls-cert`).
//!
//! Assets (CSS, one small script) are embedded in the binary: NOCs are often offline, so no
//! CDN. Every response forbids inline scripts (Content-Security-Policy) as a second line
//! behind the escaping.

pub mod filter;
pub mod inert;
pub mod pages;
pub mod reports;
pub mod routes;
pub mod session;
pub mod throttle;
pub mod times;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use warden_access::Tokens;
use warden_controller::Controller;
use warden_controller::config::ConsoleSettings;

/// Why the console could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the console cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the console stopped: {0}")]
    Serve(std::io::Error),
    #[error("the console's TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// How sessions behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// The session cookie is `Secure` (the console is reached over TLS).
    pub secure_cookies: bool,
}

impl Options {
    pub fn from_settings(s: &ConsoleSettings) -> Options {
        Options {
            idle_timeout: Duration::from_secs(s.idle_timeout_secs),
            absolute_timeout: Duration::from_secs(s.absolute_timeout_secs),
            secure_cookies: s.secure_cookies,
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
pub struct Console {
    pub controller: Arc<Controller>,
    pub tokens: Tokens,
    pub sessions: session::Sessions,
    /// Failed sign-ins per address ([`throttle`]).
    pub throttle: throttle::Throttle,
    pub options: Options,
}

/// The console's routes over `controller`, signing in against `tokens`.
pub fn router(controller: Arc<Controller>, tokens: Tokens, options: Options) -> axum::Router {
    let console = Arc::new(Console {
        controller,
        tokens,
        sessions: session::Sessions::default(),
        throttle: throttle::Throttle::default(),
        options,
    });
    routes::router(console)
}

/// Serve the console on `listener` until `shutdown`: over TLS with `tls`
/// ([`tls::acceptor`]), else plain HTTP.
pub async fn serve(
    controller: Arc<Controller>,
    tokens: Tokens,
    options: Options,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConsoleError> {
    // The peer address goes into the audit records of sign-ins.
    let app = router(controller, tokens, options);
    match tls {
        Some(acceptor) => {
            let listener =
                tls::TlsListener::new(listener, acceptor).map_err(ConsoleError::Serve)?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<tls::Peer>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<tls::Peer>(),
            )
            .with_graceful_shutdown(shutdown)
            .await
        }
    }
    .map_err(ConsoleError::Serve)
}

/// Bind `addr` for [`serve`].
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ConsoleError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ConsoleError::Listen { addr, source })
}
