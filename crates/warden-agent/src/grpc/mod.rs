//! The agent's gRPC API (tonic), defined in `proto/warden/v1/warden.proto`: runbooks (trigger,
//! watch, list, cancel), plugins, inventory, and the agent itself, plus the standard gRPC health
//! service. [`auth`] guards every method; docs/API.md lists each method's role and errors.

mod agent;
pub mod auth;
pub mod enroll_client;
mod events;
pub mod fit;
mod plugins;
mod runbooks;
pub mod server;
pub mod streams;

pub use agent::AgentApi;
pub use plugins::PluginsApi;
pub use runbooks::RunbooksApi;

pub use warden_proto::{DESCRIPTOR_SET, pb};

/// The WIT package plugins are built against.
pub const WIT_PACKAGE: &str = "warden:plugin@0.1.0";

use crate::daemon::AgentState;
use std::sync::Arc;
use tonic::{Request, Status};

/// The authenticated caller the auth layer attached to a request.
pub(crate) fn caller<T>(req: &Request<T>) -> Result<auth::Caller, Status> {
    req.extensions()
        .get::<auth::Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

/// Run blocking work (store, history, audit, compile) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("task failed: {e}")))?
}

/// The shared state handlers work on.
pub(crate) type State = Arc<AgentState>;
