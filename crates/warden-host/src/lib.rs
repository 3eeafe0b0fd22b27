//! The sandbox: the wasmtime engine and its precompiled cache, the host bindings generated from
//! `wit/`, one file per capability behind the one permission chokepoint, the import check, and
//! what the capabilities act on (the host environment: files, processes, service managers,
//! machine facts, kv state). It depends on `warden-core` only, writes no audit record and keeps
//! no history: it runs a component under a grant and returns what happened, and its caller
//! records it.

pub mod bindings;
pub mod capabilities;
mod convert;
pub mod engine;
pub mod host_env;
pub mod http_client;
pub mod interfaces;
pub mod kv_store;
pub mod process;
pub mod sandbox;
pub mod service_manager;
pub mod sysinfo_source;
pub use sandbox::{Job, Prepared, Sandbox, SandboxConfig};
