//! What the agent tells the outside as it works, as domain types: the events of one run (in
//! order, numbered, so a watcher that joins late gets everything so far) and the agent-wide
//! events (runs finished, automation, audit health). Transports turn them into their own wire
//! messages: the gRPC adapter today (`grpc/events.rs`), the fleet link next.

use serde_json::Value;
use warden_core::RunStatus;
use warden_runbook::engine::StepStatus;

/// One event of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub run_id: String,
    /// 0, 1, 2, ... within the run.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub kind: RunEventKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunEventKind {
    Queued {
        runbook: String,
        requested_by: String,
    },
    Started,
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
    Log {
        index: usize,
        step: String,
        level: String,
        message: String,
    },
    StepFinished {
        index: usize,
        step: String,
        status: StepStatus,
        summary: String,
    },
    /// Always the last event of a run, exactly once.
    Finished {
        status: RunStatus,
        /// Why it did not succeed; empty when it did.
        message: String,
    },
}

impl RunEvent {
    pub fn is_last(&self) -> bool {
        matches!(self.kind, RunEventKind::Finished { .. })
    }
}

/// Something the agent did or saw, for `Agent.WatchEvents` and the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentEvent {
    pub at_ms: i64,
    /// `run.finished`, `schedule.fired`, `monitor.incident-opened`, `audit.failing`, ...
    pub kind: String,
    /// What it is about: a run id, a schedule or monitor name, the audit log's path.
    pub subject: String,
    /// One line for people.
    pub message: String,
    pub detail: Value,
}
