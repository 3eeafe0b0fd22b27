//! Test support for the fleet layer: real nats-server processes on loopback, started and stopped
//! by the tests and benchmarks that need them.
//!
//! [`Nats::single`] starts one JetStream server, [`Nats::cluster`] a JetStream cluster (three
//! nodes for R3 streams). Each server binds 127.0.0.1 only, on free ports, with its own store
//! directory and config file in a temporary directory, and small JetStream limits. Tests take
//! the client URLs, [`Nats::kill`] a node with SIGKILL, [`Nats::restart`] it on the same store and
//! ports, and wait for a node's health with [`Nats::wait_for`]. Dropping the [`Nats`] kills and
//! reaps every server and removes the directory; on Linux the servers also die with the test
//! process if it is SIGKILLed (see `spawn`).
//!
//! With [`Options::tls`] the client port takes TLS only; [`TestPki`] makes a throw-away CA and
//! server certificates for it in the test.
//!
//! The binary is the pinned release `cargo xtask nats` installs, or `WARDEN_NATS_SERVER`
//! ([`NatsBinary::find`]); servers older than 2.10 are refused.
//!
//! Every wait is bounded and polls a condition (a health endpoint, a process state); none sleeps
//! a fixed time instead. The API blocks: from async code, call it on a multi-threaded runtime
//! through `tokio::task::block_in_place` (or `spawn_blocking`), so the clients' tasks keep
//! running meanwhile.

mod binary;
mod pki;
mod servers;
mod spawn;

use std::path::PathBuf;
use std::time::Duration;

pub use binary::{ENV_VAR, MIN_VERSION, NatsBinary, PINNED_VERSION, Version, pinned_path};
pub use pki::TestPki;
pub use servers::{Health, Nats, Options, ServerTls};
#[cfg(target_os = "linux")]
pub use servers::{live_processes_mentioning, process_is_live};

/// What went wrong finding or running nats-server. `Debug` shows the message too, because tests
/// `expect` these and the message is what says to run `cargo xtask nats` or what the log said.
#[derive(thiserror::Error)]
pub enum Error {
    #[error(
        "nats-server {PINNED_VERSION} is not installed at {path}: run `cargo xtask nats` \
         (or set {ENV_VAR} to a nats-server {MIN_VERSION} or later)"
    )]
    NotInstalled { path: PathBuf },
    #[error("{ENV_VAR} names {path}, which is not a file")]
    EnvPathMissing { path: PathBuf },
    #[error("cannot run {path} --version: {source}")]
    Probe {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} --version said {said:?}, not `nats-server: vX.Y.Z`")]
    UnknownVersion { path: PathBuf, said: String },
    #[error(
        "{path} is nats-server {version}; {MIN_VERSION} or later is needed (on 2.9 async-nats \
         0.51 cannot create a KV bucket and options added in 2.10 are silently dropped, see \
         docs/FLEET.md): run `cargo xtask nats`, or point {ENV_VAR} at a newer one"
    )]
    TooOld { path: PathBuf, version: Version },
    #[error(
        "{path} is nats-server {version}, not the pinned {PINNED_VERSION}: run `cargo xtask nats`"
    )]
    NotPinned { path: PathBuf, version: Version },
    #[error(
        "cannot start {0} node(s): 1 is a single server, 2 or more a cluster (3 for R3 streams)"
    )]
    NodeCount(usize),
    #[error("nats-server {0} is not running")]
    NotRunning(String),
    #[error(
        "{0} cannot be written into a nats-server config (it holds a quote, a backslash or a \
         control character)"
    )]
    UnquotablePath(PathBuf),
    #[error("making a test certificate: {0}")]
    Certificate(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("nats-server {node} exited ({status}) before it was ready; its log ends:\n{log}")]
    Exited {
        node: String,
        status: String,
        log: String,
    },
    #[error(
        "nats-server {node} was not {health} after {waited:?} (last: {last}); its log ends:\n{log}"
    )]
    NotReady {
        node: String,
        health: Health,
        waited: Duration,
        last: String,
        log: String,
    },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
