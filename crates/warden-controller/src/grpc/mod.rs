//! The controller's gRPC adapter (tonic), `proto/warden/fleet/v1/fleet.proto`: protobuf types
//! stop here. [`auth`] guards every method; the handlers turn requests into the core's calls
//! ([`crate::controller::Controller`]), which check the caller's tenant scope.

mod airgap;
mod approvals;
pub mod auth;
mod report;
mod rollout;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use warden_access::{Caller, Tokens};
use warden_fleet_identity::{AgentId, ChallengeResponse, EnrollError, EnrollmentRequest, TenantId};
use warden_fleet_wire::RunId;
use warden_proto::fleet as pb;
use warden_proto::fleet::enrollment_server::{Enrollment, EnrollmentServer};
use warden_proto::fleet::fleet_server::{Fleet, FleetServer};

use crate::controller::{AgentFilter, AgentView, Controller, DispatchRequest, FleetError};
use crate::distribution::DeployState;
use crate::runs::RunView;

/// Largest request the API decodes: 1 MiB (a dispatch with a bundle at the wire's 256 KiB cap
/// and its params fits; nothing else comes close but a publish).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// A publish carries a whole plugin bundle: up to the distributed cap, plus the target.
pub const MAX_PUBLISH_BYTES: usize =
    warden_fleet_wire::desired::MAX_BLOB_BYTES as usize + 64 * 1024;

/// Serve the API on `listener` until `shutdown`.
pub async fn serve(
    controller: Arc<Controller>,
    tokens: Tokens,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), FleetError> {
    let auth = Arc::new(auth::Authenticator::new(tokens, controller.audit.clone()));
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .layer(auth::AuthLayer(auth))
        .add_service(
            // The authentication layer runs before decoding: only a caller with a token gets
            // to send a publish-sized body.
            FleetServer::new(FleetApi(controller.clone()))
                .max_decoding_message_size(MAX_PUBLISH_BYTES)
                .max_encoding_message_size(airgap::MAX_KIT_RESPONSE_BYTES),
        )
        .add_service(
            EnrollmentServer::new(EnrollmentApi(controller))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| FleetError::Internal(format!("gRPC server: {e}")))
}

fn status(e: FleetError) -> Status {
    match e {
        FleetError::Forbidden(m) => Status::permission_denied(m),
        FleetError::Invalid(m) => Status::invalid_argument(m),
        e @ (FleetError::Target(_) | FleetError::Wire(_)) => {
            Status::invalid_argument(e.to_string())
        }
        e @ FleetError::NotFound(_) => Status::not_found(e.to_string()),
        e @ FleetError::NoTargets(_) => Status::failed_precondition(e.to_string()),
        FleetError::Approval(e) => approval_status(e),
        e @ FleetError::NeedsApproval(_) => Status::failed_precondition(e.to_string()),
        FleetError::Enroll(e) => enroll_status(e),
        FleetError::ImportRefused(e) => Status::failed_precondition(e.to_string()),
        e @ (FleetError::Nats(_) | FleetError::Audit(_) | FleetError::Store(_)) => {
            Status::unavailable(e.to_string())
        }
        e => Status::internal(e.to_string()),
    }
}

fn approval_status(e: crate::approvals::ApprovalError) -> Status {
    use crate::approvals::ApprovalError as E;
    match e {
        E::BadId(_) => Status::invalid_argument(e.to_string()),
        E::NotFound(_) => Status::not_found(e.to_string()),
        E::SelfApproval { .. } => Status::permission_denied(e.to_string()),
        // Expired, decided already, bound to something else, changed since.
        _ => Status::failed_precondition(e.to_string()),
    }
}

fn enroll_status(e: EnrollError) -> Status {
    match e {
        EnrollError::BadAgentKey(_)
        | EnrollError::LifetimeOutOfRange { .. }
        | EnrollError::InvalidTag(_)
        | EnrollError::UnknownTenant(_) => Status::invalid_argument(e.to_string()),
        EnrollError::Random(_) | EnrollError::Authority(_) => Status::internal(e.to_string()),
        // Every token, key and signature problem: the credential is not good.
        _ => Status::unauthenticated(e.to_string()),
    }
}

fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    req.extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FleetError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("task failed: {e}")))?
        .map_err(status)
}

fn tenant(text: &str) -> Result<Option<TenantId>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    TenantId::new(text)
        .map(Some)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

