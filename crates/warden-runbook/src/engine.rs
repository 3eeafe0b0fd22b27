//! Executing a runbook: steps in order, each gated by its condition, retried with backoff
//! (a timed-out step only when it says that is safe), with stop / continue / fallback on
//! failure. A dry run calls `plan` and never `apply`. Every run and step goes to the history,
//! every capability use and every apply to the audit log; an apply that cannot be audited does
//! not happen.

use super::expr::{Budget, Vars, render_value};
use super::{OnFailure, Runbook, Step, StepAction};
use crate::StepRunner;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use warden_audit::AuditLog;
use warden_audit::Pending;
use warden_core::CancelToken;
use warden_core::error::RunError;
use warden_core::limits::Limit;
use warden_core::report::{Invocation, Output, RunReport};
use warden_core::{RunRequest, RunStatus};
use warden_history::{History, StepResult};

/// What a step ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepStatus {
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    /// The word the history and the API use (as serde writes it).
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// Progress, for a display or a stream.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum RunEvent {
    RunStarted {
        run_id: String,
        runbook: String,
        steps: usize,
        dry_run: bool,
    },
    StepStarted {
        index: usize,
        step: String,
        plugin: String,
        attempt: u32,
    },
    StepRetrying {
        index: usize,
        step: String,
        attempt: u32,
        error: String,
        backoff_ms: u64,
    },
    StepFinished {
        index: usize,
        step: String,
        status: StepStatus,
        summary: String,
        duration_ms: u64,
    },
    /// A line the step's plugin logged (sent when the plugin call returns).
    StepLog {
        index: usize,
        step: String,
        level: String,
        message: String,
    },
    RunFinished {
        run_id: String,
        status: RunStatus,
    },
}

/// How to run: dry or not, under an id reserved beforehand (a queued run), cancellable.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Plan remediations, never apply.
    pub dry_run: bool,
    /// An id from [`History::queue_run`]; a new one is made when `None`.
    pub run_id: Option<String>,
    /// Cancelling stops the running plugin (and its child processes) and starts no later step.
    pub cancel: CancelToken,
}

/// One step's outcome in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct StepSummary {
    pub step: String,
    pub plugin: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub summary: String,
    /// The plan a remediation made (what a dry run would change).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of a runbook run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub runbook: String,
    pub dry_run: bool,
    pub status: RunStatus,
    pub steps: Vec<StepSummary>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    History(#[from] warden_history::HistoryError),
    #[error(transparent)]
    Audit(#[from] warden_audit::AuditError),
}

/// Executes runbooks through a step runner, recording to a history and the audit log.
pub struct Engine<'a> {
    pub runner: &'a dyn StepRunner,
    pub history: &'a History,
    pub audit: &'a AuditLog,
}

/// Per-run settings the steps read.
struct Call<'a> {
    run_id: &'a str,
    cancel: &'a CancelToken,
}

/// One try: the final result, the plan made on the way, and the last plugin report.
struct Tried {
    result: Result<Output, RunError>,
    plan: Option<Value>,
    report: RunReport,
}

/// What the steps of one run share.
struct RunState {
    run_id: String,
    params: Value,
    steps: serde_json::Map<String, Value>,
    dry_run: bool,
    cancel: CancelToken,
}

struct Attempted {
    status: StepStatus,
    attempts: u32,
    output: Value,
    summary: String,
    plan: Option<Value>,
    error: Option<String>,
    last: Option<RunReport>,
}

