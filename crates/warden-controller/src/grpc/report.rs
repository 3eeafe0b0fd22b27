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
use crate::report::ReportFormat;

pub(super) async fn get(
    c: &Arc<Controller>,
    req: Request<pb::ReportRequest>,
) -> Result<Response<pb::ReportFile>, Status> {
    let caller = caller(&req)?;
    let r = req.into_inner();
    let tenant = TenantId::new(r.tenant.clone())
        .map_err(|e| Status::invalid_argument(format!("tenant {:?}: {e}", r.tenant)))?;
    let format = match pb::ReportFormat::try_from(r.format) {
        Ok(pb::ReportFormat::Html) => ReportFormat::Html,
        Ok(pb::ReportFormat::Csv) => ReportFormat::Csv,
        Ok(pb::ReportFormat::Pdf) => ReportFormat::Pdf,
        _ => return Err(Status::invalid_argument("format: one of html, csv, pdf")),
    };
    let c = c.clone();
    let (from, to) = (UnixMillis(r.from_ms), UnixMillis(r.to_ms));
    let file = blocking(move || c.report_file(&caller, &tenant, from, to, format)).await?;
    Ok(Response::new(pb::ReportFile {
        content_type: file.content_type.into(),
        file_name: file.file_name,
        body: file.body,
        services: u32::try_from(file.services).unwrap_or(u32::MAX),
        incidents: u32::try_from(file.incidents).unwrap_or(u32::MAX),
    }))
}