fn pairs(items: &[String], what: &str) -> Result<BTreeMap<String, String>, Status> {
    items
        .iter()
        .map(|t| {
            t.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| Status::invalid_argument(format!("{what} {t:?} is not key=value")))
        })
        .collect()
}

fn agent_pb(a: AgentView) -> pb::AgentView {
    let r = a.record;
    pb::AgentView {
        agent: r.id.to_string(),
        tenant: r.tenant.to_string(),
        hostname: if r.hostname.is_empty() {
            r.name
        } else {
            r.hostname
        },
        os: r.os,
        version: r.version,
        tags: r.tags.into_iter().collect(),
        plugins: r
            .plugins
            .into_iter()
            .map(|p| pb::PluginView {
                name: p.name,
                version: p.version,
                sha256: p.sha256,
            })
            .collect(),
        open_incidents: r.open_incidents,
        last_seen: r.last_seen.map_or(0, |t| t.as_millis()),
        presence: a.presence.name().to_string(),
        enrolled_at: r.enrolled_at.map_or(0, |t| t.as_millis()),
        revoked: r.revoked_at.is_some(),
        patches: r.patches.map(|p| pb::PatchesView {
            pending: p.pending,
            security: p.security,
            reboot_required: p.reboot_required,
            scanned_at: p.scanned_at.as_millis(),
        }),
        failing_checks: r.failing,
    }
}

fn run_pb(v: RunView) -> pb::RunView {
    let r = v.run;
    pb::RunView {
        run_id: r.id.to_string(),
        runbook: r.runbook,
        target: r.target,
        params: r.params.into_iter().collect(),
        dry_run: r.dry_run,
        requested_by: r.requested_by,
        created_at: r.created_at.as_millis(),
        expires_at: r.expires_at.as_millis(),
        agents: v
            .agents
            .into_iter()
            .map(|a| pb::RunAgentView {
                agent: a.agent.to_string(),
                tenant: a.tenant.to_string(),
                hostname: a.hostname,
                state: a.state.name().to_string(),
                reason: a.reason.map(|r| r.name().to_string()).unwrap_or_default(),
                error: a.error.unwrap_or_default(),
                started_at: a.started_at.map_or(0, |t| t.as_millis()),
                finished_at: a.finished_at.map_or(0, |t| t.as_millis()),
                sends: a.sends,
            })
            .collect(),
        done: v.done,
    }
}

fn summary_pb(v: &RunView) -> pb::RunSummary {
    use crate::runs::AgentState as S;
    let n = |s| u32::try_from(v.count(s)).unwrap_or(u32::MAX);
    pb::RunSummary {
        run_id: v.run.id.to_string(),
        runbook: v.run.runbook.clone(),
        target: v.run.target.clone(),
        requested_by: v.run.requested_by.clone(),
        created_at: v.run.created_at.as_millis(),
        expires_at: v.run.expires_at.as_millis(),
        agents: u32::try_from(v.agents.len()).unwrap_or(u32::MAX),
        succeeded: n(S::Succeeded),
        failed: n(S::Failed) + n(S::Refused) + n(S::Cancelled),
        pending: n(S::Missing) + n(S::Running),
        expired: n(S::Expired),
        dry_run: v.run.dry_run,
    }
}

fn run_id(text: &str) -> Result<RunId, Status> {
    RunId::parse(text).map_err(|e| Status::invalid_argument(e.to_string()))
}

#[derive(Debug)]
pub struct FleetApi(pub Arc<Controller>);

type RunStream = Pin<Box<dyn Stream<Item = Result<pb::RunView, Status>> + Send>>;
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::FleetEvent, Status>> + Send>>;

