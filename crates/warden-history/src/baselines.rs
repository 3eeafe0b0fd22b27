//! Baseline configurations (NIST SP 800-53 CM-2): each version of the record of what this
//! machine is supposed to be, as its canonical JSON text with the sha256 over it, who made it,
//! why and from which inventory. Versions are append-only and never rewritten, so every earlier
//! baseline stays available (CM-2(3)). What a baseline holds and how it is hashed is
//! `warden_automation::baseline`'s business; this table only keeps the versions.

use super::{History, HistoryError};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS baselines (
    version INTEGER PRIMARY KEY, sha256 TEXT NOT NULL, taken_ms INTEGER NOT NULL,
    taken_by TEXT NOT NULL, reason TEXT NOT NULL, source TEXT NOT NULL, items TEXT NOT NULL);";

/// A version to record: its number is given by the history (the next one).
#[derive(Debug, Clone)]
pub struct NewBaseline {
    pub sha256: String,
    pub taken_ms: i64,
    /// Who made it (a user name, `monitor:<name>` never: only people accept changes).
    pub taken_by: String,
    pub reason: String,
    /// The inventory it was made from (`<plugin> <version> collected <RFC 3339>`).
    pub source: String,
    /// The canonical JSON text the hash is over.
    pub items: String,
}

/// One recorded version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaselineRow {
    pub version: i64,
    pub sha256: String,
    pub taken_ms: i64,
    pub taken_by: String,
    pub reason: String,
    pub source: String,
    #[serde(skip)]
    pub items: String,
}

const COLUMNS: &str = "version, sha256, taken_ms, taken_by, reason, source, items";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BaselineRow> {
    Ok(BaselineRow {
        version: r.get(0)?,
        sha256: r.get(1)?,
        taken_ms: r.get(2)?,
        taken_by: r.get(3)?,
        reason: r.get(4)?,
        source: r.get(5)?,
        items: r.get(6)?,
    })
}

impl History {
    /// Record `new` as the next version (1 for the first) and return it. The number is chosen in
    /// the same statement that inserts it, so two writers at once get two versions, not one.
    pub fn save_baseline(&self, new: &NewBaseline) -> Result<BaselineRow, HistoryError> {
        self.with(|c| {
            c.query_row(
                &format!(
                    "INSERT INTO baselines ({COLUMNS}) VALUES
                     ((SELECT COALESCE(MAX(version), 0) + 1 FROM baselines), ?1, ?2, ?3, ?4, ?5, ?6)
                     RETURNING {COLUMNS}"
                ),
                params![
                    new.sha256,
                    new.taken_ms,
                    new.taken_by,
                    new.reason,
                    new.source,
                    new.items
                ],
                row,
            )
        })
    }

    /// Version `version`, or the latest when `None`; `None` when there is no such version.
    pub fn baseline(&self, version: Option<i64>) -> Result<Option<BaselineRow>, HistoryError> {
        self.with(|c| match version {
            Some(v) => c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM baselines WHERE version = ?1"),
                    params![v],
                    row,
                )
                .optional(),
            None => c
                .query_row(
                    &format!("SELECT {COLUMNS} FROM baselines ORDER BY version DESC LIMIT 1"),
                    [],
                    row,
                )
                .optional(),
        })
    }

    /// Every version, oldest first.
    pub fn baselines(&self) -> Result<Vec<BaselineRow>, HistoryError> {
        self.with(|c| {
            let mut stmt =
                c.prepare(&format!("SELECT {COLUMNS} FROM baselines ORDER BY version"))?;
            stmt.query_map([], row)?.collect()
        })
    }
}
