//! The outbox's worker: takes the oldest due call of each incident, runs the ticketing plugin
//! with it (`Invocation::Ticket`, config with the secrets merged in), and records the answer or
//! schedules the retry. One call at a time: a PSA is an external service with rate limits, and
//! an escalation is not a hot path. It sleeps until the next call is due or a new one is
//! queued, never longer than [`MAX_IDLE`].

use super::Tickets;
use super::store::{Op, Queued, TicketRow};
use crate::PluginManager;
use crate::daemon::events::AgentEvent;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use warden_core::RunRequest;
use warden_core::report::{Invocation, Output};
use warden_core::ticket::{IncidentRef, NewTicket, Ticket, TicketCall, TicketNote};
use warden_history::{History, IncidentTicketRow, now_ms};

/// Longest sleep without a reason to wake: a clock that jumped, or a store that failed to
/// answer, is looked at again within a minute.
pub const MAX_IDLE: Duration = Duration::from_secs(60);

/// What the worker acts with.
pub struct Worker {
    pub tickets: Arc<Tickets>,
    pub runner: Arc<PluginManager>,
    pub history: Arc<History>,
    pub events: broadcast::Sender<AgentEvent>,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Worker {
    /// Deliver calls until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let now = now_ms();
            let tickets = self.tickets.clone();
            let due = tokio::task::spawn_blocking(move || tickets.store.next_due(now)).await;
            match due {
                Ok(Ok(Some(q))) => {
                    self.deliver(q).await;
                    continue;
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::error!("ticket outbox: {e}"),
                Err(e) => tracing::error!("ticket outbox: the task failed: {e}"),
            }
            let wake = self.tickets.store.next_wake_ms().ok().flatten();
            let idle = wake
                .map(|w| Duration::from_millis(u64::try_from(w - now).unwrap_or(0)))
                .unwrap_or(MAX_IDLE)
                .min(MAX_IDLE);
            tokio::select! {
                _ = self.tickets.wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    fn incident_ref(&self, q: &Queued) -> IncidentRef {
        IncidentRef {
            monitor: q.call.monitor.clone(),
            incident: q.call.incident.clone(),
            external_ref: IncidentRef::external_ref_of(&q.call.monitor, &q.call.incident),
            tenant: self.tickets.tenant.clone(),
            host: self.tickets.host.clone(),
        }
    }

    /// The plugin call of `q`; for a note or close, the ticket it goes to.
    fn ticket_call(&self, q: &Queued) -> Result<(TicketCall, Option<TicketRow>), String> {
        let incident = self.incident_ref(q);
        if q.call.op == Op::Open {
            let call = TicketCall::Open(NewTicket {
                incident,
                summary: q.call.summary.clone(),
                description: q.call.text.clone(),
            });
            return Ok((call, None));
        }
        let row = self
            .tickets
            .store
            .ticket(&q.call.monitor, &q.call.incident)
            .map_err(|e| e.to_string())?;
        let Some(ticket_id) = row.as_ref().and_then(|r| r.ticket_id.clone()) else {
            return Err("the incident has no ticket id (its open was given up)".into());
        };
        let note = TicketNote {
            incident,
            ticket_id,
            text: q.call.text.clone(),
        };
        let call = match q.call.op {
            Op::Close => TicketCall::Close(note),
            Op::Open | Op::Note => TicketCall::Note(note),
        };
        Ok((call, row))
    }

    async fn deliver(&self, q: Queued) {
        let (call, row) = match self.ticket_call(&q) {
            Ok(c) => c,
            Err(e) => return self.give_up(&q, &e),
        };
        let t = &self.tickets;
        let mut req = RunRequest::new(&t.config.plugin, Invocation::Ticket(call))
            .with_config(t.secrets.merged_into(&t.config.config));
        req.audit_context = json!({ "ticket": { "monitor": q.call.monitor,
            "incident": q.call.incident, "op": q.call.op.as_str(), "attempt": q.attempts + 1 } });
        let runner = self.runner.clone();
        let result = tokio::task::spawn_blocking(move || runner.run(&req).result).await;
        match result {
            Ok(Ok(Output::Ticket(ticket))) => self.answered(&q, row, ticket),
            Ok(Ok(_)) => self.failed(&q, "the plugin did not return a ticket"),
            Ok(Err(e)) => self.failed(&q, &e.to_string()),
            Err(e) => self.failed(&q, &format!("the task failed: {e}")),
        }
    }

    fn publish(&self, kind: &str, q: &Queued, message: String, detail: serde_json::Value) {
        if let Err(e) = self
            .tickets
            .audit
            .append(&format!("ticket.{kind}"), detail.clone())
        {
            tracing::error!("cannot audit ticket.{kind}: {e}");
        }
        let _ = self.events.send(AgentEvent {
            at_ms: now_ms(),
            kind: format!("ticket-{kind}"),
            subject: q.call.monitor.clone(),
            message,
            detail,
        });
    }

    fn answered(&self, q: &Queued, before: Option<TicketRow>, ticket: Ticket) {
        let t = &self.tickets;
        let now = now_ms();
        let closed = q.call.op == Op::Close;
        // A note's answer may not repeat the due times: keep what the PSA said before.
        let keep = |new: Option<String>, old: Option<String>| new.or(old);
        let row = TicketRow {
            monitor: q.call.monitor.clone(),
            incident: q.call.incident.clone(),
            ticket_id: Some(ticket.id.clone()),
            respond_by: keep(
                ticket.respond_by.clone(),
                before.as_ref().and_then(|r| r.respond_by.clone()),
            ),
            resolve_by: keep(
                ticket.resolve_by.clone(),
                before.as_ref().and_then(|r| r.resolve_by.clone()),
            ),
            status: if closed { "closed" } else { "open" }.into(),
            updated_ms: now,
        };
        if let Err(e) = t.store.answered(q.id, &row) {
            // The call stays queued and is sent again: the connector's idempotent open (and a
            // repeated note at worst) is the price of not losing it.
            tracing::error!("ticket outbox: cannot record the answer: {e}");
            return;
        }
        let record = IncidentTicketRow {
            incident_id: row.incident.clone(),
            monitor: row.monitor.clone(),
            plugin: t.config.plugin.clone(),
            ticket_id: ticket.id.clone(),
            respond_by: row.respond_by.clone(),
            resolve_by: row.resolve_by.clone(),
            status: row.status.clone(),
            updated_ms: now,
        };
        if let Err(e) = self.history.save_incident_ticket(&record) {
            tracing::error!("cannot record the ticket on the incident: {e}");
        }
        let kind = match q.call.op {
            Op::Open => "opened",
            Op::Note => "noted",
            Op::Close => "closed",
        };
        let mut message = format!(
            "ticket {} {kind} for incident {}",
            ticket.id, q.call.incident
        );
        if let Some(due) = &row.resolve_by {
            message.push_str(&format!(", resolve by {due}"));
        }
        let detail = json!({ "monitor": q.call.monitor, "incident": q.call.incident,
            "plugin": t.config.plugin, "ticket_id": ticket.id, "respond_by": row.respond_by,
            "resolve_by": row.resolve_by, "attempts": q.attempts + 1 });
        self.publish(kind, q, message, detail);
    }

    fn failed(&self, q: &Queued, error: &str) {
        let t = &self.tickets;
        let now = now_ms();
        let attempts = q.attempts + 1;
        let age = Duration::from_millis(u64::try_from(now - q.queued_ms).unwrap_or(0));
        if age >= t.config.give_up_after() {
            return self.give_up(q, error);
        }
        let delay = t
            .config
            .retry(warden_core::retry::os_seed())
            .pause(attempts);
        let next = now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        if let Err(e) = t.store.failed(q.id, error, next) {
            tracing::error!("ticket outbox: cannot schedule the retry: {e}");
        }
        let detail = json!({ "monitor": q.call.monitor, "incident": q.call.incident,
            "op": q.call.op.as_str(), "attempts": attempts, "error": error,
            "next_at": rfc3339(next) });
        let message = format!(
            "ticket {} for incident {} failed (attempt {attempts}): {error}; next try at {}",
            q.call.op.as_str(),
            q.call.incident,
            rfc3339(next)
        );
        self.publish("retry", q, message, detail);
    }

    fn give_up(&self, q: &Queued, error: &str) {
        let dropped = self.tickets.store.give_up(q, now_ms()).unwrap_or_else(|e| {
            tracing::error!("ticket outbox: cannot drop a call: {e}");
            0
        });
        let detail = json!({ "monitor": q.call.monitor, "incident": q.call.incident,
            "op": q.call.op.as_str(), "attempts": q.attempts + 1, "error": error,
            "dropped": dropped });
        let message = format!(
            "ticket {} for incident {} given up: {error}",
            q.call.op.as_str(),
            q.call.incident
        );
        self.publish("gave-up", q, message, detail);
    }
}
