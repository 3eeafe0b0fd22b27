//! Host bindings generated once from `wit/` (world `runner-host`, the union of every role).
//! Host functions may trap (`trappable`) so that a deadline or a limit can end the plugin, while
//! expected failures travel to the plugin as `cap-error` values.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "runner-host",
    imports: { default: trappable },
    trappable_error_type: {
        "warden:plugin/types.cap-error" => crate::capabilities::CapFailure,
    },
});

pub use self::exports::warden::plugin::{check, discovery, remediation, ticketing};
pub use self::warden::plugin::types::{CapError, Field, PluginError};
