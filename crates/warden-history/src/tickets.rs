//! The PSA ticket of an incident, as the agent's ticket outbox last heard it from the ticket
//! system: its id, its SLA due times (RFC 3339 text, as the PSA gave them) and whether it is
//! open or closed. One row per incident; the outbox itself lives in the agent.

use super::{History, HistoryError};
use rusqlite::{OptionalExtension, params};

pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS incident_tickets (
    incident_id TEXT PRIMARY KEY, monitor TEXT NOT NULL, plugin TEXT NOT NULL,
    ticket_id TEXT NOT NULL, respond_by TEXT, resolve_by TEXT, status TEXT NOT NULL,
    updated_ms INTEGER NOT NULL);";

/// The ticket of one incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentTicketRow {
    pub incident_id: String,
    pub monitor: String,
    /// The ticketing plugin that holds it.
    pub plugin: String,
    pub ticket_id: String,
    pub respond_by: Option<String>,
    pub resolve_by: Option<String>,
    /// `open` or `closed`.
    pub status: String,
    pub updated_ms: i64,
}

impl History {
    /// Insert or update the ticket of an incident.
    pub fn save_incident_ticket(&self, t: &IncidentTicketRow) -> Result<(), HistoryError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO incident_tickets (incident_id, monitor, plugin, ticket_id, respond_by,
                 resolve_by, status, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(incident_id) DO UPDATE SET plugin = ?3, ticket_id = ?4,
                 respond_by = ?5, resolve_by = ?6, status = ?7, updated_ms = ?8",
                params![
                    t.incident_id,
                    t.monitor,
                    t.plugin,
                    t.ticket_id,
                    t.respond_by,
                    t.resolve_by,
                    t.status,
                    t.updated_ms
                ],
            )
            .map(drop)
        })
    }

    /// The tickets of the incidents that triggered in `[from, to)` (optionally of one
    /// monitor), oldest incident first.
    pub fn incident_tickets(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
        monitor: Option<&str>,
    ) -> Result<Vec<IncidentTicketRow>, HistoryError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT t.incident_id, t.monitor, t.plugin, t.ticket_id, t.respond_by,
                 t.resolve_by, t.status, t.updated_ms
                 FROM incident_tickets t JOIN incidents i ON i.id = t.incident_id
                 WHERE i.triggered_ms >= ?1 AND i.triggered_ms < ?2
                 AND (?3 IS NULL OR t.monitor = ?3) ORDER BY i.triggered_ms, t.incident_id",
            )?;
            stmt.query_map(
                params![from.timestamp_millis(), to.timestamp_millis(), monitor],
                ticket_row,
            )?
            .collect()
        })
    }

    /// The ticket of `incident_id`, if it has one.
    pub fn incident_ticket(
        &self,
        incident_id: &str,
    ) -> Result<Option<IncidentTicketRow>, HistoryError> {
        self.with(|c| {
            c.query_row(
                "SELECT incident_id, monitor, plugin, ticket_id, respond_by, resolve_by, status,
                 updated_ms FROM incident_tickets WHERE incident_id = ?1",
                params![incident_id],
                ticket_row,
            )
            .optional()
        })
    }
}

fn ticket_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<IncidentTicketRow> {
    Ok(IncidentTicketRow {
        incident_id: r.get(0)?,
        monitor: r.get(1)?,
        plugin: r.get(2)?,
        ticket_id: r.get(3)?,
        respond_by: r.get(4)?,
        resolve_by: r.get(5)?,
        status: r.get(6)?,
        updated_ms: r.get(7)?,
    })
}
