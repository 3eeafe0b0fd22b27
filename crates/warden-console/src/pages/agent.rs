//! One agent: its inventory facts, tags, installed plugins (with the HIPAA / CMMC controls a
//! check gives evidence for), baseline drift, incidents with their PSA tickets and recent runs,
//! (for operators and above) a form to run a runbook on it, and the controller's audit records
//! about it ([`super::agent_audit`]).
//!
//! Drift is what the agent's drift monitors (`builtin:drift`) reported: the latest event of
//! each says whether the machine is off its accepted baseline now, and what changed.

use maud::{Markup, html};
use warden_access::Role;
use warden_controller::noc::AgentDetail;
use warden_fleet_wire::{AgentEvent, EventKind, EventTicket, UnixMillis};

use super::{encode, layout, shown};
use crate::session::Session;
use crate::times;

fn when(t: Option<UnixMillis>, now: UnixMillis) -> Markup {
    html! {
        @match t {
            Some(t) => span title=(times::utc(t)) { (times::ago(t, now)) " (" (times::utc(t)) ")" },
            None => "—",
        }
    }
}

/// The drift check's name on events (`crates/warden-automation`'s built-in check).
const DRIFT_CHECK: &str = "builtin:drift";

/// The latest event of each drift monitor, newest first.
fn drift(events: &[AgentEvent]) -> Vec<&AgentEvent> {
    let mut latest: Vec<&AgentEvent> = Vec::new();
    for e in events.iter().filter(|e| e.check == DRIFT_CHECK) {
        match latest.iter_mut().find(|l| l.subject == e.subject) {
            Some(l) if (l.at, l.seq) < (e.at, e.seq) => *l = e,
            Some(_) => {}
            None => latest.push(e),
        }
    }
    latest.sort_by_key(|e| std::cmp::Reverse((e.at, e.seq)));
    latest
}

fn tickets(t: &[EventTicket]) -> Markup {
    html! {
        @for t in t {
            span.ticket { (shown(&t.system)) " #" (shown(&t.id)) " " (shown(&t.status))
                @if let Some(due) = &t.resolve_by { ", resolve by " (shown(due)) } }
            " "
        }
    }
}

