//! The inputs of the client report's sections beside the services, from what the controller
//! holds (issue 18): each agent's latest patch scan (its last heartbeat's summary, the agents
//! table), the incidents of the drift monitors (events whose `check` is `builtin:drift`), the
//! PSA tickets the agents' ticket outboxes reported (events carrying `tickets`), and the
//! compliance checks installed on each agent (its heartbeat's plugins with their `[compliance]`
//! claims) with the incidents of the monitors running them as their outcomes. The rules of
//! each section are `warden-report`'s; this module only maps the store's records onto them.

use std::collections::BTreeMap;

use warden_report::compliance::{CheckClaim, CheckOutcome, EvidenceKind, Outcome};
use warden_report::posture::{PatchScan, PatchState};
use warden_report::{Event, EventKind, Ticket};

use crate::store::{AgentRecord, IncidentEvent, TicketEvent};

/// The built-in check of a drift monitor (docs/AUTOMATION.md, "The drift monitor").
pub const DRIFT_CHECK: &str = "builtin:drift";

/// What a patch compliance figure of the controller measured.
pub const PATCH_SOURCE: &str = "the latest patch scan each agent reported in its heartbeat";

/// The name a report gives an agent: its host name, its enrolled name before its first
/// heartbeat (as the store's incident events do).
pub fn host(agent: &AgentRecord) -> &str {
    if agent.hostname.is_empty() {
        &agent.name
    } else {
        &agent.hostname
    }
}

/// The tenant's agents still enrolled (a revoked one is no longer the client's machine).
fn enrolled(agents: &[AgentRecord]) -> impl Iterator<Item = &AgentRecord> {
    agents.iter().filter(|a| a.revoked_at.is_none())
}

pub fn patch_states(agents: &[AgentRecord]) -> Vec<PatchState> {
    enrolled(agents)
        .map(|a| PatchState {
            agent: host(a).to_string(),
            scan: a.patches.map(|p| PatchScan {
                scanned_ms: p.scanned_at.as_millis(),
                pending: p.pending,
                security: p.security,
                reboot_required: p.reboot_required,
            }),
        })
        .collect()
}

/// A store incident event as the report's.
pub fn event(e: &IncidentEvent) -> Event {
    Event {
        at_ms: e.at.as_millis(),
        agent: e.host.clone(),
        monitor: e.monitor.clone(),
        kind: if e.opened {
            EventKind::Opened
        } else {
            EventKind::Resolved
        },
    }
}

/// The incident events of the drift monitors.
pub fn drift_events(events: &[IncidentEvent]) -> Vec<Event> {
    events
        .iter()
        .filter(|e| e.check == DRIFT_CHECK)
        .map(event)
        .collect()
}

/// The tickets of `[from, to)` from their events (before `to`): per ticket its latest state;
/// a ticket is in the period when one of its events is, or when it was still open at the
/// period's start (an incident's ticket carried over).
pub fn tickets(events: &[TicketEvent], from_ms: i64) -> Vec<Ticket> {
    let mut latest: BTreeMap<(&str, &str, &str), (&TicketEvent, bool)> = BTreeMap::new();
    let mut by_time: Vec<&TicketEvent> = events.iter().collect();
    by_time.sort_by_key(|e| e.at.as_millis());
    for e in by_time {
        let key = (
            e.host.as_str(),
            e.ticket.system.as_str(),
            e.ticket.id.as_str(),
        );
        let in_period = e.at.as_millis() >= from_ms;
        let seen = latest.get(&key).is_some_and(|(_, s)| *s);
        latest.insert(key, (e, seen || in_period));
    }
    latest
        .into_values()
        .filter(|(e, in_period)| *in_period || e.ticket.status == "open")
        .map(|(e, _)| Ticket {
            agent: e.host.clone(),
            monitor: e.monitor.clone(),
            system: e.ticket.system.clone(),
            id: e.ticket.id.clone(),
            status: e.ticket.status.clone(),
            resolve_by: e.ticket.resolve_by.clone(),
        })
        .collect()
}

/// The installed plugins that claim a control, each with the agents it is on.
pub fn claims(agents: &[AgentRecord]) -> Vec<CheckClaim> {
    let mut by_name: BTreeMap<&str, CheckClaim> = BTreeMap::new();
    for a in enrolled(agents) {
        for p in a
            .plugins
            .iter()
            .filter(|p| !p.hipaa.is_empty() || !p.cmmc.is_empty())
        {
            let claim = by_name
                .entry(p.name.as_str())
                .or_insert_with(|| CheckClaim {
                    check: p.name.clone(),
                    hipaa: Default::default(),
                    cmmc: Default::default(),
                    agents: Default::default(),
                });
            // Versions on different agents may claim differently: the union is what the
            // tenant's checks claim.
            claim.hipaa.extend(p.hipaa.iter().cloned());
            claim.cmmc.extend(p.cmmc.iter().cloned());
            claim.agents.insert(host(a).to_string());
        }
    }
    by_name.into_values().collect()
}

/// The outcomes the controller has of the claiming checks: the incidents of the monitors
/// running them (opened: the check failed; resolved: it passed again).
pub fn outcomes(events: &[IncidentEvent], claims: &[CheckClaim]) -> Vec<CheckOutcome> {
    events
        .iter()
        .filter(|e| claims.iter().any(|c| c.check == e.check))
        .map(|e| CheckOutcome {
            at_ms: e.at.as_millis(),
            agent: e.host.clone(),
            check: e.check.clone(),
            outcome: if e.opened {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
        })
        .collect()
}

/// How the controller's outcomes were gathered.
pub const EVIDENCE: EvidenceKind = EvidenceKind::Incidents;

#[cfg(test)]
mod tests {
    use super::*;
    use warden_fleet_wire::{EventTicket, UnixMillis};

    fn ticket(at: i64, host: &str, id: &str, status: &str) -> TicketEvent {
        TicketEvent {
            at: UnixMillis(at),
            host: host.into(),
            monitor: "disk".into(),
            ticket: EventTicket {
                incident: format!("disk-{id}"),
                system: "ticket-halo".into(),
                id: id.into(),
                status: status.into(),
                resolve_by: None,
            },
        }
    }

    #[test]
    fn a_ticket_is_in_the_period_when_it_moved_in_it_or_was_open_at_its_start() {
        let from = 100;
        let events = [
            // Opened and closed before the period: out.
            ticket(10, "db-1", "H-1", "open"),
            ticket(20, "db-1", "H-1", "closed"),
            // Opened before, still open: in, open.
            ticket(30, "db-1", "H-2", "open"),
            // Opened before, closed in the period: in, closed (its latest state).
            ticket(40, "web-1", "H-3", "open"),
            ticket(150, "web-1", "H-3", "closed"),
            // Opened in the period (the same id on another host is another ticket).
            ticket(120, "web-1", "H-1", "open"),
        ];
        let got: Vec<(String, String, String)> = tickets(&events, from)
            .into_iter()
            .map(|t| (t.agent, t.id, t.status))
            .collect();
        let want = [
            ("db-1", "H-2", "open"),
            ("web-1", "H-1", "open"),
            ("web-1", "H-3", "closed"),
        ];
        assert_eq!(
            got,
            want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        );
    }
}
