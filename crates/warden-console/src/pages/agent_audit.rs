//! The agent page's "Audit" section: the controller's own audit records about the agent
//! (`warden_controller::agent_audit`), newest first, each with its time, event, actor, a short
//! summary and the start of its hash, marked when the record after it names that hash (the
//! chain is intact there; `verify` checks the whole log).

use maud::{Markup, html};
use warden_controller::agent_audit::{AgentAudit, AuditEntry};
use warden_fleet_wire::UnixMillis;

use super::shown;
use crate::times;

/// Hex digits of a record's hash shown: enough to find the record in the log by eye (and to
/// tell two apart), short enough for a table cell.
const HASH_SHOWN: usize = 12;

fn chain(e: &AuditEntry) -> Markup {
    let short = e.hash.get(..HASH_SHOWN).unwrap_or(&e.hash);
    html! {
        @match e.linked {
            Some(true) => code.linked title=(format!("record {}: the next record names this hash", e.seq)) { (short) " ✓" },
            Some(false) => code.unlinked.bad title=(format!("record {}: the next record does not name this hash", e.seq)) { (short) " ✗ chain broken here" },
            None => code title=(format!("record {}: the newest in the log", e.seq)) { (short) },
        }
    }
}

pub fn section(audit: &AgentAudit, now: UnixMillis) -> Markup {
    html! {
        section {
            h2 { "Audit" }
            @if audit.entries.is_empty() { p { "No audit records about this agent." } } @else {
                table #audit {
                    thead { tr { th { "When" } th { "Event" } th { "Actor" } th { "Detail" } th { "Record" } } }
                    tbody { @for e in &audit.entries { tr {
                        td { span title=(times::utc(e.at)) { (times::ago(e.at, now)) " (" (times::utc(e.at)) ")" } }
                        td.event { (shown(&e.event)) }
                        td { (shown(&e.actor)) }
                        td { (shown(&e.detail)) }
                        td { (chain(e)) }
                    } } }
                }
            }
            @if let Some(t) = audit.searched_back_to {
                p.hint { "Searched the audit log back to " (times::utc(t))
                    "; older records are not shown here." }
            }
        }
    }
}
