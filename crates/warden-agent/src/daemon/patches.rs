//! The agent's latest patch facts, for its heartbeat (issue 18): the `patch-status` group a
//! patch discovery plugin (`apt-updates`, docs/PATCHING.md) reported in the latest `discover`
//! step of a runbook (the patch runbook's scan, or its verify re-scan after the upgrades), which
//! the run history keeps as that plugin's inventory.
//!
//! A heartbeat is sent every interval, so this never runs a scan, and does not read the facts
//! every time either (with `packages = true` they hold one group per upgradable package): it
//! asks when each discovery plugin last reported (one small query) and re-reads a plugin's
//! facts only when that changed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::Value;
use warden_fleet_wire::heartbeat::MAX_PATCHES_PENDING;
use warden_fleet_wire::{PatchSummary, UnixMillis};
use warden_history::{History, HistoryError};

/// The fact group holding the counts (`apt-updates`; the Windows Update design keeps it).
pub const PATCH_STATUS: &str = "patch-status";

/// The summary in `facts` (a discover step's typed output `{"type": "facts", "value": [..]}`,
/// or the groups themselves) collected at `collected_ms`; `None` when they hold no
/// `patch-status` group with the counts. Counts are clamped to what the wire carries: the
/// facts are a plugin's output.
pub fn summary_of(facts: &Value, collected_ms: i64) -> Option<PatchSummary> {
    let groups = match facts.get("type").and_then(Value::as_str) {
        Some("facts") => facts.get("value")?,
        _ => facts,
    };
    let status = groups
        .as_array()?
        .iter()
        .find(|g| g.get("kind").and_then(Value::as_str) == Some(PATCH_STATUS))?
        .get("facts")?;
    let count = |key: &str| {
        status.get(key).and_then(Value::as_u64).map(|n| {
            u32::try_from(n)
                .unwrap_or(u32::MAX)
                .min(MAX_PATCHES_PENDING)
        })
    };
    let pending = count("upgradable")?;
    let security = count("security")?.min(pending);
    // `reboot-required` is the fact; the state says the same where a plugin has only that.
    let reboot_required = match status.get("reboot-required").and_then(Value::as_bool) {
        Some(b) => b,
        None => status.get("state").and_then(Value::as_str) == Some("reboot-pending"),
    };
    (collected_ms > 0).then_some(PatchSummary {
        pending,
        security,
        reboot_required,
        scanned_at: UnixMillis(collected_ms),
    })
}

/// What the history's inventory said last, per discovery plugin: (when it reported, its patch
/// summary if it has one).
#[derive(Debug, Default)]
pub struct PatchFacts {
    seen: Mutex<BTreeMap<String, (i64, Option<PatchSummary>)>>,
}

