//! The agent's automation events that the fleet hears about (an incident opened or resolved,
//! an escalation, a schedule firing, a PSA ticket opened or closed), taken from the daemon's
//! event channel into the outbox as `AgentEvent`s with the next per-agent sequence number.
//! Other agent events (runs finished, audit health, a ticket's notes and retries) stay local: a
//! fleet run's end travels as its result.
//!
//! A monitor's event carries the check its monitor runs (`check`); a ticket opened or closed
//! travels as an `escalation` event carrying the ticket (`tickets`): the ticket is the
//! escalation's record at the PSA, and the wire has no other kind for it that an older
//! controller would read (it shows the event as an escalation and ignores the field).

use super::core::LinkCore;
use super::outbox::{OutboxKind, Outgoing};
use crate::daemon::events::AgentEvent as DaemonEvent;
use crate::daemon::executor::MONITOR_PLUGIN;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use warden_fleet_wire::event::{MAX_EVENT_DETAIL_LEN, MAX_EVENT_SUBJECT_LEN, MAX_TICKET_FIELD_LEN};
use warden_fleet_wire::{AgentEvent, EventKind, EventTicket, UnixMillis, encode, one_line};

/// The fleet's kind of a daemon event, if the fleet hears about it.
pub fn fleet_kind(kind: &str) -> Option<EventKind> {
    match kind {
        "incident-opened" => Some(EventKind::IncidentOpened),
        "incident-resolved" => Some(EventKind::IncidentResolved),
        "escalated" => Some(EventKind::Escalation),
        "schedule-fired" => Some(EventKind::ScheduleFired),
        "ticket-opened" | "ticket-closed" => Some(EventKind::Escalation),
        _ => None,
    }
}

/// The ticket a ticket outbox event reports (its detail: `incident`, `plugin`, `ticket_id`,
/// `resolve_by`), bounded as the wire wants; `None` for any other event.
pub fn ticket_of(event: &DaemonEvent) -> Option<EventTicket> {
    let status = match event.kind.as_str() {
        "ticket-opened" => "open",
        "ticket-closed" => "closed",
        _ => return None,
    };
    let text = |key: &str| {
        event
            .detail
            .get(key)
            .and_then(|v| v.as_str())
            .map(|v| one_line(v, MAX_TICKET_FIELD_LEN))
            .filter(|v| !v.is_empty())
    };
    Some(EventTicket {
        incident: text("incident")?,
        system: text("plugin")?,
        id: text("ticket_id")?,
        status: status.into(),
        resolve_by: text("resolve_by"),
    })
}

pub(crate) async fn run(
    core: Arc<LinkCore>,
    mut events: broadcast::Receiver<DaemonEvent>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = stop.wait_for(|s| *s) => return,
        };
        let event = match event {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("fleet: {n} agent event(s) missed (the link fell behind)");
                core.audit_dropped(n);
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(kind) = fleet_kind(&event.kind) else {
            continue;
        };
        let ticket = ticket_of(&event);
        if event.kind.starts_with("ticket-") && ticket.is_none() {
            // A ticket event that names no ticket is not worth an escalation at the NOC.
            continue;
        }
        let (tenant, agent, cap) = (
            core.identity.tenant.clone(),
            core.identity.agent.clone(),
            core.outbox_cap,
        );
        let queued = core
            .blocking(move |core| {
                core.store
                    .enqueue_event(cap, UnixMillis::now().as_millis(), |seq| {
                        let subject = match one_line(&event.subject, MAX_EVENT_SUBJECT_LEN) {
                            s if s.is_empty() => kind.name().to_string(),
                            s => s,
                        };
                        let mut ev = AgentEvent::new(
                            tenant,
                            agent,
                            seq,
                            UnixMillis(event.at_ms),
                            kind,
                            subject,
                        );
                        ev.detail = one_line(&event.message, MAX_EVENT_DETAIL_LEN);
                        if let Some(check) =
                            event.detail.get(MONITOR_PLUGIN).and_then(|v| v.as_str())
                        {
                            ev.check = one_line(check, MAX_EVENT_SUBJECT_LEN);
                        }
                        ev.tickets.extend(ticket);
                        Ok(Outgoing {
                            kind: OutboxKind::Event,
                            subject: ev.nats_subject(),
                            msg_id: ev.msg_id(),
                            payload: encode(&ev).map_err(|e| e.to_string())?,
                        })
                    })
            })
            .await;
        match queued {
            Ok(dropped) => {
                core.audit_dropped(dropped);
                core.wake.notify_one();
            }
            Err(e) => tracing::error!("fleet: an agent event was not queued: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn daemon(kind: &str, detail: serde_json::Value) -> DaemonEvent {
        DaemonEvent {
            at_ms: 1,
            kind: kind.into(),
            subject: "config-drift".into(),
            message: "ticket CW-1 opened".into(),
            detail,
        }
    }

    #[test]
    fn a_ticket_opened_or_closed_is_an_escalation_carrying_it_and_a_note_stays_local() {
        let detail = json!({"monitor": "config-drift", "incident": "config-drift-1",
            "plugin": "ticket-connectwise", "ticket_id": "CW-1", "resolve_by": null});
        assert_eq!(fleet_kind("ticket-opened"), Some(EventKind::Escalation));
        assert_eq!(fleet_kind("ticket-closed"), Some(EventKind::Escalation));
        assert_eq!(fleet_kind("ticket-noted"), None);
        assert_eq!(fleet_kind("ticket-retry"), None);
        let opened = ticket_of(&daemon("ticket-opened", detail.clone())).expect("a ticket");
        assert_eq!(
            opened,
            EventTicket {
                incident: "config-drift-1".into(),
                system: "ticket-connectwise".into(),
                id: "CW-1".into(),
                status: "open".into(),
                resolve_by: None,
            }
        );
        let closed = ticket_of(&daemon("ticket-closed", detail.clone())).expect("a ticket");
        assert_eq!(closed.status, "closed");
        assert_eq!(ticket_of(&daemon("incident-opened", detail)), None);
        assert_eq!(
            ticket_of(&daemon("ticket-opened", json!({"incident": "x"}))),
            None,
            "no ticket id: nothing to carry"
        );
    }
}
