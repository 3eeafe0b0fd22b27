//! The one sandbox every simulated agent shares: one [`PluginManager`] with the `trivial` check
//! guest installed, behind one [`FleetAgent`] implementation per agent ([`SimAgent`], which only
//! adds the agent's id). A fleet command runs the real plugin through `PluginManager::run`; the
//! sandbox counts executions per (agent, run), so a test can prove none ran twice, and can hold
//! chosen agents' runs at a gate (after the plugin ran, before the result), to put a fault in
//! the middle of a dispatch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, oneshot, watch};
use warden_agent::PluginManager;
use warden_agent::fleet::seam::BoxFuture;
use warden_agent::fleet::{
    FleetAgent, FleetRun, InstallRefused, Installed, Inventory, RunEnd, RunOutcome, RunRefused,
};
use warden_bundle::Bundle;
use warden_bundle::trust::{self, TrustError};
use warden_core::policy::TrustedKey;
use warden_core::report::CheckStatus;
use warden_core::{Invocation, Manifest, Output, RunRequest, SitePolicy};
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
    /// What the simulated agents trust for desired state: the publisher keys they were given,
    /// signed bundles only.
    trust: SitePolicy,
    /// Component digests the sandbox checked (compiled against their manifest) for an install:
    /// once per digest for the whole simulated fleet, as it shares one sandbox.
    checked: Mutex<HashSet<String>>,
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
    /// `plugin.wasm` and `plugin.toml`) installed; the gate open. The agents accept desired
    /// bundles signed by one of `trusted` (hex ed25519 public keys) only.
    pub fn new(
        data_dir: &Path,
        guest_dir: &Path,
        trusted: &[String],
    ) -> Result<Sandbox, SandboxError> {
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
            .map(|p| {
                PluginInfo::new(
                    p.manifest.name.clone(),
                    p.manifest.version.to_string(),
                    p.sha256.clone(),
                )
            })
            .ok_or_else(|| SandboxError::Setup(format!("{GUEST} is not listed after install")))?;
        let mut trust = SitePolicy::deny_all();
        trust.trust.keys = trusted
            .iter()
            .enumerate()
            .map(|(i, key)| TrustedKey {
                name: format!("publisher-{i}"),
                public_key: key.clone(),
                plugins: vec!["*".into()],
                capabilities: None,
            })
            .collect();
        let sandbox = Sandbox {
            runner,
            plugin,
            trust,
            checked: Mutex::new(HashSet::new()),
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

    /// Check a bundle's component against its manifest now, as its first install would (a
    /// benchmark keeps that one compile out of the distribution it measures).
    pub fn check_bundle(&self, bundle: &[u8]) -> Result<(), SandboxError> {
        let bundle = Bundle::parse(bundle).map_err(|e| SandboxError::Setup(e.to_string()))?;
        let manifest = Manifest::parse(&bundle.statement.manifest)
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        self.check_once(&manifest, &bundle.component)
            .map_err(SandboxError::Setup)
    }

    /// Check a component against its manifest in the shared sandbox, once per digest.
    fn check_once(&self, manifest: &Manifest, component: &[u8]) -> Result<(), String> {
        let sha256 = warden_core::sha256_hex(component);
        let mut checked = lock(&self.checked);
        if checked.contains(&sha256) {
            return Ok(());
        }
        self.runner
            .sandbox()
            .check(manifest, &sha256, || Ok(component.to_vec()))
            .map_err(|e| e.to_string())?;
        checked.insert(sha256);
        Ok(())
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
        lock(&self.executions).clone()
    }

    fn count(&self, agent: &AgentId, run: &RunId) {
        let mut map = lock(&self.executions);
        *map.entry((agent.clone(), run.clone())).or_default() += 1;
    }
}

/// One simulated agent's side of the seam: the shared sandbox, the agent's own id, and what
/// it installed for its desired state with its own anti-rollback marks (in memory: they
/// survive a restart of its link, as a real agent's store survives a restart).
pub struct SimAgent {
    id: AgentId,
    sandbox: Arc<Sandbox>,
    gated: bool,
    installed: Mutex<BTreeMap<String, PluginInfo>>,
    high_water: Mutex<HashMap<String, semver::Version>>,
}

impl std::fmt::Debug for SimAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimAgent")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SimAgent {
    /// `gated`: this agent's runs wait at the sandbox's gate before they finish.
    pub fn new(id: AgentId, sandbox: Arc<Sandbox>, gated: bool) -> SimAgent {
        SimAgent {
            id,
            sandbox,
            gated,
            installed: Mutex::new(BTreeMap::new()),
            high_water: Mutex::new(HashMap::new()),
        }
    }

    /// The version of `plugin` this agent installed for its desired state.
    pub fn installed_version(&self, plugin: &str) -> Option<String> {
        lock(&self.installed).get(plugin).map(|p| p.version.clone())
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
        let mut plugins = vec![self.sandbox.plugin.clone()];
        plugins.extend(lock(&self.installed).values().cloned());
        Inventory {
            plugins,
            open_incidents: 0,
            failing: Vec::new(),
            // Simulated agents run no patch discovery.
            patches: None,
        }
    }

    /// The agent's own decision, as a real agent's install path makes it: the publisher
    /// signature against its trust, its own anti-rollback marks; the component checked
    /// against its manifest in the shared sandbox (once per digest). Recorded in this agent's
    /// own inventory, not in the shared store (one agent's install must not be everyone's).
    fn install(&self, bundle: &[u8], _source: &str) -> Result<Installed, InstallRefused> {
        let bundle = Bundle::parse(bundle)
            .map_err(|e| InstallRefused::new(DeployRefusal::Invalid, e.to_string()))?;
        let name = bundle.statement.name.clone();
        let highest = lock(&self.high_water).get(&name).cloned();
        let now = u64::try_from(UnixMillis::now().as_secs()).unwrap_or(0);
        let accepted = trust::evaluate(&bundle, &self.sandbox.trust, highest.as_ref(), now)
            .map_err(|e| {
                let reason = match e {
                    TrustError::Rollback { .. } => DeployRefusal::Rollback,
                    _ => DeployRefusal::Untrusted,
                };
                InstallRefused::new(reason, e.to_string())
            })?;
        self.sandbox
            .check_once(&accepted.manifest, &bundle.component)
            .map_err(|e| InstallRefused::new(DeployRefusal::Invalid, e))?;
        let version = accepted.manifest.version.clone();
        lock(&self.installed).insert(
            name.clone(),
            PluginInfo::new(
                name.clone(),
                version.to_string(),
                warden_core::sha256_hex(&bundle.component),
            ),
        );
        let mut marks = lock(&self.high_water);
        if marks.get(&name).is_none_or(|v| *v < version) {
            marks.insert(name.clone(), version.clone());
        }
        // The shared sandbox runs only its own guest: a simulated install has no first run.
        Ok(Installed {
            name,
            version: version.to_string(),
            check: None,
        })
    }

    /// Simulated agents share one runbooks directory: the same refusal.
    fn install_runbook(
        &self,
        _name: &str,
        _bundle: &[u8],
        _source: &str,
    ) -> Result<bool, InstallRefused> {
        Err(InstallRefused::new(
            DeployRefusal::Invalid,
            "a simulated agent installs no runbook",
        ))
    }

    /// Simulated agents hold nothing of their own to remove: the same refusal.
    fn remove(
        &self,
        _kind: warden_fleet_wire::ItemKind,
        _name: &str,
    ) -> Result<bool, InstallRefused> {
        Err(InstallRefused::new(
            DeployRefusal::Invalid,
            "a simulated agent removes nothing",
        ))
    }

    /// A simulated run is one plugin call, over before a cancel could reach it.
    fn cancel(&self, _run: &RunId) -> warden_agent::fleet::seam::CancelOutcome {
        warden_agent::fleet::seam::CancelOutcome::Unknown
    }

    /// Simulated agents share one sandbox and policy: the same refusal.
    fn apply_policy(&self, _bundle: &[u8], _source: &str) -> Result<bool, InstallRefused> {
        Err(InstallRefused::new(
            DeployRefusal::Invalid,
            "a simulated agent applies no policy",
        ))
    }
}

/// A lock of this module's maps: a panic while one is held leaves a map that is still whole
/// (each change is one insert), so a poisoned lock is taken as it is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
