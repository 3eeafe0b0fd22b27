//! Client reports of one tenant over a period (issue 18), from the incident events its agents
//! sent: read from the store, classed by the tenant's `[reports.<tenant>]` settings and
//! computed by `warden-report`; with the PSA tickets, patch compliance, drift and the
//! HIPAA / CMMC coverage the store has the inputs of ([`sections`]). A viewer of the tenant may read its report; a tenant-scoped
//! caller reads its own tenant's only. Each report read is audited (it is the client's data
//! leaving the controller).

pub mod delivery;
pub mod sections;

use warden_access::{Caller, Role};
use warden_fleet_identity::TenantId;
use warden_fleet_wire::UnixMillis;
use warden_report::compliance::coverage;
use warden_report::posture::{drift, patch_compliance};
use warden_report::{Event, Report, TenantSettings};

use crate::controller::{Controller, FleetError, covers, need};

/// Longest period of one report: a year and a day (a quarter is the usual; a leap year's
/// annual report must fit).
pub const MAX_REPORT_PERIOD_MS: i64 = 367 * 86_400_000;

/// The formats a report is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Html,
    Csv,
    Pdf,
}

impl ReportFormat {
    const ALL: [ReportFormat; 3] = [ReportFormat::Html, ReportFormat::Csv, ReportFormat::Pdf];

    /// Its name on the command line and in configs, and its file extension.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Html => "html",
            ReportFormat::Csv => "csv",
            ReportFormat::Pdf => "pdf",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Html => "text/html; charset=utf-8",
            ReportFormat::Csv => "text/csv; charset=utf-8",
            ReportFormat::Pdf => "application/pdf",
        }
    }

    pub fn parse(text: &str) -> Option<ReportFormat> {
        ReportFormat::ALL
            .into_iter()
            .find(|f| f.extension() == text)
    }
}

/// A report rendered as one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    pub content_type: &'static str,
    /// `report-<tenant>-<first day>.<ext>`: letters, digits, `-` and `.` only (tenant ids are
    /// lowercase letters, digits and `-`).
    pub file_name: String,
    pub body: Vec<u8>,
    pub services: usize,
    pub incidents: usize,
}

/// `report` rendered in `format`.
pub fn render(report: &Report, format: ReportFormat) -> ReportFile {
    let body = match format {
        ReportFormat::Html => warden_report::html::render(report).into_bytes(),
        ReportFormat::Csv => warden_report::csv::render(report).into_bytes(),
        ReportFormat::Pdf => warden_report::pdf::render(report),
    };
    ReportFile {
        content_type: format.content_type(),
        file_name: format!(
            "report-{}-{}.{}",
            report.tenant,
            warden_report::time::date(report.from_ms),
            format.extension()
        ),
        body,
        services: report.services.len(),
        incidents: report.services.iter().map(|s| s.incidents.len()).sum(),
    }
}

impl Controller {
    /// The report of `tenant` over `[from, to)` rendered in `format` (the API's and the
    /// console's download).
    pub fn report_file(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        from: UnixMillis,
        to: UnixMillis,
        format: ReportFormat,
    ) -> Result<ReportFile, FleetError> {
        Ok(render(&self.report(caller, tenant, from, to)?, format))
    }

    /// The report of `tenant` over `[from, to)`.
    pub fn report(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Result<Report, FleetError> {
        need(caller, Role::Viewer)?;
        covers(caller, tenant)?;
        if !self.has_tenant(tenant) {
            return Err(FleetError::NotFound(format!("tenant {tenant}")));
        }
        let span = to.as_millis() - from.as_millis();
        if span <= 0 || span > MAX_REPORT_PERIOD_MS {
            return Err(FleetError::Invalid(format!(
                "a report covers more than nothing and at most 367 days; [{}, {}) is {} days",
                warden_report::time::rfc3339(from.as_millis()),
                warden_report::time::rfc3339(to.as_millis()),
                span / 86_400_000
            )));
        }
        let incidents = self.store.incident_events(tenant, to)?;
        let events: Vec<Event> = incidents.iter().map(sections::event).collect();
        let default = TenantSettings::default();
        let settings = self.reports.get(tenant).unwrap_or(&default);
        let (from_ms, to_ms) = (from.as_millis(), to.as_millis());
        let agents = self.store.agents(Some(tenant))?;
        let claims = sections::claims(&agents);
        let report = warden_report::compute(tenant.as_str(), from_ms, to_ms, &events, settings)
            .map_err(|e| FleetError::Invalid(e.to_string()))?
            .with_tickets(sections::tickets(
                &self.store.ticket_events(tenant, to)?,
                from_ms,
            ))
            .with_patches(patch_compliance(
                &sections::patch_states(&agents),
                from_ms,
                self.now().as_millis(),
                sections::PATCH_SOURCE,
            ))
            // The controller does not hear of baseline versions (they stay on the agent).
            .with_drift(drift(
                &sections::drift_events(&incidents),
                from_ms,
                to_ms,
                None,
            ))
            .with_compliance(coverage(
                &claims,
                &sections::outcomes(&incidents, &claims),
                from_ms,
                to_ms,
                sections::EVIDENCE,
            ));
        self.audit(
            "fleet.report",
            serde_json::json!({
                "caller": caller.name,
                "tenant": tenant.as_str(),
                "from": warden_report::time::rfc3339(from.as_millis()),
                "to": warden_report::time::rfc3339(to.as_millis()),
                "services": report.services.len(),
                "tickets": report.tickets.len(),
            }),
        )?;
        Ok(report)
    }
}
