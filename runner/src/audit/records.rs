//! The records a plugin run leaves in the audit log (`plugin.run` and one `capability.use` per
//! recorded use), serialized straight from the report, without building `serde_json::Value`s.

use super::Pending;
use crate::capabilities::CapabilityUse;
use crate::report::{PluginRef, RunReport};
use serde::Serialize;

#[derive(Serialize)]
struct RunRecord<'a> {
    plugin: &'a Option<PluginRef>,
    invocation: &'a str,
    context: &'a serde_json::Value,
    result: &'a str,
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

/// The records of one finished run of `plugin`, in order.
pub fn run_records(
    plugin: &str,
    context: &serde_json::Value,
    report: &RunReport,
) -> Result<Vec<Pending>, serde_json::Error> {
    let mut records = Vec::with_capacity(1 + report.capability_uses.len());
    records.push(Pending::new(
        "plugin.run",
        &RunRecord {
            plugin: &report.plugin,
            invocation: &report.invocation,
            context,
            result: match &report.result {
                Ok(_) => "ok",
                Err(e) => e.kind(),
            },
            capability_uses: report.capability_uses.len(),
            capability_uses_dropped: report.capability_uses_dropped,
        },
    )?);
    for used in &report.capability_uses {
        records.push(Pending::new(
            "capability.use",
            &UseRecord {
                plugin,
                context,
                used,
            },
        )?);
    }
    Ok(records)
}
