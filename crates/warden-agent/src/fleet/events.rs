//! The agent's automation events that the fleet hears about (an incident opened or resolved,
//! an escalation, a schedule firing), taken from the daemon's event channel into the outbox as
//! `AgentEvent`s with the next per-agent sequence number. Other agent events (runs finished,
//! audit health) stay local: a fleet run's end travels as its result.

use super::core::LinkCore;
use super::outbox::{OutboxKind, Outgoing};
use crate::daemon::events::AgentEvent as DaemonEvent;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use warden_fleet_wire::event::{MAX_EVENT_DETAIL_LEN, MAX_EVENT_SUBJECT_LEN};
use warden_fleet_wire::{AgentEvent, EventKind, UnixMillis, encode, one_line};

/// The fleet's kind of a daemon event, if the fleet hears about it.
pub fn fleet_kind(kind: &str) -> Option<EventKind> {
    match kind {
        "incident-opened" => Some(EventKind::IncidentOpened),
        "incident-resolved" => Some(EventKind::IncidentResolved),
        "escalated" => Some(EventKind::Escalation),
        "schedule-fired" => Some(EventKind::ScheduleFired),
        _ => None,
    }
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
