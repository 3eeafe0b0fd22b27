//! The agent behind the fleet seam when no daemon and no network are there: what `warden kit
//! apply` installs an air-gapped kit through ([`crate::fleet::kit`]). It installs, applies and
//! removes through the very functions the daemon's link uses (`daemon/fleet.rs`,
//! `daemon/fleet_runbooks.rs`), against the same data dir, trust policy and audit log; it runs
//! nothing (a kit carries no runs in v1).

use super::config::AgentConfig;
use super::fleet::{apply_desired_policy, install_desired, installed_plugins, remove_desired};
use super::fleet_runbooks::FleetRunbooks;
use crate::PluginManager;
use crate::fleet::kit::Offline;
use crate::fleet::seam::{
    BoxFuture, CancelOutcome, FleetAgent, FleetRun, InstallRefused, Installed, Inventory,
    RunOutcome, RunRefused,
};
use crate::fleet::{FleetIdentity, IdentityError};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::oneshot;
use warden_fleet_wire::{ItemKind, RefusalReason, RunId, UnixMillis};

/// The agent's install paths, off the network.
pub struct OfflineAgent {
    pub runner: Arc<PluginManager>,
    /// `[runbooks] dir`: where the fleet's runbooks are held.
    pub runbooks: Option<PathBuf>,
    /// The agent's monitors: a check plugin's first run after install uses its monitor's config.
    pub monitors: Vec<warden_automation::monitor::Monitor>,
}

impl OfflineAgent {
    fn runbooks(&self) -> FleetRunbooks<'_> {
        FleetRunbooks {
            runner: &self.runner,
            dir: self.runbooks.as_deref(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("the agent config has no [fleet] section: this agent never enrolled")]
    NotEnrolled,
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// The fleet state of the agent `config` describes, for kits: its identity (the credentials
/// `[fleet]` names), its state file (`<data-dir>/fleet/state.sqlite`, the link's) and its
/// install paths.
pub fn offline(runner: Arc<PluginManager>, config: &AgentConfig) -> Result<Offline, OfflineError> {
    let fleet = config.fleet.as_ref().ok_or(OfflineError::NotEnrolled)?;
    let identity = FleetIdentity::load(&fleet.credentials, fleet.tenant.clone())?;
    Ok(Offline {
        identity,
        state: runner.data_dir().join("fleet").join("state.sqlite"),
        audit: runner.audit_shared(),
        outbox_cap: fleet.outbox_cap,
        agent: Arc::new(OfflineAgent {
            runner,
            runbooks: config.runbooks.dir.clone(),
            monitors: config.automation.monitors.clone(),
        }),
    })
}

impl FleetAgent for OfflineAgent {
    fn run(
        &self,
        _run: FleetRun,
        _accepted: oneshot::Sender<UnixMillis>,
    ) -> BoxFuture<Result<RunOutcome, RunRefused>> {
        Box::pin(async {
            Err(RunRefused::new(
                RefusalReason::Invalid,
                "an offline kit carries no runs",
            ))
        })
    }

    fn inventory(&self) -> Inventory {
        Inventory {
            plugins: installed_plugins(&self.runner),
            ..Inventory::default()
        }
    }

    fn install(&self, bundle: &[u8], source: &str) -> Result<Installed, InstallRefused> {
        install_desired(&self.runner, &self.monitors, bundle, source)
    }

    fn apply_policy(&self, bundle: &[u8], source: &str) -> Result<bool, InstallRefused> {
        apply_desired_policy(&self.runner, bundle, source)
    }

    fn install_runbook(
        &self,
        name: &str,
        bundle: &[u8],
        source: &str,
    ) -> Result<bool, InstallRefused> {
        self.runbooks().install(name, bundle, source)
    }

    fn remove(&self, kind: ItemKind, name: &str) -> Result<bool, InstallRefused> {
        remove_desired(&self.runbooks(), kind, name)
    }

    fn cancel(&self, _run: &RunId) -> CancelOutcome {
        CancelOutcome::Unknown
    }
}
