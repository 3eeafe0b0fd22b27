//! The daemon behind the fleet link's seam ([`FleetAgent`]): a command's runbook goes through
//! the agent's one trigger path ([`AgentState::trigger_runbook`]) with `requested_by:
//! fleet:<run>`, after the fleet's own trust rule, which is stricter than the API's:
//!
//! - a bundle in the command is verified against this agent's trust policy (as an inline
//!   runbook of the API); if the command also names a runbook, the signed statement must be
//!   for that runbook;
//! - a runbook named without a bundle must be installed here **signed**: `<name>.wbundle` in
//!   the runbooks directory. Its bytes are what is triggered, so the signature is checked on
//!   exactly what runs (a plain `<name>.toml` never runs for the fleet, whatever `signed-only`
//!   says).

use super::AgentState;
use super::events::RunEventKind;
use super::fleet_runbooks::FleetRunbooks;
use super::patches::PatchFacts;
use super::runs::TriggerError;
use super::trigger::{RunbookSource, TriggerRefusal, TriggerRequest};
use crate::PluginManager;
use crate::fleet::seam::{
    BoxFuture, CancelOutcome, FleetAgent, FleetRun, InstallRefused, Installed, Inventory, RunEnd,
    RunOutcome, RunRefused,
};
use crate::install::InstallError;
use crate::site_policy::PolicyRefused;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;
use warden_automation::monitor::Monitor;
use warden_bundle::trust::TrustError;
use warden_core::RunRequest;
use warden_core::RunStatus;
use warden_core::manifest::Role;
use warden_core::report::{CheckStatus, Invocation, Output};
use warden_fleet_wire::desired::MAX_OWN_CHECK_SUMMARY_LEN;
use warden_fleet_wire::heartbeat::{
    MAX_COMPLIANCE_REF_LEN, MAX_COMPLIANCE_REFS, is_compliance_reference,
};
use warden_fleet_wire::{DeployRefusal, ItemKind, OwnCheck, OwnCheckStatus, one_line};
use warden_fleet_wire::{PluginInfo, RefusalReason, RunId, StepStatus, StepSummary, UnixMillis};
use warden_runbook::engine::StepStatus as EngineStepStatus;
use warden_runbook::source::{self, RunbookSourceError};

/// Largest installed runbook bundle read for a command (the wire's own bundle cap).
const MAX_INSTALLED_BUNDLE_BYTES: u64 = warden_fleet_wire::command::MAX_BUNDLE_BYTES as u64;

/// A check plugin's first run after a fleet install: its `check`, sandboxed and audited like
/// any run, with the config of the first monitor of this agent that runs it (the plugin as it
/// will run here), else none. Only checks run: they read and report; a remediation's `apply`
/// changes the machine, and a discovery's facts say nothing about health. Blocking.
fn own_check(
    runner: &PluginManager,
    monitors: &[Monitor],
    plugin: &str,
    version: &str,
) -> OwnCheck {
    let config = monitors
        .iter()
        .find(|m| m.plugin == plugin)
        .and_then(|m| serde_json::to_value(&m.config).ok())
        // No monitor runs it here: the schema's defaults, as `warden run` without --config.
        .unwrap_or_else(|| serde_json::json!({}));
    let mut run = RunRequest::new(plugin, Invocation::Check).with_config(config);
    run.audit_context = serde_json::json!({ "fleet": "check after install", "version": version });
    let (status, summary) = match runner.run(&run).result {
        Ok(Output::Check(c)) => (
            match c.status {
                CheckStatus::Ok => OwnCheckStatus::Ok,
                CheckStatus::Warning => OwnCheckStatus::Warning,
                CheckStatus::Critical => OwnCheckStatus::Critical,
                CheckStatus::Unknown => OwnCheckStatus::Unknown,
            },
            c.summary,
        ),
        Ok(_) => (
            OwnCheckStatus::Error,
            format!("{plugin} did not return a check result"),
        ),
        Err(e) => (OwnCheckStatus::Error, e.to_string()),
    };
    OwnCheck {
        status,
        summary: one_line(&summary, MAX_OWN_CHECK_SUMMARY_LEN),
    }
}

pub struct DaemonFleetAgent {
    pub state: Arc<AgentState>,
    pub handle: tokio::runtime::Handle,
    /// What the heartbeat last read of the history's patch facts.
    pub patches: PatchFacts,
    /// The agent's own run id of each fleet run going on, for a fleet cancel.
    pub fleet_runs: Arc<std::sync::Mutex<HashMap<RunId, String>>>,
}

fn untrusted(message: impl Into<String>) -> RunRefused {
    RunRefused::new(RefusalReason::Untrusted, message)
}

