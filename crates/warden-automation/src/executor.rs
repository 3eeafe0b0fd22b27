//! The seam between the drivers and the daemon: the daemon implements [`Executor`] to run a
//! runbook (history, audit, cancellation are its business) and a check plugin, and to publish
//! events on its API stream.

use super::AutomationEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use warden_core::RunStatus;
use warden_core::report::CheckStatus;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Who asked for a runbook run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LaunchOrigin {
    Schedule {
        name: String,
        slot: DateTime<Utc>,
    },
    Monitor {
        name: String,
        incident: String,
        attempt: u32,
    },
}

/// A runbook to run: load `runbook`, resolve `params` with `Runbook::resolve_params` (they are
/// `--param k=v` pairs) and run it; the future ends when the run does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunbookLaunch {
    pub origin: LaunchOrigin,
    pub runbook: PathBuf,
    pub params: Vec<(String, String)>,
    pub dry_run: bool,
}

/// How a runbook run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunOutcome {
    pub run_id: String,
    /// How it ended; `succeeded` is what counts as a fix for a remediation.
    pub status: RunStatus,
}

/// A check plugin run for a monitor (`Invocation::Check` with `config`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckLaunch {
    pub monitor: String,
    pub plugin: String,
    pub config: serde_json::Value,
}

/// The check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckOutcome {
    pub status: CheckStatus,
    pub summary: String,
}

/// A run or check that could not start or did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LaunchError(pub String);

/// Implemented by the daemon. Futures must be `'static`: clone what they need. The drivers
/// run each future as its own tokio task (a panic in it becomes a [`LaunchError`]); on
/// shutdown they stop waiting for it, and the run is the daemon's to finish or cancel.
pub trait Executor: Send + Sync + 'static {
    fn run_runbook(&self, req: RunbookLaunch) -> BoxFuture<Result<RunOutcome, LaunchError>>;
    fn run_check(&self, req: CheckLaunch) -> BoxFuture<Result<CheckOutcome, LaunchError>>;
    /// Every event, after it was appended to the audit log (e.g. to publish on the API stream).
    /// Called from the drivers' tasks: do not block.
    fn event(&self, ev: AutomationEvent);
}

/// Run `fut` as its own task so that a panic in the executor fails one launch, not a driver.
pub(crate) async fn guarded<T: Send + 'static>(
    fut: BoxFuture<Result<T, LaunchError>>,
) -> Result<T, LaunchError> {
    tokio::spawn(fut)
        .await
        .unwrap_or_else(|e| Err(LaunchError(format!("the executor's task failed: {e}"))))
}
