//! `warden report --format html|csv`: the client report (`warden-report`) of this agent's own
//! history: its incidents as opened (the first failing check) and resolved events, classed by
//! the `--sla` file's services and measured against its targets, with the PSA tickets the
//! ticket outbox recorded on the period's incidents.
//!
//! The `--sla` file is a [`warden_report::settings::SlaConfig`] (`[targets]` in minutes per
//! priority, `[[service]]` rules), the shape of the controller's `[reports.<tenant>]` too.

use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use std::path::Path;
use warden_history::History;
use warden_report::settings::SlaConfig;
use warden_report::{Event, EventKind, TenantSettings, Ticket};

/// The formats of `warden report`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The SLA table for people (the default).
    #[default]
    Text,
    /// The client report as one self-contained HTML file.
    Html,
    /// The client report as CSV, one row per service.
    Csv,
}

/// Largest `--sla` file read.
const MAX_SLA_FILE_BYTES: u64 = 256 * 1024;

/// The report settings of `--sla` (none: every monitor P3 in DE.CM, no targets).
pub fn settings(path: Option<&Path>) -> Result<TenantSettings> {
    let Some(path) = path else {
        return Ok(TenantSettings::default());
    };
    let bytes = warden_core::fsutil::read_capped(path, MAX_SLA_FILE_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let text =
        String::from_utf8(bytes).with_context(|| format!("{} is not text", path.display()))?;
    let file: SlaConfig =
        toml::from_str(&text).with_context(|| format!("{}: not an SLA file", path.display()))?;
    file.check()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// This agent's incidents up to `to` as report events (earlier ones decide what is open at
/// `from`).
fn events(
    history: &History,
    to: DateTime<Utc>,
    monitor: Option<&str>,
    agent: &str,
) -> Result<Vec<Event>> {
    let rows = history.incident_rows(DateTime::<Utc>::UNIX_EPOCH, to, monitor)?;
    let mut events = Vec::with_capacity(rows.len() * 2);
    for row in rows {
        events.push(Event {
            at_ms: row.detected_at.timestamp_millis(),
            agent: agent.to_string(),
            monitor: row.monitor.clone(),
            kind: EventKind::Opened,
        });
        if let Some(resolved) = row.resolved_at {
            events.push(Event {
                at_ms: resolved.timestamp_millis(),
                agent: agent.to_string(),
                monitor: row.monitor,
                kind: EventKind::Resolved,
            });
        }
    }
    Ok(events)
}

/// The client report of `[from, to)` in `format` (HTML or CSV).
pub fn render(
    history: &History,
    period: (DateTime<Utc>, DateTime<Utc>),
    monitor: Option<&str>,
    tenant: &str,
    settings: &TenantSettings,
    format: Format,
) -> Result<String> {
    let (from, to) = period;
    let agent = warden_agent::daemon::host_name();
    let events = events(history, to, monitor, &agent)?;
    let tickets = history
        .incident_tickets(from, to, monitor)?
        .into_iter()
        .map(|t| Ticket {
            agent: agent.clone(),
            monitor: t.monitor,
            system: t.plugin,
            id: t.ticket_id,
            status: t.status,
            resolve_by: t.resolve_by,
        })
        .collect();
    let report = warden_report::compute(
        tenant,
        from.timestamp_millis(),
        to.timestamp_millis(),
        &events,
        settings,
    )?
    .with_tickets(tickets);
    Ok(match format {
        Format::Csv => warden_report::csv::render(&report),
        Format::Html | Format::Text => warden_report::html::render(&report),
    })
}
