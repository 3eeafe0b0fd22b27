//! The approvals methods of the API (`ListApprovals`, `Approve`, `Deny`) and the request a
//! `Dispatch` above the threshold answers with. Protobuf types stop here; every check is the
//! core's ([`crate::approvals::flow`]).

use std::sync::Arc;

use tonic::{Response, Status};
use warden_access::Caller;
use warden_proto::fleet as pb;

use super::{blocking, status};
use crate::approvals::{ApprovalRecord, RequestId};
use crate::controller::Controller;

pub(super) fn approval_pb(r: ApprovalRecord) -> pb::ApprovalView {
    let s = r.subject;
    pb::ApprovalView {
        id: r.id.to_string(),
        kind: s.kind.name().to_string(),
        artifact: s.artifact,
        sha256: s.sha256.unwrap_or_default(),
        params: s.params.into_iter().collect(),
        dry_run: s.dry_run,
        target: s.target,
        agents: s.agents.into_iter().map(|(a, _)| a.to_string()).collect(),
        tenants: r.tenants.into_iter().map(|t| t.to_string()).collect(),
        reasons: r.reasons,
        digest: r.digest,
        requested_by: r.requested_by,
        created_at: r.created_at.as_millis(),
        expires_at: r.expires_at.as_millis(),
        state: r.state.name().to_string(),
        decided_by: r.decided_by.unwrap_or_default(),
        decided_at: r.decided_at.map_or(0, |t| t.as_millis()),
        run_id: r.run.map(|r| r.to_string()).unwrap_or_default(),
        note: r.note.unwrap_or_default(),
    }
}

fn request_id(text: &str) -> Result<RequestId, Status> {
    RequestId::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A dispatch that became request `id`: what the caller is told instead of a run.
pub(super) async fn pending(
    c: &Arc<Controller>,
    caller: Caller,
    id: RequestId,
) -> Result<Response<pb::DispatchResponse>, Status> {
    let c = c.clone();
    let record = blocking(move || c.approval(&caller, &id)).await?;
    Ok(Response::new(pb::DispatchResponse {
        run_id: String::new(),
        agents: record
            .subject
            .agents
            .iter()
            .map(|(a, _)| a.to_string())
            .collect(),
        expires_at: record.expires_at.as_millis(),
        approval: Some(approval_pb(record)),
    }))
}

pub(super) async fn list(
    c: &Arc<Controller>,
    caller: Caller,
    r: pb::ListApprovalsRequest,
) -> Result<Response<pb::ListApprovalsResponse>, Status> {
    let c = c.clone();
    let found = blocking(move || c.list_approvals(&caller, r.all)).await?;
    Ok(Response::new(pb::ListApprovalsResponse {
        approvals: found.into_iter().map(approval_pb).collect(),
    }))
}

pub(super) async fn approve(
    c: &Arc<Controller>,
    caller: Caller,
    r: pb::DecideApprovalRequest,
) -> Result<Response<pb::ApprovalView>, Status> {
    let id = request_id(&r.id)?;
    let approved = c.approve(&caller, &id).await.map_err(status)?;
    Ok(Response::new(approval_pb(approved.record)))
}

pub(super) async fn deny(
    c: &Arc<Controller>,
    caller: Caller,
    r: pb::DecideApprovalRequest,
) -> Result<Response<pb::ApprovalView>, Status> {
    let id = request_id(&r.id)?;
    let note = if r.reason.is_empty() {
        "denied".to_string()
    } else {
        r.reason
    };
    let c = c.clone();
    let denied = blocking(move || c.deny(&caller, &id, &note)).await?;
    Ok(Response::new(approval_pb(denied)))
}
