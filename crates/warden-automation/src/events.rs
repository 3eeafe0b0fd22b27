//! What the drivers report: to the audit log (kind `automation.<event>`) and to the daemon
//! through [`super::Executor::event`] (for the API's event stream).

use crate::monitor::{EscalationReason, Incident, MonitorState};
use crate::schedule::SkipReason;
use chrono::{DateTime, Utc};
use serde::Serialize;
use warden_core::RunStatus;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum AutomationEvent {
    /// A schedule's run is being launched.
    ScheduleFired {
        schedule: String,
        slot: DateTime<Utc>,
        /// Earlier slots coalesced into this run (downtime, clock jump).
        missed: u64,
        window: Option<String>,
    },
    ScheduleSkipped {
        schedule: String,
        slot: DateTime<Utc>,
        missed: u64,
        #[serde(flatten)]
        reason: SkipReason,
    },
    /// The wall clock went back past the schedule's last slot; it re-anchored on `now`.
    ScheduleClockWentBack {
        schedule: String,
        last_slot: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    ScheduleRunFinished {
        schedule: String,
        run_id: String,
        status: RunStatus,
    },
    /// The runbook could not be launched or did not finish with a result.
    ScheduleRunFailed {
        schedule: String,
        error: String,
    },
    MonitorStateChanged {
        monitor: String,
        from: MonitorState,
        to: MonitorState,
    },
    /// The check itself could not run (counts as `unknown`).
    MonitorCheckFailed {
        monitor: String,
        error: String,
    },
    IncidentOpened {
        incident: Incident,
    },
    RemediationStarted {
        monitor: String,
        incident: String,
        attempt: u32,
    },
    RemediationFinished {
        monitor: String,
        incident: String,
        attempt: u32,
        run_id: Option<String>,
        succeeded: bool,
        error: Option<String>,
    },
    Escalated {
        monitor: String,
        incident: String,
        #[serde(flatten)]
        reason: EscalationReason,
    },
    IncidentResolved {
        incident: Incident,
        time_to_detect_ms: i64,
        time_to_remediate_ms: Option<i64>,
        time_to_resolve_ms: Option<i64>,
    },
}

impl AutomationEvent {
    /// The audit record kind.
    pub fn kind(&self) -> &'static str {
        match self {
            AutomationEvent::ScheduleFired { .. } => "automation.schedule-fired",
            AutomationEvent::ScheduleSkipped { .. } => "automation.schedule-skipped",
            AutomationEvent::ScheduleClockWentBack { .. } => "automation.schedule-clock-went-back",
            AutomationEvent::ScheduleRunFinished { .. } => "automation.schedule-run-finished",
            AutomationEvent::ScheduleRunFailed { .. } => "automation.schedule-run-failed",
            AutomationEvent::MonitorStateChanged { .. } => "automation.monitor-state-changed",
            AutomationEvent::MonitorCheckFailed { .. } => "automation.monitor-check-failed",
            AutomationEvent::IncidentOpened { .. } => "automation.incident-opened",
            AutomationEvent::RemediationStarted { .. } => "automation.remediation-started",
            AutomationEvent::RemediationFinished { .. } => "automation.remediation-finished",
            AutomationEvent::Escalated { .. } => "automation.escalated",
            AutomationEvent::IncidentResolved { .. } => "automation.incident-resolved",
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn resolved(incident: Incident) -> AutomationEvent {
        AutomationEvent::IncidentResolved {
            time_to_detect_ms: incident.time_to_detect().num_milliseconds(),
            time_to_remediate_ms: incident.time_to_remediate().map(|d| d.num_milliseconds()),
            time_to_resolve_ms: incident.time_to_resolve().map(|d| d.num_milliseconds()),
            incident,
        }
    }
}
