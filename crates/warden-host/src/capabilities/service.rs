//! `warden:plugin/service` and `warden:plugin/service-control`: status and control of granted
//! services through the site's service manager, bounded by the run's deadline.

use super::{CapFailure, HostState};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::service::{Host as StatusHost, ServiceState as WitState};
use crate::bindings::warden::plugin::service_control::Host as ControlHost;
use crate::service_manager::{ServiceAction, ServiceError, ServiceState};
use warden_core::error::RunError;
use warden_core::grant::Operation;
use warden_core::names::validate_service_name;

impl HostState {
    fn service_call(
        &mut self,
        name: &str,
        action: Option<ServiceAction>,
    ) -> Result<Option<ServiceState>, CapFailure> {
        let cx = &mut self.cx;
        let (op, function) = match action {
            None => (Operation::ServiceStatus { name }, "status"),
            Some(a) => (
                Operation::ServiceControl {
                    name,
                    action: a.as_str(),
                },
                a.as_str(),
            ),
        };
        let capability = op.capability().interface();
        if let Err(why) = validate_service_name(name) {
            cx.record(capability, function, name, &[], Some(why.clone()))?;
            return Err(CapError::Invalid(why).into());
        }
        cx.authorize(op, function, name, &[])?;
        let timeout = cx.remaining()?.min(cx.grant.limits.exec_timeout);
        let cancel = cx.cancel.clone();
        let cancelled = move || cancel.is_cancelled();
        let result = match action {
            None => cx.env.services.status(name, timeout, &cancelled).map(Some),
            Some(a) => cx
                .env
                .services
                .control(name, a, timeout, &cancelled)
                .map(|()| None),
        };
        result.map_err(|e| match e {
            ServiceError::NotFound(s) => CapError::NotFound(s).into(),
            ServiceError::TimedOut => match cx.remaining() {
                Err(stop) => stop,
                Ok(_) => CapError::TimedOut.into(),
            },
            ServiceError::Cancelled => cx.stop(RunError::Cancelled),
            ServiceError::Failed(m) => CapError::Failed(m).into(),
            ServiceError::Unsupported(m) => CapError::Unsupported(m).into(),
        })
    }
}

impl StatusHost for HostState {
    fn status(&mut self, name: String) -> Result<WitState, CapFailure> {
        let state = self.service_call(&name, None)?;
        Ok(match state {
            Some(ServiceState::Running) => WitState::Running,
            Some(ServiceState::Stopped) => WitState::Stopped,
            Some(ServiceState::Failed) => WitState::Failed,
            Some(ServiceState::Starting) => WitState::Starting,
            Some(ServiceState::Stopping) => WitState::Stopping,
            Some(ServiceState::Unknown) | None => WitState::Unknown,
        })
    }
}

impl ControlHost for HostState {
    fn start(&mut self, name: String) -> Result<(), CapFailure> {
        self.service_call(&name, Some(ServiceAction::Start))
            .map(drop)
    }

    fn stop(&mut self, name: String) -> Result<(), CapFailure> {
        self.service_call(&name, Some(ServiceAction::Stop))
            .map(drop)
    }

    fn restart(&mut self, name: String) -> Result<(), CapFailure> {
        self.service_call(&name, Some(ServiceAction::Restart))
            .map(drop)
    }
}