impl PatchFacts {
    /// The summary of the latest patch scan in `history`, whichever plugin reported it;
    /// `None` if no discovery plugin ever reported patch facts. Blocking (SQLite).
    pub fn latest(&self, history: &History) -> Result<Option<PatchSummary>, HistoryError> {
        let stamps = history.inventory_stamps()?;
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.retain(|plugin, _| stamps.iter().any(|(p, _)| p == plugin));
        for (plugin, collected_ms) in stamps {
            if seen.get(&plugin).is_some_and(|(at, _)| *at == collected_ms) {
                continue;
            }
            // Keyed by the row read, not the stamp: a scan recorded in between is read next time.
            let entry = match history.inventory_of(&plugin)? {
                Some(row) => (row.collected_ms, summary_of(&row.facts, row.collected_ms)),
                None => (collected_ms, None),
            };
            seen.insert(plugin, entry);
        }
        Ok(seen
            .values()
            .filter_map(|(_, summary)| *summary)
            .max_by_key(|s| s.scanned_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apt_facts(upgradable: i64, security: i64, reboot: bool) -> Value {
        let state = match (reboot, upgradable) {
            (true, _) => "reboot-pending",
            (false, 0) => "up-to-date",
            _ => "updates-available",
        };
        json!({"type": "facts", "value": [
            {"kind": "patch-status", "facts": {
                "state": state, "upgradable": upgradable, "security": security, "kept-back": 1,
                "new-packages": 0, "removals": 0, "reboot-required": reboot,
                "reboot-packages": if reboot { json!(["linux-image-amd64"]) } else { json!([]) }}},
            {"kind": "apt-kept-back", "facts": {"name": "held"}},
        ]})
    }

    #[test]
    fn the_patch_status_group_becomes_the_summary_and_other_facts_none() {
        let s = summary_of(&apt_facts(12, 3, true), 1_000).expect("a summary");
        assert_eq!(
            s,
            PatchSummary {
                pending: 12,
                security: 3,
                reboot_required: true,
                scanned_at: UnixMillis(1_000),
            }
        );
        // The groups themselves (as the drift check records them) read the same.
        let bare = apt_facts(12, 3, true)["value"].clone();
        assert_eq!(summary_of(&bare, 1_000), Some(s));
        // Up to date is a summary of zeros, not "never scanned".
        assert_eq!(
            summary_of(&apt_facts(0, 0, false), 1_000).map(|s| (s.pending, s.reboot_required)),
            Some((0, false))
        );
        // An inventory plugin's facts, counts that are not counts, no time: no summary.
        let inventory =
            json!({"type": "facts", "value": [{"kind": "os", "facts": {"family": "linux"}}]});
        assert_eq!(summary_of(&inventory, 1_000), None);
        let mut words = apt_facts(12, 3, false);
        words["value"][0]["facts"]["upgradable"] = json!("twelve");
        assert_eq!(summary_of(&words, 1_000), None);
        assert_eq!(summary_of(&apt_facts(12, 3, false), 0), None);
    }

    #[test]
    fn a_plugins_counts_are_clamped_to_what_the_wire_carries() {
        let s = summary_of(&apt_facts(10_000_000, 20_000_000, false), 1_000).expect("summary");
        assert_eq!(s.pending, MAX_PATCHES_PENDING);
        assert_eq!(s.security, MAX_PATCHES_PENDING);
        let s = summary_of(&apt_facts(2, 5, false), 1_000).expect("summary");
        assert_eq!(
            (s.pending, s.security),
            (2, 2),
            "security is at most pending"
        );
        assert!(s.check().is_ok());
    }

    #[test]
    fn the_latest_scan_in_the_history_is_reported_and_a_new_one_replaces_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let history = History::open(dir.path()).expect("history");
        let facts = PatchFacts::default();
        assert_eq!(
            facts.latest(&history).expect("latest"),
            None,
            "never scanned"
        );
        history
            .record_inventory("inventory", "0.1.0", &json!({"type": "facts", "value": []}))
            .expect("record");
        assert_eq!(facts.latest(&history).expect("latest"), None);

        let scan_reads = |upgradable, security, reboot| {
            history
                .record_inventory(
                    "apt-updates",
                    "0.1.0",
                    &apt_facts(upgradable, security, reboot),
                )
                .expect("record");
            let scan = facts.latest(&history).expect("latest").expect("a scan");
            assert_eq!(
                (scan.pending, scan.security, scan.reboot_required),
                (
                    u32::try_from(upgradable).expect("small"),
                    u32::try_from(security).expect("small"),
                    reboot
                )
            );
            scan
        };
        let scan = scan_reads(12, 3, true);
        // Asked again without a new scan: the same answer.
        assert_eq!(facts.latest(&history).expect("latest"), Some(scan));

        // The verify re-scan after the upgrades (a later millisecond) replaces it.
        std::thread::sleep(std::time::Duration::from_millis(5));
        let verify = scan_reads(1, 0, false);
        assert!(verify.scanned_at > scan.scanned_at);
    }
}
