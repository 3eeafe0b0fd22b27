//! An agent's event (an incident opened or resolved, an escalation, a schedule firing), on
//! `fleet.evt.<tenant>.<agent>`. The agent keeps each in its outbox like a result and publishes
//! it with `Nats-Msg-Id` = [`AgentEvent::msg_id`], so a controller storing events (or a stream
//! on `fleet.evt.>`) deduplicates the re-sends; `seq` orders them per agent.

use serde::{Deserialize, Serialize};
use warden_fleet_identity::{AgentId, TenantId, subjects};

use crate::WIRE_VERSION;
use crate::codec::{Malformed, Message, check_text};
use crate::time::UnixMillis;

/// Largest encoded event: 16 KiB (the detail and a few ids).
pub const MAX_EVENT_BYTES: usize = 16 * 1024;
/// What the event is about: a monitor, check, schedule or runbook name.
pub const MAX_EVENT_SUBJECT_LEN: usize = 256;
/// One paragraph for the NOC (the escalation reason, the check's message).
pub const MAX_EVENT_DETAIL_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEvent {
    pub v: u32,
    pub agent: AgentId,
    pub tenant: TenantId,
    /// Per agent, from 1, never reused (kept with the outbox across restarts).
    pub seq: u64,
    pub at: UnixMillis,
    pub kind: EventKind,
    pub subject: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The check the event's monitor runs (`builtin:drift`, `disk-encryption`; issue 18: the
    /// client report tells drift and compliance evidence by it); empty when the event is not a
    /// monitor's or the agent is older. Left out of the JSON when empty, as the fields below:
    /// an older controller reads the event as before, a newer one an older agent's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub check: String,
    /// The PSA tickets the event reports (an `escalation` event for a ticket opened or closed
    /// by the agent's ticket outbox: the ticket is the escalation's record at the PSA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tickets: Vec<EventTicket>,
}

/// Tickets on one event: one, in practice (a ticket outbox call answers for one).
pub const MAX_EVENT_TICKETS: usize = 4;
/// A ticket's id, the incident's id, its due time: short texts.
pub const MAX_TICKET_FIELD_LEN: usize = 128;

/// A PSA ticket of an incident, as the agent's ticket outbox recorded the PSA's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventTicket {
    /// The incident it is about (the agent's incident id).
    pub incident: String,
    /// The ticketing plugin (`ticket-connectwise`).
    pub system: String,
    /// The PSA's ticket id.
    pub id: String,
    /// `open` or `closed`.
    pub status: String,
    /// The PSA's resolve-by time, as it answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve_by: Option<String>,
}

impl EventTicket {
    fn check(&self) -> Result<(), Malformed> {
        for (field, value) in [
            ("tickets.incident", &self.incident),
            ("tickets.system", &self.system),
            ("tickets.id", &self.id),
            ("tickets.status", &self.status),
        ] {
            if value.is_empty() {
                return Err(Malformed::new(field, "empty"));
            }
            check_text(field, value, MAX_TICKET_FIELD_LEN)?;
        }
        if let Some(due) = &self.resolve_by {
            check_text("tickets.resolve_by", due, MAX_TICKET_FIELD_LEN)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    IncidentOpened,
    IncidentResolved,
    Escalation,
    ScheduleFired,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::IncidentOpened => "incident-opened",
            EventKind::IncidentResolved => "incident-resolved",
            EventKind::Escalation => "escalation",
            EventKind::ScheduleFired => "schedule-fired",
        }
    }
}

impl AgentEvent {
    pub fn new(
        tenant: TenantId,
        agent: AgentId,
        seq: u64,
        at: UnixMillis,
        kind: EventKind,
        subject: impl Into<String>,
    ) -> AgentEvent {
        AgentEvent {
            v: WIRE_VERSION,
            agent,
            tenant,
            seq,
            at,
            kind,
            subject: subject.into(),
            detail: String::new(),
            check: String::new(),
            tickets: Vec::new(),
        }
    }

    pub fn nats_subject(&self) -> String {
        subjects::event(&self.tenant, &self.agent)
    }

    /// `Nats-Msg-Id`: `<agent>.evt.<seq>`.
    pub fn msg_id(&self) -> String {
        format!("{}.evt.{}", self.agent, self.seq)
    }
}

impl Message for AgentEvent {
    const KIND: &'static str = "event";
    const MAX_BYTES: usize = MAX_EVENT_BYTES;

    fn version(&self) -> u32 {
        self.v
    }

    fn check(&self) -> Result<(), Malformed> {
        if self.subject.is_empty() {
            return Err(Malformed::new("subject", "empty"));
        }
        check_text("subject", &self.subject, MAX_EVENT_SUBJECT_LEN)?;
        // The detail may span lines (an escalation's reason); no other control characters.
        if self.detail.len() > MAX_EVENT_DETAIL_LEN {
            return Err(Malformed::new(
                "detail",
                format!(
                    "{} bytes, at most {MAX_EVENT_DETAIL_LEN}",
                    self.detail.len()
                ),
            ));
        }
        if self
            .detail
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Malformed::new("detail", "holds control characters"));
        }
        check_text("check", &self.check, MAX_EVENT_SUBJECT_LEN)?;
        if self.tickets.len() > MAX_EVENT_TICKETS {
            return Err(Malformed::new(
                "tickets",
                format!(
                    "{} tickets, at most {MAX_EVENT_TICKETS}",
                    self.tickets.len()
                ),
            ));
        }
        for t in &self.tickets {
            t.check()?;
        }
        Ok(())
    }
}
