//! `ExportKit` and `ImportResults`: air-gapped sites ([`crate::airgap`]). The files travel as
//! bytes in the messages; their caps are the wire's ([`MAX_KIT_BYTES`], the import's decoding
//! limit is the publish's, above [`MAX_RESULTS_BYTES`]).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::airgap::{MAX_KIT_BYTES, MAX_RESULTS_BYTES};
use warden_proto::fleet as pb;

use super::{blocking, caller, status};
use crate::controller::Controller;

/// Largest response the API encodes: a kit at its cap, with its other fields.
pub const MAX_KIT_RESPONSE_BYTES: usize = MAX_KIT_BYTES as usize + 64 * 1024;

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) async fn export(
    c: &Arc<Controller>,
    req: Request<pb::ExportKitRequest>,
) -> Result<Response<pb::KitFile>, Status> {
    let caller = caller(&req)?;
    let r = req.into_inner();
    let tenant = TenantId::new(r.tenant.clone())
        .map_err(|e| Status::invalid_argument(format!("tenant {:?}: {e}", r.tenant)))?;
    let agents = r
        .agents
        .iter()
        .map(|a| {
            AgentId::new(a.clone())
                .map_err(|e| Status::invalid_argument(format!("agent {a:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let kit = c
        .export_kit(&caller, &tenant, &agents)
        .await
        .map_err(status)?;
    Ok(Response::new(pb::KitFile {
        sha256: kit.sha256,
        tenant: kit.tenant.to_string(),
        agents: kit.agents.iter().map(ToString::to_string).collect(),
        bundles: count(kit.bundles),
        bundle_bytes: kit.bundle_bytes,
        kit: kit.bytes,
    }))
}

pub(super) async fn import(
    c: &Arc<Controller>,
    req: Request<pb::ImportResultsRequest>,
) -> Result<Response<pb::ImportResultsResponse>, Status> {
    let caller = caller(&req)?;
    let bytes = req.into_inner().results;
    if bytes.len() as u64 > MAX_RESULTS_BYTES {
        // The core refuses (and audits) it too; this spares the copy.
        return Err(Status::invalid_argument(format!(
            "the results file is {} bytes, over its cap of {MAX_RESULTS_BYTES}",
            bytes.len()
        )));
    }
    let c = c.clone();
    let i = blocking(move || c.import_results(&caller, &bytes)).await?;
    Ok(Response::new(pb::ImportResultsResponse {
        agent: i.agent.to_string(),
        tenant: i.tenant.to_string(),
        sha256: i.sha256,
        results_new: count(i.results_new),
        results_duplicate: count(i.results_duplicate),
        events_new: count(i.events_new),
        events_duplicate: count(i.events_duplicate),
        through: i.through,
        audit_seq: i.audit_head.seq,
        audit_hash: i.audit_head.hash,
        audit_at_ms: i.audit_head.at.as_millis(),
    }))
}
