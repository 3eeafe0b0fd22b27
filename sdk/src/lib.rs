//! The Warden plugin SDK: write a discovery, check or remediation plugin in plain Rust and build
//! it for `wasm32-wasip2`. It wraps the `warden:plugin` WIT contract in a trait per role, typed
//! capability modules and a registration macro per role, so plugin code never touches raw bindings.
//!
//! # Choosing the role
//!
//! The role is the macro that registers the plugin type, because it selects the WIT world of the
//! component: [`discovery!`], [`check!`], [`remediation!`], [`check_remediation!`] (a
//! remediation that also checks what it fixes), or [`ticketing!`] (a PSA connector). Each generates the bindings of its world inside
//! the plugin crate, so the SDK itself has no role features and any set of plugins builds
//! together, in one `cargo build --workspace`:
//!
//! ```toml
//! [dependencies]
//! warden-sdk = { path = "../../sdk" }
//! ```
//!
//! # Writing a plugin
//!
//! Implement the role trait (`Discovery`, `Check`, `Remediation`) on a type, parse the
//! configuration with [`config()`], call host capabilities through [`log`], [`exec`], [`fs`],
//! [`sysinfo`], [`kv`], [`http`] and [`service`] (plus [`fs_write`] and [`service_control`] in
//! remediation plugins), and register the type once with its role macro. Each role trait's
//! documentation has a complete example.
//!
//! A built component imports only the capability interfaces the plugin actually calls, so the
//! manifest only needs to request those; and only those its role's world includes: in a plugin
//! that is not a remediation, `fs_write` and `service_control` calls are `denied` without the
//! component importing anything.

#![deny(missing_docs)]

// The generated bindings name the runtime as `warden_sdk::...` so that the export macro works
// from plugin crates; this makes the same path resolve inside the SDK itself.
extern crate self as warden_sdk;

mod config;
mod error;

pub mod check;
pub mod discovery;
pub mod remediation;
pub mod ticketing;

pub mod exec;
pub mod fs;
pub mod fs_write;
pub mod http;
pub mod kv;
pub mod log;
pub mod service;
pub mod service_control;
pub mod sysinfo;

pub use check::{Check, CheckResult, Metric, Status};
pub use config::config;
pub use discovery::{Discovery, Fact, FactGroup, FactValue};
pub use error::{CapError, PluginError};
pub use remediation::{Action, ActionKind, ActionOutcome, OutcomeStatus, Remediation};
pub use ticketing::{IncidentRef, NewTicket, Ticket, TicketNote, Ticketing};

mod roles;

/// Implementation details used by the role macros; not part of the API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
