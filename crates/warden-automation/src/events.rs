//! What the drivers report: to the audit log (kind `automation.<event>`) and to the daemon
//! through [`super::Executor::event`] (for the API's event stream).

use crate::monitor::{EscalationReason, Incident, MonitorState};
use crate::schedule::SkipReason;
use chrono::{DateTime, SecondsFormat, Utc};
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
        /// The window's occurrence (`name@opened`), passed to the runbook as its
        /// `window-slot-param` when the schedule names one.
        #[serde(skip_serializing_if = "Option::is_none")]
        window_slot: Option<String>,
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
    ScheduleRunFailed { schedule: String, error: String },
    MonitorStateChanged {
        monitor: String,
        from: MonitorState,
        to: MonitorState,
    },
    /// The check itself could not run (counts as `unknown`).
    MonitorCheckFailed { monitor: String, error: String },
    IncidentOpened {
        incident: Incident,
        /// The summary of the check that opened it (what drifted, which disk is full).
        check: String,
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
        /// The summary of the last failing check (what drifted, which disk is full): the
        /// ticket an escalation opens says what a person is asked to look at.
        check: String,
    },
    /// An escalated incident's check keeps failing (see `monitor::Action::StillFailing`).
    IncidentStillFailing {
        monitor: String,
        incident: String,
        failures: u32,
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
            AutomationEvent::IncidentStillFailing { .. } => "automation.incident-still-failing",
            AutomationEvent::IncidentResolved { .. } => "automation.incident-resolved",
        }
    }

    /// One line for people, without the kind or the schedule or monitor it is about (the
    /// event stream shows those beside it): the states a monitor went from and to, the slot a
    /// schedule fired for, why something was skipped or failed.
    pub fn summary(&self) -> String {
        let at = |t: &DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        match self {
            AutomationEvent::ScheduleFired {
                slot,
                missed,
                window,
                ..
            } => {
                let mut line = format!("fired for the {} slot", at(slot));
                if *missed > 0 {
                    line.push_str(&format!(", {missed} missed slot(s) coalesced into it"));
                }
                if let Some(w) = window {
                    line.push_str(&format!(", in window `{w}`"));
                }
                line
            }
            AutomationEvent::ScheduleSkipped { slot, reason, .. } => {
                format!("skipped the {} slot: {reason}", at(slot))
            }
            AutomationEvent::ScheduleClockWentBack { last_slot, now, .. } => format!(
                "the clock went back to {}, before the last slot {}; re-anchored on now",
                at(now),
                at(last_slot)
            ),
            AutomationEvent::ScheduleRunFinished { run_id, status, .. } => {
                format!("run {run_id} {status}")
            }
            AutomationEvent::ScheduleRunFailed { error, .. } => format!("no run: {error}"),
            AutomationEvent::MonitorStateChanged { from, to, .. } => {
                format!("{} -> {}", from.describe(), to.describe())
            }
            AutomationEvent::MonitorCheckFailed { error, .. } => {
                format!("the check could not run: {error}")
            }
            AutomationEvent::IncidentOpened { incident, .. } => {
                format!("incident {} opened", incident.id)
            }
            AutomationEvent::RemediationStarted {
                incident, attempt, ..
            } => format!("remediation attempt {attempt} for incident {incident}"),
            AutomationEvent::RemediationFinished {
                incident,
                attempt,
                run_id,
                succeeded,
                error,
                ..
            } => {
                let outcome = if *succeeded { "succeeded" } else { "failed" };
                let mut line =
                    format!("remediation attempt {attempt} for incident {incident} {outcome}");
                if let Some(run) = run_id {
                    line.push_str(&format!(" (run {run})"));
                }
                if let Some(e) = error {
                    line.push_str(&format!(": {e}"));
                }
                line
            }
            AutomationEvent::Escalated {
                incident, reason, ..
            } => format!("incident {incident} escalated: {reason}"),
            AutomationEvent::IncidentStillFailing {
                incident, failures, ..
            } => format!(
                "incident {incident} still failing: {failures} failing check(s) since it escalated"
            ),
            AutomationEvent::IncidentResolved { incident, .. } => {
                format!("incident {} resolved", incident.id)
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_change_summary_names_both_states_not_the_kind() {
        let changed = AutomationEvent::MonitorStateChanged {
            monitor: "disk".into(),
            from: MonitorState::Suspect { failures: 2 },
            to: MonitorState::Remediating { attempt: 1 },
        };
        assert_eq!(
            changed.summary(),
            "suspect (2 failing check(s)) -> remediating (attempt 1)"
        );
        let back = AutomationEvent::MonitorStateChanged {
            monitor: "disk".into(),
            from: MonitorState::Verifying { attempt: 1 },
            to: MonitorState::Ok,
        };
        assert_eq!(back.summary(), "verifying (attempt 1) -> ok");
        assert!(!changed.summary().contains("state-changed"));
    }
}
