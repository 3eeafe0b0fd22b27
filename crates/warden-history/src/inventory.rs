//! The latest facts each discovery plugin reported, kept beside the run history so the agent's
//! API can answer "what is this machine" without re-running discovery.

use super::{History, HistoryError, now_ms};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct InventoryRow {
    pub plugin: String,
    pub version: String,
    pub collected_ms: i64,
    pub facts: serde_json::Value,
}

impl History {
    /// Keep `facts` as the latest from `plugin`, replacing the previous ones.
    pub fn record_inventory(
        &self,
        plugin: &str,
        version: &str,
        facts: &serde_json::Value,
    ) -> Result<(), HistoryError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO inventory (plugin, version, collected_ms, facts) VALUES (?1, ?2, ?3, ?4)",
                params![plugin, version, now_ms(), facts.to_string()],
            )
        })
        .map(drop)
    }

    /// When each discovery plugin last reported, by plugin name, without the facts: what a
    /// reader that keeps its own copy of the facts checks before reading them again.
    pub fn inventory_stamps(&self) -> Result<Vec<(String, i64)>, HistoryError> {
        self.with(|c| {
            let mut stmt =
                c.prepare_cached("SELECT plugin, collected_ms FROM inventory ORDER BY plugin")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
    }

    /// The latest facts of one discovery plugin.
    pub fn inventory_of(&self, plugin: &str) -> Result<Option<InventoryRow>, HistoryError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT plugin, version, collected_ms, facts FROM inventory WHERE plugin = ?1",
            )?;
            stmt.query_row([plugin], row).optional()
        })
    }

    /// The latest facts of every discovery plugin, by plugin name.
    pub fn inventory(&self) -> Result<Vec<InventoryRow>, HistoryError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT plugin, version, collected_ms, facts FROM inventory ORDER BY plugin",
            )?;
            stmt.query_map([], row)?.collect()
        })
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<InventoryRow> {
    Ok(InventoryRow {
        plugin: r.get(0)?,
        version: r.get(1)?,
        collected_ms: r.get(2)?,
        facts: serde_json::from_str(&r.get::<_, String>(3)?).unwrap_or_default(),
    })
}
