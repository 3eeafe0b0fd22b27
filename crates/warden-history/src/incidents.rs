//! Monitor incidents in the history database, and the SLA figures over a period: counts, mean
//! time to detect, mean time to remediate and MTTR per monitor.

use super::{History, HistoryError};
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY, monitor TEXT NOT NULL, detected_ms INTEGER NOT NULL,
    triggered_ms INTEGER NOT NULL, remediated_ms INTEGER, resolved_ms INTEGER,
    escalated TEXT, escalated_ms INTEGER, attempts INTEGER NOT NULL, last_run_id TEXT);
 CREATE INDEX IF NOT EXISTS incidents_by_monitor ON incidents (monitor, triggered_ms);";

/// SLA figures of one monitor over a period (incidents that triggered in it). Means are in
/// milliseconds over the incidents that have the figure; `None` when none has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorSla {
    pub monitor: String,
    pub incidents: u64,
    pub resolved: u64,
    pub escalated: u64,
    pub open: u64,
    /// First failing check to trigger.
    pub mean_time_to_detect_ms: Option<f64>,
    /// Trigger to the end of the successful remediation.
    pub mean_time_to_remediate_ms: Option<f64>,
    /// First failing check to the healthy check (mean time to resolve).
    pub mttr_ms: Option<f64>,
}

fn ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

const COLUMNS: &str = "id, monitor, detected_ms, triggered_ms, remediated_ms, resolved_ms, escalated, escalated_ms, attempts, last_run_id";

/// One incident as stored. The history knows no monitor semantics: the escalation reason is kept
/// as the JSON text its owner (`warden-automation`) gave, and read back the same.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRow {
    pub id: String,
    pub monitor: String,
    pub detected_at: DateTime<Utc>,
    pub triggered_at: DateTime<Utc>,
    pub remediated_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// JSON of the escalation reason, when the incident was escalated.
    pub escalated: Option<String>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub attempts: u32,
    pub last_run_id: Option<String>,
}

fn incident_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentRow> {
    Ok(IncidentRow {
        id: r.get(0)?,
        monitor: r.get(1)?,
        detected_at: time(r.get(2)?),
        triggered_at: time(r.get(3)?),
        remediated_at: r.get::<_, Option<i64>>(4)?.map(time),
        resolved_at: r.get::<_, Option<i64>>(5)?.map(time),
        escalated: r.get(6)?,
        escalated_at: r.get::<_, Option<i64>>(7)?.map(time),
        attempts: r.get(8)?,
        last_run_id: r.get(9)?,
    })
}

impl History {
    /// Insert or update an incident (by id).
    pub fn save_incident_row(&self, i: &IncidentRow) -> Result<(), HistoryError> {
        self.with(|c| {
            c.execute(
                &format!("INSERT INTO incidents ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT(id) DO UPDATE SET remediated_ms = ?5, resolved_ms = ?6, escalated = ?7,
                 escalated_ms = ?8, attempts = ?9, last_run_id = ?10"),
                params![
                    i.id,
                    i.monitor,
                    i.detected_at.timestamp_millis(),
                    i.triggered_at.timestamp_millis(),
                    ms(i.remediated_at),
                    ms(i.resolved_at),
                    i.escalated,
                    ms(i.escalated_at),
                    i.attempts,
                    i.last_run_id
                ],
            )
        })
        .map(drop)
    }

    /// The unresolved incident of `monitor`, if any (the latest one).
    pub fn open_incident_row(&self, monitor: &str) -> Result<Option<IncidentRow>, HistoryError> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM incidents WHERE monitor = ?1 AND resolved_ms IS NULL ORDER BY triggered_ms DESC LIMIT 1"),
                [monitor],
                incident_row,
            )
            .optional()
        })
    }

    /// Incidents not resolved yet, of every monitor.
    pub fn open_incident_count(&self) -> Result<u64, HistoryError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM incidents WHERE resolved_ms IS NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// Trigger times of `monitor`'s incidents at or after `since`.
    pub fn incident_triggers_since(
        &self,
        monitor: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, HistoryError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT triggered_ms FROM incidents WHERE monitor = ?1 AND triggered_ms >= ?2 ORDER BY triggered_ms",
            )?;
            stmt.query_map(params![monitor, since.timestamp_millis()], |r| {
                r.get::<_, i64>(0).map(time)
            })?
            .collect()
        })
    }

    /// Incidents that triggered in `[from, to)`, newest first, optionally of one monitor.
    pub fn incident_rows(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        monitor: Option<&str>,
    ) -> Result<Vec<IncidentRow>, HistoryError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM incidents WHERE triggered_ms >= ?1 AND triggered_ms < ?2
                 AND (?3 IS NULL OR monitor = ?3) ORDER BY triggered_ms DESC"
            ))?;
            stmt.query_map(
                params![from.timestamp_millis(), to.timestamp_millis(), monitor],
                incident_row,
            )?
            .collect()
        })
    }

    /// SLA figures per monitor for incidents that triggered in `[from, to)`.
    pub fn sla_report(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        monitor: Option<&str>,
    ) -> Result<Vec<MonitorSla>, HistoryError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT monitor, COUNT(*),
                    SUM(resolved_ms IS NOT NULL), SUM(escalated IS NOT NULL),
                    SUM(resolved_ms IS NULL),
                    AVG(triggered_ms - detected_ms),
                    AVG(remediated_ms - triggered_ms),
                    AVG(resolved_ms - detected_ms)
                 FROM incidents WHERE triggered_ms >= ?1 AND triggered_ms < ?2
                 AND (?3 IS NULL OR monitor = ?3)
                 GROUP BY monitor ORDER BY monitor",
            )?;
            stmt.query_map(
                params![from.timestamp_millis(), to.timestamp_millis(), monitor],
                |r| {
                    Ok(MonitorSla {
                        monitor: r.get(0)?,
                        incidents: r.get(1)?,
                        resolved: r.get(2)?,
                        escalated: r.get(3)?,
                        open: r.get(4)?,
                        mean_time_to_detect_ms: r.get(5)?,
                        mean_time_to_remediate_ms: r.get(6)?,
                        mttr_ms: r.get(7)?,
                    })
                },
            )?
            .collect()
        })
    }
}
