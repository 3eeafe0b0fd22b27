//! The calls a ticketing plugin (a PSA connector, WIT `ticketing`) answers, as domain types:
//! open the ticket of one monitor incident, add a note to it, close it. The agent's ticket
//! outbox builds them; the sandbox hands them to the plugin's export.

use serde::{Deserialize, Serialize};

/// The incident a ticket is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRef {
    pub monitor: String,
    pub incident: String,
    /// `warden:<monitor>:<incident>` ([`IncidentRef::external_ref_of`]): the key a connector
    /// makes `open` idempotent on.
    pub external_ref: String,
    /// The agent's tenant (client): the connector maps it to a board, queue and priority.
    pub tenant: String,
    pub host: String,
}

impl IncidentRef {
    /// The stable external reference of an incident.
    pub fn external_ref_of(monitor: &str, incident: &str) -> String {
        format!("warden:{monitor}:{incident}")
    }
}

/// A ticket to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTicket {
    pub incident: IncidentRef,
    pub summary: String,
    pub description: String,
}

/// A note on (or the closing note of) an open ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketNote {
    pub incident: IncidentRef,
    pub ticket_id: String,
    pub text: String,
}

/// One call of the `ticketing` export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "kebab-case")]
pub enum TicketCall {
    Open(NewTicket),
    Note(TicketNote),
    Close(TicketNote),
}

impl TicketCall {
    pub fn name(&self) -> &'static str {
        match self {
            TicketCall::Open(_) => "open",
            TicketCall::Note(_) => "note",
            TicketCall::Close(_) => "close",
        }
    }

    pub fn incident(&self) -> &IncidentRef {
        match self {
            TicketCall::Open(t) => &t.incident,
            TicketCall::Note(n) | TicketCall::Close(n) => &n.incident,
        }
    }
}

/// A ticket as the ticket system reported it after a call: its id and SLA due times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: String,
    /// RFC 3339, as the ticket system gave it.
    pub respond_by: Option<String>,
    pub resolve_by: Option<String>,
}