/// The source to trigger, after the fleet's trust rule. Blocking (reads files).
fn fleet_source(state: &AgentState, run: &FleetRun) -> Result<RunbookSource, RunRefused> {
    match (&run.bundle, &run.runbook) {
        (Some(bundle), named) => {
            let loaded = source::load_bytes(bundle, "fleet bundle", &state.runner.policy(), true)
                .map_err(refusal_of_source)?;
            if let Some(name) = named
                && &loaded.runbook.name != name
            {
                return Err(untrusted(format!(
                    "the bundle is signed for runbook `{}`, the command names `{name}`",
                    loaded.runbook.name
                )));
            }
            Ok(RunbookSource::Signed(bundle.clone()))
        }
        (None, Some(name)) => {
            warden_core::names::validate_plugin_name(name).map_err(|m| {
                RunRefused::new(RefusalReason::Invalid, format!("bad runbook name: {m}"))
            })?;
            let dir = state
                .config
                .runbooks
                .dir
                .as_ref()
                .ok_or_else(|| untrusted("no [runbooks] dir is configured on this agent"))?;
            let path = dir.join(format!("{name}.wbundle"));
            let bytes = warden_core::fsutil::read_capped(&path, MAX_INSTALLED_BUNDLE_BYTES)
                .map_err(|e| {
                    untrusted(format!(
                        "runbook `{name}` is not installed signed on this agent ({}: {e})",
                        path.display()
                    ))
                })?;
            Ok(RunbookSource::Signed(bytes))
        }
        (None, None) => Err(RunRefused::new(
            RefusalReason::Invalid,
            "neither a runbook name nor a bundle",
        )),
    }
}

fn refusal_of_source(e: RunbookSourceError) -> RunRefused {
    let reason = match &e {
        RunbookSourceError::Invalid { .. } => RefusalReason::Invalid,
        RunbookSourceError::Read { .. }
        | RunbookSourceError::Bundle { .. }
        | RunbookSourceError::Refused { .. }
        | RunbookSourceError::UnsignedRefused => RefusalReason::Untrusted,
    };
    RunRefused::new(reason, e.to_string())
}

fn refusal_of_trigger(e: TriggerRefusal) -> RunRefused {
    match e {
        TriggerRefusal::Source(e) => refusal_of_source(e),
        TriggerRefusal::CannotRunHere(_) | TriggerRefusal::Params(_) => {
            RunRefused::new(RefusalReason::Invalid, e.to_string())
        }
        TriggerRefusal::Queue(TriggerError::Busy { .. } | TriggerError::ShuttingDown) => {
            RunRefused::new(RefusalReason::Busy, e.to_string())
        }
        TriggerRefusal::Queue(_) => RunRefused::new(RefusalReason::Busy, e.to_string()),
    }
}

fn step_status(s: EngineStepStatus) -> StepStatus {
    match s {
        EngineStepStatus::Succeeded => StepStatus::Ok,
        EngineStepStatus::Failed => StepStatus::Failed,
        EngineStepStatus::Skipped => StepStatus::Skipped,
    }
}

impl FleetAgent for DaemonFleetAgent {
    fn run(
        &self,
        run: FleetRun,
        accepted: oneshot::Sender<UnixMillis>,
    ) -> BoxFuture<Result<RunOutcome, RunRefused>> {
        let state = self.state.clone();
        let handle = self.handle.clone();
        let fleet_runs = self.fleet_runs.clone();
        let run_id = run.run.clone();
        Box::pin(async move {
            let triggered = tokio::task::spawn_blocking(move || {
                let source = fleet_source(&state, &run)?;
                let request = TriggerRequest {
                    source,
                    params: run.params.clone().into_iter().collect(),
                    dry_run: run.dry_run,
                    requested_by: run.requested_by(),
                };
                state
                    .trigger_runbook(request, &handle)
                    .map_err(refusal_of_trigger)
            })
            .await
            .map_err(|e| RunRefused::new(RefusalReason::Busy, format!("the task failed: {e}")))??;
            let started_at = UnixMillis::now();
            let local_run = triggered.live.id.clone();
            let fleet_run = run_id.clone();
            lock(&fleet_runs).insert(fleet_run.clone(), local_run.clone());
            // Forgotten however the run's future ends.
            let _forget = Forget(fleet_runs.clone(), fleet_run);
            let _ = accepted.send(started_at);
            let mut events = triggered.live.subscribe();
            let mut steps = Vec::new();
            let mut first_failure = None;
            let mut end = (
                RunStatus::Failed,
                String::from("the run ended without a result"),
            );
            while let Some(event) = events.recv().await {
                match event.kind {
                    RunEventKind::StepFinished {
                        step,
                        status,
                        summary,
                        ..
                    } => {
                        if status == EngineStepStatus::Failed && first_failure.is_none() {
                            first_failure = Some(format!("step {step}: {summary}"));
                        }
                        steps.push(StepSummary {
                            name: step,
                            status: step_status(status),
                            detail: summary,
                        });
                    }
                    RunEventKind::Finished { status, message } => {
                        end = (status, message);
                        break;
                    }
                    _ => {}
                }
            }
            let (status, message) = end;
            let end = match status {
                RunStatus::Succeeded => RunEnd::Succeeded,
                RunStatus::Cancelled => RunEnd::Cancelled,
                _ => RunEnd::Failed,
            };
            let error = match end {
                RunEnd::Succeeded => None,
                _ if !message.is_empty() => Some(message),
                _ => first_failure.or_else(|| Some(format!("the run ended {status}"))),
            };
            Ok(RunOutcome {
                local_run,
                end,
                started_at,
                finished_at: UnixMillis::now(),
                steps,
                error,
            })
        })
    }

