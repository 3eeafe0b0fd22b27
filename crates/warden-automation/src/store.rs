//! Automation's state in the run history: incidents and schedule state as the domain types of
//! [`crate::monitor`] and [`crate::schedule`], over the history's plain rows. The history stores;
//! this module knows what the rows mean.

use crate::monitor::{EscalationReason, Incident};
use crate::schedule::ScheduleState;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use warden_history::{History, HistoryError, IncidentRow, ScheduleRow};

/// Incidents and schedule state, read and written as domain types.
pub trait AutomationStore {
    /// Insert or update an incident (by id).
    fn save_incident(&self, incident: &Incident) -> Result<(), HistoryError>;
    /// The unresolved incident of `monitor`, if any (the latest one).
    fn open_incident(&self, monitor: &str) -> Result<Option<Incident>, HistoryError>;
    /// Incidents that triggered in `[from, to)`, newest first, optionally of one monitor.
    fn incidents(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        monitor: Option<&str>,
    ) -> Result<Vec<Incident>, HistoryError>;
    /// Every schedule's saved state, by name.
    fn schedule_states(&self) -> Result<HashMap<String, ScheduleState>, HistoryError>;
    fn save_schedule_state(&self, name: &str, state: &ScheduleState) -> Result<(), HistoryError>;
}

impl AutomationStore for History {
    fn save_incident(&self, incident: &Incident) -> Result<(), HistoryError> {
        self.save_incident_row(&row(incident))
    }

    fn open_incident(&self, monitor: &str) -> Result<Option<Incident>, HistoryError> {
        Ok(self.open_incident_row(monitor)?.map(incident))
    }

    fn incidents(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        monitor: Option<&str>,
    ) -> Result<Vec<Incident>, HistoryError> {
        Ok(self
            .incident_rows(from, to, monitor)?
            .into_iter()
            .map(incident)
            .collect())
    }

    fn schedule_states(&self) -> Result<HashMap<String, ScheduleState>, HistoryError> {
        Ok(self
            .schedule_rows()?
            .into_iter()
            .map(|(name, r)| {
                let state = ScheduleState {
                    last_slot: r.last_slot,
                    last_run_id: r.last_run_id,
                };
                (name, state)
            })
            .collect())
    }

    fn save_schedule_state(&self, name: &str, state: &ScheduleState) -> Result<(), HistoryError> {
        let row = ScheduleRow {
            last_slot: state.last_slot,
            last_run_id: state.last_run_id.clone(),
        };
        self.save_schedule_row(name, &row)
    }
}

fn row(i: &Incident) -> IncidentRow {
    IncidentRow {
        id: i.id.clone(),
        monitor: i.monitor.clone(),
        detected_at: i.detected_at,
        triggered_at: i.triggered_at,
        remediated_at: i.remediated_at,
        resolved_at: i.resolved_at,
        escalated: i
            .escalated
            .as_ref()
            .and_then(|e| serde_json::to_string(e).ok()),
        escalated_at: i.escalated_at,
        attempts: i.attempts,
        last_run_id: i.last_run_id.clone(),
    }
}

/// A stored escalation reason that no longer parses (written by another version) reads as none
/// rather than hiding the incident.
fn incident(r: IncidentRow) -> Incident {
    Incident {
        id: r.id,
        monitor: r.monitor,
        detected_at: r.detected_at,
        triggered_at: r.triggered_at,
        remediated_at: r.remediated_at,
        resolved_at: r.resolved_at,
        escalated: r
            .escalated
            .and_then(|e| serde_json::from_str::<EscalationReason>(&e).ok()),
        escalated_at: r.escalated_at,
        attempts: r.attempts,
        last_run_id: r.last_run_id,
    }
}
