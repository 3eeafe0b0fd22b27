//! How the agent carries out what schedules and monitors decide: runbooks go through the same
//! run queue as API triggers (same validation, concurrency cap, history, audit and cancel), checks
//! run on the runner directly (a built-in check such as `builtin:drift` around its plugin), and
//! automation events are published on `Agent.WatchEvents`.

use super::AgentState;
use super::events::AgentEvent;
use super::trigger::{RunbookSource, TriggerRequest};
use serde_json::json;
use std::sync::Arc;
use warden_automation::baseline::{BuiltinCheck, DriftCheckConfig, check};
use warden_automation::{
    AutomationEvent, BoxFuture, CheckLaunch, CheckOutcome, Executor, LaunchError, LaunchOrigin,
    RunOutcome, RunbookLaunch,
};
use warden_core::RunRequest;
use warden_core::report::{CheckStatus, Invocation, Output};
use warden_history::{History, now_ms};

/// The key of a monitor event's detail naming the check its monitor runs.
pub const MONITOR_PLUGIN: &str = "monitor_plugin";

pub struct DaemonExecutor {
    pub state: Arc<AgentState>,
    pub handle: tokio::runtime::Handle,
}

fn blocking_error(e: tokio::task::JoinError) -> LaunchError {
    LaunchError(format!("the task failed: {e}"))
}

impl Executor for DaemonExecutor {
    fn run_runbook(&self, req: RunbookLaunch) -> BoxFuture<Result<RunOutcome, LaunchError>> {
        let state = self.state.clone();
        let handle = self.handle.clone();
        Box::pin(async move {
            let requested_by = match &req.origin {
                LaunchOrigin::Schedule { name, .. } => format!("schedule:{name}"),
                LaunchOrigin::Monitor { name, .. } => format!("monitor:{name}"),
            };
            let request = TriggerRequest {
                source: RunbookSource::File(req.runbook),
                params: req.params,
                dry_run: req.dry_run,
                requested_by,
            };
            let triggered =
                tokio::task::spawn_blocking(move || state.trigger_runbook(request, &handle))
                    .await
                    .map_err(blocking_error)?
                    .map_err(|e| LaunchError(e.to_string()))?;
            let finished = triggered
                .done
                .await
                .map_err(|_| LaunchError("the run ended without a result".into()))?;
            Ok(RunOutcome {
                run_id: finished.run_id,
                status: finished.status,
            })
        })
    }

    fn run_check(&self, req: CheckLaunch) -> BoxFuture<Result<CheckOutcome, LaunchError>> {
        let runner = self.state.runner.clone();
        let history = self.state.runs.history().clone();
        let metrics = runner.metrics().clone();
        Box::pin(async move {
            let outcome = run_check(runner, history, req).await;
            metrics.monitor_checked(match &outcome {
                Ok(c) => match c.status {
                    CheckStatus::Ok => "ok",
                    CheckStatus::Warning => "warning",
                    CheckStatus::Critical => "critical",
                    CheckStatus::Unknown => "unknown",
                },
                Err(_) => "error",
            });
            outcome
        })
    }

    fn event(&self, ev: AutomationEvent) {
        if let Some(tickets) = &self.state.tickets {
            tickets.on_event(&ev);
        }
        let mut detail = ev.to_json();
        let subject = ["schedule", "monitor"]
            .iter()
            .find_map(|k| detail.get(*k).and_then(|v| v.as_str()))
            .or_else(|| detail.pointer("/incident/monitor").and_then(|v| v.as_str()))
            .unwrap_or_default()
            .to_string();
        // A monitor's event names the check it runs (`builtin:drift`, a compliance check):
        // the fleet's client report tells drift and compliance evidence by it.
        let monitor = detail
            .get("monitor")
            .or_else(|| detail.pointer("/incident/monitor"))
            .and_then(|v| v.as_str());
        let plugin = monitor.and_then(|name| {
            self.state
                .config
                .monitors
                .iter()
                .find(|m| m.name == name)
                .map(|m| m.plugin.clone())
        });
        if let (Some(plugin), Some(map)) = (plugin, detail.as_object_mut()) {
            map.insert(MONITOR_PLUGIN.into(), plugin.into());
        }
        let kind = ev.kind().trim_start_matches("automation.").to_string();
        let _ = self.state.events.send(AgentEvent {
            at_ms: now_ms(),
            message: ev.summary(),
            kind,
            subject,
            detail,
        });
    }
}

/// One check: a built-in one around its plugin, or the plugin's `check`, off the async workers.
async fn run_check(
    runner: Arc<crate::PluginManager>,
    history: Arc<History>,
    req: CheckLaunch,
) -> Result<CheckOutcome, LaunchError> {
    tokio::task::spawn_blocking(move || {
        // Validated when the config was loaded; parsed again for its typed config.
        if let Some(BuiltinCheck::Drift(drift)) =
            BuiltinCheck::parse(&req.plugin, &req.config).map_err(LaunchError)?
        {
            return drift_check(&runner, &history, &req.monitor, &drift);
        }
        let mut run = RunRequest::new(&req.plugin, Invocation::Check).with_config(req.config);
        run.audit_context = json!({ "monitor": req.monitor });
        match runner.run(&run).result {
            Ok(Output::Check(c)) => Ok(CheckOutcome {
                status: c.status,
                summary: c.summary,
            }),
            Ok(_) => Err(LaunchError(format!(
                "{} did not return a check result",
                req.plugin
            ))),
            Err(e) => Err(LaunchError(e.to_string())),
        }
    })
    .await
    .map_err(blocking_error)?
}

/// `builtin:drift`: a fresh inventory from the discovery plugin, sandboxed, audited and
/// limited like any run, compared with the latest baseline.
fn drift_check(
    runner: &crate::PluginManager,
    history: &History,
    monitor: &str,
    drift: &DriftCheckConfig,
) -> Result<CheckOutcome, LaunchError> {
    let mut run =
        RunRequest::new(&drift.plugin, Invocation::Discover).with_config(drift.config.clone());
    run.audit_context = json!({ "monitor": monitor, "check": "builtin:drift" });
    let report = runner.run(&run);
    let version = report
        .plugin
        .as_ref()
        .map(|p| p.version.clone())
        .unwrap_or_default();
    match report.result {
        Ok(Output::Facts(facts)) => {
            Ok(check::drift_check(history, &drift.plugin, &version, &facts))
        }
        Ok(_) => Err(LaunchError(format!(
            "{} did not return facts for the drift check",
            drift.plugin
        ))),
        Err(e) => Err(LaunchError(e.to_string())),
    }
}
