//! Client reports of one tenant over a period (issue 18), from the incident events its agents
//! sent: read from the store, classed by the tenant's `[reports.<tenant>]` settings and
//! computed by `warden-report`. A viewer of the tenant may read its report; a tenant-scoped
//! caller reads its own tenant's only. Each report read is audited (it is the client's data
//! leaving the controller).

pub mod delivery;

use warden_access::{Caller, Role};
use warden_fleet_identity::TenantId;
use warden_fleet_wire::UnixMillis;
use warden_report::{Event, EventKind, Report, TenantSettings};

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
        let events: Vec<Event> = self
            .store
            .incident_events(tenant, to)?
            .into_iter()
            .map(|e| Event {
                at_ms: e.at.as_millis(),
                agent: e.host,
                monitor: e.monitor,
                kind: if e.opened {
                    EventKind::Opened
                } else {
                    EventKind::Resolved
                },
            })
            .collect();
        let default = TenantSettings::default();
        let settings = self.reports.get(tenant).unwrap_or(&default);
        let report = warden_report::compute(
            tenant.as_str(),
            from.as_millis(),
            to.as_millis(),
            &events,
            settings,
        )
        .map_err(|e| FleetError::Invalid(e.to_string()))?;
        self.audit(
            "fleet.report",
            serde_json::json!({
                "caller": caller.name,
                "tenant": tenant.as_str(),
                "from": warden_report::time::rfc3339(from.as_millis()),
                "to": warden_report::time::rfc3339(to.as_millis()),
                "services": report.services.len(),
            }),
        )?;
        Ok(report)
    }
}
