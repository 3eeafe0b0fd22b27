//! The records a plugin run leaves in the audit log: one `capability.use` per recorded use, as it
//! happens, and `plugin.run` at the end; serialized straight from the domain types, without
//! building `serde_json::Value`s.

use super::Pending;
use serde::Serialize;
use warden_core::report::CapabilityUse;
use warden_core::report::{PluginRef, RunReport};

/// Longest error text a `plugin.run` record keeps (the message comes from the plugin).
pub const MAX_ERROR_CHARS: usize = 512;

#[derive(Serialize)]
struct RunRecord<'a> {
    plugin: &'a Option<PluginRef>,
    invocation: &'a str,
    context: &'a serde_json::Value,
    result: &'a str,
    /// Why it failed, cut to [`MAX_ERROR_CHARS`]: a plugin's refusal (`window-slot-used`) is
    /// evidence too.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// A check's verdict (`ok`, `warning`, `critical`, `unknown`): each check run is evidence
    /// for the controls its plugin claims (the client report's compliance section counts them).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<warden_core::report::CheckStatus>,
    capability_uses: usize,
    capability_uses_dropped: u64,
}

#[derive(Serialize)]
struct UseRecord<'a> {
    plugin: &'a str,
    context: &'a serde_json::Value,
    #[serde(rename = "use")]
    used: &'a CapabilityUse,
}

/// The `plugin.run` record of one finished run of `plugin`. Its capability uses were recorded
/// one by one as they were decided ([`use_record`]); this one counts them.
pub fn run_record(
    context: &serde_json::Value,
    report: &RunReport,
) -> Result<Pending, serde_json::Error> {
    Pending::new(
        "plugin.run",
        &RunRecord {
            plugin: &report.plugin,
            invocation: &report.invocation,
            context,
            result: match &report.result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            },
            error: report.result.as_ref().err().map(|e| {
                let text = e.to_string();
                match text.char_indices().nth(MAX_ERROR_CHARS) {
                    Some((cut, _)) => format!("{}...", &text[..cut]),
                    None => text,
                }
            }),
            status: match &report.result {
                Ok(warden_core::report::Output::Check(c)) => Some(c.status),
                _ => None,
            },
            capability_uses: report.capability_uses.len(),
            capability_uses_dropped: report.capability_uses_dropped,
        },
    )
}

/// The `capability.use` record of one use by `plugin`, written when the chokepoint decides it.
pub fn use_record(
    plugin: &str,
    context: &serde_json::Value,
    used: &CapabilityUse,
) -> Result<Pending, serde_json::Error> {
    Pending::new(
        "capability.use",
        &UseRecord {
            plugin,
            context,
            used,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditLog;
    use warden_core::report::{CheckResult, CheckStatus, Output};

    fn report(result: Output) -> RunReport {
        RunReport {
            plugin: Some(PluginRef {
                name: "disk-encryption".into(),
                version: "0.1.0".into(),
                sha256: "d".repeat(64),
            }),
            invocation: "check".into(),
            result: Ok(result),
            logs: Vec::new(),
            capability_uses: Vec::new(),
            capability_uses_dropped: 0,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 1.0,
            cache: None,
        }
    }

    #[test]
    fn a_check_run_s_record_keeps_its_verdict_and_other_runs_none() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = AuditLog::new(dir.path());
        let context = serde_json::json!({ "monitor": "disk-crypt" });
        let check = report(Output::Check(CheckResult {
            status: CheckStatus::Critical,
            summary: "/ on /dev/vda has no dm-crypt layer".into(),
            metrics: Vec::new(),
        }));
        let facts = report(Output::Facts(Vec::new()));
        log.append_now(vec![
            run_record(&context, &check).expect("record"),
            run_record(&context, &facts).expect("record"),
        ])
        .expect("append");
        let mut records = Vec::new();
        log.scan(|_| true, |r| records.push(r.data)).expect("scan");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0]["status"], "critical", "{}", records[0]);
        assert_eq!(records[0]["plugin"]["name"], "disk-encryption");
        assert!(records[1].get("status").is_none(), "{}", records[1]);
    }
}
