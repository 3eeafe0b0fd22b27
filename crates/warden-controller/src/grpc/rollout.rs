//! The rollout RPCs (`StartRollout`, `GetRollout`, `PauseRollout`, `ResumeRollout`,
//! `RollbackRollout`): requests into [`crate::rollout`]'s calls, views into protobuf.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use warden_proto::fleet as pb;

use super::{MAX_PUBLISH_BYTES, blocking, caller, status};
use crate::controller::{Controller, FleetError};
use crate::rollout::{Command, PlanRequest, RolloutView, StartRollout};

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn view_pb(v: RolloutView) -> pb::RolloutView {
    let r = v.record;
    let wave = v
        .waves
        .get(r.state.wave)
        .map(|w| w.name.clone())
        .unwrap_or_default();
    pb::RolloutView {
        id: r.id,
        plugin: r.plugin,
        version: r.version,
        sha256: r.sha256,
        target: r.target,
        state: r.state.phase.name().to_string(),
        wave,
        reason: r.state.reason.unwrap_or_default(),
        canary: count(r.plan.canary),
        waves_plan: r
            .plan
            .waves
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
        max_in_flight: count(r.plan.max_in_flight),
        max_failure_percent: r.plan.max_failure_percent,
        soak_secs: r.plan.soak_ms / 1000,
        created_at: r.created_at.as_millis(),
        created_by: r.created_by,
        updated_at: r.updated_at.as_millis(),
        waves: v
            .waves
            .into_iter()
            .map(|w| pb::RolloutWave {
                name: w.name,
                size: count(w.size),
                released: count(w.released),
                healthy: count(w.healthy),
                failed: count(w.failed),
                in_flight: count(w.in_flight),
                state: w.state.to_string(),
            })
            .collect(),
        agents: v
            .agents
            .into_iter()
            .map(|a| pb::RolloutAgent {
                agent: a.agent.to_string(),
                tenant: a.tenant.to_string(),
                wave: a.wave,
                state: a.state.to_string(),
                detail: a.detail.unwrap_or_default(),
                released_at: a.released_at.map_or(0, |t| t.as_millis()),
                previous_version: a.previous_version.unwrap_or_default(),
            })
            .collect(),
    }
}

pub(super) async fn start(
    c: &Arc<Controller>,
    req: Request<pb::StartRolloutRequest>,
) -> Result<Response<pb::RolloutView>, Status> {
    let caller = caller(&req)?;
    let r = req.into_inner();
    if r.bundle.len() > MAX_PUBLISH_BYTES {
        return Err(Status::invalid_argument("the bundle is too large"));
    }
    let request = StartRollout {
        bundle: r.bundle,
        target: r.target,
        plan: PlanRequest {
            canary: r.canary as usize,
            waves: r.waves,
            max_in_flight: r.max_in_flight as usize,
            max_failures: r.max_failures,
            soak_secs: r.soak_secs,
            wave_timeout_secs: r.wave_timeout_secs,
        },
        approval: match r.approval.trim() {
            "" => None,
            id => Some(
                crate::approvals::RequestId::parse(id)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?,
            ),
        },
    };
    let v = c
        .start_rollout(&caller, request)
        .await
        .map_err(|e| match e {
            FleetError::NeedsApproval(id) => Status::failed_precondition(format!(
                "this rollout needs a second operator's approval: request {id}; once another operator approves it (warden fleet approve {id}), start the same rollout again with --approval {id}"
            )),
            other => status(other),
        })?;
    Ok(Response::new(view_pb(v)))
}

pub(super) async fn get(
    c: &Arc<Controller>,
    req: Request<pb::RolloutRequest>,
) -> Result<Response<pb::RolloutView>, Status> {
    let caller = caller(&req)?;
    let id = req.into_inner().id;
    let c = c.clone();
    let v = blocking(move || c.rollout_status(&caller, &id)).await?;
    Ok(Response::new(view_pb(v)))
}

pub(super) async fn command(
    c: &Arc<Controller>,
    req: Request<pb::RolloutRequest>,
    cmd: Command,
) -> Result<Response<pb::RolloutView>, Status> {
    let caller = caller(&req)?;
    let id = req.into_inner().id;
    let v = c
        .pause_or_resume_rollout(&caller, &id, cmd)
        .await
        .map_err(status)?;
    Ok(Response::new(view_pb(v)))
}

pub(super) async fn rollback(
    c: &Arc<Controller>,
    req: Request<pb::RollbackRolloutRequest>,
) -> Result<Response<pb::RolloutView>, Status> {
    let caller = caller(&req)?;
    let r = req.into_inner();
    if r.to_bundle.len() > MAX_PUBLISH_BYTES {
        return Err(Status::invalid_argument("the bundle is too large"));
    }
    let to = (!r.to_bundle.is_empty()).then_some(r.to_bundle.as_slice());
    let v = c
        .rollback_rollout(&caller, &r.id, to)
        .await
        .map_err(status)?;
    Ok(Response::new(view_pb(v)))
}
