//! One agent's trail in the controller's own audit log, for the console's agent page (issue
//! 18): the newest records that name the agent (its enrollment, renewals, revocation, results
//! and deploy reports, console actions on it, rollout waves that released it, forged messages
//! claiming it) or one of its recent runs (the dispatch, which counts its agents rather than
//! naming them, a cancel, the close).
//!
//! The log is read backward within a byte budget ([`warden_audit::AuditLog::scan_back`]), so a
//! page view costs a bounded read however long the log is. Each record is summarised here, from
//! fields known to be about the agent or its run: a record can also name other agents and
//! tenants (a rollout's release lists its whole wave), and those stay in the log.

use std::collections::HashSet;

use serde_json::Value;
use warden_access::Caller;
use warden_fleet_identity::AgentId;
use warden_fleet_wire::UnixMillis;

use crate::controller::{Controller, FleetError};
use crate::noc::AGENT_HISTORY;
use crate::store::AgentRecord;
use crate::store::query::AgentRunRow;

/// Bytes of the log read at most per query, newest first. The controller writes a record per
/// API call, result and deploy report, of 200 to 400 bytes: 32 MiB is about 100,000 records,
/// on the order of a day of a thousand-agent fleet's results, and reads from the page cache in
/// tens of milliseconds. An agent quiet for longer shows what was found and how far back the
/// search went ([`AgentAudit::searched_back_to`]); older records stay in the log for `verify`
/// and the reports.
pub const AUDIT_SCAN_BYTES: u64 = 32 << 20;

/// Longest summary kept per record: one table cell; the record itself is in the log.
pub const MAX_DETAIL_CHARS: usize = 200;

/// The fields of a record shown in its summary, in this order. Lists of agents, subjects and
/// other tenants' names are not among them: they can be about someone else.
const DETAIL_FIELDS: [&str; 15] = [
    "action", "decision", "runbook", "run", "dry_run", "status", "outcome", "plugin", "version",
    "rollout", "wave", "step", "kind", "reason", "error",
];

/// One audit record about the agent, summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: u64,
    pub at: UnixMillis,
    pub event: String,
    /// The caller it names, `agent` for the agent's own reports, `unverified sender` for a
    /// forged message, else `controller`.
    pub actor: String,
    pub detail: String,
    /// sha256 of the record's line, hex.
    pub hash: String,
    /// Whether the record after it names `hash` as its `prev` (`None`: none after it yet).
    pub linked: Option<bool>,
}

/// The newest audit records about one agent, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentAudit {
    pub entries: Vec<AuditEntry>,
    /// Set when the byte budget stopped the search before the oldest record: the time of the
    /// oldest record read (older ones were not looked at).
    pub searched_back_to: Option<UnixMillis>,
}

impl Controller {
    /// The newest `limit` (at most [`AGENT_HISTORY`]) audit records about agent `id`, with the
    /// agent detail's checks: another tenant's agent is "not found" to a scoped caller.
    pub fn agent_audit(
        &self,
        caller: &Caller,
        id: &AgentId,
        limit: usize,
    ) -> Result<AgentAudit, FleetError> {
        let record = self.seen_agent(caller, id)?;
        let runs = self.store.agent_runs(id, AGENT_HISTORY)?;
        self.audit_of(caller, &record, &runs, limit)
    }

    /// [`Controller::agent_audit`] of an agent already found in `caller`'s scope, with its
    /// newest [`AGENT_HISTORY`] runs (the page lists them): a dispatch older than those is
    /// older than [`AGENT_HISTORY`] dispatches that match, so it could not be shown anyway.
    pub(crate) fn audit_of(
        &self,
        caller: &Caller,
        agent: &AgentRecord,
        runs: &[AgentRunRow],
        limit: usize,
    ) -> Result<AgentAudit, FleetError> {
        let id = agent.id.as_str();
        let runs: HashSet<&str> = runs.iter().map(|r| r.run.as_str()).collect();
        let found = self.audit.scan_back(
            limit.min(AGENT_HISTORY),
            AUDIT_SCAN_BYTES,
            // The agent id (56 base32 characters with a checksum) does not occur by accident.
            |line| line.contains(id) || runs_in(line).any(|r| runs.contains(r)),
            |r| {
                let about = mentions(&r.data, id)
                    || r.data["run"].as_str().is_some_and(|run| runs.contains(run));
                about && in_scope(caller, &r.data)
            },
        )?;
        let searched_back_to = match found.stop {
            warden_audit::Stop::Budget { oldest_at_ms } => Some(millis(oldest_at_ms.unwrap_or(0))),
            warden_audit::Stop::Limit | warden_audit::Stop::Start => None,
        };
        Ok(AgentAudit {
            entries: found
                .found
                .into_iter()
                .map(|f| AuditEntry {
                    seq: f.record.seq,
                    at: millis(f.record.at_ms),
                    actor: actor(&f.record.event, &f.record.data, id),
                    detail: detail(&f.record.data),
                    event: f.record.event,
                    hash: f.hash,
                    linked: f.linked,
                })
                .collect(),
            searched_back_to,
        })
    }
}

