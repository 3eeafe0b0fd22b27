//! Baseline versions in the history database, and the inventory they are compared with: the
//! latest facts a discovery plugin recorded (by a runbook's `discover` step, the agent, or the
//! drift check itself).

use super::snapshot::{Snapshot, UnreadableBaseline};
use warden_core::report::FactGroup;
use warden_history::{BaselineRow, History, HistoryError, InventoryRow, NewBaseline};

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("baseline version {version}: {source}")]
    Unreadable {
        version: i64,
        #[source]
        source: UnreadableBaseline,
    },
    #[error(
        "no inventory from `{plugin}` in the history: run a runbook with a `discover` step of \
         `{plugin}` (or let the agent's drift monitor run) first"
    )]
    NoInventory { plugin: String },
    #[error("the inventory from `{plugin}` is not a list of fact groups: {message}")]
    NotFacts { plugin: String, message: String },
}

/// A recorded version with its items.
#[derive(Debug, Clone)]
pub struct Version {
    pub row: BaselineRow,
    pub snapshot: Snapshot,
}

/// Version `version` (the latest when `None`), checked against its hash.
pub fn load(history: &History, version: Option<i64>) -> Result<Option<Version>, BaselineError> {
    let Some(row) = history.baseline(version)? else {
        return Ok(None);
    };
    let snapshot =
        Snapshot::parse(&row.items, &row.sha256).map_err(|source| BaselineError::Unreadable {
            version: row.version,
            source,
        })?;
    Ok(Some(Version { row, snapshot }))
}

/// The latest inventory of `plugin`, with its stable fields.
pub fn inventory(
    history: &History,
    plugin: &str,
) -> Result<(InventoryRow, Snapshot), BaselineError> {
    let row = history
        .inventory()?
        .into_iter()
        .find(|r| r.plugin == plugin)
        .ok_or_else(|| BaselineError::NoInventory {
            plugin: plugin.to_string(),
        })?;
    // A runbook's `discover` step records the typed output (`{"type": "facts", "value": [..]}`),
    // the drift check the groups themselves.
    let facts = match row.facts.get("type").and_then(|t| t.as_str()) {
        Some("facts") => row.facts.get("value").cloned().unwrap_or_default(),
        _ => row.facts.clone(),
    };
    let groups: Vec<FactGroup> =
        serde_json::from_value(facts).map_err(|e| BaselineError::NotFacts {
            plugin: plugin.to_string(),
            message: e.to_string(),
        })?;
    let snapshot = Snapshot::from_facts(&groups);
    Ok((row, snapshot))
}

/// Record `snapshot` as the next version.
pub fn save(
    history: &History,
    snapshot: &Snapshot,
    taken_by: &str,
    reason: &str,
    source: &str,
) -> Result<Version, BaselineError> {
    let row = history.save_baseline(&NewBaseline {
        sha256: snapshot.sha256(),
        taken_ms: warden_history::now_ms(),
        taken_by: taken_by.to_string(),
        reason: reason.to_string(),
        source: source.to_string(),
        items: snapshot.canonical(),
    })?;
    Ok(Version {
        row,
        snapshot: snapshot.clone(),
    })
}
