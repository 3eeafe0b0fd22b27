//! `{{name}}`: a Warden remediation plugin. `plan` proposes restarting the configured service
//! when it is not running; `apply` checks again, restarts it, and reports success only when it
//! runs afterwards.

use serde::Deserialize;
use warden_sdk::{
    Action, ActionKind, ActionOutcome, PluginError, Remediation, log,
    service::{self, ServiceState},
    service_control,
};

/// The configuration; the runner has already checked it against `plugin.toml`'s schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    service: String,
}

impl Config {
    /// The id of the one action this plugin plans, so `apply` can recognise it.
    fn action_id(&self) -> String {
        format!("restart-{}", self.service)
    }
}

struct Plugin;

impl Remediation for Plugin {
    fn plan(config: &str) -> Result<Vec<Action>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let state = service::status(&config.service)?;
        if state == ServiceState::Running {
            return Ok(Vec::new());
        }
        Ok(vec![Action::new(
            config.action_id(),
            ActionKind::ServiceRestart,
            config.service.as_str(),
            format!("restart {} (it is {state})", config.service),
        )])
    }

    fn apply(config: &str, actions: Vec<Action>) -> Result<Vec<ActionOutcome>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        Ok(actions
            .iter()
            .map(|action| apply_one(&config, action))
            .collect())
    }
}

fn apply_one(config: &Config, action: &Action) -> ActionOutcome {
    // The approved list may have been edited: act only on the action this plugin would plan.
    if action.id != config.action_id()
        || action.kind != ActionKind::ServiceRestart
        || action.target != config.service
    {
        return ActionOutcome::skipped(
            action,
            format!("not a restart of the configured service {}", config.service),
        );
    }
    // The plan may be stale: the service may have come back since.
    match service::status(&config.service) {
        Ok(ServiceState::Running) => return ActionOutcome::skipped(action, "already running"),
        Ok(_) => {}
        Err(e) => return ActionOutcome::failed(action, format!("status failed: {e}")),
    }
    if let Err(e) = service_control::restart(&config.service) {
        return ActionOutcome::failed(action, format!("restart failed: {e}"));
    }
    log::info("restarted", &[("service", &config.service)]);
    match service::status(&config.service) {
        Ok(ServiceState::Running) => ActionOutcome::applied(action, "restarted; now running"),
        Ok(state) => ActionOutcome::failed(action, format!("restarted, but it is {state}")),
        Err(e) => ActionOutcome::failed(action, format!("restarted, but status failed: {e}")),
    }
}

warden_sdk::remediation!(Plugin);
