//! The ticketing role (WIT `ticketing`): a connector to a PSA or any ticket system. The agent's
//! ticket outbox calls [`Ticketing::open`] once per incident, [`Ticketing::note`] for what
//! happens next, and [`Ticketing::close`] when the incident resolves, retrying a call that
//! failed. `open` must be idempotent on [`IncidentRef::external_ref`]: look the ticket up by it
//! first (or send it as an idempotency key), so that a retry whose first attempt reached the PSA
//! returns that ticket instead of creating a second one.
//!
//! Reach the ticket system with [`crate::http`]; take credentials from the configuration (the
//! agent merges its secrets file into it, under `secrets`), and never put them in an error or a
//! log record.

use crate::PluginError;

/// A ticketing plugin. Implement it and register the type with [`crate::ticketing!`].
///
/// ```
/// use warden_sdk::{NewTicket, PluginError, Ticket, TicketNote, Ticketing};
///
/// struct Print;
///
/// impl Ticketing for Print {
///     fn open(_config: &str, req: NewTicket) -> Result<Ticket, PluginError> {
///         warden_sdk::log::info(&req.summary, &[]);
///         Ok(Ticket::new(req.incident.external_ref))
///     }
///     fn note(_config: &str, req: TicketNote) -> Result<Ticket, PluginError> {
///         Ok(Ticket::new(req.ticket_id))
///     }
///     fn close(_config: &str, req: TicketNote) -> Result<Ticket, PluginError> {
///         Ok(Ticket::new(req.ticket_id))
///     }
/// }
///
/// warden_sdk::ticketing!(Print);
/// ```
pub trait Ticketing {
    /// Create the ticket, or return the one already created for `req.incident.external_ref`.
    fn open(config: &str, req: NewTicket) -> Result<Ticket, PluginError>;
    /// Add a note to the ticket `req.ticket_id`.
    fn note(config: &str, req: TicketNote) -> Result<Ticket, PluginError>;
    /// Close the ticket with the note `req.text` (or only add the note, as the config says).
    fn close(config: &str, req: TicketNote) -> Result<Ticket, PluginError>;
}

/// The incident a ticket is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRef {
    /// The monitor's name.
    pub monitor: String,
    /// The incident's id.
    pub incident: String,
    /// `warden:<monitor>:<incident>`, stable across retries: the idempotency key of `open`.
    pub external_ref: String,
    /// The agent's tenant (client): selects board, queue and priority in the config.
    pub tenant: String,
    /// The agent's host name.
    pub host: String,
}

/// A ticket to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    /// What it is about.
    pub incident: IncidentRef,
    /// One line: the ticket's title.
    pub summary: String,
    /// What happened, for the technician.
    pub description: String,
}

/// A note on an open ticket (or its closing note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketNote {
    /// What it is about.
    pub incident: IncidentRef,
    /// The id [`Ticketing::open`] returned.
    pub ticket_id: String,
    /// The note's text.
    pub text: String,
}

/// A ticket as the ticket system reports it: its id and the SLA due times it gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The ticket system's id.
    pub id: String,
    /// When a first response is due (RFC 3339).
    pub respond_by: Option<String>,
    /// When the resolution is due (RFC 3339).
    pub resolve_by: Option<String>,
}

impl Ticket {
    /// A ticket with no SLA due times.
    pub fn new(id: impl Into<String>) -> Ticket {
        Ticket {
            id: id.into(),
            respond_by: None,
            resolve_by: None,
        }
    }

    /// Set the due times (either may be unknown).
    pub fn due(mut self, respond_by: Option<String>, resolve_by: Option<String>) -> Ticket {
        self.respond_by = respond_by;
        self.resolve_by = resolve_by;
        self
    }
}
