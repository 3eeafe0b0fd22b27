//! The controller's core: what the gRPC API and the NATS loops call. Every operation of a
//! caller takes its [`Caller`] and checks its scope here, in one place, so no adapter can
//! forget it; every change is audited before it takes effect on the fleet.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::Client;
use tokio::sync::{mpsc, watch};
use warden_access::{Caller, Role, Scope};
use warden_audit::AuditLog;
use warden_fleet_identity::{
    AgentId, AuthorityError, ChallengeResponse, EnrollError, EnrollmentRequest, EnrollmentToken,
    FleetAuthority, TenantId, claims_update_result, enroll::ENROLLMENT_TOKEN_LIFETIME,
};
use warden_fleet_wire::{
    AgentEvent, Bundle, Command, Heartbeat, RunId, RunResult, RunRunbook, UnixMillis, WireError,
};

use crate::clock::Clock;
use crate::enrollment::{DENY_LIST_KEY, EnrollmentState};
use crate::presence::{Presence, presence};
use crate::runs::{self, RunView};
use crate::store::{AgentRecord, FleetStore, RunRecord, StoreError, Stored};
use crate::target::{Candidate, Selector, SelectorError};

/// Runs listed at most per call.
pub const MAX_LIST_RUNS: usize = 500;
/// Enrollment tokens issued by one call at most: a roll-out to a 10,000-machine fleet.
pub const MAX_TOKENS_PER_CALL: usize = 10_000;
/// Runs scanned to fill a tenant-filtered list (a scoped caller's runs among everyone's).
const RUN_SCAN: usize = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the target {0:?} matches no agent the caller may see")]
    NoTargets(String),
    #[error(transparent)]
    Target(#[from] SelectorError),
    #[error("the command is not valid: {0}")]
    Wire(#[from] WireError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("nats: {0}")]
    Nats(String),
    #[error("audit log: {0}")]
    Audit(#[from] warden_audit::AuditError),
    #[error(transparent)]
    Enroll(#[from] EnrollError),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
    #[error("keys: {0}")]
    Keys(#[from] crate::keys::KeysError),
    #[error("internal: {0}")]
    Internal(String),
    #[error("cannot serve the metrics on {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// An air-gapped agent's results file that is not imported ([`crate::airgap`]).
    #[error(transparent)]
    ImportRefused(#[from] crate::airgap::ImportRefused),
    /// Refused by the four-eyes rules ([`crate::approvals`]).
    #[error(transparent)]
    Approval(#[from] crate::approvals::ApprovalError),
    /// Above the `[approvals]` threshold: not sent; recorded as this request.
    #[error("this needs a second operator's approval: request {0}")]
    NeedsApproval(crate::approvals::RequestId),
}

/// Counters the loops move, for a caller (a test, a watcher) to await instead of sleeping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Result messages handled (stored, duplicate or dropped).
    pub results: u64,
    pub heartbeats: u64,
    pub events: u64,
    /// Renewal requests answered (renewed or refused).
    pub renewals: u64,
    /// Commands published (first sends and re-sends).
    pub sends: u64,
    /// Something a run view shows changed.
    pub changes: u64,
}

/// A dispatch request, from the API.
#[derive(Debug, Clone)]
pub struct DispatchRequest {
    pub runbook: String,
    pub target: String,
    pub params: BTreeMap<String, String>,
    pub dry_run: bool,
    /// `None`: the controller's default.
    pub ttl_secs: Option<i64>,
    pub bundle: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Dispatched {
    pub run: RunId,
    pub agents: Vec<AgentId>,
    pub expires_at: UnixMillis,
}

/// An agent as listed.
#[derive(Debug, Clone)]
pub struct AgentView {
    pub record: AgentRecord,
    pub presence: Presence,
}

/// Filters of an agent listing.
#[derive(Debug, Clone, Default)]
pub struct AgentFilter {
    pub tenant: Option<TenantId>,
    pub tags: BTreeMap<String, String>,
    pub offline_only: bool,
    /// Only agents whose latest patch scan says a reboot is required.
    pub reboot_required_only: bool,
    /// Only agents whose latest patch scan found upgradable packages.
    pub patches_pending_only: bool,
}

pub struct Controller {
    pub(crate) store: Arc<dyn FleetStore>,
    pub(crate) authority: Arc<Mutex<FleetAuthority>>,
    pub(crate) data_dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) audit: Arc<AuditLog>,
    pub(crate) nats: Client,
    pub(crate) system: Client,
    pub(crate) enrollment: Mutex<EnrollmentState>,
    /// Concurrent enrollments' store writes, committed together.
    pub(crate) enrollments: crate::store::group::GroupCommit<crate::store::NewEnrollment>,
    pub(crate) agent_urls: Vec<String>,
    pub(crate) command_ttl_secs: i64,
    pub(crate) progress: watch::Sender<Progress>,
    /// Agents whose unanswered commands should be sent now (they just came online).
    pub(crate) returning: mpsc::UnboundedSender<AgentId>,
    /// New events, for the API's watchers (a slow watcher misses some and is told so).
    pub(crate) events: tokio::sync::broadcast::Sender<AgentEvent>,
    /// The four-eyes policy (`[approvals]`); `None`: every run proceeds.
    pub(crate) approvals: Option<crate::approvals::ApprovalPolicy>,
    /// Client report settings per tenant (`[reports.<tenant>]`).
    pub(crate) reports: BTreeMap<TenantId, warden_report::TenantSettings>,
    /// Reports written on a schedule (`[report-delivery]`); `None`: none.
    pub(crate) report_delivery: Option<crate::report::delivery::ReportDelivery>,
    /// Serialises every change of every rollout (see `rollout`'s module doc).
    pub(crate) rollouts: tokio::sync::Mutex<()>,
    /// Held by a publish while it stores a blob and the rows naming it, and by blob
    /// collection ([`crate::blobs`]): a blob is never collected under a publish of it.
    pub(crate) blobs: tokio::sync::Mutex<()>,
    /// What `/metrics` shows (docs/METRICS.md).
    pub(crate) metrics: Arc<crate::metrics::ControllerMetrics>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// A durable append that shares its flush with concurrent callers: queued, then the queue
/// written (by this caller, or by one that took the writer first: either way, once this returns
/// `Ok` the record is on disk).
pub(crate) fn audit_grouped(
    log: &AuditLog,
    event: &str,
    data: &serde_json::Value,
) -> Result<(), warden_audit::AuditError> {
    log.append_lazy(vec![warden_audit::Pending::new(event, data)?])?;
    log.flush()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn need(caller: &Caller, role: Role) -> Result<(), FleetError> {
    if caller.role >= role {
        Ok(())
    } else {
        Err(FleetError::Forbidden(format!(
            "this needs the {} role; `{}` has {}",
            role.name(),
            caller.name,
            caller.role.name()
        )))
    }
}

pub(crate) fn covers(caller: &Caller, tenant: &TenantId) -> Result<(), FleetError> {
    if caller.scope.covers(tenant.as_str()) {
        Ok(())
    } else {
        Err(FleetError::Forbidden(format!(
            "`{}` may act on tenant {} only, not {tenant}",
            caller.name,
            caller.scope.tenant().unwrap_or("?")
        )))
    }
}

/// Whether a run is entirely within the caller's scope.
fn sees_run(caller: &Caller, run: &RunRecord) -> bool {
    run.tenants.iter().all(|t| caller.scope.covers(t.as_str()))
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], FleetError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| FleetError::Internal(format!("no randomness: {e}")))?;
    Ok(b)
}

impl Controller {
    pub fn now(&self) -> UnixMillis {
        self.clock.now()
    }

    /// Await the loops' progress (tests and watchers).
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    pub(crate) fn bump(&self, f: impl FnOnce(&mut Progress)) {
        self.progress.send_modify(f);
    }

    /// Append an audit record durably: it is written and flushed before this returns. Queued,
    /// then flushed with whatever else is queued: concurrent callers (enrollments, API calls)
    /// share one flush (`warden-audit`'s group commit) instead of taking turns.
    /// Adapters (the web console) record their own decisions, sign-ins and actions with it.
    pub fn audit(&self, event: &str, data: serde_json::Value) -> Result<(), FleetError> {
        audit_grouped(&self.audit, event, &data)?;
        Ok(())
    }

    // ---- inventory ------------------------------------------------------------------------

    pub fn list_agents(
        &self,
        caller: &Caller,
        filter: &AgentFilter,
    ) -> Result<Vec<AgentView>, FleetError> {
        need(caller, Role::Viewer)?;
        let tenant = match (&filter.tenant, caller.scope.tenant()) {
            (Some(t), _) => {
                covers(caller, t)?;
                Some(t.clone())
            }
            (None, Some(own)) => {
                Some(TenantId::new(own).map_err(|e| FleetError::Internal(e.to_string()))?)
            }
            (None, None) => None,
        };
        let now = self.now();
        let agents = self.store.agents(tenant.as_ref())?;
        Ok(agents
            .into_iter()
            .filter(|a| caller.scope.covers(a.tenant.as_str()))
            .filter(|a| {
                filter.tags.iter().all(|(k, v)| match k.as_str() {
                    "os" => &a.os == v || a.tags.get("os") == Some(v),
                    _ => a.tags.get(k) == Some(v),
                })
            })
            .map(|a| {
                let p = presence(a.last_seen, a.interval_ms, now);
                AgentView {
                    record: a,
                    presence: p,
                }
            })
            .filter(|a| !filter.offline_only || !a.presence.is_online())
            .filter(|a| {
                !filter.reboot_required_only || a.record.patches.is_some_and(|p| p.reboot_required)
            })
            .filter(|a| {
                !filter.patches_pending_only || a.record.patches.is_some_and(|p| p.pending > 0)
            })
            .collect())
    }

    // ---- runs -----------------------------------------------------------------------------

    /// Resolve the target, pass the approvals gate, record the run, audit it, send one
    /// command per agent. Above the `[approvals]` threshold nothing is sent:
    /// [`FleetError::NeedsApproval`] names the request recorded instead.
    pub async fn dispatch(
        &self,
        caller: &Caller,
        req: DispatchRequest,
    ) -> Result<Dispatched, FleetError> {
        need(caller, Role::Operator)?;
        let ttl_ms = req
            .ttl_secs
            .unwrap_or(self.command_ttl_secs)
            .saturating_mul(1000);
        if ttl_ms <= 0 || ttl_ms > warden_fleet_wire::command::MAX_COMMAND_LIFETIME_MS {
            return Err(FleetError::Invalid(format!(
                "ttl {} s is not within 1 s ..= {} s",
                ttl_ms / 1000,
                warden_fleet_wire::command::MAX_COMMAND_LIFETIME_MS / 1000
            )));
        }
        let (selector, targets) = self.resolve_targets(caller, &req.target)?;
        let pairs: Vec<(AgentId, TenantId)> = targets
            .iter()
            .map(|a| (a.id.clone(), a.tenant.clone()))
            .collect();
        let target = selector.to_string();
        let subject = crate::approvals::flow::run_subject(&req, target.clone(), &pairs, ttl_ms);
        if let crate::approvals::Gate::Pending(id) =
            self.gate_with_bundle(caller, subject, req.bundle.as_deref())?
        {
            return Err(FleetError::NeedsApproval(id));
        }
        self.start_run(
            &caller.name,
            req,
            ttl_ms,
            target,
            pairs,
            serde_json::Value::Null,
        )
        .await
    }

    /// Record the run of `req` to `pairs` (resolved and past the gate), audit it (with the
    /// approval that let it through, if any), send it.
    pub(crate) async fn start_run(
        &self,
        requested_by: &str,
        req: DispatchRequest,
        ttl_ms: i64,
        target: String,
        pairs: Vec<(AgentId, TenantId)>,
        approval: serde_json::Value,
    ) -> Result<Dispatched, FleetError> {
        let now = self.now();
        let expires_at = now.plus_millis(ttl_ms);
        let (first_agent, first_tenant) = pairs
            .first()
            .cloned()
            .ok_or_else(|| FleetError::NoTargets(target.clone()))?;
        let run = RunId::from_parts(now, random_bytes::<10>()?);
        let mut tenants: Vec<TenantId> = pairs.iter().map(|(_, t)| t.clone()).collect();
        tenants.sort();
        tenants.dedup();
        let record = RunRecord {
            id: run.clone(),
            runbook: req.runbook,
            target,
            params: req.params,
            dry_run: req.dry_run,
            requested_by: requested_by.to_string(),
            created_at: now,
            expires_at,
            tenants,
            bundle: req.bundle,
            closed_at: None,
        };
        // Checked once on the first agent's command: every command differs only in address.
        warden_fleet_wire::encode(&command_for(&record, &first_tenant, &first_agent))?;
        self.store.create_run(&record, &pairs)?;
        let mut data = serde_json::json!({
            "run": run.as_str(),
            "runbook": record.runbook,
            "target": record.target,
            "params": record.params,
            "dry_run": record.dry_run,
            "bundle_bytes": record.bundle.as_ref().map(Vec::len),
            "agents": pairs.len(),
            "caller": requested_by,
            "expires_at": expires_at.as_millis(),
        });
        if !approval.is_null() {
            data["approval"] = approval;
        }
        self.audit("fleet.dispatch", data)?;
        self.send(&record, &pairs, false).await?;
        self.metrics.runs_dispatched.inc();
        Ok(Dispatched {
            run,
            agents: pairs.into_iter().map(|(a, _)| a).collect(),
            expires_at,
        })
    }

    /// The agents a target selects among those the caller may act on (not revoked); a caller
    /// scoped to a tenant is confined to it. Refused when it selects none.
    pub(crate) fn resolve_targets(
        &self,
        caller: &Caller,
        target: &str,
    ) -> Result<(Selector, Vec<AgentRecord>), FleetError> {
        let mut selector = Selector::parse(target)?;
        match (&selector.tenant, caller.scope.tenant()) {
            (Some(t), _) => covers(caller, t)?,
            (None, Some(own)) => {
                selector.tenant =
                    Some(TenantId::new(own).map_err(|e| FleetError::Internal(e.to_string()))?);
            }
            (None, None) => {}
        }
        let targets: Vec<AgentRecord> = self
            .store
            .agents(selector.tenant.as_ref())?
            .into_iter()
            .filter(|a| a.revoked_at.is_none() && caller.scope.covers(a.tenant.as_str()))
            .filter(|a| {
                selector.matches(&Candidate {
                    agent: a.id.as_str(),
                    tenant: a.tenant.as_str(),
                    hostname: &a.hostname,
                    os: &a.os,
                    tags: &a.tags,
                })
            })
            .collect();
        if targets.is_empty() {
            return Err(FleetError::NoTargets(target.to_string()));
        }
        Ok((selector, targets))
    }

    /// Publish `run`'s command to `agents`, then record the sends; `resend`: they were sent it
    /// before (counted apart). A run cancelled meanwhile is re-sent as its cancel
    /// ([`crate::cancel`]): an agent away during the cancel must not run it when it returns.
    pub(crate) async fn send(
        &self,
        run: &RunRecord,
        agents: &[(AgentId, TenantId)],
        resend: bool,
    ) -> Result<(), FleetError> {
        if agents.is_empty() {
            return Ok(());
        }
        let cancelled = resend && self.cancel_requested(&run.id)?;
        let commands: Vec<Command> = agents
            .iter()
            .map(|(agent, tenant)| {
                if cancelled {
                    let now = self.now();
                    Command::cancel(
                        run.id.clone(),
                        tenant.clone(),
                        agent.clone(),
                        now,
                        run.expires_at,
                    )
                } else {
                    command_for(run, tenant, agent)
                }
            })
            .collect();
        self.publish_commands(&commands).await?;
        let ids: Vec<AgentId> = agents.iter().map(|(a, _)| a.clone()).collect();
        self.store.record_sends(&run.id, &ids, self.now())?;
        let n = u64::try_from(agents.len()).unwrap_or(u64::MAX);
        self.metrics.sent(resend, n);
        self.bump(|p| {
            p.sends += n;
            p.changes += 1;
        });
        Ok(())
    }

    /// Publish each command on its agent's subject (core NATS), then flush.
    pub(crate) async fn publish_commands(&self, commands: &[Command]) -> Result<(), FleetError> {
        for command in commands {
            let bytes = warden_fleet_wire::encode(command)?;
            self.nats
                .publish(command.nats_subject(), bytes.into())
                .await
                .map_err(|e| FleetError::Nats(e.to_string()))?;
        }
        self.nats
            .flush()
            .await
            .map_err(|e| FleetError::Nats(e.to_string()))
    }

    pub fn run_view(&self, caller: &Caller, run: &RunId) -> Result<RunView, FleetError> {
        need(caller, Role::Viewer)?;
        let record = self
            .store
            .run(run)?
            .filter(|r| sees_run(caller, r))
            // Another tenant's run is "not found" to a scoped caller: it does not learn it exists.
            .ok_or_else(|| FleetError::NotFound(format!("run {run}")))?;
        self.view_of(&record)
    }

    /// The results stored for a run so far (one per agent: its final one, or `running`), with
    /// the controller's receive times: one query, for watchers that poll a large run (a
    /// [`RunView`] also names every agent, a lookup each).
    pub fn run_results(
        &self,
        caller: &Caller,
        run: &RunId,
    ) -> Result<Vec<crate::store::ResultRecord>, FleetError> {
        need(caller, Role::Viewer)?;
        self.store
            .run(run)?
            .filter(|r| sees_run(caller, r))
            .ok_or_else(|| FleetError::NotFound(format!("run {run}")))?;
        Ok(self.store.results(run)?)
    }

    pub(crate) fn view_of(&self, record: &RunRecord) -> Result<RunView, FleetError> {
        let targets = self.store.targets(&record.id)?;
        let results = self.store.results(&record.id)?;
        let mut names = BTreeMap::new();
        for t in &targets {
            if let Some(a) = self.store.agent(&t.agent)? {
                let name = if a.hostname.is_empty() {
                    a.name
                } else {
                    a.hostname
                };
                names.insert(t.agent.clone(), name);
            }
        }
        Ok(runs::view(record, &targets, &results, &names, self.now()))
    }

    pub fn list_runs(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<RunView>, FleetError> {
        need(caller, Role::Viewer)?;
        if let Some(t) = tenant {
            covers(caller, t)?;
        }
        let limit = limit.clamp(1, MAX_LIST_RUNS);
        let mut out = Vec::new();
        for run in self.store.runs(RUN_SCAN)? {
            if out.len() >= limit {
                break;
            }
            if !sees_run(caller, &run) || tenant.is_some_and(|t| !run.tenants.contains(t)) {
                continue;
            }
            out.push(self.view_of(&run)?);
        }
        Ok(out)
    }

    /// One pass of the re-send loop: send what is due, close what is settled, report expiries.
    pub async fn tick(&self) -> Result<(), FleetError> {
        let now = self.now();
        for run in self.store.open_runs()? {
            let targets = self.store.targets(&run.id)?;
            let results = self.store.results(&run.id)?;
            let due = runs::due_sends(&run, &targets, &results, now);
            if !due.is_empty() {
                let pairs: Vec<(AgentId, TenantId)> = targets
                    .iter()
                    .filter(|t| due.contains(&t.agent))
                    .map(|t| (t.agent.clone(), t.tenant.clone()))
                    .collect();
                self.send(&run, &pairs, true).await?;
            }
            if runs::can_close(&run, &targets, &results, now) {
                let expired: Vec<&str> = targets
                    .iter()
                    .filter(|t| !results.iter().any(|r| r.agent == t.agent))
                    .map(|t| t.agent.as_str())
                    .collect();
                self.audit(
                    "fleet.run.closed",
                    serde_json::json!({
                        "run": run.id.as_str(),
                        "answered": results.len(),
                        "expired": expired,
                    }),
                )?;
                self.store.close_run(&run.id, now)?;
                // No more re-sends: a cancel request has nothing left to turn into cancels.
                self.store
                    .delete_state(&crate::cancel::cancel_key(&run.id))?;
                self.bump(|p| p.changes += 1);
            }
        }
        Ok(())
    }

    /// Send an agent that just came (back) online the commands it has not answered.
    pub async fn serve_returning(&self, agent: &AgentId) -> Result<(), FleetError> {
        let now = self.now();
        for run in self.store.unanswered_for(agent)? {
            if now > run.expires_at {
                continue;
            }
            let Some(t) = self
                .store
                .targets(&run.id)?
                .into_iter()
                .find(|t| &t.agent == agent)
            else {
                continue;
            };
            self.send(&run, &[(t.agent, t.tenant)], true).await?;
        }
        Ok(())
    }

    // ---- what the agents send ---------------------------------------------------------------

    /// A heartbeat from `subject`; refused if the payload names another agent than the one the
    /// server let publish there.
    pub fn take_heartbeat(&self, subject: &str, payload: &[u8]) -> Result<(), FleetError> {
        let hb: Heartbeat = warden_fleet_wire::decode(payload)?;
        if subject != hb.nats_subject() {
            self.audit_forged("heartbeat", subject, hb.agent.as_str())?;
            return Ok(());
        }
        let now = self.now();
        let seen = self.store.record_heartbeat(&hb, now)?;
        self.bump(|p| p.heartbeats += 1);
        self.seen(&hb, &seen, now);
        Ok(())
    }

    /// Heartbeats received together, as `(subject, payload)`: presence and inventory stored in
    /// one commit (a fleet of 10,000 at 15 s sends ~670 a second; one flush each would not keep
    /// up). A message that does not decode or names another agent is logged (or audited as
    /// forged) and skipped; `Err` is the store's.
    pub fn take_heartbeats(&self, batch: &[(&str, &[u8])]) -> Result<(), FleetError> {
        let mut valid = Vec::with_capacity(batch.len());
        for (subject, payload) in batch {
            match warden_fleet_wire::decode::<Heartbeat>(payload) {
                Ok(hb) if *subject == hb.nats_subject() => valid.push(hb),
                Ok(hb) => self.audit_forged("heartbeat", subject, hb.agent.as_str())?,
                Err(e) => tracing::warn!("a heartbeat on {subject}: {e}"),
            }
        }
        if valid.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let seen = self.store.record_heartbeats(&valid, now)?;
        let n = u64::try_from(valid.len()).unwrap_or(u64::MAX);
        self.bump(|p| p.heartbeats += n);
        for (hb, seen) in valid.iter().zip(&seen) {
            self.seen(hb, seen, now);
        }
        Ok(())
    }

    /// After a heartbeat is stored: an agent back online, or restarted (its link may have lost
    /// a command in flight), gets its unanswered commands.
    fn seen(&self, hb: &Heartbeat, seen: &crate::store::Seen, now: UnixMillis) {
        if seen.revoked {
            return;
        }
        let was = presence(seen.previous, seen.previous_interval_ms, now);
        if !was.is_online() || hb.seq == 1 {
            let _ = self.returning.send(hb.agent.clone());
        }
    }

    /// A result message; `Ok` means it may be acknowledged (stored, a duplicate, or dropped
    /// for good reason).
    pub fn take_result(&self, subject: &str, payload: &[u8]) -> Result<Stored, FleetError> {
        self.take_results(&[(subject, payload)])?
            .pop()
            .ok_or_else(|| FleetError::Internal("a result batch of one stored nothing".into()))
    }

    /// Result messages delivered together, as `(subject, payload)`: stored in one commit and
    /// audited in one append, in order; `Ok` means every one of them may be acknowledged. One
    /// commit and one audit flush per batch is what lets ingest keep up with a fleet: per result
    /// they took about 3 flushes, ~100 results/s on this machine (docs/PERFORMANCE.md).
    pub fn take_results(&self, batch: &[(&str, &[u8])]) -> Result<Vec<Stored>, FleetError> {
        // Deploy reports share the stream (and its one consumer) with run results.
        let suffix = format!(".{}", warden_fleet_wire::desired::DEPLOY_SUBJECT_SUFFIX);
        if batch.iter().any(|(subject, _)| subject.ends_with(&suffix)) {
            let (deploys, runs): (Vec<_>, Vec<_>) = batch
                .iter()
                .enumerate()
                .partition(|(_, (subject, _))| subject.ends_with(&suffix));
            let deploy_items: Vec<(&str, &[u8])> = deploys.iter().map(|(_, m)| **m).collect();
            let changed = self.take_deploy_reports(&deploy_items)?;
            let run_items: Vec<(&str, &[u8])> = runs.iter().map(|(_, m)| **m).collect();
            let stored = if run_items.is_empty() {
                Vec::new()
            } else {
                self.take_results(&run_items)?
            };
            let mut out = vec![Stored::NotTargeted; batch.len()];
            for ((i, _), changed) in deploys.iter().zip(changed) {
                out[*i] = if changed {
                    Stored::New
                } else {
                    Stored::Duplicate
                };
            }
            for ((i, _), stored) in runs.iter().zip(stored) {
                out[*i] = stored;
            }
            return Ok(out);
        }
        let mut audits = Vec::new();
        // What each message is: dropped now (`None`), or a result to store (its index).
        let mut valid = Vec::new();
        let mut slots = Vec::with_capacity(batch.len());
        for (subject, payload) in batch {
            let result: RunResult = match warden_fleet_wire::decode(payload) {
                Ok(r) => r,
                Err(e) => {
                    audits.push((
                        "fleet.result.unreadable".to_string(),
                        serde_json::json!({ "subject": subject, "error": e.to_string() }),
                    ));
                    slots.push(None);
                    continue;
                }
            };
            let own = result.nats_subject();
            if *subject != own && !subject.starts_with(&format!("{own}.")) {
                tracing::warn!(
                    "a result on {subject} claims to be from {}: dropped",
                    result.agent
                );
                audits.push((
                    "fleet.forged".to_string(),
                    serde_json::json!({ "kind": "result", "subject": subject, "claimed": result.agent.as_str() }),
                ));
                slots.push(None);
                continue;
            }
            slots.push(Some(valid.len()));
            valid.push(result);
        }
        let stored = if valid.is_empty() {
            Vec::new()
        } else {
            self.store.record_results(&valid, self.now())?
        };
        let mut changed = 0u64;
        for (result, outcome) in valid.iter().zip(&stored) {
            if matches!(outcome, Stored::New | Stored::Final) {
                self.metrics.result_stored(result.status.name());
                audits.push((
                    "fleet.result".to_string(),
                    serde_json::json!({
                        "run": result.run.as_str(),
                        "agent": result.agent.as_str(),
                        "tenant": result.tenant.as_str(),
                        "status": result.status,
                    }),
                ));
            }
            changed += 1;
        }
        if !audits.is_empty() {
            self.audit.append_batch(audits)?;
        }
        let n = u64::try_from(batch.len()).unwrap_or(u64::MAX);
        self.metrics.results_ingested.inc_by(n);
        self.bump(|p| {
            p.results += n;
            if changed > 0 {
                p.changes += 1;
            }
        });
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Some(i) => stored.get(i).copied().unwrap_or(Stored::NotTargeted),
                None => Stored::NotTargeted,
            })
            .collect())
    }

    pub fn take_event(&self, subject: &str, payload: &[u8]) -> Result<(), FleetError> {
        self.take_event_new(subject, payload).map(drop)
    }

    /// [`Controller::take_event`], saying whether the store did not have it yet.
    pub(crate) fn take_event_new(&self, subject: &str, payload: &[u8]) -> Result<bool, FleetError> {
        let event: AgentEvent = warden_fleet_wire::decode(payload)?;
        if subject != event.nats_subject()
            && !subject.starts_with(&format!("{}.", event.nats_subject()))
        {
            return self
                .audit_forged("event", subject, event.agent.as_str())
                .map(|()| false);
        }
        let new = self.store.record_event(&event, self.now())?;
        if new {
            // No watcher is not an error.
            let _ = self.events.send(event);
        }
        self.bump(|p| p.events += 1);
        Ok(new)
    }

    fn audit_forged(&self, what: &str, subject: &str, claimed: &str) -> Result<(), FleetError> {
        tracing::warn!("a {what} on {subject} claims to be from {claimed}: dropped");
        self.audit(
            "fleet.forged",
            serde_json::json!({ "kind": what, "subject": subject, "claimed": claimed }),
        )
    }

    // ---- enrollment and revocation ----------------------------------------------------------

    pub fn issue_enrollment_token(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        tags: &[String],
        ttl_secs: Option<i64>,
    ) -> Result<EnrollmentToken, FleetError> {
        self.issue_enrollment_tokens(caller, tenant, tags, ttl_secs, 1)?
            .pop()
            .ok_or_else(|| FleetError::Internal("no token issued".into()))
    }

    /// `count` single-use tokens at once (a roll-out to many machines), audited in one append
    /// (one flush, where a token each would cost a flush each).
    pub fn issue_enrollment_tokens(
        &self,
        caller: &Caller,
        tenant: &TenantId,
        tags: &[String],
        ttl_secs: Option<i64>,
        count: usize,
    ) -> Result<Vec<EnrollmentToken>, FleetError> {
        need(caller, Role::Admin)?;
        covers(caller, tenant)?;
        if count == 0 || count > MAX_TOKENS_PER_CALL {
            return Err(FleetError::Invalid(format!(
                "{count} tokens: issue 1 ..= {MAX_TOKENS_PER_CALL} at once"
            )));
        }
        let now = self.now().as_secs();
        let tokens = {
            let authority = lock(&self.authority);
            (0..count)
                .map(|_| {
                    authority.issue_enrollment_token(
                        tenant,
                        tags,
                        ttl_secs.unwrap_or(ENROLLMENT_TOKEN_LIFETIME),
                        now,
                    )
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        self.audit.append_batch(
            tokens
                .iter()
                .map(|token| {
                    (
                        "fleet.enroll.token".to_string(),
                        serde_json::json!({
                            "token_id": token.id,
                            "tenant": tenant.as_str(),
                            "tags": tags,
                            "expires_at": token.expires_at,
                            "caller": caller.name,
                        }),
                    )
                })
                .collect(),
        )?;
        Ok(tokens)
    }

    pub fn begin_enrollment(
        &self,
        request: &EnrollmentRequest,
    ) -> Result<warden_fleet_identity::Challenge, FleetError> {
        let now = self.now().as_secs();
        let mut state = lock(&self.enrollment);
        let begun = lock(&self.authority).begin_enrollment(request, &state.spent, &state.deny, now);
        let pending = match begun {
            Ok(p) => p,
            Err(e) => {
                drop(state);
                self.audit(
                    "fleet.enroll.refused",
                    serde_json::json!({ "step": "begin", "agent": request.agent, "tenant": request.tenant, "error": e.to_string() }),
                )?;
                return Err(e.into());
            }
        };
        let challenge = pending.challenge.clone();
        if !state.pending.insert(pending, now) {
            return Err(FleetError::Invalid(
                "too many enrollments in progress; try again in two minutes".into(),
            ));
        }
        Ok(challenge)
    }

    /// Check the answer; spend the token (persisted) and record the agent before returning its
    /// JWT.
    pub fn complete_enrollment(
        &self,
        response: &ChallengeResponse,
    ) -> Result<warden_fleet_identity::Enrolled, FleetError> {
        let now = self.now();
        let mut state = lock(&self.enrollment);
        let Some(pending) = state.pending.take(response) else {
            drop(state);
            self.metrics.enrollment(false);
            self.audit(
                "fleet.enroll.refused",
                serde_json::json!({ "step": "complete", "agent": response.agent, "error": "no such challenge" }),
            )?;
            return Err(EnrollError::ChallengeMismatch.into());
        };
        let token_expires_at = pending.token_expires_at;
        let EnrollmentState { spent, deny, .. } = &mut *state;
        // The token is spent in memory at once, so a second answer with it is refused while
        // this one commits; should the commit fail, it stays spent (fail closed: the agent asks
        // for a new token) rather than being spendable twice.
        let done = lock(&self.authority).complete_enrollment(
            &pending,
            response,
            spent,
            deny,
            now.as_secs(),
        );
        let enrolled = match done {
            Ok(e) => e,
            Err(e) => {
                drop(state);
                self.metrics.enrollment(false);
                self.audit(
                    "fleet.enroll.refused",
                    serde_json::json!({ "step": "complete", "agent": response.agent, "error": e.to_string() }),
                )?;
                return Err(e.into());
            }
        };
        spent.prune(now.as_secs());
        drop(state);
        let tags: BTreeMap<String, String> = enrolled
            .tags
            .iter()
            .filter_map(|t| {
                t.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        // The token's row and the agent's, committed with those of the enrollments completing
        // meanwhile (one flush for all), before the JWT is returned.
        let row = crate::store::NewEnrollment {
            token_id: enrolled.token_id.clone(),
            token_expires_at,
            agent: enrolled.jwt.agent.clone(),
            tenant: enrolled.jwt.tenant.clone(),
            name: enrolled.name.clone(),
            tags,
            at: now,
        };
        self.enrollments.commit(row, |batch| {
            self.store.record_enrollments(batch, now.as_secs())
        })?;
        self.metrics.enrollment(true);
        self.audit(
            "fleet.enrolled",
            serde_json::json!({
                "agent": enrolled.jwt.agent.as_str(),
                "tenant": enrolled.jwt.tenant.as_str(),
                "name": enrolled.name,
                "token_id": enrolled.token_id,
                "expires_at": enrolled.jwt.expires_at,
            }),
        )?;
        Ok(enrolled)
    }

    pub fn agent_urls(&self) -> &[String] {
        &self.agent_urls
    }

    /// Revoke an agent: deny list (persisted), then its tenant account pushed to the servers,
    /// which close its connections.
    pub async fn revoke(
        &self,
        caller: &Caller,
        agent: &AgentId,
        reason: &str,
    ) -> Result<(TenantId, i64), FleetError> {
        need(caller, Role::Admin)?;
        let record = self
            .store
            .agent(agent)?
            .filter(|a| caller.scope.covers(a.tenant.as_str()))
            .ok_or_else(|| FleetError::NotFound(format!("agent {agent}")))?;
        let now = self.now();
        let account = {
            let mut state = lock(&self.enrollment);
            let mut deny = state.deny.clone();
            let account = lock(&self.authority).revoke(
                &mut deny,
                &record.tenant,
                agent,
                reason,
                now.as_secs(),
            )?;
            let json =
                serde_json::to_string(&deny).map_err(|e| FleetError::Internal(e.to_string()))?;
            self.store.save_state(DENY_LIST_KEY, &json)?;
            state.deny = deny;
            account
        };
        self.store.mark_revoked(agent, now)?;
        self.audit(
            "fleet.revoke",
            serde_json::json!({
                "agent": agent.as_str(),
                "tenant": record.tenant.as_str(),
                "reason": reason,
                "caller": caller.name,
            }),
        )?;
        self.push_account(&account.jwt).await?;
        Ok((record.tenant, now.as_secs()))
    }

    async fn push_account(&self, jwt: &str) -> Result<(), FleetError> {
        let reply = self
            .system
            .request(
                warden_fleet_identity::CLAIMS_UPDATE_SUBJECT,
                jwt.to_string().into(),
            )
            .await
            .map_err(|e| FleetError::Nats(format!("pushing an account JWT: {e}")))?;
        claims_update_result(&reply.payload)
            .map(drop)
            .map_err(|e| FleetError::Nats(e.to_string()))
    }

    /// Push every account JWT (after a server (re)start: see [`crate::nats`]).
    pub async fn push_all_accounts(&self) -> Result<usize, FleetError> {
        let jwts = {
            let state = lock(&self.enrollment);
            lock(&self.authority).account_jwts(&state.deny, self.now().as_secs())?
        };
        for account in &jwts {
            self.push_account(&account.jwt).await?;
        }
        Ok(jwts.len())
    }

    /// The tenant's id, if the controller has it.
    pub fn has_tenant(&self, tenant: &TenantId) -> bool {
        lock(&self.authority).has_tenant(tenant)
    }

    /// The newest events the caller may see (of `tenant` only, if given).
    pub fn events(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<AgentEvent>, FleetError> {
        need(caller, Role::Viewer)?;
        if let Some(t) = tenant {
            covers(caller, t)?;
        }
        let limit = limit.clamp(1, MAX_LIST_RUNS);
        Ok(self
            .store
            .events(RUN_SCAN)?
            .into_iter()
            .filter(|e| caller.scope.covers(e.tenant.as_str()))
            .filter(|e| tenant.is_none_or(|t| &e.tenant == t))
            .take(limit)
            .collect())
    }

    /// New events from now on; the caller filters by scope ([`Controller::may_see`]).
    pub fn subscribe_events(
        &self,
        caller: &Caller,
        tenant: Option<&TenantId>,
    ) -> Result<tokio::sync::broadcast::Receiver<AgentEvent>, FleetError> {
        need(caller, Role::Viewer)?;
        if let Some(t) = tenant {
            covers(caller, t)?;
        }
        Ok(self.events.subscribe())
    }

    pub fn may_see(caller: &Caller, tenant: &TenantId) -> bool {
        caller.scope.covers(tenant.as_str())
    }
}

/// The command of `run` for one agent.
pub(crate) fn command_for(run: &RunRecord, tenant: &TenantId, agent: &AgentId) -> Command {
    Command::run_runbook(
        run.id.clone(),
        tenant.clone(),
        agent.clone(),
        run.created_at,
        run.expires_at,
        RunRunbook {
            runbook: Some(run.runbook.clone()),
            bundle: run.bundle.clone().map(Bundle::new),
            params: run.params.clone(),
            dry_run: run.dry_run,
        },
    )
}

/// A caller for the controller's own internal actions.
pub fn internal_caller() -> Caller {
    Caller {
        name: "controller".into(),
        role: Role::Admin,
        scope: Scope::AllTenants,
    }
}
