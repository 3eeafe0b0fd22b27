//! The Warden plugin SDK: write a discovery, check or remediation plugin in plain Rust and build
//! it for `wasm32-wasip2`. It wraps the `warden:plugin` WIT contract in a trait per role, typed
//! capability modules and one registration macro, so plugin code never touches raw bindings.
//!
//! # Choosing the role
//!
//! The role is a cargo feature, because it selects the WIT world embedded in the component:
//! `discovery`, `check`, `remediation`, or `check` + `remediation` (a remediation that also
//! checks what it fixes). Exactly one of these combinations must be enabled:
//!
//! ```toml
//! [dependencies]
//! warden-sdk = { path = "../../sdk", features = ["check"] }
//! ```
//!
//! # Writing a plugin
//!
//! Implement the role trait (`Discovery`, `Check`, `Remediation`) on a type, parse the
//! configuration with [`config()`], call host capabilities through [`log`], [`exec`], [`fs`],
//! [`sysinfo`], [`kv`], [`http`] and [`service`] (plus `fs_write` and `service_control` for
//! remediation plugins), and register the type once with [`export_plugin!`]. Each role trait's
//! documentation has a complete example.
//!
//! A built component imports only the capability interfaces the plugin actually calls, so the
//! manifest only needs to request those.

#![deny(missing_docs)]

#[cfg(not(any(feature = "discovery", feature = "check", feature = "remediation")))]
compile_error!(
    "warden-sdk needs a role feature: `discovery`, `check`, `remediation`, or `check` + `remediation`"
);

#[cfg(all(feature = "discovery", any(feature = "check", feature = "remediation")))]
compile_error!(
    "warden-sdk: the `discovery` role cannot be combined with `check` or `remediation`; \
     build discovery as a plugin of its own"
);

// The generated bindings name the runtime as `warden_sdk::...` so that the export macro works
// from plugin crates; this makes the same path resolve inside the SDK itself.
extern crate self as warden_sdk;

mod config;
mod error;

#[cfg(feature = "check")]
pub mod check;
#[cfg(feature = "discovery")]
pub mod discovery;
#[cfg(feature = "remediation")]
pub mod remediation;

pub mod exec;
pub mod fs;
#[cfg(feature = "remediation")]
pub mod fs_write;
pub mod http;
pub mod kv;
pub mod log;
pub mod service;
#[cfg(feature = "remediation")]
pub mod service_control;
pub mod sysinfo;

#[cfg(feature = "check")]
pub use check::{Check, CheckResult, Metric, Status};
pub use config::config;
#[cfg(feature = "discovery")]
pub use discovery::{Discovery, Fact, FactGroup, FactValue};
pub use error::{CapError, PluginError};
#[cfg(feature = "remediation")]
pub use remediation::{Action, ActionKind, ActionOutcome, OutcomeStatus, Remediation};

/// Register `$plugin` as this component's plugin. Call it exactly once per plugin crate.
///
/// The type must implement the trait of every role the SDK's features enable: `Discovery`;
/// `Check`; `Remediation`; or both `Check` and `Remediation`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        // The generated export glue is `unsafe extern "C"`; it is the SDK's, not the plugin's.
        #[allow(unsafe_code)]
        const _: () = {
            type __WardenPlugin = $crate::__private::Adapter<$plugin>;
            $crate::__private::bindings::__warden_export_world!(
                __WardenPlugin with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Implementation details used by [`export_plugin!`]; not part of the API.
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