fn millis(at_ms: u64) -> UnixMillis {
    UnixMillis(i64::try_from(at_ms).unwrap_or(i64::MAX))
}

/// The values of every `"run":"..."` in a line, unparsed.
fn runs_in(line: &str) -> impl Iterator<Item = &str> {
    const KEY: &str = "\"run\":\"";
    line.match_indices(KEY).filter_map(|(at, _)| {
        let rest = &line[at + KEY.len()..];
        rest.split_once('"').map(|(run, _)| run)
    })
}

/// Whether any string in `v` contains `id`.
fn mentions(v: &Value, id: &str) -> bool {
    match v {
        Value::String(s) => s.contains(id),
        Value::Array(a) => a.iter().any(|v| mentions(v, id)),
        Value::Object(o) => o.values().any(|v| mentions(v, id)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// A record that names a tenant the caller does not cover is not shown to it (an enrollment
/// refused for a claim of this agent's id into another tenant, say).
fn in_scope(caller: &Caller, data: &Value) -> bool {
    let tenant_ok = data["tenant"]
        .as_str()
        .is_none_or(|t| caller.scope.covers(t));
    let tenants_ok = data["tenants"].as_array().is_none_or(|ts| {
        ts.iter()
            .all(|t| t.as_str().is_some_and(|t| caller.scope.covers(t)))
    });
    tenant_ok && tenants_ok
}

fn actor(event: &str, data: &Value, id: &str) -> String {
    if let Some(caller) = data["caller"].as_str() {
        caller.to_string()
    } else if event == "fleet.forged" {
        "unverified sender".into()
    } else if data["agent"].as_str() == Some(id) {
        "agent".into()
    } else {
        "controller".into()
    }
}

/// `key=value` of the [`DETAIL_FIELDS`] the record has, cut to [`MAX_DETAIL_CHARS`].
fn detail(data: &Value) -> String {
    let text = DETAIL_FIELDS
        .iter()
        .filter_map(|k| {
            let v = data.get(*k).filter(|v| !v.is_null())?;
            Some(format!("{k}={}", scalar(v)))
        })
        .collect::<Vec<_>>()
        .join(", ");
    match text.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A value as a word: a string as is, an object by its values (a run status is
/// `{"state":"refused","reason":"untrusted"}`: `refused untrusted`).
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        // `state` first: the map keeps its keys sorted, and "refused untrusted" reads right.
        Value::Object(o) => o
            .get("state")
            .into_iter()
            .chain(o.iter().filter(|(k, _)| *k != "state").map(|(_, v)| v))
            .map(scalar)
            .collect::<Vec<_>>()
            .join(" "),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_summary_keeps_the_fields_about_the_run_and_leaves_lists_of_agents_out() {
        let data = json!({
            "run": "r1", "agent": "A", "status": { "state": "refused", "reason": "untrusted" },
            "agents": ["A", "B"], "subject": "fleet.res.globex.B",
        });
        assert_eq!(detail(&data), "run=r1, status=refused untrusted");
        assert_eq!(actor("fleet.result", &data, "A"), "agent");
        assert_eq!(actor("fleet.forged", &data, "A"), "unverified sender");
        assert_eq!(
            actor("fleet.dispatch", &json!({ "caller": "noc" }), "A"),
            "noc"
        );
        let long = json!({ "error": "x".repeat(500) });
        assert_eq!(detail(&long).chars().count(), MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn run_ids_are_read_from_the_line_and_tenants_bound_the_scope() {
        let line = r#"{"data":{"run":"r1","x":{"run":"r2"}}}"#;
        assert_eq!(runs_in(line).collect::<Vec<_>>(), vec!["r1", "r2"]);
        let acme = Caller {
            name: "acme-viewer".into(),
            role: warden_access::Role::Viewer,
            scope: warden_access::Scope::Tenant("acme".into()),
        };
        assert!(in_scope(&acme, &json!({ "tenant": "acme" })));
        assert!(in_scope(&acme, &json!({ "run": "r1" })));
        assert!(!in_scope(&acme, &json!({ "tenant": "globex" })));
        assert!(!in_scope(&acme, &json!({ "tenants": ["acme", "globex"] })));
    }
}
