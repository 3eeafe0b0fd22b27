//! Built-in checks: checks a monitor names with `plugin = "builtin:<name>"` that the host
//! carries out itself, around sandboxed plugins. One so far, `builtin:drift` (CM-8(3)): run the
//! discovery plugin (sandboxed and audited like any run), record its facts as the latest
//! inventory, and compare them with the latest baseline: `critical` with the drift summary when
//! anything was added, removed or changed; `ok` when nothing was; `unknown` when there is no
//! baseline yet (nothing to compare with: `warden baseline take` makes one) or it is unreadable.

use super::drift::drift;
use super::record::{self, BaselineError};
use super::snapshot::Snapshot;
use crate::executor::CheckOutcome;
use serde::Deserialize;
use warden_core::report::{CheckStatus, FactGroup, Output};
use warden_history::History;

/// The prefix that marks a built-in check.
pub const PREFIX: &str = "builtin:";

/// Changes named in a drift alert's summary; the rest are counted.
const SHOWN_CHANGES: usize = 5;

/// `config` of a `builtin:drift` monitor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DriftCheckConfig {
    /// The discovery plugin that takes the inventory. Default `inventory`.
    #[serde(default = "default_plugin")]
    pub plugin: String,
    /// Its config. Default: none (the plugin's defaults).
    #[serde(default = "empty")]
    pub config: serde_json::Value,
}

fn default_plugin() -> String {
    "inventory".into()
}

fn empty() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A built-in check with its validated config.
#[derive(Debug, Clone, PartialEq)]
pub enum BuiltinCheck {
    Drift(DriftCheckConfig),
}

impl BuiltinCheck {
    /// The built-in check `name` names, if it names one (`Ok(None)`: a plugin).
    pub fn parse(name: &str, config: &serde_json::Value) -> Result<Option<BuiltinCheck>, String> {
        let Some(which) = name.strip_prefix(PREFIX) else {
            return Ok(None);
        };
        match which {
            "drift" => {
                let config: DriftCheckConfig = serde_json::from_value(config.clone())
                    .map_err(|e| format!("config of {name}: {e}"))?;
                warden_core::names::validate_plugin_name(&config.plugin)
                    .map_err(|e| format!("config of {name}: plugin: {e}"))?;
                Ok(Some(BuiltinCheck::Drift(config)))
            }
            other => Err(format!(
                "`{PREFIX}{other}` is not a built-in check (there is `{PREFIX}drift`)"
            )),
        }
    }
}

/// The drift check's verdict on `facts`, freshly discovered by `plugin` at `version`: they are
/// recorded as the latest inventory first, so `warden baseline diff` shows what the alert saw.
pub fn drift_check(
    history: &History,
    plugin: &str,
    version: &str,
    facts: &[FactGroup],
) -> CheckOutcome {
    // Stored as a runbook's `discover` step stores it: the typed output.
    let recorded = serde_json::to_value(Output::Facts(facts.to_vec()))
        .map_err(|e| e.to_string())
        .and_then(|v| {
            history
                .record_inventory(plugin, version, &v)
                .map_err(|e| e.to_string())
        });
    if let Err(e) = recorded {
        tracing::warn!(plugin, error = %e, "drift check: cannot record the inventory");
    }
    let unknown = |summary: String| CheckOutcome {
        status: CheckStatus::Unknown,
        summary,
    };
    let baseline = match record::load(history, None) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return unknown("no baseline yet: `warden baseline take` records one".into());
        }
        Err(e @ BaselineError::Unreadable { .. }) => return unknown(e.to_string()),
        Err(e) => return unknown(format!("cannot read the baseline: {e}")),
    };
    let found = drift(&baseline.snapshot, &Snapshot::from_facts(facts));
    CheckOutcome {
        status: if found.is_empty() {
            CheckStatus::Ok
        } else {
            CheckStatus::Critical
        },
        summary: found.summary(baseline.row.version, SHOWN_CHANGES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn package(name: &str, version: &str) -> FactGroup {
        serde_json::from_value(
            json!({"kind": "package", "facts": {"name": name, "version": version}}),
        )
        .expect("group")
    }

    #[test]
    fn builtin_names_and_their_config_are_validated() {
        assert_eq!(BuiltinCheck::parse("disk-usage", &json!({})), Ok(None));
        assert_eq!(
            BuiltinCheck::parse("builtin:drift", &json!({})),
            Ok(Some(BuiltinCheck::Drift(DriftCheckConfig {
                plugin: "inventory".into(),
                config: json!({}),
            })))
        );
        let err = BuiltinCheck::parse("builtin:drfit", &json!({})).expect_err("unknown");
        assert!(err.contains("builtin:drift"), "{err}");
        let err = BuiltinCheck::parse("builtin:drift", &json!({"plugn": "x"})).expect_err("typo");
        assert!(err.contains("plugn"), "{err}");
        assert!(BuiltinCheck::parse("builtin:drift", &json!({"plugin": "../x"})).is_err());
    }

    #[test]
    fn unknown_without_a_baseline_then_ok_then_critical_on_drift() {
        let dir = tempfile::tempdir().expect("tmp");
        let history = History::open(dir.path()).expect("history");
        let facts = [package("bash", "5.2")];
        let first = drift_check(&history, "inventory", "0.1.0", &facts);
        assert_eq!(first.status, CheckStatus::Unknown, "{first:?}");
        assert!(first.summary.contains("warden baseline take"), "{first:?}");

        let (_, snap) = record::inventory(&history, "inventory").expect("recorded by the check");
        record::save(&history, &snap, "ada", "first", "inventory").expect("save");
        let same = drift_check(&history, "inventory", "0.1.0", &facts);
        assert_eq!(same.status, CheckStatus::Ok, "{same:?}");

        let changed = [package("bash", "5.2"), package("nmap", "7.93")];
        let alert = drift_check(&history, "inventory", "0.1.0", &changed);
        assert_eq!(alert.status, CheckStatus::Critical, "{alert:?}");
        assert_eq!(
            alert.summary,
            "1 change since baseline 1 (package +1): added package nmap 7.93"
        );
    }
}
