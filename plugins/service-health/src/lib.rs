//! `service-health`: a check and remediation plugin for one service. The check reports whether
//! it runs; the plan proposes a restart when it does not; apply restarts it and reports success
//! only when the service is running afterwards.

use serde::Deserialize;
use warden_sdk::{
    Action, ActionKind, ActionOutcome, Check, CheckResult, PluginError, Remediation, Status,
    service::{self, ServiceState},
    service_control,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    service: String,
}

impl Config {
    fn parse(json: &str) -> Result<Config, PluginError> {
        let config: Config = warden_sdk::config(json)?;
        if config.service.trim().is_empty() {
            return Err(PluginError::bad_config("service must name a service"));
        }
        Ok(config)
    }
}

fn judge(state: ServiceState) -> Status {
    match state {
        ServiceState::Running => Status::Ok,
        ServiceState::Stopped | ServiceState::Failed => Status::Critical,
        ServiceState::Starting | ServiceState::Stopping => Status::Warning,
        ServiceState::Unknown => Status::Unknown,
    }
}

struct ServiceHealth;

impl Check for ServiceHealth {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config = Config::parse(config)?;
        let state = service::status(&config.service)?;
        let running = if state == ServiceState::Running {
            1.0
        } else {
            0.0
        };
        Ok(CheckResult::new(
            judge(state),
            format!("service {} is {state}", config.service),
        )
        .metric("running", running, ""))
    }
}

impl Remediation for ServiceHealth {
    fn plan(config: &str) -> Result<Vec<Action>, PluginError> {
        let config = Config::parse(config)?;
        let state = service::status(&config.service)?;
        if state == ServiceState::Running {
            return Ok(Vec::new());
        }
        Ok(vec![Action::new(
            "restart",
            ActionKind::ServiceRestart,
            config.service.as_str(),
            format!("restart {} (currently {state})", config.service),
        )])
    }

    fn apply(config: &str, actions: Vec<Action>) -> Result<Vec<ActionOutcome>, PluginError> {
        let config = Config::parse(config)?;
        Ok(actions
            .iter()
            .map(|action| restart(&config, action))
            .collect())
    }
}

fn restart(config: &Config, action: &Action) -> ActionOutcome {
    if action.kind != ActionKind::ServiceRestart {
        return ActionOutcome::skipped(action, "not a restart action");
    }
    // Only the configured service: an edited action list must not restart anything else.
    if action.target != config.service {
        return ActionOutcome::skipped(
            action,
            format!("{} is not the configured service", action.target),
        );
    }
    if let Err(e) = service_control::restart(&action.target) {
        return ActionOutcome::failed(action, format!("restart failed: {e}"));
    }
    match service::status(&action.target) {
        Ok(ServiceState::Running) => ActionOutcome::applied(action, "restarted; now running"),
        Ok(state) => ActionOutcome::failed(action, format!("restarted but now {state}")),
        Err(e) => ActionOutcome::failed(action, format!("restarted but status failed: {e}")),
    }
}

warden_sdk::check_remediation!(ServiceHealth);
