//! The agent: the plugin manager over the sandbox (content-addressed store, install from bytes,
//! rollback high-water marks, the audit of every install, removal and run), the daemon's run
//! queue with its domain events, schedules and monitors wired to it, and the gRPC adapter with
//! `serve(listener, shutdown)`. Protobuf types appear only in [`grpc`].

pub mod daemon;
pub mod fleet;
pub mod grpc;
pub mod install;
pub mod metrics;
pub mod plugins;
pub mod record_cache;
pub mod site_policy;
pub mod store;
pub mod tickets;

pub use plugins::{PluginManager, WarmUp};
pub use warden_core::RunRequest;
