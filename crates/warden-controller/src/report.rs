//! Client reports of one tenant over a period (issue 18), from the incident events its agents
//! sent: read from the store, classed by the tenant's `[reports.<tenant>]` settings and
//! computed by `warden-report`. A viewer of the tenant may read its report; a tenant-scoped
//! caller reads its own tenant's only. Each report read is audited (it is the client's data
//! leaving the controller).

use warden_access::{Caller, Role};
use warden_fleet_identity::TenantId;
use warden_fleet_wire::UnixMillis;
use warden_report::{Event, EventKind, Report, TenantSettings};

use crate::controller::{Controller, FleetError, covers, need};

/// Longest period of one report: a year and a day (a quarter is the usual; a leap year's
/// annual report must fit).
pub const MAX_REPORT_PERIOD_MS: i64 = 367 * 86_400_000;

impl Controller {
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
