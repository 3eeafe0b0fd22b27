//! `GetReport`: a tenant's client report ([`crate::report`]) rendered in the asked format.
//! Rendering runs on the blocking pool with the store read: a year of a large tenant is
//! seconds of work that must not hold up the runtime's threads.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warden_fleet_identity::TenantId;
use warden_fleet_wire::UnixMillis;
use warden_proto::fleet as pb;

use super::{blocking, caller};
use crate::controller::Controller;

pub(super) async fn get(
    c: &Arc<Controller>,
    req: Request<pb::ReportRequest>,
) -> Result<Response<pb::ReportFile>, Status> {
    let caller = caller(&req)?;
    let r = req.into_inner();
    let tenant = TenantId::new(r.tenant.clone())
        .map_err(|e| Status::invalid_argument(format!("tenant {:?}: {e}", r.tenant)))?;
    let format = pb::ReportFormat::try_from(r.format)
        .ok()
        .filter(|f| *f != pb::ReportFormat::Unspecified)
        .ok_or_else(|| Status::invalid_argument("format: one of html, csv, pdf"))?;
    let c = c.clone();
    let (from, to) = (UnixMillis(r.from_ms), UnixMillis(r.to_ms));
    let file = blocking(move || {
        let report = c.report(&caller, &tenant, from, to)?;
        let (content_type, ext, body) = match format {
            pb::ReportFormat::Csv => (
                "text/csv; charset=utf-8",
                "csv",
                warden_report::csv::render(&report).into_bytes(),
            ),
            pb::ReportFormat::Pdf => (
                "application/pdf",
                "pdf",
                warden_report::pdf::render(&report),
            ),
            _ => (
                "text/html; charset=utf-8",
                "html",
                warden_report::html::render(&report).into_bytes(),
            ),
        };
        let incidents: usize = report.services.iter().map(|s| s.incidents.len()).sum();
        Ok(pb::ReportFile {
            content_type: content_type.into(),
            file_name: format!(
                "report-{tenant}-{}.{ext}",
                warden_report::time::date(report.from_ms)
            ),
            body,
            services: u32::try_from(report.services.len()).unwrap_or(u32::MAX),
            incidents: u32::try_from(incidents).unwrap_or(u32::MAX),
        })
    })
    .await?;
    Ok(Response::new(file))
}
