//! The one sandbox every simulated agent shares: one [`PluginManager`] with the `trivial` check
//! guest installed, behind one [`FleetAgent`] implementation per agent ([`SimAgent`], which only
//! adds the agent's id). A fleet command runs the real plugin through `PluginManager::run`; the
//! sandbox counts executions per (agent, run), so a test can prove none ran twice, and can hold
//! chosen agents' runs at a gate (after the plugin ran, before the result), to put a fault in
//! the middle of a dispatch.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, oneshot, watch};
use warden_agent::PluginManager;
use warden_agent::fleet::seam::BoxFuture;
use warden_agent::fleet::{
    FleetAgent, FleetRun, InstallRefused, Installed, Inventory, RunEnd, RunOutcome, RunRefused,
};
use warden_core::report::CheckStatus;
use warden_core::{Invocation, Output, RunRequest, SitePolicy};
use warden_fleet_identity::AgentId;
use warden_fleet_wire::{
    DeployRefusal, PluginInfo, RefusalReason, RunId, StepStatus, StepSummary, UnixMillis,
};

/// The runbook name the simulated agents answer to; any other is refused as untrusted, as a
/// real agent refuses a runbook it does not have installed signed.
pub const RUNBOOK: &str = "sim-check";
/// The guest each run executes (`tests/guests/trivial`, built by `cargo xtask build-plugins`).
pub const GUEST: &str = "trivial";
/// Plugin runs at once across all agents: 2 per core of this machine's 2, as an agent's own run
/// queue bounds its runs; more would only queue on the blocking pool and the instance pool.
pub const RUN_SLOTS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the {GUEST} guest is not built in {0}: run `cargo xtask build-plugins` first")]
    NotBuilt(String),
    #[error("sandbox: {0}")]
    Setup(String),
}

