//! `warden report --format html|csv|pdf`: the client report (`warden-report`) of this agent's
//! own history: its incidents as opened (the first failing check) and resolved events, classed
//! by the `--sla` file's services and measured against its targets, with the PSA tickets the
//! ticket outbox recorded on the period's incidents, and the sections of
//! [`super::report_evidence`]: patch compliance, drift and the HIPAA / CMMC coverage of the
//! checks installed here.
//!
//! The `--sla` file is a [`warden_report::settings::SlaConfig`] (`[targets]` in minutes per
//! priority, `[[service]]` rules), the shape of the controller's `[reports.<tenant>]` too.

use super::report_evidence as evidence;
use anyhow::{Context as _, Result};
use chrono::{DateTime, Utc};
use std::path::Path;
use warden_agent::store::PluginStore;
use warden_audit::AuditLog;
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
    /// The client report as CSV, one row per record (service, patch, drift, control, ...).
    Csv,
    /// The client report as PDF (to standard output: redirect it to a file).
    Pdf,
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

/// What to report on.
pub struct Request<'a> {
    /// `[from, to)`.
    pub period: (DateTime<Utc>, DateTime<Utc>),
    /// Only this monitor's incidents.
    pub monitor: Option<&'a str>,
    pub tenant: &'a str,
    pub settings: &'a TenantSettings,
    pub format: Format,
    /// When patch compliance is measured.
    pub now: DateTime<Utc>,
}

/// The client report of `req` (HTML, CSV or PDF), from the history, the audit log and the
/// plugin store in `data_dir`.
pub fn render(data_dir: &Path, history: &History, req: &Request<'_>) -> Result<Vec<u8>> {
    let Request {
        period,
        monitor,
        tenant,
        settings,
        format,
        now,
    } = *req;
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
    let span = (from.timestamp_millis(), to.timestamp_millis());
    let runs = evidence::check_runs(&AuditLog::new(data_dir), span.1)?;
    let report = warden_report::compute(tenant, span.0, span.1, &events, settings)?
        .with_tickets(tickets)
        .with_patches(evidence::patches(
            history,
            &agent,
            span.0,
            now.timestamp_millis(),
        )?)
        .with_drift(evidence::drift(history, &events, &runs, &agent, span)?)
        .with_compliance(evidence::compliance(
            &PluginStore::existing(data_dir),
            &runs,
            &agent,
            span,
        )?);
    Ok(match format {
        Format::Csv => warden_report::csv::render(&report).into_bytes(),
        Format::Pdf => warden_report::pdf::render(&report),
        Format::Html | Format::Text => warden_report::html::render(&report).into_bytes(),
    })
}
