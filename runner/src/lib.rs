//! Warden: a WebAssembly-extensible automation runner for managed IT service providers.
//!
//! Plugins are WebAssembly components (WIT package `warden:plugin`, in `wit/`) that discover,
//! check and remediate. The [`Runner`] loads them from a content-addressed store, grants each
//! only what its manifest requests and the site policy allows, and contains them with limits.

pub mod api;
pub mod audit;
pub mod author;
pub mod automation;
pub mod bindings;
pub mod bundle;
pub mod capabilities;
pub mod config_schema;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod fsutil;
pub mod grant;
pub mod high_water;
pub mod history;
pub mod host_env;
pub mod install;
pub mod interfaces;
pub mod kv_store;
pub mod limits;
pub mod manifest;
pub mod monitor;
pub mod names;
pub mod policy;
pub mod process;
pub mod record_cache;
pub mod report;
pub mod runbook;
pub mod runtime;
pub mod schedule;
pub mod service_manager;
pub mod store;
pub mod testkit;

pub use capabilities::CancelToken;
pub use error::RunError;
pub use limits::Limit;
pub use manifest::Manifest;
pub use policy::SitePolicy;
pub use report::{Invocation, Output, RunReport};
pub use runtime::{RunRequest, Runner, WarmUp};