/// The shared sandbox.
pub struct Sandbox {
    runner: PluginManager,
    plugin: PluginInfo,
    slots: Semaphore,
    /// Executions per (agent, run): the plugin ran this many times for it.
    executions: Mutex<HashMap<(AgentId, RunId), u32>>,
    /// `true`: held runs may finish.
    gate: watch::Sender<bool>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Sandbox {
    /// A plugin manager on `data_dir` with the built guest from `guest_dir` (holding
    /// `plugin.wasm` and `plugin.toml`) installed; the gate open.
    pub fn new(data_dir: &Path, guest_dir: &Path) -> Result<Sandbox, SandboxError> {
        if !guest_dir.join("plugin.wasm").is_file() {
            return Err(SandboxError::NotBuilt(guest_dir.display().to_string()));
        }
        // Unsigned guests from a directory, room for every run slot.
        let policy = SitePolicy::parse(
            "[limits]\nmax-instances = 64\n[trust]\nallow-unsigned = true\n",
            "fleet sim policy",
        )
        .map_err(|e| SandboxError::Setup(e.to_string()))?;
        let runner =
            PluginManager::new(data_dir, policy).map_err(|e| SandboxError::Setup(e.to_string()))?;
        runner
            .install_dir(guest_dir)
            .map_err(|e| SandboxError::Setup(format!("installing {GUEST}: {e}")))?;
        let installed = runner
            .store()
            .list()
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        let plugin = installed
            .iter()
            .find(|p| p.manifest.name == GUEST)
            .map(|p| PluginInfo {
                name: p.manifest.name.clone(),
                version: p.manifest.version.to_string(),
                sha256: p.sha256.clone(),
            })
            .ok_or_else(|| SandboxError::Setup(format!("{GUEST} is not listed after install")))?;
        let sandbox = Sandbox {
            runner,
            plugin,
            slots: Semaphore::new(RUN_SLOTS),
            executions: Mutex::new(HashMap::new()),
            gate: watch::channel(true).0,
        };
        // The first run compiles or loads the component: keep it out of every measurement.
        sandbox.execute()?;
        Ok(sandbox)
    }

    fn execute(&self) -> Result<String, SandboxError> {
        let report = self.runner.run(&RunRequest::new(GUEST, Invocation::Check));
        match report.result {
            Ok(Output::Check(r)) if r.status == CheckStatus::Ok => Ok(r.summary),
            Ok(other) => Err(SandboxError::Setup(format!("unexpected output {other:?}"))),
            Err(e) => Err(SandboxError::Setup(format!("the run failed: {e}"))),
        }
    }

    /// Hold the runs of gated agents (see [`SimAgent::new`]) until [`Sandbox::open_gate`].
    pub fn close_gate(&self) {
        self.gate.send_replace(false);
    }

    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// How many times the plugin ran for each (agent, run).
    pub fn executions(&self) -> HashMap<(AgentId, RunId), u32> {
        self.executions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn count(&self, agent: &AgentId, run: &RunId) {
        let mut map = self
            .executions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry((agent.clone(), run.clone())).or_default() += 1;
    }
}

/// One simulated agent's side of the seam: the shared sandbox and the agent's own id.
pub struct SimAgent {
    id: AgentId,
    sandbox: Arc<Sandbox>,
    gated: bool,
}

impl SimAgent {
    /// `gated`: this agent's runs wait at the sandbox's gate before they finish.
    pub fn new(id: AgentId, sandbox: Arc<Sandbox>, gated: bool) -> SimAgent {
        SimAgent { id, sandbox, gated }
    }
}

impl FleetAgent for SimAgent {
    fn run(
        &self,
        run: FleetRun,
        accepted: oneshot::Sender<UnixMillis>,
    ) -> BoxFuture<Result<RunOutcome, RunRefused>> {
        let (id, sandbox, gated) = (self.id.clone(), self.sandbox.clone(), self.gated);
        Box::pin(async move {
            if run.bundle.is_some() || run.runbook.as_deref() != Some(RUNBOOK) {
                return Err(RunRefused::new(
                    RefusalReason::Untrusted,
                    format!("a simulated agent runs `{RUNBOOK}` only"),
                ));
            }
            let slot = sandbox
                .slots
                .acquire()
                .await
                .map_err(|_| RunRefused::new(RefusalReason::Busy, "the sandbox is closed"))?;
            let started_at = UnixMillis::now();
            let _ = accepted.send(started_at);
            sandbox.count(&id, &run.run);
            let ran = {
                let sandbox = sandbox.clone();
                tokio::task::spawn_blocking(move || sandbox.execute()).await
            };
            drop(slot);
            if gated {
                let mut gate = sandbox.gate.subscribe();
                let _ = gate.wait_for(|open| *open).await;
            }
            let (end, detail, error) = match ran {
                Ok(Ok(summary)) => (RunEnd::Succeeded, summary, None),
                Ok(Err(e)) => (RunEnd::Failed, String::new(), Some(e.to_string())),
                Err(e) => (RunEnd::Failed, String::new(), Some(e.to_string())),
            };
            Ok(RunOutcome {
                local_run: format!("sim-{}", run.run),
                end,
                started_at,
                finished_at: UnixMillis::now(),
                steps: vec![StepSummary {
                    name: GUEST.into(),
                    status: if error.is_none() {
                        StepStatus::Ok
                    } else {
                        StepStatus::Failed
                    },
                    detail,
                }],
                error,
            })
        })
    }

    fn inventory(&self) -> Inventory {
        Inventory {
            plugins: vec![self.sandbox.plugin.clone()],
            open_incidents: 0,
            // Simulated agents run no patch discovery.
            patches: None,
        }
    }

    /// Simulated agents share one plugin store, so one agent's install would be everyone's:
    /// they refuse desired state (not yet simulated; docs/FLEET.md, "Distribution").
    fn install(&self, _bundle: &[u8], _source: &str) -> Result<Installed, InstallRefused> {
        Err(InstallRefused::new(
            DeployRefusal::Invalid,
            "a simulated agent installs nothing",
        ))
    }

    /// Simulated agents share one sandbox and policy: the same refusal.
    fn apply_policy(&self, _bundle: &[u8], _source: &str) -> Result<bool, InstallRefused> {
        Err(InstallRefused::new(
            DeployRefusal::Invalid,
            "a simulated agent applies no policy",
        ))
    }
}
