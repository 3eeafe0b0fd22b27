//! How the agent carries out what schedules and monitors decide: runbooks go through the same
//! run queue as API triggers (same validation, concurrency cap, history, audit and cancel), checks
//! run on the runner directly, and automation events are published on `Agent.WatchEvents`.

use super::AgentState;
use super::runs::RunSpec;
use crate::grpc::pb;
use serde_json::json;
use std::sync::Arc;
use warden_automation::{
    AutomationEvent, BoxFuture, CheckLaunch, CheckOutcome, Executor, LaunchError, LaunchOrigin,
    RunOutcome, RunbookLaunch,
};
use warden_core::RunRequest;
use warden_core::report::{Invocation, Output};
use warden_history::now_ms;
use warden_runbook::source;

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
            let triggered = tokio::task::spawn_blocking(move || {
                let fail = |e: &dyn std::fmt::Display| LaunchError(e.to_string());
                let loaded = source::load_file(
                    &req.runbook,
                    state.runner.policy(),
                    state.config.runbooks.signed_only,
                )
                .map_err(|e| fail(&e))?;
                let problems = loaded.runbook.check_plugins(state.runner.as_ref());
                if let Some(first) = problems.first() {
                    return Err(fail(&format!("the runbook cannot run here: {first}")));
                }
                let params = loaded
                    .runbook
                    .resolve_params(&req.params)
                    .map_err(|e| fail(&e))?;
                state
                    .runs
                    .trigger(
                        RunSpec {
                            runbook: loaded.runbook,
                            params,
                            dry_run: req.dry_run,
                            requested_by,
                        },
                        &handle,
                    )
                    .map_err(|e| fail(&e))
            })
            .await
            .map_err(blocking_error)??;
            let finished = triggered
                .done
                .await
                .map_err(|_| LaunchError("the run ended without a result".into()))?;
            Ok(RunOutcome {
                run_id: finished.run_id,
                succeeded: finished.status == "succeeded",
                status: finished.status,
            })
        })
    }

    fn run_check(&self, req: CheckLaunch) -> BoxFuture<Result<CheckOutcome, LaunchError>> {
        let runner = self.state.runner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let mut run =
                    RunRequest::new(&req.plugin, Invocation::Check).with_config(req.config);
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
        })
    }

    fn event(&self, ev: AutomationEvent) {
        let detail = ev.to_json();
        let subject = ["schedule", "monitor"]
            .iter()
            .find_map(|k| detail.get(*k).and_then(|v| v.as_str()))
            .or_else(|| detail.pointer("/incident/monitor").and_then(|v| v.as_str()))
            .unwrap_or_default()
            .to_string();
        let kind = ev.kind().trim_start_matches("automation.").to_string();
        let _ = self.state.events.send(pb::AgentEvent {
            at_ms: now_ms(),
            message: format!("{kind} {subject}"),
            kind,
            subject,
            detail_json: detail.to_string(),
        });
    }
}