fn summarize(output: &Output) -> String {
    match output {
        Output::Facts(g) => format!("{} fact group(s)", g.len()),
        Output::Check(c) => format!(
            "{}: {}",
            serde_json::to_value(c.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            c.summary
        ),
        Output::Plan(a) if a.is_empty() => "nothing to change".into(),
        Output::Plan(a) => format!("{} change(s) planned", a.len()),
        Output::Applied(o) => format!(
            "{} action(s) applied",
            o.iter()
                .filter(|o| o.status == warden_core::report::OutcomeStatus::Applied)
                .count()
        ),
        Output::Ticket(t) => format!("ticket {}", t.id),
    }
}

impl Engine<'_> {
    fn call(
        &self,
        run: &Call<'_>,
        step: &Step,
        config: &Value,
        invocation: Invocation,
    ) -> Result<RunReport, EngineError> {
        let mut req = RunRequest::new(&step.plugin, invocation).with_config(config.clone());
        req.timeout = step.timeout;
        req.cancel = run.cancel.clone();
        req.audit_context = json!({ "run": run.run_id, "step": step.id });
        Ok(self.runner.run(&req))
    }

    /// One try of a step: the plugin call(s) for its action.
    fn try_once(
        &self,
        run: &Call<'_>,
        step: &Step,
        config: &Value,
        dry_run: bool,
    ) -> Result<Tried, EngineError> {
        let first = match step.action {
            StepAction::Discover => Invocation::Discover,
            StepAction::Check => Invocation::Check,
            StepAction::Plan | StepAction::Apply => Invocation::Plan,
        };
        let report = self.call(run, step, config, first)?;
        let plan = match &report.result {
            Ok(Output::Plan(actions)) => Some(serde_json::to_value(actions).unwrap_or_default()),
            _ => None,
        };
        if step.action != StepAction::Apply || dry_run {
            return Ok(Tried {
                result: report.result.clone(),
                plan,
                report,
            });
        }
        let Ok(Output::Plan(actions)) = &report.result else {
            return Ok(Tried {
                result: report.result.clone(),
                plan,
                report,
            });
        };
        if actions.is_empty() {
            return Ok(Tried {
                result: Ok(Output::Applied(vec![])),
                plan,
                report,
            });
        }
        // `Runner::run` records the apply, fsync'd, before anything changes; if it cannot, nothing is applied.
        let applied = self.call(run, step, config, Invocation::Apply(actions.clone()))?;
        Ok(Tried {
            result: applied.result.clone(),
            plan,
            report: applied,
        })
    }

    fn attempt(
        &self,
        run: &Call<'_>,
        index: usize,
        step: &Step,
        config: &Value,
        dry_run: bool,
        on_event: &mut dyn FnMut(&RunEvent),
    ) -> Result<Attempted, EngineError> {
        let mut attempt = 1;
        loop {
            on_event(&RunEvent::StepStarted {
                index,
                step: step.id.clone(),
                plugin: step.plugin.clone(),
                attempt,
            });
            let Tried {
                result,
                plan,
                report,
            } = self.try_once(run, step, config, dry_run)?;
            for line in &report.logs {
                on_event(&RunEvent::StepLog {
                    index,
                    step: step.id.clone(),
                    level: line.level.clone(),
                    message: line.message.clone(),
                });
            }
            match result {
                Ok(output) => {
                    let status = match &output {
                        Output::Check(c) => serde_json::to_value(c.status).unwrap_or_default(),
                        _ => Value::String(String::new()),
                    };
                    let summary = if dry_run && step.action == StepAction::Apply {
                        format!("dry run: {}", summarize(&output))
                    } else {
                        summarize(&output)
                    };
                    let out = json!({ "ok": true, "skipped": false, "status": status, "output": output, "plan": plan.clone().unwrap_or(Value::Null), "error": "" });
                    return Ok(Attempted {
                        status: StepStatus::Succeeded,
                        attempts: attempt,
                        output: out,
                        summary,
                        plan,
                        error: None,
                        last: Some(report),
                    });
                }
                Err(e) => {
                    let timed_out = matches!(e, RunError::LimitExceeded(Limit::Timeout { .. }));
                    let retry = attempt < step.retries.attempts
                        && (!timed_out || step.retries.retry_on_timeout)
                        && e.is_retryable();
                    if !retry {
                        let out = json!({ "ok": false, "skipped": false, "status": "", "output": Value::Null, "plan": plan.clone().unwrap_or(Value::Null), "error": e.to_string() });
                        return Ok(Attempted {
                            status: StepStatus::Failed,
                            attempts: attempt,
                            output: out,
                            summary: e.to_string(),
                            plan,
                            error: Some(e.to_string()),
                            last: Some(report),
                        });
                    }
                    let backoff = warden_core::retry::Retry::fixed(
                        Duration::from_millis(step.retries.backoff_ms),
                        super::MAX_BACKOFF,
                    )
                    .pause(attempt);
                    on_event(&RunEvent::StepRetrying {
                        index,
                        step: step.id.clone(),
                        attempt,
                        error: e.to_string(),
                        backoff_ms: backoff.as_millis() as u64,
                    });
                    if run.cancel.wait(backoff) {
                        let out = json!({ "ok": false, "skipped": false, "status": "", "output": Value::Null, "plan": Value::Null, "error": RunError::Cancelled.to_string() });
                        return Ok(Attempted {
                            status: StepStatus::Failed,
                            attempts: attempt,
                            output: out,
                            summary: RunError::Cancelled.to_string(),
                            plan,
                            error: Some(RunError::Cancelled.to_string()),
                            last: Some(report),
                        });
                    }
                    attempt += 1;
                }
            }
        }
    }

    /// Run one step (condition, config rendering, attempts), record it, and return its summary.
    fn run_step(
        &self,
        state: &mut RunState,
        index: usize,
        step: &Step,
        on_event: &mut dyn FnMut(&RunEvent),
    ) -> Result<StepSummary, EngineError> {
        let started = Instant::now();
        let (run_id, params, dry_run) = (state.run_id.as_str(), &state.params, state.dry_run);
        let call = Call {
            run_id,
            cancel: &state.cancel,
        };
        let steps = &mut state.steps;
        self.history.start_step(
            run_id,
            index,
            &step.id,
            &step.plugin,
            &format!("{:?}", step.action).to_lowercase(),
        )?;
        let context = Value::Object(steps.clone());
        let (gate, config) = {
            // The condition and every template of the step share one budget.
            let vars = Vars::new(params, &context);
            let mut budget = Budget::default();
            let gate = match &step.when {
                None => Ok(true),
                Some(e) => e.eval_bool(&vars, &mut budget).map_err(|e| e.to_string()),
            };
            let config = gate.clone().and_then(|_| {
                render_value(&step.config, &vars, &mut budget).map_err(|e| e.to_string())
            });
            (gate, config)
        };
        let attempted = match (gate, config) {
            (Ok(false), _) => Attempted {
                status: StepStatus::Skipped,
                attempts: 0,
                output: json!({ "ok": true, "skipped": true, "status": "", "output": Value::Null, "plan": Value::Null, "error": "" }),
                summary: format!(
                    "skipped: `{}` is false",
                    step.when
                        .as_ref()
                        .map(|w| w.source.as_str())
                        .unwrap_or_default()
                ),
                plan: None,
                error: None,
                last: None,
            },
            (Err(e), _) | (Ok(true), Err(e)) => Attempted {
                status: StepStatus::Failed,
                attempts: 0,
                output: json!({ "ok": false, "skipped": false, "status": "", "output": Value::Null, "plan": Value::Null, "error": e }),
                summary: e.clone(),
                plan: None,
                error: Some(e),
                last: None,
            },
            (Ok(true), Ok(config)) => {
                self.attempt(&call, index, step, &config, dry_run, on_event)?
            }
        };
        let plugin = attempted.last.as_ref().and_then(|r| r.plugin.clone());
        if step.action == StepAction::Discover
            && attempted.status == StepStatus::Succeeded
            && let Some(p) = &plugin
        {
            self.history
                .record_inventory(&step.plugin, &p.version, &attempted.output["output"])?;
        }
        let logs = attempted
            .last
            .as_ref()
            .map(|r| serde_json::to_value(&r.logs).unwrap_or_default())
            .unwrap_or(json!([]));
        self.history.finish_step(
            run_id,
            index,
            &StepResult {
                status: serde_json::to_value(attempted.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                attempts: attempted.attempts,
                version: plugin.as_ref().map(|p| p.version.clone()),
                sha256: plugin.as_ref().map(|p| p.sha256.clone()),
                output: attempted.output.clone(),
                logs,
                error: attempted.error.clone(),
            },
        )?;
        steps.insert(step.id.clone(), attempted.output);
        on_event(&RunEvent::StepFinished {
            index,
            step: step.id.clone(),
            status: attempted.status,
            summary: attempted.summary.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
        Ok(StepSummary {
            step: step.id.clone(),
            plugin: step.plugin.clone(),
            status: attempted.status,
            attempts: attempted.attempts,
            summary: attempted.summary,
            plan: attempted.plan,
            error: attempted.error,
        })
    }

    /// Run `runbook` with resolved `params`.
    pub fn run(
        &self,
        runbook: &Runbook,
        params: &Value,
        dry_run: bool,
        on_event: &mut dyn FnMut(&RunEvent),
    ) -> Result<RunSummary, EngineError> {
        let options = RunOptions {
            dry_run,
            ..RunOptions::default()
        };
        self.run_with(runbook, params, options, on_event)
    }

    /// Run `runbook` with resolved `params` and explicit [`RunOptions`].
    pub fn run_with(
        &self,
        runbook: &Runbook,
        params: &Value,
        options: RunOptions,
        on_event: &mut dyn FnMut(&RunEvent),
    ) -> Result<RunSummary, EngineError> {
        let RunOptions {
            dry_run,
            run_id,
            cancel,
        } = options;
        let run_id = self.history.start_run_as(
            run_id.as_deref(),
            &runbook.name,
            &runbook.file,
            params,
            dry_run,
        )?;
        // Group-committed: neither record changes the machine, and an apply step's own durable
        // record flushes everything queued before it (see docs/SECURITY.md).
        self.audit.append_lazy(vec![
            Pending::new("run.started", &json!({ "run": run_id, "runbook": runbook.name, "file": runbook.file, "params": params, "dry_run": dry_run }))
                .map_err(warden_audit::AuditError::from)?,
        ])?;
        on_event(&RunEvent::RunStarted {
            run_id: run_id.clone(),
            runbook: runbook.name.clone(),
            steps: runbook.steps.iter().filter(|s| !s.fallback_only).count(),
            dry_run,
        });
        let mut state = RunState {
            run_id: run_id.clone(),
            params: params.clone(),
            steps: serde_json::Map::new(),
            dry_run,
            cancel,
        };
        let mut summaries = Vec::new();
        let mut failed = None;
        for (index, step) in runbook
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.fallback_only)
        {
            if state.cancel.is_cancelled() {
                break;
            }
            let summary = self.run_step(&mut state, index, step, on_event)?;
            let step_failed = summary.status == StepStatus::Failed;
            summaries.push(summary);
            if !step_failed {
                continue;
            }
            match step.on_failure {
                OnFailure::Continue => {}
                OnFailure::Stop => {
                    failed = Some(format!("step `{}` failed", step.id));
                    break;
                }
                OnFailure::Fallback => {
                    for name in &step.fallback {
                        // A cancelled run starts nothing more, its fallback included (the step
                        // may have failed because it was cancelled).
                        if state.cancel.is_cancelled() {
                            break;
                        }
                        if let Some((fi, fs)) = runbook
                            .steps
                            .iter()
                            .enumerate()
                            .find(|(_, s)| &s.id == name)
                        {
                            summaries.push(self.run_step(&mut state, fi, fs, on_event)?);
                        }
                    }
                    failed = Some(format!("step `{}` failed; fallback ran", step.id));
                    break;
                }
            }
        }
        let status = if state.cancel.is_cancelled() {
            failed = Some("cancelled".into());
            RunStatus::Cancelled
        } else if failed.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        self.history
            .finish_run(&run_id, status.as_str(), failed.as_deref())?;
        self.audit.append_lazy(vec![
            Pending::new(
                "run.finished",
                &json!({ "run": run_id, "status": status, "error": failed }),
            )
            .map_err(warden_audit::AuditError::from)?,
        ])?;
        on_event(&RunEvent::RunFinished {
            run_id: run_id.clone(),
            status,
        });
        Ok(RunSummary {
            run_id,
            runbook: runbook.name.clone(),
            dry_run,
            status,
            steps: summaries,
        })
    }
}
