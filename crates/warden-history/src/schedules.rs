//! Per-schedule state (last consumed slot, last run id) in the history database, so a restart
//! neither re-fires a slot nor forgets one that was missed.

use super::{History, HistoryError, now_ms};
use chrono::{DateTime, Utc};
use rusqlite::params;
use std::collections::HashMap;

/// A schedule's saved state: the last slot it consumed and the run that slot started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleRow {
    pub last_slot: Option<DateTime<Utc>>,
    pub last_run_id: Option<String>,
}

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS schedule_state (
    name TEXT PRIMARY KEY, last_slot_ms INTEGER, last_run_id TEXT, updated_ms INTEGER NOT NULL);";

impl History {
    /// Every schedule's saved state, by name.
    pub fn schedule_rows(&self) -> Result<HashMap<String, ScheduleRow>, HistoryError> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT name, last_slot_ms, last_run_id FROM schedule_state")?;
            stmt.query_map([], |r| {
                let slot: Option<i64> = r.get(1)?;
                Ok((
                    r.get::<_, String>(0)?,
                    ScheduleRow {
                        last_slot: slot.and_then(DateTime::<Utc>::from_timestamp_millis),
                        last_run_id: r.get(2)?,
                    },
                ))
            })?
            .collect()
        })
    }

    pub fn save_schedule_row(&self, name: &str, state: &ScheduleRow) -> Result<(), HistoryError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO schedule_state (name, last_slot_ms, last_run_id, updated_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(name) DO UPDATE SET last_slot_ms = ?2, last_run_id = ?3, updated_ms = ?4",
                params![name, state.last_slot.map(|t| t.timestamp_millis()), state.last_run_id, now_ms()],
            )
        })
        .map(drop)
    }
}