#[tonic::async_trait]
impl Fleet for FleetApi {
    async fn list_agents(
        &self,
        req: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let filter = AgentFilter {
            tenant: tenant(&r.tenant)?,
            tags: pairs(&r.tags, "tag")?,
            offline_only: r.offline_only,
            reboot_required_only: r.reboot_required_only,
            patches_pending_only: r.patches_pending_only,
        };
        let c = self.0.clone();
        let agents = blocking(move || c.list_agents(&caller, &filter)).await?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents: agents.into_iter().map(agent_pb).collect(),
        }))
    }

    async fn dispatch(
        &self,
        req: Request<pb::DispatchRequest>,
    ) -> Result<Response<pb::DispatchResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let request = DispatchRequest {
            runbook: r.runbook,
            target: r.target,
            params: r.params.into_iter().collect(),
            dry_run: r.dry_run,
            ttl_secs: (r.ttl_seconds != 0).then_some(r.ttl_seconds),
            bundle: (!r.bundle.is_empty()).then_some(r.bundle),
        };
        let d = match self.0.dispatch(&caller, request).await {
            Ok(d) => d,
            Err(FleetError::NeedsApproval(id)) => {
                return approvals::pending(&self.0, caller, id).await;
            }
            Err(e) => return Err(status(e)),
        };
        Ok(Response::new(pb::DispatchResponse {
            run_id: d.run.to_string(),
            agents: d.agents.into_iter().map(|a| a.to_string()).collect(),
            expires_at: d.expires_at.as_millis(),
            approval: None,
        }))
    }

    async fn publish(
        &self,
        req: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        if r.bundle.len() > MAX_PUBLISH_BYTES {
            return Err(Status::invalid_argument("the bundle is too large"));
        }
        let p = match (r.remove.is_empty(), r.bundle.is_empty()) {
            (true, _) => self.0.publish(&caller, &r.bundle, &r.target).await,
            (false, true) => self.0.unpublish(&caller, &r.remove, &r.target).await,
            (false, false) => {
                return Err(Status::invalid_argument(
                    "a publish carries a bundle or names an item to remove, not both",
                ));
            }
        }
        .map_err(status)?;
        Ok(Response::new(pb::PublishResponse {
            plugin: p.artifact.name,
            version: p.artifact.version,
            sha256: p.artifact.sha256,
            size: p.artifact.size,
            agents: p.agents.into_iter().map(|a| a.to_string()).collect(),
        }))
    }

    async fn export_kit(
        &self,
        req: Request<pb::ExportKitRequest>,
    ) -> Result<Response<pb::KitFile>, Status> {
        airgap::export(&self.0, req).await
    }

    async fn import_results(
        &self,
        req: Request<pb::ImportResultsRequest>,
    ) -> Result<Response<pb::ImportResultsResponse>, Status> {
        airgap::import(&self.0, req).await
    }

    async fn start_rollout(
        &self,
        req: Request<pb::StartRolloutRequest>,
    ) -> Result<Response<pb::RolloutView>, Status> {
        rollout::start(&self.0, req).await
    }

    async fn get_rollout(
        &self,
        req: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutView>, Status> {
        rollout::get(&self.0, req).await
    }

    async fn get_report(
        &self,
        req: Request<pb::ReportRequest>,
    ) -> Result<Response<pb::ReportFile>, Status> {
        report::get(&self.0, req).await
    }

    async fn pause_rollout(
        &self,
        req: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutView>, Status> {
        rollout::command(&self.0, req, crate::rollout::Command::Pause).await
    }

    async fn resume_rollout(
        &self,
        req: Request<pb::RolloutRequest>,
    ) -> Result<Response<pb::RolloutView>, Status> {
        rollout::command(&self.0, req, crate::rollout::Command::Resume).await
    }

    async fn rollback_rollout(
        &self,
        req: Request<pb::RollbackRolloutRequest>,
    ) -> Result<Response<pb::RolloutView>, Status> {
        rollout::rollback(&self.0, req).await
    }

    async fn deploy_status(
        &self,
        req: Request<pb::DeployStatusRequest>,
    ) -> Result<Response<pb::DeployStatusResponse>, Status> {
        let caller = caller(&req)?;
        let plugin = req.into_inner().plugin;
        let c = self.0.clone();
        let s = blocking(move || c.deploy_status(&caller, &plugin)).await?;
        Ok(Response::new(pb::DeployStatusResponse {
            plugin: s.plugin,
            agents: s
                .agents
                .into_iter()
                .map(|a| {
                    let (reason, error) = match &a.state {
                        DeployState::Refused { reason, error } => {
                            (reason.clone(), error.clone().unwrap_or_default())
                        }
                        _ => (String::new(), String::new()),
                    };
                    pb::AgentDeploy {
                        agent: a.agent.to_string(),
                        tenant: a.tenant.to_string(),
                        version: a.version,
                        sha256: a.sha256,
                        state: a.state.name().to_string(),
                        reason,
                        error,
                        reported_at: a.reported_at.map_or(0, |t| t.as_millis()),
                        check_status: a
                            .check
                            .as_ref()
                            .map_or(String::new(), |c| c.status.name().to_string()),
                        check_summary: a.check.map_or(String::new(), |c| c.summary),
                    }
                })
                .collect(),
        }))
    }

    async fn get_run(
        &self,
        req: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::RunView>, Status> {
        let caller = caller(&req)?;
        let id = run_id(&req.get_ref().run_id)?;
        let c = self.0.clone();
        let view = blocking(move || c.run_view(&caller, &id)).await?;
        Ok(Response::new(run_pb(view)))
    }

    async fn cancel_run(
        &self,
        req: Request<pb::GetRunRequest>,
    ) -> Result<Response<pb::CancelRunResponse>, Status> {
        let caller = caller(&req)?;
        let id = run_id(&req.get_ref().run_id)?;
        let sent = self.0.cancel_run(&caller, &id).await.map_err(status)?;
        Ok(Response::new(pb::CancelRunResponse {
            agents: u32::try_from(sent.agents).unwrap_or(u32::MAX),
            settled: u32::try_from(sent.settled).unwrap_or(u32::MAX),
        }))
    }

    type WatchRunStream = RunStream;

    async fn watch_run(
        &self,
        req: Request<pb::GetRunRequest>,
    ) -> Result<Response<RunStream>, Status> {
        let caller = caller(&req)?;
        let id = run_id(&req.get_ref().run_id)?;
        let c = self.0.clone();
        // The first view answers the call (refusals included) before the stream starts.
        let first = {
            let (c, caller, id) = (c.clone(), caller.clone(), id.clone());
            blocking(move || c.run_view(&caller, &id)).await?
        };
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut progress = c.progress();
            let mut view = first;
            loop {
                let done = view.done;
                if tx.send(Ok(run_pb(view))).await.is_err() || done {
                    return;
                }
                if progress.changed().await.is_err() {
                    return;
                }
                let (c2, caller2, id2) = (c.clone(), caller.clone(), id.clone());
                view = match blocking(move || c2.run_view(&caller2, &id2)).await {
                    Ok(v) => v,
                    Err(s) => {
                        let _ = tx.send(Err(s)).await;
                        return;
                    }
                };
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn list_runs(
        &self,
        req: Request<pb::ListRunsRequest>,
    ) -> Result<Response<pb::ListRunsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = tenant(&r.tenant)?;
        let limit = if r.limit == 0 { 50 } else { r.limit as usize };
        let c = self.0.clone();
        let runs = blocking(move || c.list_runs(&caller, t.as_ref(), limit)).await?;
        Ok(Response::new(pb::ListRunsResponse {
            runs: runs.iter().map(summary_pb).collect(),
        }))
    }

    async fn issue_enrollment_token(
        &self,
        req: Request<pb::IssueEnrollmentTokenRequest>,
    ) -> Result<Response<pb::EnrollmentToken>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t =
            tenant(&r.tenant)?.ok_or_else(|| Status::invalid_argument("a tenant is required"))?;
        let c = self.0.clone();
        let ttl = (r.ttl_seconds != 0).then_some(r.ttl_seconds);
        let token = blocking(move || c.issue_enrollment_token(&caller, &t, &r.tags, ttl)).await?;
        Ok(Response::new(pb::EnrollmentToken {
            token: token.token,
            id: token.id,
            tenant: token.tenant.to_string(),
            expires_at: token.expires_at,
        }))
    }

    async fn list_events(
        &self,
        req: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let t = tenant(&r.tenant)?;
        let limit = if r.limit == 0 { 50 } else { r.limit as usize };
        let c = self.0.clone();
        let events = blocking(move || c.events(&caller, t.as_ref(), limit)).await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events.into_iter().map(event_pb).collect(),
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        req: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let caller = caller(&req)?;
        let t = tenant(&req.get_ref().tenant)?;
        let mut rx = self
            .0
            .subscribe_events(&caller, t.as_ref())
            .map_err(status)?;
        let (tx, out) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let item = match rx.recv().await {
                    Ok(e) if !Controller::may_see(&caller, &e.tenant) => continue,
                    Ok(e) if t.as_ref().is_some_and(|t| &e.tenant != t) => continue,
                    Ok(e) => Ok(event_pb(e)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        Err(Status::data_loss(format!(
                            "{n} events were missed (this watcher fell behind); list them with ListEvents"
                        )))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                let lagged = item.is_err();
                if tx.send(item).await.is_err() || lagged {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }

    async fn list_approvals(
        &self,
        req: Request<pb::ListApprovalsRequest>,
    ) -> Result<Response<pb::ListApprovalsResponse>, Status> {
        let caller = caller(&req)?;
        approvals::list(&self.0, caller, req.into_inner()).await
    }

    async fn approve(
        &self,
        req: Request<pb::DecideApprovalRequest>,
    ) -> Result<Response<pb::ApprovalView>, Status> {
        let caller = caller(&req)?;
        approvals::approve(&self.0, caller, req.into_inner()).await
    }

    async fn deny(
        &self,
        req: Request<pb::DecideApprovalRequest>,
    ) -> Result<Response<pb::ApprovalView>, Status> {
        let caller = caller(&req)?;
        approvals::deny(&self.0, caller, req.into_inner()).await
    }

    async fn revoke(
        &self,
        req: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let caller = caller(&req)?;
        let r = req.into_inner();
        let agent = AgentId::new(r.agent).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let reason = if r.reason.is_empty() {
            "revoked by the NOC".to_string()
        } else {
            r.reason
        };
        let (tenant, at) = self
            .0
            .revoke(&caller, &agent, &reason)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RevokeResponse {
            agent: agent.to_string(),
            tenant: tenant.to_string(),
            revoked_at: at,
        }))
    }

    async fn collect_blobs(
        &self,
        req: Request<pb::CollectBlobsRequest>,
    ) -> Result<Response<pb::CollectBlobsResponse>, Status> {
        let caller = caller(&req)?;
        let dry_run = req.into_inner().dry_run;
        let done = self
            .0
            .collect_blobs(&caller, dry_run)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CollectBlobsResponse {
            blobs: done
                .blobs
                .into_iter()
                .map(|b| pb::CollectedBlob {
                    tenant: b.tenant.to_string(),
                    sha256: b.sha256,
                    bytes: b.size,
                    stored_at: b.stored_at.as_millis(),
                })
                .collect(),
            bytes: done.bytes,
            dry_run: done.dry_run,
        }))
    }
}

fn event_pb(e: warden_fleet_wire::AgentEvent) -> pb::FleetEvent {
    pb::FleetEvent {
        agent: e.agent.to_string(),
        tenant: e.tenant.to_string(),
        seq: e.seq,
        at: e.at.as_millis(),
        kind: e.kind.name().to_string(),
        subject: e.subject,
        detail: e.detail,
        check: e.check,
        tickets: e
            .tickets
            .into_iter()
            .map(|t| pb::EventTicket {
                incident: t.incident,
                system: t.system,
                id: t.id,
                status: t.status,
                resolve_by: t.resolve_by.unwrap_or_default(),
            })
            .collect(),
    }
}

#[derive(Debug)]
pub struct EnrollmentApi(pub Arc<Controller>);

fn need_token(token: &str) -> Result<(), Status> {
    if token.is_empty() {
        Err(Status::unauthenticated("an enrollment token is required"))
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl Enrollment for EnrollmentApi {
    async fn begin(
        &self,
        req: Request<pb::BeginEnrollmentRequest>,
    ) -> Result<Response<pb::EnrollmentChallenge>, Status> {
        let r = req.into_inner();
        need_token(&r.token)?;
        let request = EnrollmentRequest {
            token: r.token,
            tenant: r.tenant,
            agent: r.agent,
            name: r.name,
        };
        let c = self.0.clone();
        let ch = blocking(move || c.begin_enrollment(&request)).await?;
        Ok(Response::new(pb::EnrollmentChallenge {
            token_id: ch.token_id,
            tenant: ch.tenant.to_string(),
            agent: ch.agent.to_string(),
            nonce: ch.nonce,
            expires_at: ch.expires_at,
        }))
    }

    async fn complete(
        &self,
        req: Request<pb::CompleteEnrollmentRequest>,
    ) -> Result<Response<pb::EnrollmentResult>, Status> {
        let r = req.into_inner();
        need_token(&r.token)?;
        let response = ChallengeResponse {
            token_id: r.token_id,
            agent: r.agent,
            nonce: r.nonce,
            signature: r.signature,
        };
        let c = self.0.clone();
        let enrolled = blocking(move || c.complete_enrollment(&response)).await?;
        Ok(Response::new(pb::EnrollmentResult {
            tenant: enrolled.jwt.tenant.to_string(),
            agent: enrolled.jwt.agent.to_string(),
            jwt: enrolled.jwt.jwt,
            expires_at: enrolled.jwt.expires_at,
            nats_urls: self.0.agent_urls().to_vec(),
            tags: enrolled.tags,
        }))
    }
}
