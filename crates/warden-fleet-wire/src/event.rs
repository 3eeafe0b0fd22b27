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
        Ok(())
    }
}
