//! The agent's inputs of the client report's sections beside the services (`warden report
//! --format html|csv|pdf`), from what this machine keeps: its latest patch scan (the
//! `patch-status` facts in the history's inventory), its baseline versions and the incidents of
//! its drift monitors (history), the checks installed here with their `[compliance]` claims
//! (the plugin store), and every check run with its verdict (the audit log's `plugin.run`
//! records). Which monitors are drift monitors is in the audit log too: a drift check's run
//! carries `"check": "builtin:drift"` in its context.

use std::collections::BTreeSet;

use anyhow::{Context as _, Result};
use warden_agent::store::PluginStore;
use warden_audit::AuditLog;
use warden_history::History;
use warden_report::Event;
use warden_report::compliance::{
    self, CheckClaim, CheckOutcome, Compliance, EvidenceKind, Outcome,
};
use warden_report::posture::{
    self, BaselineVersion, Drift, PatchCompliance, PatchScan, PatchState,
};

/// The built-in check of a drift monitor (docs/AUTOMATION.md, "The drift monitor").
const DRIFT_CHECK: &str = "builtin:drift";

/// What the agent's patch compliance measured.
pub const PATCH_SOURCE: &str =
    "this agent's latest patch scan (the patch-status facts in its history)";

/// The `plugin.run` records of the audit log before `to_ms`, as the sections read them.
#[derive(Debug, Default)]
pub struct CheckRuns {
    /// Monitors whose check is `builtin:drift`.
    pub drift_monitors: BTreeSet<String>,
    /// (time, plugin, outcome) of each check run.
    pub runs: Vec<(i64, String, Outcome)>,
}

/// One pass over the audit log (a month of an agent's is hundreds of MB, mostly
/// `capability.use` lines, which the text test skips unparsed).
pub fn check_runs(audit: &AuditLog, to_ms: i64) -> Result<CheckRuns> {
    let mut found = CheckRuns::default();
    audit
        .scan(
            |line| line.contains("\"event\":\"plugin.run\""),
            |record| {
                let at = i64::try_from(record.at_ms).unwrap_or(i64::MAX);
                if record.event != "plugin.run" || at >= to_ms {
                    return;
                }
                let data = &record.data;
                let text = |pointer: &str| data.pointer(pointer).and_then(|v| v.as_str());
                if text("/context/check") == Some(DRIFT_CHECK)
                    && let Some(monitor) = text("/context/monitor")
                {
                    found.drift_monitors.insert(monitor.to_string());
                }
                if text("/invocation") != Some("check") {
                    return;
                }
                let Some(plugin) = text("/plugin/name") else {
                    return;
                };
                // A run that failed, or a record older than the verdict field, proves nothing.
                let outcome = match (text("/result"), text("/status")) {
                    (Some("ok"), Some(status)) => Outcome::of_status(status),
                    _ => Outcome::Unknown,
                };
                found.runs.push((at, plugin.to_string(), outcome));
            },
        )
        .with_context(|| format!("cannot read the audit log {}", audit.path().display()))?;
    Ok(found)
}

/// This agent's patch compliance: one agent, its latest scan.
pub fn patches(
    history: &History,
    agent: &str,
    from_ms: i64,
    now_ms: i64,
) -> Result<PatchCompliance> {
    let latest = warden_agent::daemon::patches::PatchFacts::default().latest(history)?;
    let state = PatchState {
        agent: agent.to_string(),
        scan: latest.map(|p| PatchScan {
            scanned_ms: p.scanned_at.as_millis(),
            pending: p.pending,
            security: p.security,
            reboot_required: p.reboot_required,
        }),
    };
    Ok(posture::patch_compliance(
        &[state],
        from_ms,
        now_ms,
        PATCH_SOURCE,
    ))
}

/// The drift of the period: the drift monitors' incident events, and the baseline versions.
pub fn drift(
    history: &History,
    events: &[Event],
    runs: &CheckRuns,
    agent: &str,
    (from_ms, to_ms): (i64, i64),
) -> Result<Drift> {
    let drift_events: Vec<Event> = events
        .iter()
        .filter(|e| runs.drift_monitors.contains(&e.monitor))
        .cloned()
        .collect();
    let baselines = history
        .baselines()?
        .into_iter()
        .map(|b| BaselineVersion {
            agent: agent.to_string(),
            version: b.version,
            taken_ms: b.taken_ms,
            taken_by: b.taken_by,
            reason: b.reason,
        })
        .collect();
    Ok(posture::drift(
        &drift_events,
        from_ms,
        to_ms,
        Some(baselines),
    ))
}

/// The compliance coverage of the checks installed here, from their runs.
pub fn compliance(
    store: &PluginStore,
    runs: &CheckRuns,
    agent: &str,
    (from_ms, to_ms): (i64, i64),
) -> Result<Compliance> {
    let claims: Vec<CheckClaim> = store
        .list()?
        .into_iter()
        .filter(|p| !p.manifest.compliance.is_empty())
        .map(|p| CheckClaim {
            check: p.manifest.name.clone(),
            hipaa: p.manifest.compliance.hipaa.clone(),
            cmmc: p.manifest.compliance.cmmc.clone(),
            agents: [agent.to_string()].into(),
        })
        .collect();
    let outcomes: Vec<CheckOutcome> = runs
        .runs
        .iter()
        .filter(|(_, plugin, _)| claims.iter().any(|c| &c.check == plugin))
        .map(|(at, plugin, outcome)| CheckOutcome {
            at_ms: *at,
            agent: agent.to_string(),
            check: plugin.clone(),
            outcome: *outcome,
        })
        .collect();
    Ok(compliance::coverage(
        &claims,
        &outcomes,
        from_ms,
        to_ms,
        EvidenceKind::Runs,
    ))
}