    fn inventory(&self) -> Inventory {
        let plugins = installed_plugins(&self.state.runner);
        let history = self.state.runs.history();
        let failing: Vec<String> = self
            .state
            .config
            .automation
            .monitors
            .iter()
            .filter(|m| matches!(history.open_incident_row(&m.name), Ok(Some(_))))
            .map(|m| m.name.clone())
            .collect();
        let patches = self.patches.latest(history).unwrap_or_else(|e| {
            tracing::warn!("fleet heartbeat: patch facts unreadable: {e}");
            None
        });
        Inventory {
            plugins,
            open_incidents: u32::try_from(failing.len()).unwrap_or(u32::MAX),
            failing,
            patches,
        }
    }

    fn install(&self, bundle: &[u8], source: &str) -> Result<Installed, InstallRefused> {
        install_desired(
            &self.state.runner,
            &self.state.config.automation.monitors,
            bundle,
            source,
        )
    }

    fn install_runbook(
        &self,
        name: &str,
        bundle: &[u8],
        source: &str,
    ) -> Result<bool, InstallRefused> {
        self.state.fleet_runbooks().install(name, bundle, source)
    }

    fn remove(&self, kind: ItemKind, name: &str) -> Result<bool, InstallRefused> {
        remove_desired(&self.state.fleet_runbooks(), kind, name)
    }

    fn cancel(&self, run: &RunId) -> CancelOutcome {
        let Some(local) = lock(&self.fleet_runs).get(run).cloned() else {
            return CancelOutcome::Unknown;
        };
        match self.state.runs.cancel(&local, &format!("fleet:{run}")) {
            Ok(Some(true)) => CancelOutcome::Cancelled,
            Ok(Some(false)) => CancelOutcome::Finished,
            Ok(None) => CancelOutcome::Unknown,
            Err(e) => {
                tracing::error!("fleet: cancelling {run} ({local}): {e}");
                CancelOutcome::Unknown
            }
        }
    }

    fn apply_policy(&self, bundle: &[u8], source: &str) -> Result<bool, InstallRefused> {
        apply_desired_policy(&self.state.runner, bundle, source)
    }
}

// The agent's paths for desired state, shared by the daemon's link (above) and an air-gapped
// kit applied off the network (`daemon/offline.rs`): one install path, whoever delivers.

/// Install a signed plugin bundle through the agent's one install path.
pub(crate) fn install_desired(
    runner: &PluginManager,
    monitors: &[Monitor],
    bundle: &[u8],
    source: &str,
) -> Result<Installed, InstallRefused> {
    match runner.install_bundle_bytes(bundle, source) {
        Ok(report) => {
            let manifest = &report.plugin.manifest;
            let check = matches!(manifest.role, Role::Check | Role::CheckRemediation).then(|| {
                own_check(
                    runner,
                    monitors,
                    &manifest.name,
                    &manifest.version.to_string(),
                )
            });
            Ok(Installed {
                name: manifest.name.clone(),
                version: manifest.version.to_string(),
                check,
            })
        }
        Err(e) => Err(InstallRefused::new(deploy_refusal(&e), e.to_string())),
    }
}

/// Apply a signed site policy (`site_policy`).
pub(crate) fn apply_desired_policy(
    runner: &PluginManager,
    bundle: &[u8],
    source: &str,
) -> Result<bool, InstallRefused> {
    runner
        .apply_policy_bundle(bundle, source)
        .map_err(|e| InstallRefused::new(policy_refusal(&e), e.to_string()))
}

/// Remove a plugin or a runbook of the desired state.
pub(crate) fn remove_desired(
    runbooks: &FleetRunbooks<'_>,
    kind: ItemKind,
    name: &str,
) -> Result<bool, InstallRefused> {
    match kind {
        ItemKind::Runbook => runbooks.remove(name),
        ItemKind::Plugin => runbooks
            .runner
            .remove(name)
            .map(|removed| removed.is_some())
            .map_err(|e| InstallRefused::new(DeployRefusal::AgentError, e.to_string())),
        ItemKind::Policy => Err(InstallRefused::new(
            DeployRefusal::Invalid,
            "a site policy is replaced by a newer one, never removed",
        )),
    }
}

