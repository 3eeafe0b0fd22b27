//! Start, stop and restart allow-listed services (WIT `service-control`). Only remediation
//! plugins may use it, and only from `apply`: any other plugin that calls it still compiles, but
//! its component imports `service-control`, which the runner refuses to load.

use crate::__private::bindings::warden::plugin::service_control as wit;
use crate::CapError;

/// Start service `name`.
pub fn start(name: &str) -> Result<(), CapError> {
    Ok(wit::start(name)?)
}

/// Stop service `name`.
pub fn stop(name: &str) -> Result<(), CapError> {
    Ok(wit::stop(name)?)
}

/// Restart service `name`.
pub fn restart(name: &str) -> Result<(), CapError> {
    Ok(wit::restart(name)?)
}
