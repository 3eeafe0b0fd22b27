//! Query the state of allow-listed services (WIT `service`): systemd units on Linux, services
//! on Windows.

use std::fmt;

use crate::__private::bindings::warden::plugin::service as wit;
use crate::CapError;

/// The state of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceState {
    /// Up and running.
    Running,
    /// Not running.
    Stopped,
    /// Stopped after a failure.
    Failed,
    /// On its way up.
    Starting,
    /// On its way down.
    Stopping,
    /// The host could not tell.
    Unknown,
}

impl ServiceState {
    /// The WIT name: `running`, `stopped`, `failed`, `starting`, `stopping` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Running => "running",
            ServiceState::Stopped => "stopped",
            ServiceState::Failed => "failed",
            ServiceState::Starting => "starting",
            ServiceState::Stopping => "stopping",
            ServiceState::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The current state of service `name`.
pub fn status(name: &str) -> Result<ServiceState, CapError> {
    Ok(match wit::status(name)? {
        wit::ServiceState::Running => ServiceState::Running,
        wit::ServiceState::Stopped => ServiceState::Stopped,
        wit::ServiceState::Failed => ServiceState::Failed,
        wit::ServiceState::Starting => ServiceState::Starting,
        wit::ServiceState::Stopping => ServiceState::Stopping,
        wit::ServiceState::Unknown => ServiceState::Unknown,
    })
}