/// The installed plugins as the fleet lists them, with what each claims for compliance.
pub(crate) fn installed_plugins(runner: &PluginManager) -> Vec<PluginInfo> {
    match runner.store().list() {
        Ok(list) => {
            let mut budget = Claims::default();
            list.into_iter()
                .map(|p| {
                    let mut info = PluginInfo::new(
                        p.manifest.name.clone(),
                        p.manifest.version.to_string(),
                        p.sha256.clone(),
                    );
                    // What its `[compliance]` claims, for the controller's client report.
                    info.hipaa = budget.take(&p.manifest.name, &p.manifest.compliance.hipaa);
                    info.cmmc = budget.take(&p.manifest.name, &p.manifest.compliance.cmmc);
                    info
                })
                .collect()
        }
        Err(e) => {
            tracing::warn!("fleet: installed plugins unreadable: {e}");
            Vec::new()
        }
    }
}

fn lock(
    runs: &std::sync::Mutex<HashMap<RunId, String>>,
) -> std::sync::MutexGuard<'_, HashMap<RunId, String>> {
    runs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes a fleet run from the map when its future ends (finished or dropped).
struct Forget(Arc<std::sync::Mutex<HashMap<RunId, String>>>, RunId);

impl Drop for Forget {
    fn drop(&mut self) {
        lock(&self.0).remove(&self.1);
    }
}

/// The report's reason for a signed policy the agent refused.
fn policy_refusal(e: &PolicyRefused) -> DeployRefusal {
    match e {
        PolicyRefused::Trust(
            TrustError::Rollback { .. } | TrustError::PolicyVersionReused { .. },
        ) => DeployRefusal::Rollback,
        PolicyRefused::Trust(
            TrustError::PolicyInvalid { .. } | TrustError::PolicyLocalOnly { .. },
        )
        | PolicyRefused::Bundle(_) => DeployRefusal::Invalid,
        PolicyRefused::Trust(_) => DeployRefusal::Untrusted,
        PolicyRefused::Agent(_) => DeployRefusal::AgentError,
    }
}

/// The report's reason for an install the agent's one install path refused.
fn deploy_refusal(e: &InstallError) -> DeployRefusal {
    match e {
        InstallError::Refused(TrustError::Rollback { .. }) => DeployRefusal::Rollback,
        InstallError::Refused(_) | InstallError::DirectoryNeedsDevelopmentMode => {
            DeployRefusal::Untrusted
        }
        InstallError::Bundle(_) | InstallError::Manifest(_) | InstallError::Rejected(_) => {
            DeployRefusal::Invalid
        }
        InstallError::Store(_) | InstallError::HighWater(_) | InstallError::Audit(_) => {
            DeployRefusal::AgentError
        }
    }
}

/// The compliance references a heartbeat can carry ([`MAX_COMPLIANCE_REFS`], each of the
/// wire's shape): one over the bound would make the whole heartbeat malformed, so what does not
/// fit is left out (and logged) rather than the agent's presence lost.
#[derive(Default)]
struct Claims {
    taken: usize,
}

impl Claims {
    fn take(&mut self, plugin: &str, refs: &std::collections::BTreeSet<String>) -> Vec<String> {
        let mut out = Vec::new();
        for r in refs {
            if !is_compliance_reference(r) || self.taken == MAX_COMPLIANCE_REFS {
                tracing::warn!(
                    "fleet heartbeat: {plugin}'s compliance reference {r:?} left out (the \
                     heartbeat carries at most {MAX_COMPLIANCE_REFS} of at most \
                     {MAX_COMPLIANCE_REF_LEN} bytes)"
                );
                continue;
            }
            self.taken += 1;
            out.push(r.clone());
        }
        out
    }
}

#[cfg(test)]
mod claims_tests {
    use super::*;

    #[test]
    fn references_beyond_the_wire_s_bound_or_shape_are_left_out() {
        let mut budget = Claims::default();
        let many: std::collections::BTreeSet<String> = (0..MAX_COMPLIANCE_REFS + 5)
            .map(|i| format!("AC.L1-3.1.{i:03}"))
            .collect();
        assert_eq!(budget.take("a", &many).len(), MAX_COMPLIANCE_REFS);
        assert!(
            budget
                .take("b", &["164.312(b)".to_string()].into())
                .is_empty(),
            "spent"
        );
        let mut fresh = Claims::default();
        let odd = [
            "164.312(b)".to_string(),
            "x".repeat(MAX_COMPLIANCE_REF_LEN + 1),
        ]
        .into();
        assert_eq!(fresh.take("c", &odd), ["164.312(b)"]);
    }
}