pub fn page(session: &Session, detail: &AgentDetail, now: UnixMillis) -> Markup {
    let a = &detail.agent.record;
    let host = if a.hostname.is_empty() {
        &a.name
    } else {
        &a.hostname
    };
    let may_run = session
        .caller
        .as_ref()
        .is_some_and(|c| c.role >= Role::Operator);
    let body = html! {
        h1 #host { (shown(host)) }
        section {
            h2 { "Inventory" }
            table.facts {
                tr { th { "Agent id" } td { code { (a.id.as_str()) } } }
                tr { th { "Tenant" } td { (a.tenant.as_str()) } }
                tr { th { "Name" } td { (shown(&a.name)) } }
                tr { th { "Host name" } td { (shown(&a.hostname)) } }
                tr { th { "OS" } td { (shown(&a.os)) } }
                tr { th { "Agent version" } td { (shown(&a.version)) } }
                tr { th { "Status" } td { span class=(format!("state {}", detail.agent.presence.name())) {
                    (detail.agent.presence.name()) } } }
                tr { th { "Last seen" } td { (when(a.last_seen, now)) } }
                tr { th { "Heartbeat interval" } td { (a.interval_ms / 1000) " s" } }
                tr { th { "Enrolled" } td { (when(a.enrolled_at, now)) } }
                @if a.revoked_at.is_some() {
                    tr { th { "Revoked" } td { (when(a.revoked_at, now)) } }
                }
                tr { th { "Open incidents" } td { (a.open_incidents) } }
                @if !a.failing.is_empty() {
                    tr { th { "Failing checks" } td #failing { @for n in &a.failing {
                        span.check { (shown(n)) } " " } } }
                }
                @match a.patches {
                    Some(p) => {
                        tr { th { "Patches pending" } td #patches { (p.pending_text()) } }
                        tr { th { "Reboot required" } td #reboot { (if p.reboot_required { "yes" } else { "no" }) } }
                        tr { th { "Last patch scan" } td { (when(Some(p.scanned_at), now)) } }
                    }
                    None => tr { th { "Patches pending" } td #patches { "- (no patch scan reported)" } },
                }
            }
        }
        section {
            h2 { "Tags" }
            @if a.tags.is_empty() { p { "No tags." } }
            ul #tags { @for (k, v) in &a.tags { li.tag { (shown(k)) "=" (shown(v)) } } }
        }
        section {
            h2 { "Installed plugins" }
            @if a.plugins.is_empty() { p { "None reported." } } @else {
                table #plugins {
                    thead { tr { th { "Plugin" } th { "Version" } th { "Evidence for" } th { "SHA-256" } } }
                    tbody { @for p in &a.plugins { tr {
                        td { (shown(&p.name)) } td { (shown(&p.version)) }
                        td.evidence {
                            @for r in &p.hipaa { span.control { "HIPAA " (shown(r)) } " " }
                            @for r in &p.cmmc { span.control { "CMMC " (shown(r)) } " " }
                        }
                        td { code { (shown(&p.sha256)) } }
                    } } }
                }
            }
        }
        section {
            h2 { "Baseline drift" }
            @let drift = drift(&detail.events);
            @if drift.is_empty() { p { "No drift monitor reported." } } @else {
                table #drift {
                    thead { tr { th { "Monitor" } th { "State" } th { "Since" } th { "What changed" } } }
                    tbody { @for e in &drift { tr {
                        td { (shown(&e.subject)) }
                        @if e.kind == EventKind::IncidentOpened {
                            td { span.state.bad { "drifted" } }
                        } @else {
                            td { span.state.online { "on baseline" } }
                        }
                        td { (when(Some(e.at), now)) }
                        td { pre { (shown(&e.detail)) } }
                    } } }
                }
            }
        }
        section {
            h2 { "Incidents" }
            @if detail.events.is_empty() { p { "No incidents reported." } } @else {
                table #events {
                    thead { tr { th { "When" } th { "Event" } th { "Subject" } th { "Check" } th { "Tickets" } th { "Detail" } } }
                    tbody { @for e in &detail.events { tr {
                        td { (when(Some(e.at), now)) }
                        td class=(if e.kind == EventKind::IncidentOpened { "bad" } else { "" }) { (e.kind.name()) }
                        td { (shown(&e.subject)) }
                        td { (shown(&e.check)) }
                        td.tickets { (tickets(&e.tickets)) }
                        td { pre { (shown(&e.detail)) } }
                    } } }
                }
            }
        }
        section {
            h2 { "Recent runs" }
            @if may_run {
                form #trigger method="post" action=(format!("/agents/{}/runs", encode(a.id.as_str()))) {
                    input type="hidden" name="csrf" value=(session.csrf);
                    label for="runbook" { "Runbook" }
                    input #runbook type="text" name="runbook" required placeholder="disk-check";
                    label { input type="checkbox" name="dry_run" value="on"; " dry run" }
                    button #run type="submit" { "Run on this agent" }
                }
            } @else {
                p.hint { "Triggering runs needs the operator role." }
            }
            @if detail.runs.is_empty() { p { "No runs yet." } } @else {
                table #runs {
                    thead { tr { th { "Started" } th { "Runbook" } th { "By" } th { "Result" } th { "Error" } } }
                    tbody { @for r in &detail.runs { tr {
                        td { a href=(format!("/runs/{}", encode(r.run.as_str()))) { (times::ago(r.created_at, now)) } }
                        td { (shown(&r.runbook)) }
                        td { (shown(&r.requested_by)) }
                        td { (r.status.as_deref().unwrap_or("no answer yet")) }
                        td { (shown(r.error.as_deref().unwrap_or(""))) }
                    } } }
                }
            }
        }
        (super::agent_audit::section(&detail.audit, now))
    };
    layout(host, Some(session), body)
}
